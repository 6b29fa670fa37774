"""The load against its golden copy (`golden.py`): every table it builds from
the fixed backlog, row for row, and its counts."""

import json

from gig_etl.lib.load import INTEGRATION_TABLES
from gig_etl_tests.golden import INTEGRATIONS, golden_path, load_backlog, table_query, totals_path


def test_the_load_builds_every_table_of_the_golden_backlog_row_for_row(tmp_path):
    db, totals, approved = load_backlog(tmp_path)
    differences = {}
    with db:
        for name in INTEGRATIONS:
            for table in INTEGRATION_TABLES:
                query, params = table_query(table, name, approved[name])
                golden = f"SELECT * FROM read_parquet('{golden_path(name, table)}')"
                missing = db.execute(f"{golden} EXCEPT ALL ({query})", params).fetchall()
                extra = db.execute(f"({query}) EXCEPT ALL {golden}", params).fetchall()
                [(rows,)] = db.execute(f"SELECT count(*) FROM ({golden})").fetchall()
                if missing or extra:
                    differences[f"{name}.{table}"] = {"missing": missing[:5], "extra": extra[:5]}
                assert rows > 0 or table == "raw_erasure_positions", f"{name}.{table} is empty in the golden copy"
    assert not differences, differences
    assert {n: vars(t) for n, t in totals.items()} == json.loads(totals_path().read_text())
    by_customer = totals["by_customer"]
    assert by_customer.batches > 8 and by_customer.erasures and by_customer.duplicates and by_customer.quarantined
