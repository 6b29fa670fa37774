import json
from datetime import datetime

import dagster as dg
import pytest

from gig_etl.defs.integrations.partitions import integrations_partitions
from gig_etl.defs.integrations.schedules import refresh_schedule
from gig_etl.defs.integrations.sensors import integration_approval_sensor
from gig_etl.defs.resources import IntegrationRegistryResource
from gig_etl.lib.gate import decide_on_approvals, scheduled_integrations
from gig_etl.lib.registry import (
    Integration,
    IntegrationRegistry,
    IntegrationStatus,
    registry_path,
)


def integration(name: str, status: IntegrationStatus, approved_at: str | None = None) -> Integration:
    return Integration(name, "t", "b:1", status=status, approved_at=approved_at)


def test_approval_decision_adds_a_partition_and_one_first_run_per_approval():
    integrations = [
        integration("a", IntegrationStatus.APPROVED, "2026-11-01T00:00:00+00:00"),
        integration("b", IntegrationStatus.AWAITING_APPROVAL),
    ]
    decision = decide_on_approvals(integrations, set(), set())
    assert decision.partitions_to_add == ["a"]
    assert decision.first_runs == [("a", "approved:a@2026-11-01T00:00:00+00:00")]
    assert decision.skip_reason is None
    again = decide_on_approvals(integrations, {"a"}, set(decision.handled))
    assert again.first_runs == [] and again.partitions_to_add == []
    assert again.skip_reason == "no new approval; 1 approved integration(s) run on the schedule"


def test_nothing_approved_is_skipped_naming_each_status():
    integrations = [integration("a", IntegrationStatus.REJECTED), integration("b", IntegrationStatus.DISABLED)]
    decision = decide_on_approvals(integrations, {"b"}, set())
    assert decision.skip_reason == "no approved integration: a is rejected, b is disabled"
    assert scheduled_integrations(integrations, {"a", "b"}) == ([], "nothing to refresh: a is rejected, b is disabled")


def test_the_schedule_runs_approved_integrations_that_have_a_partition():
    integrations = [
        integration("a", IntegrationStatus.APPROVED, "x"),
        integration("b", IntegrationStatus.APPROVED, "y"),
        integration("c", IntegrationStatus.AWAITING_APPROVAL),
    ]
    assert scheduled_integrations(integrations, {"a", "c"}) == (["a"], None)


@pytest.fixture
def registry_resource(tmp_path) -> IntegrationRegistryResource:
    return IntegrationRegistryResource(home=str(tmp_path))


def test_sensor_skips_then_adds_the_partition_and_requests_one_run_on_approval(registry_resource, tmp_path):
    registry = IntegrationRegistry(registry_path(tmp_path))
    # Not instance_for_test(): it leaves a process-wide reference behind that
    # breaks later Definitions loads (dagster 1.13).
    instance = dg.DagsterInstance.ephemeral()
    context = dg.build_sensor_context(instance=instance, resources={"integration_registry": registry_resource})
    skipped = integration_approval_sensor(context)
    assert isinstance(skipped, dg.SkipReason)
    assert "no integration exists yet" in skipped.skip_message

    registry.create("acme", "acme-casino", "b:9092")
    skipped = integration_approval_sensor(context)
    assert skipped.skip_message == "no approved integration: acme is awaiting_approval"

    approved = registry.approve("acme")
    result = integration_approval_sensor(context)
    assert isinstance(result, dg.SensorResult)
    [request] = result.run_requests
    assert (request.partition_key, request.run_key) == ("acme", f"approved:acme@{approved.approved_at}")
    [add] = result.dynamic_partitions_requests
    assert (add.partitions_def_name, list(add.partition_keys)) == (integrations_partitions.name, ["acme"])

    instance.add_dynamic_partitions(integrations_partitions.name, ["acme"])
    context = dg.build_sensor_context(
        instance=instance, cursor=result.cursor, resources={"integration_registry": registry_resource}
    )
    assert json.loads(result.cursor) == [f"acme@{approved.approved_at}"]
    again = integration_approval_sensor(context)
    assert isinstance(again, dg.SkipReason) and "no new approval" in again.skip_message


def test_schedule_requests_each_approved_partition_and_skips_naming_statuses(registry_resource, tmp_path):
    registry = IntegrationRegistry(registry_path(tmp_path))
    registry.create("acme", "acme-casino", "b:9092")
    registry.create("beta", "beta-casino", "b:9092")
    instance = dg.DagsterInstance.local_temp(tempdir=str(tmp_path))
    # Closed by `with`: the context enters its own instance from the ref, and
    # one left open can hand a dead instance to a later Definitions load.
    with dg.build_schedule_context(
        instance=instance, resources={"integration_registry": registry_resource},
        scheduled_execution_time=datetime(2026, 11, 24, 10, 5),
    ) as context:
        skipped = refresh_schedule(context)
        assert isinstance(skipped, dg.SkipReason)
        assert skipped.skip_message == "nothing to refresh: acme is awaiting_approval, beta is awaiting_approval"

        registry.approve("beta")
        instance.add_dynamic_partitions(integrations_partitions.name, ["beta"])
        [request] = refresh_schedule(context)
    assert request.partition_key == "beta"
    assert request.run_key == "beta:2026-11-24T10:05:00"
