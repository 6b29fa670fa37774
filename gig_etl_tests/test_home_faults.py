"""A full disk or an unwritable $GIG_ETL_HOME: one clear message, no offsets advanced."""

import resource
import subprocess
from pathlib import Path

from gig_etl.defs.raw.assets import raw_topics
from gig_etl.lib.home import raw_root
from gig_etl.lib.kafka import KafkaConnection
from gig_etl.lib.raw_store import RawStore
from gig_etl.lib.warehouse import embedded_lake, open_lake
from gig_etl.simulate import generate_traffic, produce_traffic
from gig_etl_tests.pipeline import gig_etl_process, materialize_integration, register

FILE_SIZE_LIMIT = 1024 * 1024
LAKE_FILE_SIZE_LIMIT = 256 * 1024


def run(home: Path, integration: str, max_file_bytes: int | None = None) -> subprocess.CompletedProcess:
    def limit_file_size() -> None:
        # Writes past the limit fail with EFBIG, as they would with ENOSPC on a full
        # disk (Python ignores SIGXFSZ, so the process is not killed).
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    return subprocess.run(
        **gig_etl_process(home, "run", "--integration", integration), capture_output=True, text=True, timeout=300,
        preexec_fn=limit_file_size if max_file_bytes else None,
    )


def manifest_offsets(home: Path, integration: str, tenant: str) -> dict:
    store = RawStore(raw_root(home))
    return {kind: store.next_offsets(integration, f"gig.{tenant}.{kind}") for kind in ("profiles", "events")}


def test_a_full_disk_fails_the_run_in_one_line_and_advances_no_offset(kafka_broker, tenant, isolated_home):
    produced = produce_traffic(KafkaConnection(kafka_broker.bootstrap_servers), tenant, generate_traffic(tenant, 1_500))
    register(isolated_home, "full", tenant, kafka_broker.bootstrap_servers)
    RawStore(raw_root(isolated_home))  # the manifest exists: only batch files hit the limit

    failed = run(isolated_home, "full", max_file_bytes=FILE_SIZE_LIMIT)
    assert failed.returncode == 1
    [line] = failed.stderr.strip().splitlines()
    assert line.startswith("full: run ") and "failed: integration 'full': cannot write a raw batch under " in line
    assert line.endswith("File too large"), line
    assert manifest_offsets(isolated_home, "full", tenant) == {"profiles": {}, "events": {}}
    assert not list(raw_root(isolated_home).rglob("*.parquet*"))  # the half-written file is gone

    retried = run(isolated_home, "full")  # space again: the next run reads everything
    assert retried.returncode == 0, retried.stderr
    assert f"load: {produced.total:,} read" in retried.stdout


def test_a_full_disk_under_the_warehouse_fails_the_load_in_one_line_and_rolls_back_the_batch_it_was_in(
    kafka_broker, tenant, isolated_home
):
    produced = produce_traffic(KafkaConnection(kafka_broker.bootstrap_servers), tenant, generate_traffic(tenant, 300))
    register(isolated_home, "fullwh", tenant, kafka_broker.bootstrap_servers)
    assert materialize_integration(isolated_home, "fullwh", [raw_topics]).success  # raw is in place

    # The lake writes a file per table per batch, each far below the raw limit.
    failed = run(isolated_home, "fullwh", max_file_bytes=LAKE_FILE_SIZE_LIMIT)
    assert failed.returncode == 1
    [line] = failed.stderr.strip().splitlines()
    assert f"failed: integration 'fullwh': cannot write the warehouse {embedded_lake(isolated_home).catalog}: " in line
    assert "File too large" in line

    retried = run(isolated_home, "fullwh")
    assert retried.returncode == 0, retried.stderr
    # Batches that committed before the disk filled stay; the one it failed in
    # left nothing, and loads now: every message is read exactly once.
    with open_lake(embedded_lake(isolated_home), read_only=True) as db:
        [(read,)] = db.execute("SELECT sum(rows) FROM internal.loaded_batches WHERE integration = 'fullwh'").fetchall()
    assert read == produced.total


def test_a_home_whose_raw_folder_cannot_be_created_fails_in_one_line(kafka_broker, tenant, isolated_home):
    register(isolated_home, "blocked", tenant, kafka_broker.bootstrap_servers)
    raw_root(isolated_home).write_text("not a folder")
    failed = run(isolated_home, "blocked")
    assert failed.returncode == 1
    [line] = failed.stderr.strip().splitlines()
    assert f"failed: integration 'blocked': cannot write the raw manifest under {raw_root(isolated_home)}: " in line
