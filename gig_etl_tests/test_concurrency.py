"""Runs side by side: one drain per integration at a time, integrations in
parallel, the warehouse's single writer waited for, and nothing else waiting on a run."""

import os
import signal
import subprocess
import time
from pathlib import Path

import dagster as dg
from click.testing import CliRunner

from gig_etl.cli import main
from gig_etl.defs.raw.assets import raw_topics
from gig_etl.instance import dagster_instance
from gig_etl.lib.home import locks_root, raw_root
from gig_etl.lib.kafka import KafkaConnection
from gig_etl.lib.lock import integration_lock
from gig_etl.lib.raw_store import RawStore
from gig_etl.lib.warehouse import connect_warehouse, embedded_lake
from gig_etl.simulate import generate_traffic, produce_traffic
from gig_etl_tests.pipeline import failure_text, gig_etl_process, materialize_integration, register
from gig_etl_tests.raw_helpers import raw_messages

def gig_etl(home: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(**gig_etl_process(home, *args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_drain_waits_for_the_integration_lock_then_fails_naming_its_holder(kafka_broker, tenant, isolated_home):
    produce_traffic(KafkaConnection(kafka_broker.bootstrap_servers), tenant, generate_traffic(tenant, 20, seed=1))
    register(isolated_home, "busy", tenant, kafka_broker.bootstrap_servers)
    with integration_lock(locks_root(isolated_home), "busy", "a test holding it", wait_s=0):
        result = materialize_integration(isolated_home, "busy", [raw_topics], raise_on_error=False, lock_wait_s=0.5)
    assert not result.success
    assert f"integration 'busy' is busy: process {os.getpid()} has held it since" in failure_text(result)
    assert "(a test holding it)" in failure_text(result)
    assert RawStore(raw_root(isolated_home)).batches("busy") == []  # nothing read
    assert materialize_integration(isolated_home, "busy", [raw_topics]).success  # released: it goes on


def test_two_runs_of_one_integration_and_one_of_another_at_once(kafka_broker, tenant, isolated_home):
    connection = KafkaConnection(kafka_broker.bootstrap_servers)
    counts = {}
    for name in ("left", "right"):
        counts[name] = produce_traffic(
            connection, f"{tenant}-{name}", generate_traffic(f"{tenant}-{name}", 150, seed=2)
        ).total
        register(isolated_home, name, f"{tenant}-{name}", kafka_broker.bootstrap_servers)
    runs = [gig_etl(isolated_home, "run", "--integration", name) for name in ("left", "left", "right")]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs

    store = RawStore(raw_root(isolated_home))
    for name in counts:
        assert raw_messages(store, name).select("topic", "partition", "offset").is_unique().all()
    with connect_warehouse(embedded_lake(isolated_home)) as db:
        read = dict(db.execute("SELECT integration, sum(rows) FROM loaded_batches GROUP BY 1").fetchall())
    assert read == counts  # every message read once: the second `left` read nothing twice


def test_listing_integrations_never_waits_on_a_run(isolated_home, kafka_broker, tenant):
    register(isolated_home, "held", tenant, kafka_broker.bootstrap_servers)
    # What a run holds while it loads: the integration's lock and the warehouse's writer lock.
    with integration_lock(locks_root(isolated_home), "held", "a run", wait_s=0), connect_warehouse(
        embedded_lake(isolated_home)
    ):
        started = time.monotonic()
        listing = gig_etl(isolated_home, "integrations", "list")
        output, _ = listing.communicate(timeout=30)
        assert listing.returncode == 0 and "held" in output
        assert time.monotonic() - started < 15


def test_a_killed_cli_run_is_marked_failed_by_the_next_one(kafka_broker, tenant, isolated_home):
    produce_traffic(KafkaConnection(kafka_broker.bootstrap_servers), tenant, generate_traffic(tenant, 400, seed=3))
    register(isolated_home, "killed", tenant, kafka_broker.bootstrap_servers)
    instance = dagster_instance(isolated_home)
    running = gig_etl(isolated_home, "run", "--integration", "killed")
    deadline = time.monotonic() + 60
    while not instance.get_run_records(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        assert running.poll() is None and time.monotonic() < deadline, running.communicate()[0]
        time.sleep(0.05)
    running.send_signal(signal.SIGKILL)
    running.wait()
    running.stdout.close()
    [killed] = instance.get_run_records(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))

    result = CliRunner().invoke(main, ["run", "--integration", "killed"], env={"GIG_ETL_HOME": str(isolated_home)})
    assert result.exit_code == 0, result.output
    run_id = killed.dagster_run.run_id
    assert f"killed: run {run_id} was left unfinished by a process that died; marked failed" in result.output
    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE


def test_the_lake_has_one_writer_at_a_time_and_a_second_waits_then_names_the_first(tmp_path):
    import pytest

    from gig_etl.lib.lock import WarehouseBusy, lake_writer_lock
    from gig_etl_tests.locking import held_in_another_thread

    with held_in_another_thread(lambda: lake_writer_lock(tmp_path, "the load of it", 5)):
        with pytest.raises(WarehouseBusy, match=r"the warehouse is busy: process \d+ has held it since .* \(the load of it\)"):
            with lake_writer_lock(tmp_path, "lake maintenance", 0.3):
                pass
    with lake_writer_lock(tmp_path, "lake maintenance", 1):
        pass
