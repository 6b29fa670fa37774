"""The warehouse as a DuckLake: readers and loads never wait for each other, every
load is a snapshot to read back to, an erasure leaves no file holding the
customer, and maintenance keeps the lake small."""

import json
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
from click.testing import CliRunner

from gig_etl.cli import main
from gig_etl.contract import PROFILE_MESSAGE_TYPE, TopicKind
from gig_etl.defs.resources import WarehouseResource
from gig_etl.defs.warehouse.maintenance import lake_maintenance
from gig_etl.lib.home import raw_root
from gig_etl.lib.kafka import KafkaConnection
from gig_etl.lib.load import load_integration
from gig_etl.lib.raw_store import RawStore
from gig_etl.lib.warehouse import connect_warehouse, embedded_lake, open_lake
from gig_etl.simulate import envelope, generate_traffic, message, produce_traffic
from gig_etl_tests.pipeline import asset_metadata, gig_etl_process, register
from gig_etl_tests.raw_helpers import store_batch

# Holds one read transaction open: its count, then (on a line from stdin) the
# count in the same transaction, then the count after it ends.
_READER = """
import sys
from pathlib import Path
from gig_etl.lib.warehouse import embedded_lake, open_lake
db = open_lake(embedded_lake(Path(sys.argv[1])), read_only=True)
count = "SELECT count(*) FROM events"
db.execute("BEGIN TRANSACTION")
print(db.execute(count).fetchall()[0][0], flush=True)
sys.stdin.readline()
print(db.execute(count).fetchall()[0][0], flush=True)
db.execute("COMMIT")
print(db.execute(count).fetchall()[0][0], flush=True)
"""


def _events(home: Path) -> int:
    with open_lake(embedded_lake(home), read_only=True) as db:
        return db.execute("SELECT count(*) FROM events").fetchall()[0][0]


def _profiles(home: Path) -> int:
    """Read from the files (a plain count may come from the catalog's statistics)."""
    with open_lake(embedded_lake(home), read_only=True) as db:
        return db.execute("SELECT count(DISTINCT customer_id) FROM profiles").fetchall()[0][0]


