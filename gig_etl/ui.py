"""`make ui`: the Dagster UI on a live demo: embedded broker, a trickle of traffic,
an approved demo integration, and `dagster dev` with its daemon running the
sensor and the schedule. Ctrl-C (or SIGTERM) stops all of it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
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
        process = subprocess.Popen(
            [dagster, "dev", "-m", "gig_etl.definitions", "-h", "127.0.0.1", "-p", str(web_port)],
            env=os.environ | env,
        )
        try:
            process.wait()
        except KeyboardInterrupt:
            echo("stopping the UI, the trickle and the broker ...")
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        finally:
            stop.set()
            producer.join(timeout=30)
