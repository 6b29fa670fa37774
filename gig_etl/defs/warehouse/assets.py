"""Warehouse layer: the lake's tables analysts query, loaded from raw Parquet."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import duckdb

from gig_etl.contract import TopicKind
from gig_etl.defs.integrations.gate import approved_integration
from gig_etl.defs.integrations.partitions import integrations_partitions
from gig_etl.defs.ownership import OWNERS
from gig_etl.defs.raw.assets import raw_asset_key
from gig_etl.defs.resources import (
    GigEtlHomeResource,
    HealthResource,
    IntegrationRegistryResource,
    WarehouseResource,
)
from gig_etl.lib.health import (
    Verdict,
    all_catalogued,
    columns_within_limit,
    freshness,
    no_duplicates,
    no_future_events,
    quarantine_rate,
)
from gig_etl.lib.home import HomeUnwritable
from gig_etl.lib.load import LoadCounts, load_integration
from gig_etl.lib.lock import IntegrationBusy, WarehouseBusy
from gig_etl.lib.table_report import TableReport, read_table_report
from gig_etl.lib.warehouse import ANALYST_TABLES, WarehouseNeedsRebuild, WarehouseUnavailable
from gig_etl.progress import run_progress

_PROFILES, _EVENTS = (TopicKind.PROFILES,), (TopicKind.EVENTS,)

# The tables one load writes, in one transaction per chunk of raw batches (the lake's
# ANALYST_TABLES): what each holds, and the topics it is loaded from, whose
# counts its materialisation carries (quarantine: both, so its are the run's).
WAREHOUSE_TABLES = {
    "profiles": ("One row per profile: `profile_id` (the integration's identifier), `customer_id` and a typed "
                 "column `gig_<attribute>` per GiG attribute, each at its newest value.", _PROFILES),
    "subscriptions": ("Each profile's subscription status per channel (email, sms, mobile_push, web_push, "
                      "inbox, phone, post).", _PROFILES),
    "events": ("Every distinct event (by message_id) with its type, display name, profile and properties.", _EVENTS),
    "event_catalog": ("Each event type seen, with when it was first and last seen and how many.", _EVENTS),
    "attribute_catalog": ("Every profile attribute (`gig_<name>`) and its type: the known ones from approval "
                          "on, new ones as they first arrive.", _PROFILES),
    "quarantine": ("Messages that could not be loaded, byte for byte, with the reason.", tuple(TopicKind)),
}
assert tuple(WAREHOUSE_TABLES) == ANALYST_TABLES

# A refresh runs every 5 minutes: a table not refreshed for half an hour is
# behind, for two hours stale.
WAREHOUSE_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=2), warn_window=timedelta(minutes=30))

# (table, check, severity, what it checks)
WAREHOUSE_CHECKS = [
    ("quarantine", "no_quarantine_spike", dg.AssetCheckSeverity.ERROR,
     "Fails when a run quarantines more than the threshold share of what it read (default 5%)."),
    ("events", "fresh", dg.AssetCheckSeverity.WARN,
     "Warns when the newest event not dated in the future is older than the threshold (default 24 h)."),
    ("events", "no_future_events", dg.AssetCheckSeverity.WARN,
     "Warns when events are dated later than now by more than the clock-skew tolerance (default 5 min)."),
    ("profiles", "one_row_per_profile", dg.AssetCheckSeverity.ERROR,
     "Fails when a profile_id is on several rows of an integration."),
    ("events", "every_type_catalogued", dg.AssetCheckSeverity.ERROR,
     "Fails when an event type in `events` is missing from `event_catalog`."),
    ("attribute_catalog", "attribute_columns_within_limit", dg.AssetCheckSeverity.WARN,
     "Warns when attributes that could have a column of their own went to `extra_attributes` because "
     "`profiles` has as many attribute columns as the warehouse resource's `max_attribute_columns`."),
]


def load_metadata(counts: LoadCounts) -> dict[str, dg.MetadataValue | int]:
    """A load's accounting, for one topic or both: read = loaded + duplicates + quarantined."""
    return {
        "read": counts.rows,
        "loaded": counts.loaded,
        "duplicates": counts.duplicates,
        "quarantined": counts.quarantined,
        "erasures": counts.erasures,
        "erased_messages": counts.erased_messages,
        "quarantine_erased": counts.quarantine_erased,
        "raw_batches_loaded": counts.batches,
        "quarantined_by_reason": dg.MetadataValue.table(
            records=[
                dg.TableRecord({"reason_code": code, "messages": count})
                for code, count in sorted(counts.quarantined_by_reason.items(), key=lambda item: (-item[1], item[0]))
            ],
            schema=dg.TableSchema(columns=[dg.TableColumn("reason_code", "string"), dg.TableColumn("messages", "int")]),
        ),
    }


