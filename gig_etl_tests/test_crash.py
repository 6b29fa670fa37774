"""Exactly once under SIGKILL: the drain and load, killed at random moments while
messages are being produced, leave raw Parquet and the warehouse as one clean run
would have."""

import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from gig_etl.lib.home import raw_root
from gig_etl.lib.kafka import KafkaConnection
from gig_etl.lib.raw_store import RawStore
from gig_etl.lib.registry import registry_path
from gig_etl.lib.warehouse import embedded_lake, open_lake
from gig_etl.simulate import generate_traffic, produce_traffic
from gig_etl_tests.pipeline import materialize_integration, register, warehouse_rows
from gig_etl_tests.raw_helpers import raw_messages

REPO = Path(__file__).resolve().parents[1]
KILLS = 15


def produce_in_chunks(connection: KafkaConnection, tenant: str, chunks: int, stop: threading.Event) -> int:
    """Twenty new customers (chaos included) about every second; returns the messages produced."""
    produced = 0
    for chunk in range(chunks):
        if stop.is_set():
            break
        messages = generate_traffic(tenant, customers=20, seed=chunk, chaos=0.05, first_customer_id=300_000 + 20 * chunk)
        produced += produce_traffic(connection, tenant, messages).total
        time.sleep(1.0)
    return produced


def start_worker(home: Path, integration: str, log: Path) -> subprocess.Popen:
    with open(log, "w") as log_file:  # a file, not a pipe: a full pipe would stall the run
        return subprocess.Popen(
            [sys.executable, "-m", "gig_etl_tests.crash_worker", str(home), integration, "300"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=log_file, text=True,
        )


def wait_for_step(worker: subprocess.Popen, log: Path, step: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while f'Started execution of step "{step}"' not in log.read_text() and worker.poll() is None:
        assert time.monotonic() < deadline, f"{step} did not start"
        time.sleep(0.02)


def step_at_kill(log: Path) -> str:
    """The step the run was in when it was killed, from its Dagster log."""
    started = re.findall(r'STEP_START - Started execution of step "(\w+)"', log.read_text())
    return started[-1] if started else "starting"


def raw_positions(home: Path, integration: str) -> pl.DataFrame:
    return raw_messages(RawStore(raw_root(home)), integration).select("topic", "partition", "offset", "key", "value")


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing_and_doubles_nothing(kafka_broker, tenant, tmp_path):
    connection = KafkaConnection(kafka_broker.bootstrap_servers)
    home = tmp_path / "crashed"
    register(home, "crash", tenant, kafka_broker.bootstrap_servers)
    stop = threading.Event()
    produced: list[int] = []
    producer = threading.Thread(target=lambda: produced.append(produce_in_chunks(connection, tenant, 45, stop)))
    producer.start()
    rng = random.Random(5)
    log = tmp_path / "worker.log"
    killed_in: Counter[str] = Counter()
    finished = 0
    try:
        while killed_in.total() < KILLS:
            worker = start_worker(home, "crash", log)
            assert worker.stdout.readline().strip() == "started", log.read_text()
            # A third of the kills at any moment of the run, a third while it
            # drains, a third while it loads.
            aim = (None, "raw_topics", "warehouse_tables")[(killed_in.total() + finished) % 3]
            if aim is None:
                time.sleep(rng.uniform(0.0, 2.5))
            else:
                wait_for_step(worker, log, aim)
                time.sleep(rng.uniform(0.0, 0.5))
            if worker.poll() is None:
                worker.send_signal(signal.SIGKILL)
                worker.wait()
                killed_in[step_at_kill(log)] += 1
            else:
                finished += 1
                assert worker.returncode == 0, log.read_text()
            worker.stdout.close()
    finally:
        stop.set()
        producer.join()

    # Production is over: a clean run takes the rest.
    final = start_worker(home, "crash", log)
    final.communicate(timeout=300)
    assert final.returncode == 0, log.read_text()

    # One clean run over the same topics, in a home of its own (same registry, so
    # the same approval time).
    reference = tmp_path / "reference"
    reference.mkdir()
    shutil.copy(registry_path(home), registry_path(reference))
    assert materialize_integration(reference, "crash").success

    crashed_raw, reference_raw = raw_positions(home, "crash"), raw_positions(reference, "crash")
    assert crashed_raw.select("topic", "partition", "offset").is_duplicated().sum() == 0
    assert crashed_raw.sort("topic", "partition", "offset").equals(reference_raw.sort("topic", "partition", "offset"))
    assert warehouse_rows(home, "crash") == warehouse_rows(reference, "crash")
    # Each produced message was read by exactly one committed load (raw keeps fewer:
    # erasure takes the erased customers' messages out of it).
    assert read_by_loads(home, "crash") == sum(produced) > 30_000
    print(f"kills by step: {dict(killed_in)}; {finished} runs ended first; {sum(produced):,} messages produced")
    # Kills landed while draining and while loading, not only at start-up.
    assert killed_in["raw_topics"] and killed_in["warehouse_tables"], killed_in


def read_by_loads(home: Path, integration: str) -> int:
    with open_lake(embedded_lake(home), read_only=True) as db:
        [(rows, accounted)] = db.execute(
            "SELECT sum(rows), sum(loaded + duplicates + quarantined) FROM internal.loaded_batches WHERE integration = ?",
            [integration],
        ).fetchall()
    assert rows == accounted
    return rows
