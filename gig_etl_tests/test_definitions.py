from datetime import datetime

import dagster as dg

from gig_etl.definitions import defs
from gig_etl.defs.integrations.partitions import integrations_partitions
from gig_etl.defs.raw.compaction import compaction_schedule
from gig_etl.defs.resources import IntegrationRegistryResource
from gig_etl.lib.registry import IntegrationRegistry, registry_path


def test_the_code_location_loads():
    dg.Definitions.validate_loadable(defs)


def test_every_asset_has_a_group_kinds_an_owner_and_a_description():
    specs = list(defs.resolve_all_asset_specs())
    assert {spec.group_name for spec in specs} == {"raw", "warehouse", "marts", "maintenance"}
    for spec in specs:
        assert spec.kinds and spec.description and spec.owners, spec.key


def test_every_job_sensor_schedule_and_check_has_a_description():
    for job in defs.jobs or []:
        assert job.description, job.name
    for automation in [*(defs.sensors or []), *(defs.schedules or [])]:
        assert automation.description, automation.name
    checks = [check for assets in defs.assets or [] for check in assets.check_specs]
    assert len(checks) == 10
    for check in checks:
        assert check.description, check.key


def test_the_refresh_job_drains_loads_and_refreshes_the_marts_but_neither_compacts_nor_maintains_the_lake():
    keys = {k.to_user_string() for k in defs.resolve_job_def("refresh_integration").asset_layer.selected_asset_keys}
    assert {"raw/events", "warehouse/profiles", "marts/player_value"} <= keys
    assert "raw/compacted_days" not in keys and "warehouse/lake_maintenance" not in keys
    assert defs.resolve_schedule_def("lake_maintenance_schedule").job_name == "maintain_lake"


def test_every_warehouse_table_has_a_freshness_policy():
    tables = [s for s in defs.resolve_all_asset_specs() if s.group_name == "warehouse"]
    assert tables and all(s.freshness_policy is not None for s in tables)


def test_the_compaction_schedule_compacts_each_approved_integration(tmp_path):
    registry = IntegrationRegistry(registry_path(tmp_path))
    registry.create("acme", "acme-casino", "b:9092")
    instance = dg.DagsterInstance.local_temp(tempdir=str(tmp_path))
    # Closed by `with`: the context enters its own instance from the ref, and
    # one left open can hand a dead instance to a later Definitions load.
    with dg.build_schedule_context(
        instance=instance, resources={"integration_registry": IntegrationRegistryResource(home=str(tmp_path))},
        scheduled_execution_time=datetime(2026, 11, 24, 3, 30),
    ) as context:
        assert isinstance(compaction_schedule(context), dg.SkipReason)
        registry.approve("acme")
        instance.add_dynamic_partitions(integrations_partitions.name, ["acme"])
        [request] = compaction_schedule(context)
    assert (request.partition_key, request.run_key) == ("acme", "compact:acme:2026-11-24T03:30:00")