def column_schemas(report: TableReport) -> dict[str, dg.TableSchema]:
    """Each analyst table's columns, types and comments, for Dagster's catalog."""
    return {
        table: dg.TableSchema(columns=[
            dg.TableColumn(c.name, c.data_type, description=c.comment,
                           constraints=dg.TableColumnConstraints(nullable=c.nullable))
            for c in columns
        ])
        for table, columns in report.columns.items()
    }


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["warehouse", table],
            deps=[raw_asset_key(kind) for kind in TopicKind],
            group_name="warehouse",
            kinds={"ducklake", "polars"},
            description=f"Table `{table}`. {description}",
            owners=OWNERS,
            freshness_policy=WAREHOUSE_FRESHNESS,
        )
        for table, (description, _) in WAREHOUSE_TABLES.items()
    ],
    check_specs=[
        dg.AssetCheckSpec(check, asset=["warehouse", table], description=description)
        for table, check, _, description in WAREHOUSE_CHECKS
    ],
    partitions_def=integrations_partitions,
    name="warehouse_tables",
)
def warehouse_tables(
    context: dg.AssetExecutionContext,
    integration_registry: IntegrationRegistryResource,
    gig_etl_home: GigEtlHomeResource,
    warehouse: WarehouseResource,
    health: HealthResource,
):
    """Loads the raw batches not loaded yet: each message once, newest values win,
    erasures applied, bad input quarantined."""
    integration = approved_integration(context, integration_registry)
    skew = timedelta(minutes=health.max_clock_skew_minutes)
    try:
        with gig_etl_home.integration_lock(integration.name, f"load, run {context.run.run_id}"), warehouse.get_connection() as db:
            with run_progress(f"{integration.name}: loading", 0) as bar:
                load = load_integration(
                    db, gig_etl_home.raw_store(), integration, warehouse.max_attribute_columns,
                    on_batch=lambda done, of: bar.update(done, f"{done:,} of {of:,} raw batches", of),
                    chunk_messages=warehouse.load_chunk_messages,
                )
            report = read_table_report(db, integration.name, list(WAREHOUSE_TABLES), skew)
    except (HomeUnwritable, IntegrationBusy, WarehouseBusy, WarehouseNeedsRebuild, WarehouseUnavailable) as exc:
        raise dg.Failure(description=f"integration {integration.name!r}: {exc}") from exc
    except (duckdb.IOException, duckdb.TransactionException) as exc:  # disk full, unwritable: the batch rolled back
        raise dg.Failure(
            description=f"integration {integration.name!r}: cannot write the warehouse {warehouse.describe()}: {exc}"
        ) from exc
    for batch_id, reason in load.unreadable.items():
        context.log.warning(f"{reason}: skipped; the next drain reads its messages again from Kafka")
    for kind, counts in load.counts.items():
        context.log.info(
            f"{integration.name} {kind}: {counts.rows:,} read, {counts.loaded:,} loaded, "
            f"{counts.duplicates:,} duplicates, {counts.quarantined:,} quarantined, {counts.erasures:,} erasures"
        )
    total = load.total
    newest = report.newest_event
    schemas = column_schemas(report)
    newest_age_hours = (datetime.now(UTC) - newest).total_seconds() / 3600 if newest else None
    run_wide = {
        "newest_occurred_at": dg.MetadataValue.timestamp(newest) if newest else "none",
        "newest_event_age_hours": round(newest_age_hours, 2) if newest_age_hours is not None else "none",
        "future_events": report.future_events,
        "raw_files_erased": load.raw_files_erased,
        "unreadable_raw_batches": dg.MetadataValue.json(load.unreadable),
    }
    for table, (_, topics) in WAREHOUSE_TABLES.items():
        counts = sum((load.counts[kind.value] for kind in topics), LoadCounts())
        yield dg.MaterializeResult(
            asset_key=["warehouse", table],
            metadata={
                "dagster/row_count": report.rows[table],
                "dagster/column_schema": schemas[table],
                **load_metadata(counts),
                **run_wide,
            },
        )
    verdicts: dict[str, Verdict] = {
        "no_quarantine_spike": quarantine_rate(total.rows, total.quarantined, health.max_quarantine_rate),
        "fresh": freshness(newest, datetime.now(UTC), timedelta(hours=health.max_event_age_hours)),
        "no_future_events": no_future_events(report.future_events, report.newest_future_event, skew),
        "one_row_per_profile": no_duplicates(report.duplicated_profiles),
        "every_type_catalogued": all_catalogued(report.uncatalogued_types),
        "attribute_columns_within_limit": columns_within_limit(report.crowded_out, warehouse.max_attribute_columns),
    }
    for table, check, severity, _ in WAREHOUSE_CHECKS:
        verdict = verdicts[check]
        yield dg.AssetCheckResult(
            asset_key=["warehouse", table], check_name=check, passed=verdict.passed, severity=severity,
            description=verdict.description, metadata=verdict.metadata,
        )
