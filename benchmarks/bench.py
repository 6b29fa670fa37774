"""gig-etl benchmark: drain and load against the broker's own read speed, side by side.

    python benchmarks/bench.py [--messages 1000000]

Starts an embedded broker, produces a simulated backlog and measures, in one run
(these machines are shared and noisy, so only side-by-side figures compare):
the ceiling (a bare confluent-kafka loop), the project's drain, the parse floor
(DuckDB parsing every envelope and `data` map of the same raw files), the load
into the lake, `gig-etl run` end to end (full, then after 10k more messages,
then the parts of a 10k increment), and the hurried script a data engineer
would write instead. Each phase runs in its own process so its peak RSS is its
own. Prints a table; writes JSON under data/bench/.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from gig_etl.broker import EmbeddedBroker
from gig_etl.contract import tenant_topics
from gig_etl.lib.kafka import BULK_READ_SETTINGS, KafkaConnection
from gig_etl.simulate import generate_traffic, produce_traffic

TENANT = "bench-casino"
ROUNDS = 3  # of the ceiling and the drain
INCREMENT = 10_000
HURRIED_BATCH = 50_000


def _in_subprocess(function, *args):
    """Runs function(*args) in a fresh process; returns (its result, its peak RSS in MiB)."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(_measured, (function, *args))


