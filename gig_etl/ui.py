"""`make ui`: the Dagster UI on a live demo: embedded broker, a trickle of traffic,
an approved demo integration, and `dagster dev` with its daemon running the
sensor and the schedule. Ctrl-C (or SIGTERM) stops all of it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from gig_etl.broker import EmbeddedBroker
from gig_etl.demo import approve_demo_integration, fresh_demo_integration
from gig_etl.instance import prepare_dagster_home
from gig_etl.lib.kafka import KafkaConnection
from gig_etl.simulate import trickle


def _interrupt(*_args: object) -> None:
    raise KeyboardInterrupt


def run_ui(home: Path, integration: str, tenant: str, port: int, echo: Callable[[str], None], web_port: int = 3000) -> None:
    signal.signal(signal.SIGTERM, _interrupt)  # stopped by a service manager: clean up as for Ctrl-C
    existing = fresh_demo_integration(home, integration, tenant, port, echo)
    with EmbeddedBroker(port) as broker:
        echo(f"embedded broker on {broker.bootstrap_servers}")
        approve_demo_integration(home, integration, tenant, port, existing, echo)
        stop = threading.Event()
        producer = threading.Thread(
            target=trickle, args=(KafkaConnection(broker.bootstrap_servers), tenant, stop), daemon=True
        )
        producer.start()
        echo(f"a trickle of traffic for tenant {tenant!r}; the UI on http://127.0.0.1:{web_port} (Ctrl-C stops all)")
        dagster = str(Path(sys.executable).with_name("dagster"))
        env = {"DAGSTER_HOME": str(prepare_dagster_home(home)), "GIG_ETL_HOME": str(home)}
        # A process group of its own: `dagster dev` starts the webserver, the daemon
        # and code servers, and all of them are stopped together, as a terminal's
        # Ctrl-C stops them, however this process itself was stopped.
        process = subprocess.Popen(
            [dagster, "dev", "-m", "gig_etl.definitions", "-h", "127.0.0.1", "-p", str(web_port)],
            env=os.environ | env,
            start_new_session=True,
        )
        try:
            process.wait()
        except KeyboardInterrupt:
            echo("stopping the UI, the trickle and the broker ...")
        finally:
            _stop_group(process)
            stop.set()
            producer.join(timeout=30)


def _stop_group(process: subprocess.Popen, grace_s: float = 30.0) -> None:
    """Interrupts every process of `process`'s group, and kills what is left after
    `grace_s` (a code server waits out its heartbeat otherwise)."""
    for sent in (signal.SIGINT, signal.SIGKILL):
        try:
            os.killpg(process.pid, sent)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            continue
        # dagster dev has exited; its children may linger a moment.
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
