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
from gig_etl.lib.catalog import attributes_crowded_out
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
from gig_etl.lib.identifiers import quote_identifier
from gig_etl.lib.load import load_integration
from gig_etl.lib.lock import IntegrationBusy
from gig_etl.lib.warehouse import WarehouseNeedsRebuild, WarehouseUnavailable

# The tables one load writes, in one transaction per raw batch.
WAREHOUSE_TABLES = {
    "profiles": "One row per profile: `profile_id` (the integration's identifier), `customer_id` and a typed "
    "column `gig_<attribute>` per GiG attribute, each at its newest value.",
    "subscriptions": "Each profile's subscription status per channel (email, sms, mobile_push, web_push, "
    "inbox, phone, post).",
    "events": "Every distinct event (by message_id) with its type, display name, profile and properties.",
    "event_catalog": "Each event type seen, with when it was first and last seen and how many.",
    "attribute_catalog": "Every profile attribute (`gig_<name>`) and its type: the known ones from approval "
    "on, new ones as they first arrive.",
    "quarantine": "Messages that could not be loaded, byte for byte, with the reason.",
}

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


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["warehouse", table],
            deps=[raw_asset_key(kind) for kind in TopicKind],
            group_name="warehouse",
            kinds={"ducklake", "polars"},
            description=f"Table `{table}`. {description}",
            owners=OWNERS,
        )
        for table, description in WAREHOUSE_TABLES.items()
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
    try:
        with gig_etl_home.integration_lock(integration.name, f"load, run {context.run.run_id}"), warehouse.get_connection() as db:
            load = load_integration(db, gig_etl_home.raw_store(), integration, warehouse.max_attribute_columns)
            table_rows = {
                table: db.execute(
                    f"SELECT count(*) FROM {quote_identifier(table)} WHERE integration = ?", [integration.name]
                ).fetchall()[0][0]
                for table in WAREHOUSE_TABLES
            }
            crowded_out = attributes_crowded_out(db, integration.name)
            skew = timedelta(minutes=health.max_clock_skew_minutes)
            [(newest, future, newest_future)] = db.execute(
                "SELECT max(occurred_at) FILTER (occurred_at <= now() + ?), count(*) FILTER (occurred_at > now() + ?), "
                "max(occurred_at) FILTER (occurred_at > now() + ?) FROM events WHERE integration = ?",
                [skew, skew, skew, integration.name],
            ).fetchall()
            duplicated = db.execute(
                "SELECT profile_id, count(*) FROM profiles WHERE integration = ? GROUP BY profile_id HAVING count(*) > 1 "
                "ORDER BY 2 DESC, 1",
                [integration.name],
            ).fetchall()
            uncatalogued = [
                t for (t,) in db.execute(
                    "SELECT DISTINCT event_type FROM events WHERE integration = ? AND event_type NOT IN "
                    "(SELECT event_type FROM event_catalog WHERE integration = ?) ORDER BY 1",
                    [integration.name, integration.name],
                ).fetchall()
            ]
    except (HomeUnwritable, IntegrationBusy, WarehouseNeedsRebuild, WarehouseUnavailable) as exc:
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
    accounting = {
        "read": total.rows,
        "loaded": total.loaded,
        "duplicates": total.duplicates,
        "quarantined": total.quarantined,
        "erasures": total.erasures,
        "erased_messages": total.erased_messages,
        "raw_batches_loaded": total.batches,
        "raw_files_erased": load.raw_files_erased,
        "per_topic": dg.MetadataValue.json({k: vars(v) for k, v in load.counts.items()}),
        "unreadable_raw_batches": dg.MetadataValue.json(load.unreadable),
    }
    accounting["newest_occurred_at"] = newest.isoformat() if newest else "none"
    accounting["future_events"] = future
    for table in WAREHOUSE_TABLES:
        yield dg.MaterializeResult(
            asset_key=["warehouse", table], metadata={"dagster/row_count": table_rows[table], **accounting}
        )
    verdicts: dict[str, Verdict] = {
        "no_quarantine_spike": quarantine_rate(total.rows, total.quarantined, health.max_quarantine_rate),
        "fresh": freshness(newest, datetime.now(UTC), timedelta(hours=health.max_event_age_hours)),
        "no_future_events": no_future_events(future, newest_future, skew),
        "one_row_per_profile": no_duplicates(duplicated),
        "every_type_catalogued": all_catalogued(uncatalogued),
        "attribute_columns_within_limit": columns_within_limit(crowded_out, warehouse.max_attribute_columns),
    }
    for table, check, severity, _ in WAREHOUSE_CHECKS:
        verdict = verdicts[check]
        yield dg.AssetCheckResult(
            asset_key=["warehouse", table], check_name=check, passed=verdict.passed, severity=severity,
            description=verdict.description, metadata=verdict.metadata,
        )
