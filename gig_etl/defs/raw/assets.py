"""Raw layer: each GiG topic drained into Parquet micro-batches, bytes untouched."""

import time

import dagster as dg

from gig_etl.contract import TopicKind
from gig_etl.defs.integrations.gate import approved_integration
from gig_etl.defs.integrations.partitions import integrations_partitions
from gig_etl.defs.ownership import OWNERS
from gig_etl.defs.resources import (
    GigEtlHomeResource,
    HealthResource,
    IntegrationRegistryResource,
    KafkaResource,
)
from gig_etl.lib.drain import DrainError, DrainResult, drain_topics, redrain_unreadable
from gig_etl.lib.health import lag_trend
from gig_etl.lib.home import HomeUnwritable
from gig_etl.lib.kafka import KafkaUnavailable
from gig_etl.lib.lock import IntegrationBusy
from gig_etl.lib.registry import CredentialsError
from gig_etl.lib.shard import Shard, lag_key
from gig_etl.progress import run_progress


class DrainShardConfig(dg.Config):
    """Which shard of the integration's partitions a run drains: partition p is
    shard p mod `shard_count`. One shard (the default) is every partition."""

    shard_index: int = 0
    shard_count: int = 1

    def shard(self) -> Shard | None:
        return None if self.shard_count == 1 else Shard(self.shard_index, self.shard_count)


def raw_asset_key(kind: TopicKind) -> dg.AssetKey:
    return dg.AssetKey(["raw", kind.value])


def newest_message_metadata(newest_ms: int | None) -> dict[str, dg.MetadataValue | float | str]:
    """When the newest message drained reached Kafka, and how long ago, as numbers the UI plots."""
    if newest_ms is None or newest_ms < 0:
        return {"newest_message_at": "none", "newest_message_age_s": "none"}
    return {
        "newest_message_at": dg.MetadataValue.timestamp(newest_ms / 1000),
        "newest_message_age_s": round(time.time() - newest_ms / 1000, 1),
    }


