"""Long work shows a progress bar on a terminal and nothing when piped."""

import io
import os
import pty
import subprocess
import threading

from gig_etl.progress import ProgressBar
from gig_etl_tests.pipeline import gig_etl_process, register


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


def _simulate(home, tenant: str, bootstrap: str, customers: int = 300, **streams) -> subprocess.CompletedProcess:
    return subprocess.run(
        **gig_etl_process(
            home, "simulate", "--bootstrap-servers", bootstrap, "--tenant", tenant, "--customers", str(customers)
        ),
        timeout=120, **streams,
    )


def test_the_simulator_shows_a_bar_on_a_terminal_and_stays_quiet_when_piped(kafka_broker, tenant, isolated_home):
    piped = _simulate(isolated_home, tenant, kafka_broker.bootstrap_servers, capture_output=True, text=True)
    assert piped.returncode == 0, piped.stderr
    assert "\r" not in piped.stdout + piped.stderr and "[#" not in piped.stderr
    assert "produced to" in piped.stdout

    shown = _on_terminal(
        lambda terminal: _simulate(isolated_home, f"{tenant}-tty", kafka_broker.bootstrap_servers, stdout=terminal, stderr=terminal)
    )
    assert b"\rproducing gig." in shown and b"100%" in shown


def test_a_run_shows_its_drain_and_load_on_a_terminal(kafka_broker, tenant, isolated_home):
    # Piped, a run shows none: test_chaos_at_scale.py checks its large one.
    simulated = _simulate(isolated_home, tenant, kafka_broker.bootstrap_servers, customers=60, capture_output=True)
    assert simulated.returncode == 0
    register(isolated_home, "bars", tenant, kafka_broker.bootstrap_servers)

    shown = _on_terminal(
        lambda terminal: subprocess.run(
            **gig_etl_process(isolated_home, "run", "--integration", "bars"), timeout=300, stdout=terminal, stderr=terminal
        )
    )
    assert b"\rbars: draining [" in shown and b"\rbars: loading [" in shown
    assert b"100% " in shown and b"raw batches" in shown and b"bars: run " in shown


def _on_terminal(run) -> bytes:
    """What `run(terminal)`, a process writing to a pseudo-terminal, showed on it.
    Read as it is written: a full terminal buffer would block the process."""
    controller, terminal = pty.openpty()
    shown = bytearray()

    def read_all() -> None:
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal's other end is closed: all was read
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=read_all, daemon=True)
    reader.start()
    try:
        completed = run(terminal)
    finally:
        os.close(terminal)
        reader.join(timeout=10)
        os.close(controller)
    assert completed.returncode == 0, bytes(shown[-2000:])
    return bytes(shown)
