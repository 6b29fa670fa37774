"""The persistent Dagster instance under $GIG_ETL_HOME, shared by the CLI and `make ui`,
so that runs started from the command line show in the UI."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from gig_etl.lib.home import dagster_home

# Written once when missing (an operator's own edits are kept). Runs are tagged
# with their partition, the integration: one run at a time per integration, so
# a refresh never overlaps another refresh or a compaction of the same data.
_INSTANCE_CONFIG = """\
telemetry:
  enabled: false
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
    return dg.DagsterInstance.get()
