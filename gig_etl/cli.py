"""The `gig-etl` command line."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from typing import Callable

import click

from gig_etl.broker import BrokerError, broker_command
from gig_etl.contract import PROFILE_IDENTIFIERS, tenant_topics
from gig_etl.lib.deployment import current_deployment
from gig_etl.lib.drain import DrainError
from gig_etl.lib.file_area import ObjectStoreUnavailable
from gig_etl.lib.gate import NotApproved
from gig_etl.lib.home import HomeUnwritable, resolve_home
from gig_etl.lib.kafka import (
    SASL_MECHANISMS,
    SECURITY_PROTOCOLS,
    KafkaConnection,
    KafkaUnavailable,
)
from gig_etl.lib.lock import IntegrationBusy, WarehouseBusy
from gig_etl.lib.registry import CredentialsError, Integration, IntegrationRegistry, RegistryError
from gig_etl.lib.state_db import ConfigurationError, StateUnavailable
from gig_etl.lib.warehouse import WarehouseNeedsRebuild, WarehouseUnavailable
from gig_etl.servers import ServerError
from gig_etl.simulate import (
    DEFAULT_DAYS,
    DEFAULT_PARTITIONS,
    FIRST_CUSTOMER_ID,
    TrafficSummary,
    generate_traffic,
    produce_with_progress,
)

DEMO_TENANT = "demo-casino"
DEMO_INTEGRATION = "demo"
# The live demo of `make ui` is an integration of its own: preparing it for a new
# embedded broker clears its rows, never those `make demo` left.
LIVE_TENANT = "live-casino"
LIVE_INTEGRATION = "live"
DEMO_PORT = 39092


class CliError(click.ClickException):
    """A failure to report in one line, with exit status 1."""

    def format_message(self) -> str:
        return self.message


class InputError(CliError):
    """Bad input or a request the registry refuses: one line, exit status 2."""

    exit_code = 2


class OneOf(click.Choice):
    """A closed set of values whose mistake, like any other bad input, is one line
    naming the choices (click's own error adds the usage and a hint)."""

    def convert(self, value, param, ctx):
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            raise InputError(f"invalid {param.opts[0]} {value!r}: one of {', '.join(self.choices)}") from None


def reports_failures(command: Callable) -> Callable:
    """Turns the expected failures into one clear line, no traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (RegistryError, NotApproved) as exc:
            raise InputError(str(exc)) from exc
        except (
            KafkaUnavailable, DrainError, BrokerError, CredentialsError, HomeUnwritable, IntegrationBusy, WarehouseBusy,
            WarehouseNeedsRebuild, WarehouseUnavailable, ConfigurationError, StateUnavailable,
            ObjectStoreUnavailable, ServerError,
        ) as exc:
            raise CliError(str(exc)) from exc

    return wrapper


def registry() -> IntegrationRegistry:
    return current_deployment().registry()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gig-etl", prog_name="gig-etl")
def main() -> None:
    """gig-etl: the GiG player stream into a marketing warehouse.

    Everything it keeps is under $GIG_ETL_HOME (./data when unset): raw Parquet
    and its manifest, the integration registry, the warehouse and the Dagster
    instance."""


@main.command()
@click.option("--port", type=int, default=9092, show_default=True, help="Port on 127.0.0.1.")
@click.option("--authentication", is_flag=True, help="Refuse clients that do not authenticate.")
def broker(port: int, authentication: bool) -> None:
    """Run the embedded Kafka-compatible broker (memory only) until Ctrl-C or SIGTERM."""
    click.echo(f"embedded broker on 127.0.0.1:{port} (data in memory; Ctrl-C stops it)")
    process = subprocess.Popen(broker_command(port, authentication))
    # `kill` or a service manager sends SIGTERM, whose default would leave the broker orphaned.
    signal.signal(signal.SIGTERM, lambda *_: process.send_signal(signal.SIGTERM))
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
@click.option("--now", type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
              help="The time (UTC) simulated lives end at (default: the time of simulation); same seed, same now, "
              "same messages.")
@click.option("--days", type=click.IntRange(min=1), default=DEFAULT_DAYS, show_default=True,
              help="Lives begin in the days before --now.")
@click.option("--first-customer-id", type=int, default=FIRST_CUSTOMER_ID, show_default=True)
@reports_failures
def simulate(
    bootstrap_servers: str, tenant: str, customers: int, seed: int, chaos: float,
    partitions: int, now: datetime | None, days: int, first_customer_id: int,
) -> None:
    """Produce realistic GiG traffic for a tenant."""
    summary = simulate_traffic(
        KafkaConnection(bootstrap_servers), tenant, customers, seed, chaos, partitions,
        now.replace(tzinfo=UTC) if now else None, days, first_customer_id,
    )
    click.echo(f"produced to gig.{tenant}.profiles and gig.{tenant}.events:")
    click.echo(summary.report())


def simulate_traffic(
    connection: KafkaConnection, tenant: str, customers: int, seed: int = 0, chaos: float = 0.0,
    partitions: int = DEFAULT_PARTITIONS, now: datetime | None = None, days: int = DEFAULT_DAYS,
    first_customer_id: int = FIRST_CUSTOMER_ID,
) -> TrafficSummary:
    messages = generate_traffic(tenant, customers, seed, chaos, now, days, first_customer_id)
    return produce_with_progress(connection, tenant, messages, customers, partitions)


@main.command()
@click.option("--customers", type=click.IntRange(min=1), default=2_000, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--chaos", type=click.FloatRange(0.0, 1.0), default=0.02, show_default=True)
@click.option("--port", type=int, default=DEMO_PORT, show_default=True, help="Port of the demo's embedded broker.")
@reports_failures
def demo(customers: int, seed: int, chaos: float, port: int) -> None:
    """End to end on the embedded defaults: broker, traffic, approval, one run."""
    from gig_etl.demo import run_demo

    run_demo(resolve_home(), DEMO_INTEGRATION, DEMO_TENANT, port, customers, seed, chaos, echo=click.echo)


@main.command()
@click.option("--tenants", type=click.IntRange(1, 16), default=4, show_default=True)
@click.option("--customers", type=click.IntRange(min=1), default=1_000, show_default=True, help="Per tenant.")
@reports_failures
def stack(tenants: int, customers: int) -> None:
    """The team deployment on this machine: Postgres, SeaweedFS (S3) and parallel
    workers, started, run end to end and stopped."""
    from gig_etl.stack import run_stack

    if not run_stack(tenants, customers, echo=click.echo):
        sys.exit(1)


@main.command()
@click.option("--integration", help="Only this integration (it must be approved).")
@click.option("--shard", help="K/N: only shard K of N of the integration's drain (a worker of a sharded tick).")
@click.option("--tick", hidden=True, help="The tick a shard's drain belongs to.")
@reports_failures
def run(integration: str | None, shard: str | None, tick: str | None) -> None:
    """One scheduler tick: refresh every approved integration, or the one named."""
    from gig_etl.lib.shard import Shard
    from gig_etl.progress import library_output_to, showing_run_progress
    from gig_etl.tick import outcome_lines, run_tick

    try:
        drain_shard = Shard.parse(shard) if shard else None
    except ValueError as exc:
        raise InputError(f"--shard: {exc}") from exc
    if drain_shard is not None and integration is None:
        raise InputError("--shard needs --integration")
    home = resolve_home()
    with showing_run_progress(), library_output_to(home / "logs" / "gig-etl-run.log"):
        outcomes = run_tick(home, integration, echo=click.echo, shard=drain_shard, tick=tick)
    for outcome in outcomes:
        click.echo("\n".join(outcome_lines(outcome)), err=not outcome.success)
    if not all(o.success for o in outcomes):
        sys.exit(1)


@main.command()
@click.option("--integration", help="Only this integration.")
@reports_failures
def rebuild(integration: str | None) -> None:
    """Rebuild the warehouse tables from raw Parquet alone, with no broker."""
    from gig_etl.defs.resources import GigEtlHomeResource, WarehouseResource
    from gig_etl.lib.load import rebuild_integration
    from gig_etl.lib.warehouse import connect_warehouse
    from gig_etl.progress import ProgressBar

    home = GigEtlHomeResource()
    warehouse = WarehouseResource()
    known = registry()
    legacy = warehouse.legacy_file()
    moving = legacy is not None and legacy.exists()
    # Every integration that was ever approved may have raw data; the move from an
    # older gig-etl's warehouse file makes the lake of them all.
    if integration and not moving:
        targets = [known.get(integration)]
    else:
        targets = [i for i in known.list() if i.approved_at]
    store = home.raw_store()
    for target in targets:
        scratch = home.root() / "rebuild" / target.name
        # The integration's lock first, then the warehouse's, as a run takes them.
        with home.integration_lock(target.name, "gig-etl rebuild"), warehouse.writer_lock("gig-etl rebuild"), \
                connect_warehouse(warehouse.lake(), warehouse.memory_limit) as db, \
                ProgressBar(f"rebuilding {target.name}", 1) as bar:

            def batch_done(done: int, of: int) -> None:
                bar.total = max(of, 1)
                bar.update(done, f"{done} of {of} raw batches")

            load = rebuild_integration(db, store, target, scratch, on_batch=batch_done)
        total = load.total
        click.echo(
            f"{target.name}: rebuilt from {total.batches} raw batches: {total.rows:,} read, {total.loaded:,} loaded, "
            f"{total.duplicates:,} duplicates, {total.quarantined:,} quarantined"
        )
        for reason in load.unreadable.values():
            click.echo(f"  warning: {reason}: skipped; the next run reads its messages again from Kafka", err=True)
    if moving:
        kept = legacy.with_name(legacy.name + ".before-lake")
        legacy.rename(kept)
        legacy.with_name(legacy.name + ".wal").unlink(missing_ok=True)
        click.echo(f"the warehouse is now the lake {warehouse.describe()}; the old file is kept as {kept} (safe to delete)")


@main.command()
@click.argument("query", required=False)
@click.option("--as-of", help="An earlier snapshot: its number, or a time (ISO 8601, UTC), meaning the last snapshot by then.")
@click.option("--max-rows", type=click.IntRange(min=1), default=40, show_default=True, help="Rows printed at most.")
@click.option("--attach-sql", is_flag=True, help="Print the SQL that opens the warehouse in any DuckDB 1.5.5 session.")
@reports_failures
def sql(query: str | None, as_of: str | None, max_rows: int, attach_sql: bool) -> None:
    """Query the warehouse read-only and print a table; with no QUERY, an
    interactive DuckDB shell on it. Never waits for a load, nor makes one wait."""
    import duckdb

    from gig_etl.analyst import NoSuchSnapshot, attach_statements, open_for_analysis, resolve_snapshot, shell_command
    from gig_etl.defs.resources import WarehouseResource
    from gig_etl.lib.warehouse import refuse_legacy

    warehouse = WarehouseResource()
    lake = warehouse.lake()
    refuse_legacy(warehouse.legacy_file())
    try:
        snapshot = resolve_snapshot(lake, as_of) if as_of else None
        if attach_sql:
            click.echo("\n".join(attach_statements(lake, snapshot)))
            return
        if query is None:
            command = shell_command(lake, snapshot)
            os.execv(command[0], command)
        with open_for_analysis(lake, snapshot) as db:
            try:
                result = db.sql(query)
            except duckdb.Error as exc:
                raise InputError(f"the query failed: {(str(exc).strip().splitlines() or [''])[0]}") from exc
            if result is None:
                return
            result.show(max_rows=max_rows)
    except NoSuchSnapshot as exc:
        raise InputError(str(exc)) from exc


@main.command()
@click.option("--port", type=int, default=DEMO_PORT, show_default=True, help="Port of the embedded broker.")
@click.option("--web-port", type=int, default=3000, show_default=True, help="Port of the Dagster UI.")
@reports_failures
def ui(port: int, web_port: int) -> None:
    """The Dagster UI and daemon on a live demo: broker, trickle of traffic, integration `live`."""
    from gig_etl.ui import run_ui

    run_ui(resolve_home(), LIVE_INTEGRATION, LIVE_TENANT, port, click.echo, web_port)


# --- integrations ---------------------------------------------------------------


@main.group()
def integrations() -> None:
    """Create, inspect and approve GiG connections."""


def _connection_options(command: Callable) -> Callable:
    options = [
        click.option("--tenant-id", help="GiG Tenant ID."),
        click.option("--bootstrap-servers", help="host:port[,host:port...]"),
        click.option("--security-protocol", type=OneOf(SECURITY_PROTOCOLS), help="Default PLAINTEXT."),
        click.option("--sasl-mechanism", type=OneOf(SASL_MECHANISMS)),
        click.option("--username"),
        click.option("--password-env", help="Name of the environment variable that holds the password."),
        click.option(
            "--identifier", type=OneOf(PROFILE_IDENTIFIERS), help="Maps data to profiles (default customer_id)."
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _describe(integration: Integration) -> str:
    password = "-"
    if integration.password_env:
        state = "set" if integration.password_env in os.environ else "NOT set"
        password = f"${integration.password_env} ({state})"
    rows = [
        ("name", integration.name),
        ("status", integration.status.value),
        ("tenant", integration.tenant_id),
        ("bootstrap servers", integration.bootstrap_servers),
        ("security protocol", integration.security_protocol),
        ("SASL mechanism", integration.sasl_mechanism or "-"),
        ("username", integration.username or "-"),
        ("password", password),
        ("identifier", integration.identifier),
        ("created", integration.created_at),
        ("approved", integration.approved_at or "-"),
    ]
    return "\n".join(f"{label:<18} {value}" for label, value in rows)


@integrations.command("create")
@click.argument("name")
@_connection_options
@reports_failures
def create_integration(name: str, tenant_id: str | None, bootstrap_servers: str | None, **settings: str | None) -> None:
    """Create an integration; it waits for approval."""
    if tenant_id is None or bootstrap_servers is None:
        raise InputError("create needs --tenant-id and --bootstrap-servers")
    integration = registry().create(name, tenant_id, bootstrap_servers, **settings)
    click.echo(f"created integration {integration.name!r}: {integration.status.value}")


@integrations.command("list")
@reports_failures
def list_integrations() -> None:
    """One line per integration, with its last run and the lag its last drain found."""
    known = registry().list()
    if not known:
        click.echo("no integrations yet: gig-etl integrations create NAME --tenant-id T --bootstrap-servers B")
        return
    from gig_etl.defs.resources import GigEtlHomeResource
    from gig_etl.instance import last_runs
    from gig_etl.lib.shard import all_shards, lag_key

    runs = last_runs(resolve_home(), [i.name for i in known])
    store = GigEtlHomeResource().raw_store()
    shards = current_deployment().drain_shards
    drains = [None] if shards == 1 else all_shards(shards)
    rows = [("NAME", "STATUS", "TENANT", "BOOTSTRAP SERVERS", "IDENTIFIER", "LAST RUN", "OUTCOME", "LAG")]
    for i in known:
        run = runs.get(i.name)
        lags = [
            store.recent_lags(i.name, lag_key(topic, shard), runs=1)
            for topic in tenant_topics(i.tenant_id).values() for shard in drains
        ]
        rows.append((
            i.name, i.status.value, i.tenant_id, i.bootstrap_servers, i.identifier,
            run.started_at if run else "-", run.outcome if run else "-",
            f"{sum(lag[0] for lag in lags if lag):,}" if any(lags) else "-",
        ))
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


@integrations.command("show")
@click.argument("name")
@reports_failures
def show_integration(name: str) -> None:
    """Everything about one integration (never the password)."""
    click.echo(_describe(registry().get(name)))


@integrations.command("edit")
@click.argument("name")
@_connection_options
@reports_failures
def edit_integration(name: str, **changes: str | None) -> None:
    """Change an integration that is not approved yet."""
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        raise InputError("nothing to change: give at least one option")
    integration = registry().edit(name, **changes)
    click.echo(f"edited integration {integration.name!r}: {integration.status.value}")


def _status_command(action: str, help_text: str) -> None:
    @integrations.command(action, help=help_text)
    @click.argument("name")
    @reports_failures
    def command(name: str) -> None:
        integration = getattr(registry(), action)(name)
        click.echo(f"integration {integration.name!r} is {integration.status.value}")
        if integration.is_readable and integration.password_env and not os.environ.get(integration.password_env):
            click.echo(
                f"warning: the environment variable {integration.password_env} that holds its password is not set "
                "here: its runs fail until it is set where they run",
                err=True,
            )


_status_command("approve", "Approve an integration: it is read from the next tick on and can no longer be edited.")
_status_command("reject", "Reject an integration awaiting approval.")
_status_command("disable", "Stop reading an approved integration.")


if __name__ == "__main__":
    main()