def test_a_reader_open_across_a_run_neither_waits_nor_is_waited_for(kafka_broker, tenant, isolated_home):
    connection = KafkaConnection(kafka_broker.bootstrap_servers)
    produce_traffic(connection, tenant, generate_traffic(tenant, 60, seed=11))
    register(isolated_home, "shared", tenant, kafka_broker.bootstrap_servers)
    first = subprocess.run(**gig_etl_process(isolated_home, "run"), capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    before = _events(isolated_home)
    produce_traffic(connection, tenant, generate_traffic(tenant, 60, seed=12, first_customer_id=900_000))

    reader = subprocess.Popen(
        [sys.executable, "-c", _READER, str(isolated_home)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True, **{k: v for k, v in gig_etl_process(isolated_home).items() if k in ("cwd", "env")},
    )
    try:
        assert int(reader.stdout.readline()) == before
        started = time.monotonic()
        second = subprocess.run(**gig_etl_process(isolated_home, "run"), capture_output=True, text=True, timeout=300)
        took = time.monotonic() - started
        assert second.returncode == 0, second.stdout + second.stderr
        after = _events(isolated_home)
        assert after > before
        reader.stdin.write("again\n")
        reader.stdin.flush()
        assert int(reader.stdout.readline()) == before  # its transaction keeps the snapshot it began with
        assert int(reader.stdout.readline()) == after  # the next one sees the run's
        assert reader.wait(timeout=30) == 0
    finally:
        reader.kill()
    assert took < 120, took  # DuckDB's file lock used to hold a run for as long as a reader stayed


def _load(home: Path, integration, store: RawStore) -> None:
    with connect_warehouse(embedded_lake(home)) as db:
        load_integration(db, store, integration)


def _snapshot(home: Path) -> int:
    with open_lake(embedded_lake(home), read_only=True) as db:
        return db.execute("SELECT max(snapshot_id) FROM ducklake_snapshots('lake')").fetchall()[0][0]


def _loaded_customer(home: Path, them: str, first_name: str):
    """An integration whose lake holds one customer, loaded from their one profile message."""
    integration = register(home, "it", "acme", "b:1")
    store = RawStore(raw_root(home))
    profile = envelope("acme", them, PROFILE_MESSAGE_TYPE, "2026-11-20T10:00:00Z", {"first_name": first_name})
    store_batch(store, "it", "acme", TopicKind.PROFILES, [message(TopicKind.PROFILES, them, profile)])
    _load(home, integration, store)
    return integration, store


def _assert_no_file_holds(home: Path, them: str, first_name: str) -> None:
    for path in (home / "lake").rglob("*.parquet"):
        for cell in _cells(path):
            assert cell != them and first_name not in str(cell), (path, cell)


def _cells(path: Path) -> list:
    table = pq.read_table(path)
    return [cell for column in table.columns for cell in column.to_pylist()]


def test_an_erasure_leaves_no_file_in_the_lake_holding_the_customer_and_expires_the_snapshots_that_did(tmp_path):
    integration = register(tmp_path, "it", "acme", "b:1")
    store = RawStore(raw_root(tmp_path))
    others = list(generate_traffic("acme", 20, seed=5))
    store_batch(store, "it", "acme", TopicKind.PROFILES, others)
    _load(tmp_path, integration, store)
    before_them = _snapshot(tmp_path)

    them, email = "4242", "erase.me@example.org"
    mine = [
        message(TopicKind.PROFILES, them, envelope("acme", them, PROFILE_MESSAGE_TYPE, "2026-11-20T10:00:00Z",
                                                   {"email": email, "first_name": "Zebedee", "vip_level": 3})),
        message(TopicKind.EVENTS, them, envelope("acme", them, "bonus", "2026-11-20T10:05:00Z", {"bonus_id": "b-4242"})),
        # Bad input about them, under another key: quarantined, and erased with them.
        message(TopicKind.EVENTS, "other", json.dumps({"customer_id": them, "email": email}).encode()),
    ]
    for kind in TopicKind:
        store_batch(store, "it", "acme", kind, mine, first_offset=1_000)
    _load(tmp_path, integration, store)
    holding_them = _snapshot(tmp_path)
    with open_lake(embedded_lake(tmp_path), read_only=True) as db:
        assert db.execute("SELECT gig_email FROM profiles WHERE customer_id = ?", [them]).fetchall() == [(email,)]
        assert db.execute("SELECT count(*) FROM quarantine WHERE customer_id = ?", [them]).fetchall() == [(1,)]

    store_batch(store, "it", "acme", TopicKind.PROFILES, [message(TopicKind.PROFILES, them, None)], first_offset=2_000)
    _load(tmp_path, integration, store)

    # Read the files, not the tables: every Parquet file under the lake.
    files = list((tmp_path / "lake").rglob("*.parquet"))
    assert files
    for path in files:
        for cell in _cells(path):
            text = cell.decode(errors="replace") if isinstance(cell, bytes) else str(cell)
            assert cell != them and text != them and email not in text and "Zebedee" not in text, (path, cell)
    with open_lake(embedded_lake(tmp_path), read_only=True) as db:
        live = {s for (s,) in db.execute("SELECT snapshot_id FROM ducklake_snapshots('lake')").fetchall()}
        assert holding_them not in live
        assert before_them in live  # from before they arrived: still there to read
        assert db.execute("SELECT count(*) FROM profiles AT (VERSION => ?)", [before_them]).fetchall()[0][0] > 0
        assert db.execute("SELECT count(*) FROM profiles WHERE customer_id = ?", [them]).fetchall() == [(0,)]


def test_an_erasure_expires_the_oldest_snapshot_left_when_the_customer_came_before_it(tmp_path):
    them = "4444"
    integration, store = _loaded_customer(tmp_path, them, "Ottoline")
    traffic = list(generate_traffic("acme", 20, seed=13))
    store_batch(store, "it", "acme", TopicKind.PROFILES, traffic, first_offset=10)
    _load(tmp_path, integration, store)
    # Maintenance keeps only its newest snapshot: the snapshots that inserted their
    # rows are gone, and the files merged.
    lake = embedded_lake(tmp_path)
    dg.materialize(
        [lake_maintenance],
        resources={"warehouse": WarehouseResource(catalog=lake.catalog, data_path=lake.data_path, snapshot_retention_days=0)},
    )
    oldest_left = _snapshot(tmp_path)
    store_batch(store, "it", "acme", TopicKind.EVENTS, traffic, first_offset=10)
    _load(tmp_path, integration, store)
    after_it = _snapshot(tmp_path)

    store_batch(store, "it", "acme", TopicKind.PROFILES, [message(TopicKind.PROFILES, them, None)], first_offset=500)
    _load(tmp_path, integration, store)

    with open_lake(lake, read_only=True) as db:
        live = {s for (s,) in db.execute("SELECT snapshot_id FROM ducklake_snapshots('lake')").fetchall()}
        assert oldest_left not in live and after_it not in live
        assert db.execute("SELECT count(*) FROM profiles").fetchall()[0][0] > 0
    _assert_no_file_holds(tmp_path, them, "Ottoline")


def test_a_home_moved_elsewhere_is_read_and_loaded_where_it_is_now(tmp_path):
    first = tmp_path / "first"
    integration = register(first, "it", "acme", "b:1")
    traffic = list(generate_traffic("acme", 30, seed=14))
    store_batch(RawStore(raw_root(first)), "it", "acme", TopicKind.PROFILES, traffic[:40])
    _load(first, integration, RawStore(raw_root(first)))
    held = _profiles(first)
    moved = tmp_path / "moved"
    first.rename(moved)  # nothing is left where the lake was made

    assert _profiles(moved) == held
    store = RawStore(raw_root(moved))
    store_batch(store, "it", "acme", TopicKind.PROFILES, traffic, first_offset=500)
    _load(moved, integration, store)
    assert _profiles(moved) > held
    assert not first.exists()


def test_gig_etl_sql_prints_a_query_now_or_as_of_an_earlier_snapshot_and_refuses_writes(tmp_path):
    integration = register(tmp_path, "it", "acme", "b:1")
    store = RawStore(raw_root(tmp_path))
    traffic = list(generate_traffic("acme", 30, seed=6))
    store_batch(store, "it", "acme", TopicKind.PROFILES, traffic[:40])
    _load(tmp_path, integration, store)
    earlier = _snapshot(tmp_path)
    store_batch(store, "it", "acme", TopicKind.PROFILES, traffic, first_offset=500)
    _load(tmp_path, integration, store)
    env = {"GIG_ETL_HOME": str(tmp_path)}
    with open_lake(embedded_lake(tmp_path), read_only=True) as db:
        now = db.execute("SELECT count(*) FROM profiles").fetchall()[0][0]
        then = db.execute("SELECT count(*) FROM profiles AT (VERSION => ?)", [earlier]).fetchall()[0][0]
    assert then < now

    query = "SELECT count(*) AS profiles_held FROM profiles"
    current = CliRunner().invoke(main, ["sql", query], env=env)
    assert current.exit_code == 0, current.output
    assert "profiles_held" in current.output and f" {now} " in current.output
    back = CliRunner().invoke(main, ["sql", "--as-of", str(earlier), query], env=env)
    assert back.exit_code == 0, back.output
    assert f" {then} " in back.output

    refused = CliRunner().invoke(main, ["sql", "DELETE FROM profiles"], env=env)
    assert refused.exit_code == 2 and refused.output.count("\n") == 1, refused.output
    assert "the query failed" in refused.output and "read-only" in refused.output.lower()
    unknown = CliRunner().invoke(main, ["sql", "--as-of", "99999", query], env=env)
    assert unknown.exit_code == 2 and "not 99999" in unknown.output

    # No query: the DuckDB CLI on the lake, read-only (here fed from stdin).
    shell = subprocess.run(
        **gig_etl_process(tmp_path, "sql"), input="SELECT count(*) AS held FROM profiles;\n", capture_output=True,
        text=True, timeout=60,
    )
    assert shell.returncode == 0, shell.stderr
    assert str(now) in shell.stdout


def test_maintenance_merges_small_files_expires_old_snapshots_and_keeps_the_data(tmp_path):
    integration = register(tmp_path, "it", "acme", "b:1")
    store = RawStore(raw_root(tmp_path))
    traffic = list(generate_traffic("acme", 40, seed=8))
    for start in range(0, len(traffic), len(traffic) // 6 + 1):  # several small loads: many small files
        store_batch(store, "it", "acme", TopicKind.EVENTS, traffic[start : start + len(traffic) // 6 + 1], first_offset=start)
        _load(tmp_path, integration, store)
    lake = embedded_lake(tmp_path)
    with open_lake(lake, read_only=True) as db:
        held = db.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchall()
    files_before = len(list((tmp_path / "lake" / "data").rglob("*.parquet")))
    snapshots_before = _snapshot(tmp_path)

    result = dg.materialize(
        [lake_maintenance],
        resources={"warehouse": WarehouseResource(catalog=lake.catalog, data_path=lake.data_path, snapshot_retention_days=0)},
    )
    counts = asset_metadata(result)["lake_maintenance"]
    assert counts["files_merged"] > counts["files_created"] > 0
    assert counts["snapshots_expired"] > 0 and counts["files_deleted"] > 0
    assert counts["snapshots_kept"] == 1
    assert len(list((tmp_path / "lake" / "data").rglob("*.parquet"))) < files_before
    with open_lake(lake, read_only=True) as db:
        assert db.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchall() == held
        assert db.execute("SELECT min(snapshot_id) FROM ducklake_snapshots('lake')").fetchall()[0][0] >= snapshots_before


def test_a_home_from_before_the_lake_fails_runs_in_one_line_until_a_rebuild_makes_the_lake(
    kafka_broker, tenant, isolated_home
):
    produce_traffic(KafkaConnection(kafka_broker.bootstrap_servers), tenant, generate_traffic(tenant, 30, seed=9))
    register(isolated_home, "moved", tenant, kafka_broker.bootstrap_servers)
    legacy = isolated_home / "warehouse.duckdb"
    legacy.write_bytes(b"\0" * 4096)  # what DuckDB 2.0 wrote: this DuckDB cannot read it

    def gig_etl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(**gig_etl_process(isolated_home, *args), capture_output=True, text=True, timeout=300)

    refused = gig_etl("run")
    assert refused.returncode == 1
    [line] = refused.stderr.strip().splitlines()
    assert "warehouse.duckdb is the warehouse of an earlier gig-etl" in line and "`gig-etl rebuild`" in line, line

    rebuilt = gig_etl("rebuild", "--integration", "moved")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "moved: rebuilt from" in rebuilt.stdout and "the warehouse is now the lake" in rebuilt.stdout
    assert not legacy.exists() and (isolated_home / "warehouse.duckdb.before-lake").exists()
    assert _events(isolated_home) > 0
    assert gig_etl("run").returncode == 0


def test_an_erasure_whose_run_dies_before_the_history_is_forgotten_is_forgotten_by_the_next_load(
    tmp_path, monkeypatch
):
    import gig_etl.lib.load as load_module

    them = "4343"
    integration, store = _loaded_customer(tmp_path, them, "Quilla")
    store_batch(store, "it", "acme", TopicKind.PROFILES, [message(TopicKind.PROFILES, them, None)], first_offset=10)

    def killed(*_):
        raise SystemExit("killed while forgetting the erased customer's history")

    monkeypatch.setattr(load_module, "forget_history_of", killed)
    try:
        _load(tmp_path, integration, store)
    except SystemExit:
        pass
    monkeypatch.undo()
    _load(tmp_path, integration, store)  # the next run, nothing new to load

    _assert_no_file_holds(tmp_path, them, "Quilla")
