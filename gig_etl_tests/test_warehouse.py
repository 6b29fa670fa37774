import os
import subprocess
import sys
from pathlib import Path

import pytest

from gig_etl.contract import TopicKind
from gig_etl.lib.home import raw_root
from gig_etl.lib.identifiers import is_safe_identifier
from gig_etl.lib.load import load_integration
from gig_etl.lib.raw_store import RawStore
from gig_etl.lib.warehouse import (
    ANALYST_TABLES,
    WarehouseNeedsRebuild,
    WarehouseUnavailable,
    connect_warehouse,
    embedded_lake,
    extension_file,
    legacy_warehouse_file,
    open_lake,
)
from gig_etl.simulate import generate_traffic
from gig_etl_tests.pipeline import register
from gig_etl_tests.raw_helpers import store_batch

_LOAD_AND_READ = """
import sys
from pathlib import Path
from gig_etl.lib.warehouse import connect_warehouse, embedded_lake, open_lake
lake = embedded_lake(Path(sys.argv[1]))
with connect_warehouse(lake) as db:  # makes the lake: a commit to the catalog
    pass
with open_lake(lake, read_only=True) as db:
    print(db.execute(
        "SELECT extension_name, install_mode FROM duckdb_extensions() WHERE loaded "
        "AND extension_name IN ('ducklake', 'sqlite_scanner') ORDER BY 1"
    ).fetchall())
    print(db.execute("SELECT current_setting('autoinstall_known_extensions')").fetchall())
"""


def test_the_lake_opens_with_extensions_from_their_wheels_and_nothing_downloaded_or_installed(tmp_path):
    # A fresh HOME and a proxy that refuses everything: an INSTALL from the network,
    # or one into ~/.duckdb, would fail or leave a trace.
    home = tmp_path / "user"
    home.mkdir()
    env = os.environ | {"HOME": str(home), "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_AND_READ, str(tmp_path / "gig")], env=env, capture_output=True, text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "[('ducklake', 'NOT_INSTALLED'), ('sqlite_scanner', 'NOT_INSTALLED')]",  # loaded by path, not installed
        "[(False,)]",
    ]
    assert not (home / ".duckdb").exists()
    for name in ("ducklake", "sqlite_scanner", "postgres", "httpfs"):
        assert extension_file(name).is_file(), name


def _loaded_lake(home: Path):
    integration = register(home, "it", "acme", "b:1")
    store = RawStore(raw_root(home))
    messages = list(generate_traffic("acme", 30, seed=4))
    for kind in TopicKind:
        store_batch(store, "it", "acme", kind, [m for m in messages if m.kind is kind])
    with connect_warehouse(embedded_lake(home)) as db:
        load_integration(db, store, integration)
    return embedded_lake(home)


def test_an_analyst_sees_only_analyst_tables_each_table_and_column_commented_none_needing_quotes(tmp_path):
    lake = _loaded_lake(tmp_path)
    with open_lake(lake, read_only=True) as db:
        shown = {name for (name,) in db.execute("SHOW TABLES").fetchall()}
        assert shown == {*ANALYST_TABLES, "marketable_profiles", "player_value"}
        internal = {name for (name,) in db.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'lake' AND schema_name = 'internal'"
        ).fetchall()}
        assert {"seen_messages", "attribute_state", "loaded_batches"} <= internal
        uncommented = db.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'lake' AND schema_name = 'main' "
            "AND comment IS NULL UNION ALL SELECT view_name FROM duckdb_views() WHERE database_name = 'lake' "
            "AND schema_name = 'main' AND comment IS NULL"
        ).fetchall()
        assert uncommented == []
        columns = db.execute(
            "SELECT c.table_name, c.column_name, c.comment FROM duckdb_columns() AS c JOIN duckdb_tables() AS t "
            "USING (database_name, schema_name, table_name) WHERE database_name = 'lake' AND schema_name = 'main'"
        ).fetchall()
        reserved = {w for (w,) in db.execute("SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category = 'reserved'").fetchall()}
        view_columns = {c for (c,) in db.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = 'lake' AND table_name = 'player_value'"
        ).fetchall()}
    assert [(t, c) for t, c, comment in columns if not comment] == []
    assert any(c == "gig_email" for _, c, _ in columns)
    for _, column, _ in columns:
        assert is_safe_identifier(column) and column not in reserved, column
    for column in view_columns:
        assert is_safe_identifier(column) and column not in reserved, column


def test_a_home_with_the_warehouse_file_of_an_older_gig_etl_is_told_to_rebuild_in_one_line(tmp_path):
    legacy_warehouse_file(tmp_path).write_bytes(b"DUCK" * 100)
    with pytest.raises(WarehouseNeedsRebuild) as raised:
        connect_warehouse(embedded_lake(tmp_path), legacy_file=legacy_warehouse_file(tmp_path))
    assert "\n" not in str(raised.value) and "gig-etl rebuild" in str(raised.value)


def test_a_lake_that_cannot_be_opened_is_one_clear_error(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(WarehouseUnavailable) as unmade:  # where a folder must be, a file
        connect_warehouse(embedded_lake(blocker))
    with pytest.raises(WarehouseUnavailable) as absent:  # read before the first run made it
        open_lake(embedded_lake(tmp_path / "fresh"), read_only=True)
    with pytest.raises(WarehouseUnavailable) as broken:  # a catalog that is no DuckLake
        (tmp_path / "broken" / "lake").mkdir(parents=True)
        (tmp_path / "broken" / "lake" / "catalog.sqlite").write_bytes(b"not a database" * 100)
        open_lake(embedded_lake(tmp_path / "broken"), read_only=True)
    assert "cannot make the lake's folder" in str(unmade.value)
    assert "there is no lake at" in str(absent.value) and "yet" in str(absent.value)
    assert "cannot open the lake" in str(broken.value)
    for raised in (unmade, absent, broken):
        assert "\n" not in str(raised.value)
