"""`make stack`: the team deployment on one machine. Postgres and SeaweedFS (S3)
start on loopback ports under a temporary folder, several tenants' traffic goes
to an embedded broker, each integration runs in a worker process of its own, side
by side, against the shared servers; then it says where everything landed and
stops the servers."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from gig_etl.broker import EmbeddedBroker
from gig_etl.demo import warehouse_summary
from gig_etl.lib.deployment import current_deployment
from gig_etl.lib.identifiers import quote_identifier
from gig_etl.lib.kafka import KafkaConnection
from gig_etl.lib.warehouse import open_lake
from gig_etl.servers import PostgresServer, SeaweedServer
from gig_etl.simulate import generate_traffic, produce_traffic
from gig_etl.workers import WorkerResult, run_workers

STACK_BUCKET = "gig-etl"


def stack_settings(
    postgres: PostgresServer, s3: SeaweedServer, database: str | None = None, prefix: str = "stack"
) -> dict[str, str]:
    """The environment that points gig-etl at the two servers (a `database` and an
    S3 `prefix` of them), each secret in a variable that a setting names."""
    return {
        "GIG_ETL_POSTGRES_URL": postgres.url_for(database),
        "GIG_ETL_POSTGRES_PASSWORD_ENV": "GIG_ETL_STACK_PG_PASSWORD", "GIG_ETL_STACK_PG_PASSWORD": postgres.password,
        "GIG_ETL_OBJECT_STORE": f"s3://{STACK_BUCKET}/{prefix}", "GIG_ETL_S3_ENDPOINT": s3.endpoint,
        "GIG_ETL_S3_ACCESS_KEY_ENV": "GIG_ETL_STACK_S3_KEY", "GIG_ETL_STACK_S3_KEY": s3.access_key,
        "GIG_ETL_S3_SECRET_KEY_ENV": "GIG_ETL_STACK_S3_SECRET", "GIG_ETL_STACK_S3_SECRET": s3.secret_key,
    }


def run_integrations(
    home: Path, names: list[str], parallel: bool, environ: dict[str, str] | None = None
) -> tuple[float, list[WorkerResult]]:
    """`gig-etl run --integration NAME` for each, in a worker process of its own;
    returns the seconds they took, and each one's result."""
    started = time.monotonic()
    results = run_workers(home, [["--integration", name] for name in names], parallel, environ)
    return time.monotonic() - started, results


def run_stack(tenants: int, customers: int, echo: Callable[[str], None], shards: int = 2) -> bool:
    """Runs it all, each integration's drain in `shards` runs; returns whether every
    integration's run succeeded. The servers' folder is deleted then, else kept."""
    folder = Path(tempfile.mkdtemp(prefix="gig-etl-stack-"))
    echo(f"gig-etl stack: servers and home under {folder}")
    with PostgresServer(folder / "postgres") as postgres, SeaweedServer(folder / "seaweedfs") as s3, \
            EmbeddedBroker() as broker:
        echo(f"1/4 Postgres on {postgres.url}, SeaweedFS (S3) on {s3.endpoint}, broker on {broker.bootstrap_servers}")
        os.environ.update(stack_settings(postgres, s3) | {"GIG_ETL_DRAIN_SHARDS": str(shards)})
        home = folder / "home"
        deployment = current_deployment(home)
        names = [f"tenant-{n + 1}" for n in range(tenants)]
        echo(f"2/4 {customers:,} simulated customers for each of {tenants} tenants")
        for number, name in enumerate(names):
            produce_traffic(KafkaConnection(broker.bootstrap_servers), name,
                            generate_traffic(name, customers, seed=number, chaos=0.02))
            registry = deployment.registry()
            registry.create(name, name, broker.bootstrap_servers)
            registry.approve(name)
        echo(f"3/4 {tenants} integrations side by side against the shared servers: each drained by {shards} "
             "workers (a run per shard), then loaded")
        seconds, results = run_integrations(home, names, parallel=True)
        for result in results:
            echo("\n".join("    " + line for line in result.output.splitlines()))
        echo(f"    all {tenants} runs ended in {seconds:.1f} s")
        echo("4/4 where everything landed")
        for line in deployment.describe():
            echo("    " + line)
        with open_lake(deployment.lake(), read_only=True) as db:
            for name in names:
                profiles, events = (
                    db.execute(f"SELECT count(*) FROM {quote_identifier(table)} WHERE integration = ?", [name]).fetchone()[0]
                    for table in ("profiles", "events")
                )
                echo(f"    {name}: {profiles:,} profiles, {events:,} events")
            echo("    " + "\n    ".join(warehouse_summary(db, names[0])[-6:]))
    succeeded = all(result.status == 0 for result in results)
    if succeeded:
        shutil.rmtree(folder, ignore_errors=True)
    echo(f"servers stopped; their data and logs under {folder} {'deleted' if succeeded else 'kept, for a look'}")
    return succeeded
