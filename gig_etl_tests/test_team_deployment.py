"""A team deployment on real shared servers: Postgres for the registry, the raw
manifest, the lake's catalog, the locks and Dagster's runs; SeaweedFS (S3) for raw
Parquet and the lake's files. The same job as the embedded one, the same rows."""

import subprocess
import time
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
from click.testing import CliRunner
from pyarrow import fs

from gig_etl.analyst import attach_statements
from gig_etl.cli import main
from gig_etl.defs.integrations.sensors import load_after_shards, shards_drained_sensor
from gig_etl.defs.warehouse.assets import WAREHOUSE_TABLES
from gig_etl.instance import dagster_instance
from gig_etl.lib.deployment import current_deployment
from gig_etl.lib.lock import IntegrationBusy, integration_lock
from gig_etl.lib.state_db import StateDatabase
from gig_etl.lib.warehouse import embedded_lake
from gig_etl.simulate import generate_traffic, produce_traffic
from gig_etl.tick import run_tick
from gig_etl_tests.conftest import team_settings
from gig_etl_tests.locking import held_in_another_thread
from gig_etl_tests.pipeline import gig_etl_process, warehouse_rows

# Columns that differ between two loads of the same messages: batch ids, and the
# catalog's dates of the contract's attributes (their approval).
_LOAD_COLUMNS = {"batch_id"}
_DATED_AT_APPROVAL = {"attribute_catalog": {"created_at"}}


def _run(home: Path, name: str, tenant: str, bootstrap_servers: str):
    """Registers and approves the integration, and runs one tick of it as `gig-etl run` does."""
    registry = current_deployment(home).registry()
    registry.create(name, tenant, bootstrap_servers)
    registry.approve(name)
    [outcome] = run_tick(home, name, echo=lambda _: None)
    assert outcome.success, outcome.error
    return outcome


def _comparable(rows: dict[str, list], columns: dict[str, list[str]]) -> dict[str, list]:
    return {
        table: sorted(
            tuple(
                v for c, v in zip(columns[table], row) if c not in _LOAD_COLUMNS | _DATED_AT_APPROVAL.get(table, set())
            )
            for row in table_rows
        )
        for table, table_rows in rows.items()
    }


def _columns(lake, tables) -> dict[str, list[str]]:
    from gig_etl.lib.warehouse import open_lake

    with open_lake(lake, read_only=True) as db:
        return {t: [n for n, *_ in db.execute(f"DESCRIBE {t}").fetchall()] for t in tables}


@pytest.fixture(scope="module")
def backlog(kafka_connection, tmp_path_factory) -> tuple[str, dict[str, list]]:
    """One tenant's backlog (chaos, erasures and all), and the rows the embedded
    defaults load from it: what every team deployment here must load too."""
    tenant = "team-backlog"
    produce_traffic(kafka_connection, tenant, generate_traffic(tenant, 300, seed=5, chaos=0.05))
    home = tmp_path_factory.mktemp("embedded") / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GIG_ETL_HOME", str(home))
        patch.setenv("DAGSTER_HOME", str(home / "dagster"))
        _run(home, "shared", tenant, kafka_connection.bootstrap_servers)
        rows = warehouse_rows(home, "shared", WAREHOUSE_TABLES)
        columns = _columns(embedded_lake(home), WAREHOUSE_TABLES)
    return tenant, _comparable(rows, columns)


