"""Progress of long work (the simulator, a rebuild, a `gig-etl run`): a bar redrawn
in place on a terminal, and nothing at all when the output is piped or captured."""

from __future__ import annotations

import logging
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, TextIO

_WIDTH = 30
# Redrawn at most this often: a bar that repaints per message slows the work.
_REDRAW_S = 0.2


class ProgressBar:
    def __init__(self, label: str, total: int, stream: TextIO | None = None, shown: bool | None = None) -> None:
        """`shown`: whether to draw at all; by default, when `stream` is a terminal."""
        self.label, self.total = label, max(total, 1)
        self.stream = stream or sys.stderr
        self.shown = self.stream.isatty() if shown is None else shown
        self._drawn_at = 0.0

    def update(self, done: int, detail: str = "", total: int | None = None) -> None:
        """Redraws the bar; `total` replaces the one it was made with, for work whose
        size is known only once it starts."""
        if total is not None:
            self.total = max(total, 1)
        now = time.monotonic()
        if not self.shown or (now - self._drawn_at < _REDRAW_S and done < self.total):
            return
        self._drawn_at = now
        filled = min(_WIDTH, _WIDTH * done // self.total)
        percent = min(100, 100 * done // self.total)
        self.stream.write(f"\r{self.label} [{'#' * filled}{'-' * (_WIDTH - filled)}] {percent:>3}% {detail}\033[K")
        self.stream.flush()

    def close(self) -> None:
        if self.shown and self._drawn_at:
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


# Set only while `gig-etl run` executes its job in this process: the assets' drain
# and load then draw bars on its terminal. Runs launched by the daemon, whose
# output goes to a log, leave it unset.
_run_terminal: TextIO | None = None


@contextmanager
def showing_run_progress(stream: TextIO | None = None) -> Iterator[None]:
    """Lets `run_progress` draw on `stream` (stderr by default) if it is a terminal.
    Dagster points file descriptors 1 and 2 at its compute log while a step runs,
    so the bars write to a duplicate of the terminal's descriptor, taken now."""
    global _run_terminal
    stream = stream or sys.stderr
    if not stream.isatty():
        yield
        return
    _run_terminal = os.fdopen(os.dup(stream.fileno()), "w")
    try:
        yield
    finally:
        _run_terminal.close()
        _run_terminal = None


def run_progress(label: str, total: int) -> ProgressBar:
    """A bar for one step of a run: drawn under `showing_run_progress` on a
    terminal, silent otherwise."""
    if _run_terminal is None:
        return ProgressBar(label, total, shown=False)
    return ProgressBar(label, total, _run_terminal)


@contextmanager
def library_output_to(path: Path) -> Iterator[Path]:
    """Sends what libraries write to stderr or log through Python's root logger
    (Dagster's storage retrying a lost database, say) to `path`, not the terminal:
    the command's own outcome stays one line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    with open(path, "a") as log:
        handler = logging.StreamHandler(log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        saved_handlers, saved_stderr = root.handlers[:], sys.stderr
        root.handlers = [handler]
        sys.stderr = log
        try:
            yield path
        finally:
            sys.stderr = saved_stderr
            root.handlers = saved_handlers