def _measured(function, *args):
    result = function(*args)
    return result, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _median(rounds: list[dict]) -> dict:
    """The round with the median rate."""
    return sorted(rounds, key=lambda r: r["per_second"])[len(rounds) // 2]


def produce_backlog(bootstrap: str, messages: int, first_customer_id: int = 100_000) -> int:
    # As many customers as it takes (the traffic is generated lazily), cut at the exact count.
    traffic = generate_traffic(TENANT, messages, seed=1, first_customer_id=first_customer_id)
    cut = (m for i, m in zip(range(messages), traffic))
    return produce_traffic(KafkaConnection(bootstrap), TENANT, cut).total


def ceiling(bootstrap: str, total: int, settings: dict) -> dict:
    """The fastest read from Python: assign every partition from the start, count."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "bench-ceiling", "enable.auto.commit": False} | settings
    )
    assignments = []
    for topic in tenant_topics(TENANT).values():
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        assignments += [TopicPartition(topic, p, 0) for p in partitions]
    started = time.perf_counter()
    consumer.assign(assignments)
    count = 0
    while count < total:
        # Never more than is left: consume() waits out its timeout for a count it cannot fill.
        wanted = min(10_000, total - count)
        count += sum(1 for m in consumer.consume(num_messages=wanted, timeout=1.0) if m.error() is None)
    elapsed = time.perf_counter() - started
    consumer.close()
    return {"messages": count, "seconds": elapsed, "per_second": count / elapsed}


def drain(bootstrap: str, home: str) -> dict:
    from gig_etl.defs.resources import KafkaResource
    from gig_etl.lib.drain import drain_topics
    from gig_etl.lib.home import raw_root
    from gig_etl.lib.raw_store import RawStore

    kafka = KafkaResource()
    store = RawStore(raw_root(Path(home)))
    started = time.perf_counter()
    with kafka.consumer(KafkaConnection(bootstrap), "bench") as consumer:
        results = drain_topics(consumer, store, "bench", tenant_topics(TENANT), kafka.limits())
    rows = sum(r.rows for r in results.values())
    files = sum(len(r.batches) for r in results.values())
    elapsed = time.perf_counter() - started
    return {"messages": rows, "files": files, "seconds": elapsed, "per_second": rows / elapsed}


def load(home: str) -> dict:
    from gig_etl.lib.home import raw_root
    from gig_etl.lib.load import load_integration
    from gig_etl.lib.raw_store import RawStore
    from gig_etl.lib.registry import IntegrationRegistry, registry_path
    from gig_etl.lib.warehouse import connect_warehouse, embedded_lake

    home_path = Path(home)
    registry = IntegrationRegistry(registry_path(home_path))
    registry.create("bench", TENANT, "127.0.0.1:1")
    integration = registry.approve("bench")
    started = time.perf_counter()
    with connect_warehouse(embedded_lake(home_path)) as db:
        total = load_integration(db, RawStore(raw_root(home_path)), integration).total
        [(events,)] = db.execute("SELECT count(*) FROM events").fetchall()
    elapsed = time.perf_counter() - started
    return {
        "messages": total.rows, "events": events, "seconds": elapsed,
        "per_second": total.rows / elapsed, "events_per_second": events / elapsed,
    }


def parse_floor(home: str) -> dict:
    """The least any load must do: DuckDB parsing every raw value's envelope and
    its `data` as a map, with no checks, no dedup and nothing written."""
    import duckdb

    files = sorted(str(f) for f in (Path(home) / "raw").rglob("*.parquet"))
    db = duckdb.connect()
    started = time.perf_counter()
    [(messages, ids, entries)] = db.execute(
        # Both used, or DuckDB would skip the parse of the one left unread.
        "SELECT count(*), count(envelope[2]), sum(cardinality(data)) FROM ("
        " SELECT json_extract_string(text, ['$.schema_version', '$.message_id', '$.tenant_id', '$.customer_id',"
        "  '$.type', '$.occurred_at']) AS envelope,"
        " json_transform(json_extract(text, '$.data'), '\"MAP(VARCHAR, JSON)\"') AS data"
        " FROM (SELECT decode(value) AS text FROM read_parquet(?)))",
        [files],
    ).fetchall()
    elapsed = time.perf_counter() - started
    return {
        "messages": messages, "message_ids": ids, "entries": entries, "seconds": elapsed,
        "per_second": messages / elapsed,
    }


def _spoiled(value: bytes | None, position: int) -> bytes | None:
    """Every 100th value made bad, in turn in three ways GIG_STREAM.md says arrive:
    JSON cut short, bytes that are no UTF-8, an envelope field of the wrong type."""
    if value is None or position % 100:
        return value
    kind = position // 100 % 3
    if kind == 0:
        return value[: len(value) // 2]
    if kind == 1:
        return b"\xff" + value
    return value.replace(b'"customer_id":"', b'"customer_id":1,"was":"', 1)


def parse(home: str) -> dict:
    """The load's own parse of the same raw files, on one thread as in the load:
    as they are, and with 1 % of the values bad."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from gig_etl.contract import TopicKind
    from gig_etl.lib.parse import parse_raw_batch, scratch_database

    batches = []
    for path in sorted((Path(home) / "raw").rglob("*.parquet")):
        kind = TopicKind.PROFILES if "/profiles/" in str(path) else TopicKind.EVENTS
        raw = pq.read_table(path)
        values = [_spoiled(v, i) for i, v in enumerate(raw.column("value").to_pylist())]
        spoiled = raw.set_column(raw.schema.get_field_index("value"), "value", pa.array(values, pa.binary()))
        batches.append((kind, raw, spoiled))
    figures = {"messages": sum(raw.num_rows for _, raw, _ in batches)}
    with scratch_database() as scratch:
        for name, position in (("clean", 1), ("bad", 2)):
            started, quarantined = time.perf_counter(), 0
            for batch in batches:
                quarantined += parse_raw_batch(batch[position], batch[0], TENANT, scratch).quarantined.height
            figures[f"{name}_seconds"], figures[f"{name}_quarantined"] = time.perf_counter() - started, quarantined
    return figures


def hurried(bootstrap: str, total: int, home: str) -> dict:
    """What a data engineer in a hurry writes instead: confluent-kafka with its
    default settings, polars to decode 50k messages at a time, DuckDB to append
    them; no dedup, no profiles, no quarantine, no erasure."""
    import duckdb
    import polars as pl

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-hurried", "enable.auto.commit": False})
    topics = list(tenant_topics(TENANT).values())
    assignments = []
    for topic in topics:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        assignments += [TopicPartition(topic, p, 0) for p in partitions]
    envelope = pl.Struct({
        "message_id": pl.String, "tenant_id": pl.String, "customer_id": pl.String,
        "type": pl.String, "occurred_at": pl.String,
    })
    Path(home).mkdir(parents=True, exist_ok=True)
    db = duckdb.connect(str(Path(home) / "hurried.duckdb"))
    db.execute(
        "CREATE TABLE messages (topic VARCHAR, message_id VARCHAR, customer_id VARCHAR, type VARCHAR,"
        " occurred_at TIMESTAMPTZ, data JSON)"
    )
    started = time.perf_counter()
    consumer.assign(assignments)
    count = 0
    while count < total:
        batch = consumer.consume(num_messages=min(HURRIED_BATCH, total - count), timeout=1.0)
        batch = [m for m in batch if m.error() is None]
        if not batch:
            continue
        frame = pl.DataFrame({"topic": [m.topic() for m in batch], "value": [m.value() for m in batch]})
        # polars cannot decode `data`, an object of any shape, into a string: the
        # whole message is kept as the JSON column instead.
        text = pl.col("value").cast(pl.String)
        frame = frame.select(
            "topic", text.str.json_decode(envelope).alias("m"), text.alias("data")
        ).unnest("m").select(
            "topic", "message_id", "customer_id", "type",
            pl.col("occurred_at").str.to_datetime(time_zone="UTC", strict=False), "data",
        )
        db.execute("INSERT INTO messages SELECT * FROM frame")
        count += len(batch)
    db.close()
    elapsed = time.perf_counter() - started
    consumer.close()
    return {"messages": count, "seconds": elapsed, "per_second": count / elapsed}


def increment_parts(bootstrap: str, home: str) -> dict:
    """A 10k increment's drain and load, each timed on its own, in the run's home."""
    from gig_etl.defs.resources import KafkaResource
    from gig_etl.lib.drain import drain_topics
    from gig_etl.lib.home import raw_root
    from gig_etl.lib.load import load_integration
    from gig_etl.lib.raw_store import RawStore
    from gig_etl.lib.registry import IntegrationRegistry, registry_path
    from gig_etl.lib.warehouse import connect_warehouse, embedded_lake

    home_path = Path(home)
    integration = IntegrationRegistry(registry_path(home_path)).get("bench")
    store = RawStore(raw_root(home_path))
    kafka = KafkaResource()
    started = time.perf_counter()
    with kafka.consumer(KafkaConnection(bootstrap), "bench") as consumer:
        drained = sum(r.rows for r in drain_topics(consumer, store, "bench", tenant_topics(TENANT), kafka.limits()).values())
    drain_s = time.perf_counter() - started
    started = time.perf_counter()
    with connect_warehouse(embedded_lake(home_path)) as db:
        connected = time.perf_counter()
        loaded = load_integration(db, store, integration).total.rows
    done = time.perf_counter()
    return {
        "messages": drained, "loaded": loaded, "drain_seconds": drain_s,
        "connect_seconds": connected - started, "load_seconds": done - connected,
    }


def gig_etl_run(home: str) -> tuple[float, float]:
    """`gig-etl run` in a process of its own: (seconds, its peak RSS in MiB)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("gig-etl")), "run", "--integration", "bench"],
        env=os.environ | {"GIG_ETL_HOME": home}, stdout=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"gig-etl run failed with exit status {process.returncode}")
    return elapsed, usage.ru_maxrss / 1024


def import_seconds() -> float:
    """What starting `gig-etl run` costs before it does anything: Python and the imports."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import gig_etl.tick"], check=True)
    return time.perf_counter() - started


