"""Long work shows a progress bar on a terminal and nothing when piped."""

import io
import os
import pty
import subprocess

from gig_etl.progress import ProgressBar
from gig_etl_tests.pipeline import gig_etl_process


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_is_drawn_in_place_on_a_terminal_and_not_at_all_into_a_pipe():
    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        with ProgressBar("work", 4, stream) as bar:
            for done in range(5):
                bar.update(done, f"{done} of 4")
    drawn = terminal.getvalue()
    assert drawn.startswith("\rwork [") and drawn.endswith("] 100% 4 of 4\033[K\n")
    assert pipe.getvalue() == ""


def _simulate(home, tenant: str, bootstrap: str, **streams) -> subprocess.CompletedProcess:
    return subprocess.run(
        **gig_etl_process(home, "simulate", "--bootstrap-servers", bootstrap, "--tenant", tenant, "--customers", "300"),
        timeout=120, **streams,
    )


def test_the_simulator_shows_a_bar_on_a_terminal_and_stays_quiet_when_piped(kafka_broker, tenant, isolated_home):
    piped = _simulate(isolated_home, tenant, kafka_broker.bootstrap_servers, capture_output=True, text=True)
    assert piped.returncode == 0, piped.stderr
    assert "\r" not in piped.stdout + piped.stderr and "[#" not in piped.stderr
    assert "produced to" in piped.stdout

    controller, terminal = pty.openpty()
    try:
        on_terminal = _simulate(isolated_home, f"{tenant}-tty", kafka_broker.bootstrap_servers, stdout=terminal, stderr=terminal)
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal's other end is closed: all was read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(controller)
    assert on_terminal.returncode == 0
    assert b"\rproducing gig." in shown and b"100%" in shown
