import sqlite3
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner

from gig_etl.cli import main
from gig_etl.defs.raw.compaction import raw_compacted_days
from gig_etl.lib.home import raw_root
from gig_etl.lib.raw_store import RawStore
from gig_etl.simulate import generate_traffic, produce_traffic
from gig_etl_tests.pipeline import asset_metadata, materialize_integration, register, warehouse_rows
from gig_etl_tests.raw_helpers import raw_messages


def test_compaction_merges_a_day_into_one_file_per_topic_and_partition_and_changes_nothing_else(
    kafka_broker, kafka_connection, tenant, isolated_home
):
    register(isolated_home, "packed", tenant, kafka_broker.bootstrap_servers)
    for first in (100_000, 200_000):  # two runs of small batches: many files
        produce_traffic(kafka_connection, tenant, generate_traffic(tenant, 60, seed=1, chaos=0.05, first_customer_id=first))
        assert materialize_integration(isolated_home, "packed", batch_max_messages=100).success
    store = RawStore(raw_root(isolated_home))
    before_files = len(store.batches("packed"))
    raw_before = raw_messages(store, "packed").sort("topic", "partition", "offset")
    offsets_before = {t: store.next_offsets("packed", t) for t in raw_before["topic"].unique()}
    tables_before = warehouse_rows(isolated_home, "packed")
    yesterday = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    with sqlite3.connect(store.state.sqlite_path) as manifest:  # as if drained yesterday
        manifest.execute("UPDATE raw_batches SET created_at = ?", (yesterday,))

    result = materialize_integration(isolated_home, "packed", assets=[raw_compacted_days])
    assert result.success
    meta = asset_metadata(result)["compacted_days"]
    partitions = raw_before.select("topic", "partition").unique().height
    assert (meta["files_before"], meta["files_after"]) == (before_files, partitions) and before_files > partitions
    assert len(store.batches("packed")) == partitions
    assert raw_messages(store, "packed").sort("topic", "partition", "offset").equals(raw_before)
    assert {t: store.next_offsets("packed", t) for t in offsets_before} == offsets_before
    assert len(list(raw_root(isolated_home).rglob("*.parquet"))) == partitions  # the old files are gone

    again = materialize_integration(isolated_home, "packed")
    assert asset_metadata(again)["profiles"]["read"] == 0  # nothing is loaded twice
    assert warehouse_rows(isolated_home, "packed") == tables_before
    rebuilt = CliRunner().invoke(main, ["rebuild", "--integration", "packed"], env={"GIG_ETL_HOME": str(isolated_home)})
    assert rebuilt.exit_code == 0, rebuilt.output
    assert warehouse_rows(isolated_home, "packed") == tables_before
