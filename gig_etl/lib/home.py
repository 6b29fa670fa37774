"""Where gig-etl keeps its files: `$GIG_ETL_HOME`, by default `./data`."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV_VAR = "GIG_ETL_HOME"
DEFAULT_HOME = "data"


def resolve_home(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The home folder: the explicit path, else `$GIG_ETL_HOME`, else `./data`.
    Read when called, never at import, so tests and the CLI can point it elsewhere."""
    return Path(explicit or os.environ.get(HOME_ENV_VAR) or DEFAULT_HOME).resolve()


def raw_root(home: Path) -> Path:
    return home / "raw"


def dagster_home(home: Path) -> Path:
    return home / "dagster"


def warehouse_path(home: Path) -> Path:
    return home / "warehouse.duckdb"
