"""Progress of long work (the simulator, a rebuild): a bar redrawn in place on a
terminal, and nothing at all when the output is piped or captured."""

from __future__ import annotations

import sys
import time
from typing import TextIO

_WIDTH = 30
# Redrawn at most this often: a bar that repaints per message slows the work.
_REDRAW_S = 0.2


class ProgressBar:
    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label, self.total = label, max(total, 1)
        self.stream = stream or sys.stderr
        self.shown = self.stream.isatty()
        self._drawn_at = 0.0

    def update(self, done: int, detail: str = "") -> None:
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
