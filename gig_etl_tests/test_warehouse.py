import json

import duckdb

from gig_etl.contract import TopicKind
from gig_etl.lib.home import raw_root, warehouse_path
from gig_etl.lib.load import load_integration
from gig_etl.lib.raw_store import RawStore
from gig_etl.lib.warehouse import ROW_GROUP_SIZE, connect_warehouse
from gig_etl.simulate import generate_traffic
from gig_etl_tests.pipeline import register
from gig_etl_tests.raw_helpers import store_batch


def _rows_per_row_group(db, table: str) -> list[int]:
    return [
        rows for (rows,) in db.execute(
            "SELECT sum(count) FROM pragma_storage_info(?) WHERE column_path = '[0]' GROUP BY row_group_id ORDER BY ALL",
            [table],
        ).fetchall()
    ]


def test_every_connection_writes_small_row_groups_to_the_warehouse_wherever_it_is(tmp_path):
    # DuckDB keeps the row group size per connection, not in the file: a second
    # connection writes small row groups too.
    path = tmp_path / "it's a folder" / "warehouse.duckdb"
    with connect_warehouse(path) as db:
        db.execute("CREATE TABLE numbers AS SELECT range AS n FROM range(40_000)").fetchall()
    with connect_warehouse(path) as db:
        db.execute("INSERT INTO numbers SELECT range FROM range(40_000)").fetchall()
        db.execute("CHECKPOINT").fetchall()
        sizes = _rows_per_row_group(db, "numbers")
    assert sum(sizes) == 80_000
    assert max(sizes) <= ROW_GROUP_SIZE < 122_880  # DuckDB's own default


def test_a_warehouse_that_kept_seen_message_ids_as_text_still_knows_them(tmp_path):
    integration = register(tmp_path, "it", "acme", "b:1")
    store = RawStore(raw_root(tmp_path))
    messages = [m for m in generate_traffic("acme", 40, seed=3) if m.kind is TopicKind.PROFILES]
    store_batch(store, "it", "acme", TopicKind.PROFILES, messages)
    path = warehouse_path(tmp_path)
    with connect_warehouse(path) as db:
        first = load_integration(db, store, integration).total
    # What an older gig-etl left: the same ids, as text.
    ids = [json.loads(m.value)["message_id"] for m in messages if m.value is not None]
    with duckdb.connect(str(path)) as db:
        db.execute("DROP TABLE seen_messages").fetchall()
        db.execute("CREATE TABLE seen_messages (integration VARCHAR NOT NULL, message_id VARCHAR NOT NULL)").fetchall()
        db.executemany("INSERT INTO seen_messages VALUES ('it', ?)", [[i] for i in ids])

    store_batch(store, "it", "acme", TopicKind.PROFILES, messages)  # every message again
    with connect_warehouse(path) as db:
        again = load_integration(db, store, integration).total
        columns = db.execute("SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'seen_messages'").fetchall()
    assert columns == [("integration", "VARCHAR"), ("message_hash", "UHUGEINT")]
    assert first.loaded == len(messages) and again.duplicates == len(ids)
    assert again.loaded == again.erasures  # tombstones carry no id: applied again, changing nothing


def test_a_warehouse_whose_subscriptions_had_a_primary_key_keeps_its_rows_without_it(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as db:  # what an older gig-etl made
        db.execute(
            "CREATE TABLE subscriptions (integration VARCHAR NOT NULL, profile_id VARCHAR NOT NULL, "
            "channel VARCHAR NOT NULL, subscribed BOOLEAN, updated_at TIMESTAMPTZ NOT NULL, "
            "PRIMARY KEY (integration, profile_id, channel))"
        ).fetchall()
        db.execute(
            "INSERT INTO subscriptions VALUES ('it', 'p1', 'email', true, '2026-11-20 10:00:00+00'), "
            "('it', 'p1', 'sms', NULL, '2026-11-20 10:00:00+00')"
        ).fetchall()
        before = db.execute("SELECT * FROM subscriptions ORDER BY ALL").fetchall()
    for _ in range(2):  # the second connection finds nothing to upgrade
        with connect_warehouse(path) as db:
            keys = db.execute(
                "SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'subscriptions' "
                "AND constraint_type = 'PRIMARY KEY'"
            ).fetchall()
            assert keys == [(0,)]
            assert db.execute("SELECT * FROM subscriptions ORDER BY ALL").fetchall() == before
            tables = db.execute("SELECT table_name FROM duckdb_tables() WHERE table_name LIKE '%before_upgrade'").fetchall()
            assert tables == []


def test_an_older_quarantine_learns_the_customer_each_value_names_and_its_catalog_where_values_are(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as db:  # what an older gig-etl made
        db.execute(
            'CREATE TABLE quarantine (integration VARCHAR NOT NULL, topic VARCHAR NOT NULL, "partition" INTEGER NOT NULL, '
            '"offset" BIGINT NOT NULL, key BLOB, raw_value BLOB, reason VARCHAR NOT NULL, '
            'quarantined_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (integration, topic, "partition", "offset"))'
        ).fetchall()
        db.execute(
            "INSERT INTO quarantine VALUES ('it', 't', 0, 0, 'a', '{\"customer_id\": \"b\"}', 'r', now()), "
            "('it', 't', 0, 1, 'a', '\\xFF'::BLOB, 'r', now())"
        ).fetchall()
        db.execute(
            "CREATE TABLE attribute_catalog (integration VARCHAR NOT NULL, attribute VARCHAR NOT NULL, "
            "data_type VARCHAR NOT NULL, created_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (integration, attribute))"
        ).fetchall()
        db.execute("INSERT INTO attribute_catalog VALUES ('it', 'gig_new_thing', 'BIGINT', now())").fetchall()
    with connect_warehouse(path) as db:
        assert db.execute('SELECT "offset", customer_id FROM quarantine ORDER BY 1').fetchall() == [(0, "b"), (1, None)]
        assert db.execute("SELECT attribute, column_name FROM attribute_catalog").fetchall() == [
            ("gig_new_thing", "gig_new_thing")
        ]