def drain_metadata(result: DrainResult) -> dict[str, dg.MetadataValue | int | str]:
    return {
        "topic": result.topic,
        "topic_found": str(result.topic_found),
        "rows": result.rows,
        "files": len(result.batches),
        "bytes_written": result.bytes_written,
        "lag_before": result.lag_before,
        "lag_after": result.lag_after if result.lag_after is not None else "unknown",
        **newest_message_metadata(result.newest_ms),
        "partitions": dg.MetadataValue.json(
            {str(p.partition): {"from": p.start_offset, "to": p.end_offset, "lag_before": p.lag} for p in result.plans}
        ),
        "gaps": dg.MetadataValue.json(
            [{"partition": g.partition, "from": g.from_offset, "to": g.to_offset} for g in result.gaps]
        ),
    }


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            raw_asset_key(kind),
            group_name="raw",
            kinds={"kafka", "parquet"},
            description=(
                f"Every message of the tenant's `gig.<tenant>.{kind.value}` topic, byte for byte, "
                "as Parquet micro-batches under $GIG_ETL_HOME/raw. A run drains what is new "
                "up to the end offsets it notes when it starts."
            ),
            skippable=True,
            owners=OWNERS,
        )
        for kind in TopicKind
    ],
    check_specs=[
        *(
            dg.AssetCheckSpec(
                "lag_not_growing",
                asset=raw_asset_key(kind),
                description="Warns when the lag before each drain has grown over the last three runs.",
            )
            for kind in TopicKind
        ),
        *(
            dg.AssetCheckSpec(
                "every_batch_readable",
                asset=raw_asset_key(kind),
                description="Fails while a raw batch is set aside: its file cannot be read and Kafka no longer "
                "holds its messages.",
            )
            for kind in TopicKind
        ),
    ],
    partitions_def=integrations_partitions,
    can_subset=True,
    name="raw_topics",
)
def raw_topics(
    context: dg.AssetExecutionContext,
    config: DrainShardConfig,
    kafka: KafkaResource,
    gig_etl_home: GigEtlHomeResource,
    integration_registry: IntegrationRegistryResource,
    health: HealthResource,
):
    """Drains the selected topics with one consumer, all their partitions at once
    (or one shard's: partition p is shard p mod N)."""
    integration = approved_integration(context, integration_registry)
    kinds = [kind for kind in TopicKind if raw_asset_key(kind) in context.selected_asset_keys]
    topics = {kind: kind.topic(integration.tenant_id) for kind in kinds}
    shard = config.shard()
    label = integration.name if shard is None else f"{integration.name} {shard}"
    try:
        with gig_etl_home.integration_lock(integration.name, f"drain, run {context.run.run_id}", shard):
            store = gig_etl_home.raw_store()
            store.remove_orphans(integration.name, shard)
            with kafka.consumer(integration.connection(), integration.name) as consumer:
                redrained = redrain_unreadable(consumer, store, integration.name, kafka.limits(), shard)
                with run_progress(f"{label}: draining", 0) as bar:
                    results = drain_topics(
                        consumer, store, integration.name, topics, kafka.limits(),
                        on_progress=lambda read, of: bar.update(read, f"{read:,} of {of:,} messages", of),
                        shard=shard,
                    )
    except CredentialsError as exc:  # names the integration, its broker and the variable
        raise dg.Failure(description=str(exc)) from exc
    except (DrainError, KafkaUnavailable) as exc:
        raise dg.Failure(
            description=f"integration {integration.name!r}, broker {integration.bootstrap_servers}: {exc}"
        ) from exc
    except (HomeUnwritable, IntegrationBusy) as exc:
        raise dg.Failure(description=f"integration {integration.name!r}: {exc}") from exc
    for old, new in redrained.items():
        context.log.warning(f"raw batch {old} could not be read: drained again from Kafka as {new.batch_id}")
    set_aside = {r.batch.batch_id: r for r in store.unreadable(integration.name) if r.set_aside}
    for batch_id, record in set_aside.items():
        context.log.error(f"raw batch {batch_id} is set aside: {record.reason}")
    for kind, result in results.items():
        if not result.topic_found:
            context.log.info(f"{result.topic}: topic not on the broker yet, nothing to drain")
        else:
            context.log.info(
                f"{result.topic}: drained {result.rows:,} messages into {len(result.batches)} files "
                f"({result.bytes_written:,} bytes); lag before {result.lag_before:,}"
            )
        for gap in result.gaps:
            context.log.warning(
                f"{result.topic} [{gap.partition}]: offsets {gap.from_offset}..{gap.to_offset - 1} "
                "were deleted by the broker before they were read; recorded in the raw manifest's gaps table"
            )
        kind_set_aside = {b: r.reason for b, r in set_aside.items() if r.batch.topic_kind == kind.value}
        yield dg.MaterializeResult(
            asset_key=raw_asset_key(kind),
            metadata=drain_metadata(result) | {
                "redrained": dg.MetadataValue.json(
                    {old: new.batch_id for old, new in redrained.items() if new.topic_kind == kind.value}
                ),
                "set_aside": dg.MetadataValue.json(kind_set_aside),
            },
        )
        if dg.AssetCheckKey(raw_asset_key(kind), "every_batch_readable") in context.selected_asset_check_keys:
            yield dg.AssetCheckResult(
                asset_key=raw_asset_key(kind), check_name="every_batch_readable", passed=not kind_set_aside,
                severity=dg.AssetCheckSeverity.ERROR,
                description="every raw batch can be read" if not kind_set_aside
                else f"{len(kind_set_aside)} raw batch(es) set aside: " + "; ".join(kind_set_aside.values()),
                metadata={"set_aside": len(kind_set_aside)},
            )
        # What the run drained was behind too: brokers that report a short high
        # watermark (Tansu) understate lag_before. A shard's lag is its partitions'.
        recorded_as = lag_key(result.topic, shard)
        store.record_drain(integration.name, recorded_as, max(result.lag_before, result.rows), result.rows)
        check_key = dg.AssetCheckKey(raw_asset_key(kind), "lag_not_growing")
        if check_key in context.selected_asset_check_keys:
            verdict = lag_trend(store.recent_lags(integration.name, recorded_as), health.lag_growth_tolerance)
            yield dg.AssetCheckResult(
                asset_key=raw_asset_key(kind), check_name="lag_not_growing", passed=verdict.passed,
                severity=dg.AssetCheckSeverity.WARN, description=verdict.description, metadata=verdict.metadata,
            )
