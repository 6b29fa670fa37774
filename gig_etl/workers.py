"""Worker processes: `gig-etl run` in a process of its own for each piece of work,
as a run launcher would start one (the shards of a sharded tick, the stack's
integrations)."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping


@dataclass(frozen=True)
class WorkerResult:
    status: int
    output: str  # what it printed, stdout then stderr


def run_workers(
    home: Path, arguments: list[list[str]], parallel: bool = True, environ: Mapping[str, str] | None = None
) -> list[WorkerResult]:
    """`gig-etl run ARGUMENTS` for each, each in a process of its own (a worker, as
    a run launcher would start one), side by side or one after another."""

    def worker(args: list[str]) -> WorkerResult:
        done = subprocess.run(
            [sys.executable, "-m", "gig_etl.cli", "run", *args],
            env=dict(os.environ if environ is None else environ) | {"GIG_ETL_HOME": str(home)},
            capture_output=True, text=True,
        )
        return WorkerResult(done.returncode, (done.stdout + done.stderr).strip())

    with ThreadPoolExecutor(max_workers=len(arguments) if parallel else 1) as pool:
        return list(pool.map(worker, arguments))
