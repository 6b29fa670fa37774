"""Running the real Dagster assets for one integration, for tests."""

import os
import sys
from pathlib import Path

import dagster as dg

from gig_etl.defs.integrations.partitions import integrations_partitions
from gig_etl.defs.marts.assets import marts_views
from gig_etl.defs.raw.assets import raw_topics
from gig_etl.defs.resources import (
    GigEtlHomeResource,
    HealthResource,
    IntegrationRegistryResource,
    KafkaResource,
    WarehouseResource,
)
from gig_etl.defs.warehouse.assets import WAREHOUSE_TABLES, warehouse_tables
from gig_etl.lib.registry import Integration, IntegrationRegistry, registry_path
from gig_etl.lib.warehouse import Lake, embedded_lake, open_lake

ALL_ASSETS = [raw_topics, warehouse_tables, marts_views]


def register(home: Path, name: str, tenant: str, bootstrap_servers: str, approve: bool = True, **settings) -> Integration:
    registry = IntegrationRegistry(registry_path(home))
    registry.create(name, tenant, bootstrap_servers, **settings)
    return registry.approve(name) if approve else registry.get(name)


def resources(home: Path, health: HealthResource | None = None, lock_wait_s: float = 60.0, **kafka_settings) -> dict:
    return {
        "gig_etl_home": GigEtlHomeResource(path=str(home), lock_wait_s=lock_wait_s),
        "health": health or HealthResource(),
        "integration_registry": IntegrationRegistryResource(home=str(home)),
        "kafka": KafkaResource(**kafka_settings),
        "warehouse": WarehouseResource(catalog=embedded_lake(home).catalog, data_path=embedded_lake(home).data_path),
    }


def materialize_integration(
    home: Path, name: str, assets=ALL_ASSETS, raise_on_error: bool = True, health: HealthResource | None = None,
    lock_wait_s: float = 60.0, **kafka_settings,
) -> dg.ExecuteInProcessResult:
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(integrations_partitions.name, [name])
    return dg.materialize(
        assets,
        partition_key=name,
        instance=instance,
        resources=resources(home, health, lock_wait_s, **kafka_settings),
        raise_on_error=raise_on_error,
    )


def asset_metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    """Each materialised asset's metadata, by the asset key's last part."""
    return {
        e.materialization.asset_key.path[-1]: {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    }


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    return " | ".join(
        (e.step_failure_data.user_failure_data.description if e.step_failure_data.user_failure_data else "")
        or e.step_failure_data.error.message
        for e in result.get_step_failure_events()
    )


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    """Each asset check's evaluation, by '<asset>:<check>'."""
    return {
        f"{e.asset_key.path[-1]}:{e.check_name}": e for e in result.get_asset_check_evaluations()
    }


def warehouse_rows(home: Path, integration: str, relations=tuple(WAREHOUSE_TABLES), lake: Lake | None = None) -> dict[str, list]:
    """Every row the integration has in each table (or view), in a stable order. The
    profiles' gig_ columns come in name order: a warehouse adds those of new attributes
    in the order it first sees them, which differs with where raw batches begin and end."""
    with open_lake(lake or embedded_lake(home), read_only=True) as db:
        db.execute("SET TimeZone = 'UTC'").fetchall()
        rows = {}
        for relation in relations:
            names = [name for name, *_ in db.execute(f"DESCRIBE {relation}").fetchall()]
            in_order = [n for n in names if not n.startswith("gig_")] + sorted(n for n in names if n.startswith("gig_"))
            columns = ", ".join(f'"{name}"' for name in in_order)
            rows[relation] = db.execute(
                f"SELECT {columns} FROM {relation} WHERE integration = ? ORDER BY ALL", [integration]
            ).fetchall()
        return rows


def gig_etl_process(home: Path, *args: str) -> dict:
    """`gig-etl ARGS` in a process of its own on `home`: keyword arguments for
    `subprocess.run` or `subprocess.Popen`."""
    return {
        "args": [sys.executable, "-m", "gig_etl.cli", *args],
        "cwd": Path(__file__).resolve().parents[1],
        "env": os.environ | {"GIG_ETL_HOME": str(home)},
    }
