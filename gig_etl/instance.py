"""The persistent Dagster instance under $GIG_ETL_HOME, shared by the CLI and `make ui`,
so that runs started from the command line show in the UI."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from gig_etl.lib.home import dagster_home
from gig_etl.lib.lock import file_lock

# Written once when missing (an operator's own edits are kept). Runs are tagged
# with their partition, the integration: one run at a time per integration, so
# a refresh never overlaps another refresh or a compaction of the same data.
# A run whose process was killed stays STARTED and would hold that one slot for
# ever; run monitoring fails it once it has run longer than any refresh should.
_INSTANCE_CONFIG = """\
telemetry:
  enabled: false
run_monitoring:
  enabled: true
  max_runtime_seconds: 7200
  poll_interval_seconds: 60
concurrency:
  runs:
    tag_concurrency_limits:
      - key: "dagster/partition"
        value:
          applyLimitPerUniqueValue: true
        limit: 1
"""


def prepare_dagster_home(home: Path) -> Path:
    folder = dagster_home(home)
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "dagster.yaml"
    if not config.exists():
        config.write_text(_INSTANCE_CONFIG)
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
