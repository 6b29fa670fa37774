from gig_etl.lib.warehouse import ROW_GROUP_SIZE, connect_warehouse


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