def stack_runs(bootstrap: str, customers: int, work: Path) -> dict:
    """Four integrations drained and loaded by four worker processes: on Postgres and
    SeaweedFS side by side, the same one after another, and on the embedded defaults
    both ways. Each way has integrations of its own over the same four tenants."""
    from gig_etl.lib.deployment import current_deployment
    from gig_etl.servers import PostgresServer, SeaweedServer
    from gig_etl.stack import run_integrations, stack_settings

    tenants = [f"stack-{n}" for n in range(4)]
    messages = sum(
        produce_traffic(KafkaConnection(bootstrap), t, generate_traffic(t, customers, seed=n, chaos=0.02)).total
        for n, t in enumerate(tenants)
    )
    plain = {k: v for k, v in os.environ.items() if not k.startswith("GIG_ETL_")}
    figures = {"messages": messages}
    with PostgresServer(work / "postgres") as postgres, SeaweedServer(work / "seaweedfs") as s3:
        shared = plain | stack_settings(postgres, s3)
        for where, environ, ways in (
            ("shared", shared, (("parallel", True), ("sequential", False))),
            ("shared_sharded", shared | {"GIG_ETL_DRAIN_SHARDS": "2"}, (("parallel", True),)),
            ("embedded", plain, (("parallel", True), ("sequential", False))),
        ):
            home = work / f"home-{where}"
            for way, parallel in ways:
                names = [f"{where.replace('_', '-')}-{way}-{t}" for t in tenants]
                saved = os.environ.copy()
                os.environ.clear()
                os.environ.update(environ | {"GIG_ETL_HOME": str(home)})
                try:
                    registry = current_deployment(home).registry()
                    for name, tenant in zip(names, tenants):
                        registry.create(name, tenant, bootstrap)
                        registry.approve(name)
                finally:
                    os.environ.clear()
                    os.environ.update(saved)
                seconds, results = run_integrations(home, names, parallel, environ)
                failed = [f"{name}: {r.output.splitlines()[-1:]}" for name, r in zip(names, results) if r.status]
                if failed:
                    raise SystemExit(f"the {where} {way} runs failed: {failed}")
                figures[f"{where}_{way}_seconds"] = seconds
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--output", default="data/bench")
    parser.add_argument("--stack-customers", type=int, default=1_500, help="Per tenant, for the four of the stack run.")
    parser.add_argument("--only-stack", action="store_true", help="Only the stack run.")
    args = parser.parse_args()
    if args.only_stack:
        with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as work:
            stack = stack_runs(broker.bootstrap_servers, args.stack_customers, Path(work))
        print(f"\ngig-etl benchmark: the stack run, {platform.machine()}, {os.cpu_count()} cores")
        for name, figure, note in stack_rows(stack):
            print(f"  {name:<42} {figure:>15}   {note}")
        return

    figures: dict = {"messages": args.messages, "machine": f"{platform.machine()}, {os.cpu_count()} cores", "when": datetime.now(UTC).isoformat(timespec="seconds")}
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as work:
        bootstrap = broker.bootstrap_servers
        print(f"producing {args.messages:,} messages ...", file=sys.stderr)
        total = produce_backlog(bootstrap, args.messages)
        # The ceiling reads with the drain's own consumer settings (a fair bound),
        # and with librdkafka's defaults, for what those settings are worth. The
        # two ceilings and the drain alternate, ROUNDS times each: on a shared
        # machine one pair can differ by a third, and a read with the defaults
        # (which back off a second when the local queue is full) by more; the
        # medians are compared.
        ceilings, defaults, drains, drain_rss = [], [], [], []
        for round_number in range(ROUNDS):
            defaults.append(_in_subprocess(ceiling, bootstrap, total, {})[0])
            ceilings.append(_in_subprocess(ceiling, bootstrap, total, BULK_READ_SETTINGS)[0])
            drain_home = str(Path(work) / f"drain-{round_number}")
            result, rss = _in_subprocess(drain, bootstrap, drain_home)
            drains.append(result)
            drain_rss.append(rss)
            if round_number < ROUNDS - 1:
                shutil.rmtree(drain_home)  # the load reads the last round's
        figures["ceiling"], figures["ceiling_rounds"] = _median(ceilings), ceilings
        figures["ceiling_librdkafka_defaults"], figures["ceiling_librdkafka_defaults_rounds"] = _median(defaults), defaults
        figures["drain"], figures["drain_rounds"] = _median(drains), drains
        figures["drain_peak_rss_mib"] = max(drain_rss)
        figures["parse_floor"], _ = _in_subprocess(parse_floor, drain_home)
        figures["parse"], _ = _in_subprocess(parse, drain_home)
        figures["load"], figures["load_peak_rss_mib"] = _in_subprocess(load, drain_home)
        figures["hurried"], figures["hurried_peak_rss_mib"] = _in_subprocess(
            hurried, bootstrap, total, str(Path(work) / "hurried")
        )

        run_home = str(Path(work) / "run")
        from gig_etl.lib.registry import IntegrationRegistry, registry_path

        registry = IntegrationRegistry(registry_path(Path(run_home)))
        registry.create("bench", TENANT, bootstrap)
        registry.approve("bench")
        full, full_rss = gig_etl_run(run_home)
        more = produce_backlog(bootstrap, INCREMENT, first_customer_id=10_000_000)
        incremental, _ = gig_etl_run(run_home)
        produce_backlog(bootstrap, INCREMENT, first_customer_id=20_000_000)
        parts, _ = _in_subprocess(increment_parts, bootstrap, run_home)
        figures["end_to_end"] = {
            "full_seconds": full, "full_per_second": total / full, "full_peak_rss_mib": full_rss,
            "incremental_messages": more, "incremental_seconds": incremental,
            "incremental_parts": parts | {"import_seconds": import_seconds()},
        }
        print("the stack run: Postgres, SeaweedFS and four workers ...", file=sys.stderr)
        figures["stack"] = stack_runs(bootstrap, args.stack_customers, Path(work) / "stack")

    report(figures)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench-{args.messages}-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(figures, indent=2))
    print(f"\nJSON: {path}")


