"""The `gig-etl` command line."""

from __future__ import annotations

import functools
import signal
import subprocess
import sys
from datetime import datetime
from typing import Callable

import click

from gig_etl.broker import BrokerError, broker_command
from gig_etl.lib.drain import DrainError
from gig_etl.lib.home import resolve_home
from gig_etl.lib.kafka import KafkaConnection, KafkaUnavailable
from gig_etl.simulate import (
    DEFAULT_DAYS,
    DEFAULT_PARTITIONS,
    DEFAULT_START,
    FIRST_CUSTOMER_ID,
    TrafficSummary,
    generate_traffic,
    print_progress,
    produce_traffic,
)

DEMO_TENANT = "demo-casino"
DEMO_INTEGRATION = "demo"


class CliError(click.ClickException):
    """A failure to report in one line, with exit status 1."""

    def format_message(self) -> str:
        return self.message


def reports_failures(command: Callable) -> Callable:
    """Turns the expected failures (broker, drain) into one clear line, no traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (KafkaUnavailable, DrainError, BrokerError) as exc:
            raise CliError(str(exc)) from exc

    return wrapper


@click.group()
def main() -> None:
    """gig-etl: the GiG player stream into a marketing warehouse."""


@main.command()
@click.option("--port", type=int, default=9092, show_default=True, help="Port on 127.0.0.1.")
@click.option("--authentication", is_flag=True, help="Refuse clients that do not authenticate.")
def broker(port: int, authentication: bool) -> None:
    """Run the embedded Kafka-compatible broker (memory only) until Ctrl-C."""
    click.echo(f"embedded broker on 127.0.0.1:{port} (data in memory; Ctrl-C stops it)")
    process = subprocess.Popen(broker_command(port, authentication))
    try:
        sys.exit(process.wait())
    except KeyboardInterrupt:
        process.send_signal(signal.SIGTERM)
        process.wait()


@main.command()
@click.option("--bootstrap-servers", required=True, help="host:port[,host:port...]")
@click.option("--tenant", required=True, help="Tenant ID: the topics are gig.<tenant>.profiles and .events.")
@click.option("--customers", type=click.IntRange(min=0), required=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same messages.")
@click.option("--chaos", type=click.FloatRange(0.0, 1.0), default=0.0, show_default=True,
              help="Rate of misbehaving messages (duplicates, late, bad types, not JSON, ...).")
@click.option("--partitions", type=click.IntRange(min=1), default=DEFAULT_PARTITIONS, show_default=True,
              help="Partitions of each topic, when the simulator creates it.")
@click.option("--start", type=click.DateTime(formats=["%Y-%m-%d"]), default=DEFAULT_START.strftime("%Y-%m-%d"),
              show_default=True, help="Day (UTC) the simulated period starts.")
@click.option("--days", type=click.IntRange(min=1), default=DEFAULT_DAYS, show_default=True)
@click.option("--first-customer-id", type=int, default=FIRST_CUSTOMER_ID, show_default=True)
@reports_failures
def simulate(
    bootstrap_servers: str, tenant: str, customers: int, seed: int, chaos: float,
    partitions: int, start: datetime, days: int, first_customer_id: int,
) -> None:
    """Produce realistic GiG traffic for a tenant."""
    summary = simulate_traffic(
        KafkaConnection(bootstrap_servers), tenant, customers, seed, chaos, partitions,
        start.replace(tzinfo=DEFAULT_START.tzinfo), days, first_customer_id,
    )
    click.echo(f"produced to gig.{tenant}.profiles and gig.{tenant}.events:")
    click.echo(summary.report())


def simulate_traffic(
    connection: KafkaConnection, tenant: str, customers: int, seed: int = 0, chaos: float = 0.0,
    partitions: int = DEFAULT_PARTITIONS, start: datetime = DEFAULT_START, days: int = DEFAULT_DAYS,
    first_customer_id: int = FIRST_CUSTOMER_ID,
) -> TrafficSummary:
    messages = generate_traffic(tenant, customers, seed, chaos, start, days, first_customer_id)
    return produce_traffic(connection, tenant, messages, partitions, progress=print_progress)


@main.command()
@click.option("--customers", type=click.IntRange(min=1), default=2_000, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--chaos", type=click.FloatRange(0.0, 1.0), default=0.02, show_default=True)
@reports_failures
def demo(customers: int, seed: int, chaos: float) -> None:
    """End to end on the embedded defaults: broker, simulated traffic, drain."""
    from gig_etl.demo import run_demo

    run_demo(resolve_home(), DEMO_TENANT, DEMO_INTEGRATION, customers, seed, chaos, echo=click.echo)


if __name__ == "__main__":
    main()
