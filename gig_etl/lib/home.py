"""Where gig-etl keeps its files: `$GIG_ETL_HOME`, by default `./data`."""

from __future__ import annotations

import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

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


def locks_root(home: Path) -> Path:
    return home / "locks"


class HomeUnwritable(RuntimeError):
    """gig-etl cannot write where it keeps its files (disk full, read-only, not a folder)."""


@contextmanager
def writing_under(folder: Path, what: str) -> Iterator[None]:
    """Turns a failure to write under `folder` into one clear `HomeUnwritable`."""
    try:
        yield
    except (OSError, sqlite3.OperationalError) as exc:
        cause = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise HomeUnwritable(f"cannot write {what} under {folder}: {cause}") from exc
