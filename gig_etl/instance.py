"""The persistent Dagster instance under $GIG_ETL_HOME, shared by the CLI and `make ui`,
so that runs started from the command line show in the UI."""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Iterator

import dagster as dg

from gig_etl.lib.deployment import Deployment, current_deployment
from gig_etl.lib.home import dagster_home
from gig_etl.lib.lock import file_lock
from gig_etl.lib.state_db import StateUnavailable

# Written when missing, and rewritten while it starts with the line below (delete
# that line to keep your own edits). Runs are tagged with their slot
# (`gig_etl/slot`): the integration, or one shard of its drain. One run at a time
# per slot: a refresh never overlaps another refresh or a compaction of the same
# data, and the shards of a drain run side by side; eight runs at most in all.
# A run whose process was killed stays STARTED and would hold that one slot for
# ever; run monitoring fails it once it has run longer than any refresh should.
_WRITTEN_BY_GIG_ETL = "# Written by gig-etl from its settings; delete this line to keep your own edits.\n"
_INSTANCE_CONFIG = """\
telemetry:
  enabled: false
run_monitoring:
  enabled: true
  max_runtime_seconds: 7200
  poll_interval_seconds: 60
concurrency:
  runs:
    max_concurrent_runs: 8
    tag_concurrency_limits:
      - key: "gig_etl/slot"
        value:
          applyLimitPerUniqueValue: true
        limit: 1
"""


def instance_config(deployment: Deployment) -> str:
    """dagster.yaml for the deployment: runs and events in its Postgres, if it has one."""
    text = _WRITTEN_BY_GIG_ETL + _INSTANCE_CONFIG
    postgres = deployment.postgres
    if postgres is not None:
        # Each value as a JSON string, which YAML reads as the same string.
        text += "storage:\n  postgres:\n    postgres_db:\n" + "".join(
            f"      {key}: {value}\n" for key, value in {
                "username": json.dumps(postgres.user), "hostname": json.dumps(postgres.host),
                "port": postgres.port, "db_name": json.dumps(postgres.database),
                # SQLAlchemy 2.1 takes plain postgresql:// for psycopg 3, which is not installed.
                "scheme": "postgresql+psycopg2",
            }.items()
        )
        if postgres.password_env:
            text += f"      password:\n        env: {postgres.password_env}\n"
    return text


def prepare_dagster_home(home: Path) -> Path:
    folder = dagster_home(home)
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "dagster.yaml"
    if not config.exists() or config.read_text().startswith(_WRITTEN_BY_GIG_ETL):
        wanted = instance_config(current_deployment(home))
        if not config.exists() or config.read_text() != wanted:
            temporary = config.with_suffix(f".yaml.{os.getpid()}")
            temporary.write_text(wanted)
            os.replace(temporary, config)
    return folder


def dagster_instance(home: Path) -> dg.DagsterInstance:
    folder = prepare_dagster_home(home)
    os.environ["DAGSTER_HOME"] = str(folder)
    # Two processes creating the instance's SQLite storages at once collide (both
    # stamp the schema version): the first creates them, the others wait.
    with file_lock(folder / "setup.lock", "creating the Dagster instance", wait_s=120):
        instance = dg.DagsterInstance.get()
        instance.get_run_records(limit=1)
        instance.get_latest_materialization_event(dg.AssetKey("none"))
    return instance


@contextmanager
def dagster_storage_errors(home: Path) -> Iterator[None]:
    """Dagster's Postgres storage gone (stopped, unreachable) as one StateUnavailable line."""
    try:
        yield
    except Exception as exc:
        postgres = current_deployment(home).postgres
        if postgres is None or not _lost_storage(exc):
            raise
        import sqlalchemy.exc

        cause: BaseException = exc
        while cause.__cause__ is not None and not isinstance(cause, sqlalchemy.exc.DBAPIError):
            cause = cause.__cause__
        detail = cause.orig if isinstance(cause, sqlalchemy.exc.DBAPIError) else cause
        first = (str(detail).strip().splitlines() or [type(detail).__name__])[0]
        raise StateUnavailable(f"Postgres at {postgres.describe()} (Dagster's runs and events) is unavailable: {first}") from exc


def _lost_storage(exc: Exception) -> bool:
    """Whether `exc` is Dagster's storage losing its database. Its modules are looked
    at only now: importing dagster-postgres on every run would cost a second."""
    import sqlalchemy.exc

    postgres_utils = sys.modules.get("dagster_postgres.utils")
    lost = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)
    if postgres_utils is not None:
        lost += (postgres_utils.DagsterPostgresException,)
    return isinstance(exc, lost)


@dataclass(frozen=True)
class LastRun:
    started_at: str  # UTC, to the minute
    outcome: str  # the run's Dagster status, lower case: success, failure, started, ...


def last_runs(home: Path, integrations: list[str]) -> dict[str, LastRun]:
    """Each integration's newest run, from the CLI or the daemon, if it had one. An
    instance not created yet is not created for this: no run happened."""
    if not (dagster_home(home) / "dagster.yaml").exists():
        return {}
    instance = dagster_instance(home)
    found = {}
    for name in integrations:
        records = instance.get_run_records(filters=dg.RunsFilter(tags={"dagster/partition": name}), limit=1)
        if records:
            record = records[0]
            moment = record.start_time or record.create_timestamp.timestamp()
            found[name] = LastRun(
                datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M UTC"), record.dagster_run.status.value.lower()
            )
    return found