def test_a_sharded_run_keeps_every_piece_on_the_servers_and_loads_what_the_embedded_run_loads(
    team_deployment, kafka_connection, backlog, tmp_path, monkeypatch
):
    """Two shards drain side by side, each in a worker process of its own, then one
    run loads: the rows are those of the embedded defaults' single run."""
    monkeypatch.setenv("GIG_ETL_DRAIN_SHARDS", "2")
    tenant, embedded_rows = backlog
    home = tmp_path / "team-home"
    outcome = _run(home, "shared", tenant, kafka_connection.bootstrap_servers)
    team = current_deployment(home)
    tables = [t for t in WAREHOUSE_TABLES]
    team_rows = warehouse_rows(home, "shared", tables, lake=team.lake())
    columns = _columns(team.lake(), tables)

    # Nothing of the integration's state is in the home: only Dagster's settings and the logs.
    assert sorted(p.name for p in home.iterdir()) == ["dagster", "logs"]
    s3 = team.object_store.filesystem()
    raw_files = [f.path for f in s3.get_file_info(fs.FileSelector(team.object_store.url("raw").removeprefix("s3://"), recursive=True))
                 if f.path.endswith(".parquet")]
    assert sorted(raw_files) == sorted(b.path for b in team.raw_store().batches("shared")) and raw_files
    for batch in team.raw_store().batches("shared"):  # each shard's batches hold its partitions only
        index = 0 if batch.path.endswith("-shard-0-of-2.parquet") else 1
        assert batch.path.endswith(f"-shard-{index}-of-2.parquet")
        assert all(p % 2 == index for p in team.raw_store().batch_ranges(batch.batch_id))
    assert s3.get_file_info(fs.FileSelector(team.object_store.url("lake").removeprefix("s3://"), recursive=True))
    password = team_deployment["GIG_ETL_STACK_PG_PASSWORD"]
    with psycopg2.connect(host=team.postgres.host, port=team.postgres.port, user=team.postgres.user,
                          dbname=team.postgres.database, password=password) as db, db.cursor() as cursor:
        cursor.execute("SELECT pipeline_name, count(*) FROM public.runs GROUP BY 1 ORDER BY 1")
        assert cursor.fetchall() == [("drain_shard", 2), ("load_integration", 1)]
        cursor.execute("SELECT count(*) FROM public.runs WHERE run_id = %s", (outcome.run_id,))
        assert cursor.fetchone() == (1,)
        cursor.execute("SELECT count(*) FROM gig_etl_lake.ducklake_data_file")
        assert cursor.fetchone()[0] > 0

    # An analyst's DuckDB CLI opens the lake from what `gig-etl sql --attach-sql` prints,
    # which holds no secret: the CLI reads each from its variable.
    statements = attach_statements(team.lake())
    assert not any(secret in line for line in statements for secret in (password, team_deployment["GIG_ETL_STACK_S3_SECRET"]))
    import duckdb_cli

    shell = subprocess.run(
        [str(Path(duckdb_cli.__file__).parent / "duckdb"), "-csv", "-noheader", "-c",
         " ".join(statements) + " SELECT count(*) FROM profiles WHERE integration = 'shared';"],
        capture_output=True, text=True, timeout=60,
    )
    assert shell.stdout.strip().splitlines()[-1] == str(len(team_rows["profiles"])), shell.stderr  # after CREATE SECRETs

    # What the daemon's sensor would ask once both shards of the tick had drained: the tick's one load.
    instance = dagster_instance(home)
    shard_runs = instance.get_run_records(filters=dg.RunsFilter(job_name="drain_shard"))
    request = load_after_shards(instance, shard_runs[0].dagster_run)
    assert request.job_name == "load_integration" and request.partition_key == "shared"
    assert request.run_key == f"load:shared:{shard_runs[0].dagster_run.tags['gig_etl/tick']}"
    # The sensor itself leaves these shards alone: `gig-etl run` started them, and has loaded their tick.
    [success] = instance.get_records_for_run(shard_runs[0].dagster_run.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS).records
    sensed = shards_drained_sensor(dg.build_run_status_sensor_context(
        sensor_name="shards_drained_sensor", dagster_event=success.event_log_entry.dagster_event,
        dagster_instance=instance, dagster_run=shard_runs[0].dagster_run,
    ))
    assert isinstance(sensed, dg.SkipReason) and "gig-etl run" in sensed.skip_message

    # A second tick finds nothing new and loads nothing twice.
    [again] = run_tick(home, "shared", echo=lambda _: None)
    assert again.success and again.metadata["warehouse/quarantine"]["read"] == 0
    assert warehouse_rows(home, "shared", tables, lake=team.lake()) == team_rows
    assert _comparable(team_rows, columns) == embedded_rows


def test_an_integration_lock_on_postgres_holds_off_another_process_and_names_its_holder(team_deployment, tmp_path):
    shared = StateDatabase("the locks", postgres=current_deployment().postgres)
    with held_in_another_thread(lambda: integration_lock(tmp_path, "it", "a long drain", 5, shared)):
        with pytest.raises(IntegrationBusy, match=r"integration 'it' is busy: process \d+ on .* \(a long drain\)"):
            with integration_lock(tmp_path, "it", "another drain", 0.5, shared):
                pass
    with integration_lock(tmp_path, "it", "after it", 1, shared):
        pass


