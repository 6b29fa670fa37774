"""`make ui` as an operator runs it: it starts, runs the live demo, and stops all
it started."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from gig_etl.broker import free_port


def _processes_of(home: Path) -> list[str]:
    """Command lines of the live processes started with GIG_ETL_HOME=home."""
    marker = f"GIG_ETL_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return found


def test_the_ui_prints_no_debug_lines_and_leaves_no_process_behind(tmp_path):
    home = tmp_path / "home"
    ui = subprocess.Popen(
        [sys.executable, "-m", "gig_etl.cli", "ui", "--port", str(free_port()), "--web-port", str(free_port())],
        cwd=Path(__file__).resolve().parents[1], env=os.environ | {"GIG_ETL_HOME": str(home)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(ui.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 180
        while not any("warehouse_tables - live events:" in line for line in lines):  # a run of the daemon loaded
            assert ui.poll() is None and time.monotonic() < deadline, "".join(lines)
            time.sleep(0.5)
    finally:
        ui.send_signal(signal.SIGTERM)  # as a service manager stops it
        ui.wait(timeout=90)
    reader.join(timeout=10)
    assert ui.returncode == 0, "".join(lines)
    # Before: a code server outlived the UI by 50 s, and each run printed its DEBUG events.
    assert _processes_of(home) == []
    assert not [line for line in lines if " - DEBUG - " in line], "".join(lines)