def _spread(rounds: list[dict]) -> str:
    return ", ".join(f"{r['per_second'] / 1000:,.0f}k" for r in rounds)


def report(f: dict) -> None:
    ceiling_rate, drain_rate = f["ceiling"]["per_second"], f["drain"]["per_second"]
    defaults_rate = f["ceiling_librdkafka_defaults"]["per_second"]
    load, floor, hurried_rate = f["load"], f["parse_floor"], f["hurried"]["per_second"]
    e2e = f["end_to_end"]
    parts = e2e["incremental_parts"]
    rest = e2e["incremental_seconds"] - parts["import_seconds"] - parts["drain_seconds"] - parts["connect_seconds"] - parts["load_seconds"]
    rows = [
        ("ceiling: bare consumer", f"{ceiling_rate:,.0f} msg/s",
         f"same consumer settings as the drain; median of {_spread(f['ceiling_rounds'])}"),
        ("  ... with librdkafka defaults", f"{defaults_rate:,.0f} msg/s",
         f"median of {_spread(f['ceiling_librdkafka_defaults_rounds'])}"),
        ("drain (Kafka -> Parquet)", f"{drain_rate:,.0f} msg/s",
         f"{drain_rate / ceiling_rate:.2f} x ceiling; median of {_spread(f['drain_rounds'])}"),
        ("parse floor (DuckDB, same files)", f"{floor['seconds']:.2f} s", f"{floor['per_second']:,.0f} msg/s"),
        ("the load's parse, clean / 1 % bad", f"{f['parse']['clean_seconds']:.2f} / {f['parse']['bad_seconds']:.2f} s",
         f"one thread, as in the load; bad: every 100th value cut short, not UTF-8 or customer_id a number "
         f"({f['parse']['bad_quarantined']:,} quarantined)"),
        ("load (Parquet -> lake)", f"{load['per_second']:,.0f} msg/s",
         f"{load['seconds']:.1f} s = {load['seconds'] / floor['seconds']:.1f} x the floor (targets >= 250,000 msg/s, <= 4 x); "
         f"{load['events_per_second']:,.0f} events/s"),
        ("end to end: gig-etl run", f"{e2e['full_seconds']:.1f} s",
         f"{e2e['full_per_second']:,.0f} msg/s = {e2e['full_per_second'] / defaults_rate:.2f} x the bare consumer with "
         f"defaults (target >= 0.4), {e2e['full_per_second'] / hurried_rate:.2f} x the hurried script (target >= 1.3)"),
        ("hurried script (kafka -> polars -> duckdb)", f"{hurried_rate:,.0f} msg/s",
         f"{f['hurried']['seconds']:.1f} s; 50k a batch, no dedup, profiles, quarantine or erasure"),
        ("incremental run (+10k)", f"{e2e['incremental_seconds']:.1f} s",
         f"target <= 3 s: Python and imports {parts['import_seconds']:.1f} s, drain {parts['drain_seconds']:.1f} s, "
         f"connect {parts['connect_seconds']:.1f} s, load {parts['load_seconds']:.2f} s (target <= 0.3), "
         f"Dagster and the rest {rest:.1f} s"),
        ("peak RSS: drain / load", f"{f['drain_peak_rss_mib']:,.0f} / {f['load_peak_rss_mib']:,.0f} MiB", "load target <= 700"),
        ("peak RSS: whole gig-etl run", f"{e2e['full_peak_rss_mib']:,.0f} MiB", "target <= 1,024"),
    ]
    rows += stack_rows(f["stack"])
    print(f"\ngig-etl benchmark: {f['messages']:,} messages on {f['machine']}, {f['when']}")
    for name, figure, note in rows:
        print(f"  {name:<42} {figure:>15}   {note}")


def stack_rows(stack: dict) -> list[tuple[str, str, str]]:
    messages = stack["messages"]
    rows = []
    for where in ("shared", "embedded"):
        parallel, sequential = stack[f"{where}_parallel_seconds"], stack[f"{where}_sequential_seconds"]
        label = "Postgres + SeaweedFS" if where == "shared" else "embedded defaults"
        rows.append((f"4 integrations, {label}", f"{parallel:.1f} s",
                     f"side by side, {messages / parallel:,.0f} msg/s; one after another {sequential:.1f} s "
                     f"({sequential / parallel:.2f} x); {messages:,} messages in all"))
    sharded = stack["shared_sharded_parallel_seconds"]
    rows.append(("  ... each drained by 2 shards", f"{sharded:.1f} s", f"side by side, {messages / sharded:,.0f} msg/s"))
    return rows


if __name__ == "__main__":
    main()