@pytest.mark.parametrize(
    "settings, says",
    [
        ({"GIG_ETL_POSTGRES_URL": "postgresql://gig:hunter2@127.0.0.1:5432/gig"}, "GIG_ETL_POSTGRES_URL holds a password"),
        ({"GIG_ETL_POSTGRES_URL": "mysql://gig@db/gig"}, "is not a URL such as postgresql://"),
        ({"GIG_ETL_POSTGRES_URL": "postgresql://gig@127.0.0.1:5432/gig", "GIG_ETL_POSTGRES_PASSWORD_ENV": "NOT_SET_HERE"},
         "names NOT_SET_HERE, which is not set"),
        ({"GIG_ETL_OBJECT_STORE": "s3://Bad_Bucket/x"}, "is not an S3 bucket name"),
        ({"GIG_ETL_OBJECT_STORE": "s3://bucket/x", "GIG_ETL_S3_ACCESS_KEY_ENV": "NOT_SET_HERE"}, "NOT_SET_HERE is not set"),
        ({"GIG_ETL_S3_ENDPOINT": "http://127.0.0.1:1"}, "GIG_ETL_OBJECT_STORE is not"),
        ({"GIG_ETL_POSTGRES_URL": "postgresql://gig@127.0.0.1:1/gig"}, "Postgres at postgresql://gig@127.0.0.1:1/gig"),
    ],
)
def test_a_deployment_setting_gone_wrong_ends_in_one_line(monkeypatch, settings, says):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, ["integrations", "list"])
    assert result.exit_code == 1, result.output
    assert len(result.output.strip().splitlines()) == 1 and says in result.output, result.output
    assert "hunter2" not in result.output


def _objects(store) -> set[str]:
    s3 = store.filesystem()
    return {f.path for f in s3.get_file_info(fs.FileSelector(store.url().removeprefix("s3://"), recursive=True,
                                                             allow_not_found=True)) if f.type == fs.FileType.File}


def _run_until_a_new_object_then(home: Path, store, stop) -> str:
    """`gig-etl run` in a process of its own; once it has published an object to S3
    (raw Parquet or the lake's), `stop()` a server. Returns what the run printed,
    having checked it failed within 30 s of the stop, in one line naming the server."""
    before = _objects(store)
    run = subprocess.Popen(**gig_etl_process(home, "run"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while not _objects(store) - before and time.monotonic() < deadline:
        time.sleep(0.02)
    service = stop()
    stopped = time.monotonic()
    output, _ = run.communicate(timeout=60)
    assert time.monotonic() - stopped < 30, output
    assert run.returncode == 1, output
    naming = [line for line in output.splitlines() if service in line]
    assert len(naming) == 1 and "Traceback" not in output and len(output.splitlines()) <= 3, output
    return output


def test_postgres_then_s3_stopped_in_a_run_fail_it_in_one_line_and_the_next_run_loads_everything_once(
    kafka_connection, backlog, tmp_path, monkeypatch
):
    from gig_etl.servers import PostgresServer, SeaweedServer

    tenant, embedded_rows = backlog
    with PostgresServer(tmp_path / "postgres") as postgres, SeaweedServer(tmp_path / "s3") as s3:
        for name, value in team_settings(postgres, s3, "faults").items():
            monkeypatch.setenv(name, value)
        home = tmp_path / "home"
        registry = current_deployment(home).registry()
        registry.create("shared", tenant, kafka_connection.bootstrap_servers)
        registry.approve("shared")
        store = current_deployment(home).object_store

        # Postgres first: the drain has published a batch whose row it may not have written.
        _run_until_a_new_object_then(home, store, lambda: postgres.stop("immediate") or "Postgres")
        postgres.restart()
        # Then S3, in the next run: in its drain or its load, whichever publishes first.
        _run_until_a_new_object_then(home, store, lambda: s3.stop(wait_s=0) or "S3")
        s3.start()

        [outcome] = run_tick(home, "shared", echo=lambda _: None)
        assert outcome.success, outcome.error
        lake = current_deployment(home).lake()
        team_rows = warehouse_rows(home, "shared", WAREHOUSE_TABLES, lake=lake)
        assert _comparable(team_rows, _columns(lake, WAREHOUSE_TABLES)) == embedded_rows
