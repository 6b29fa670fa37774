"""Which integrations may be read, as plain functions of the registry (no Dagster)."""

from __future__ import annotations

from dataclasses import dataclass

from gig_etl.lib.registry import Integration


class NotApproved(Exception):
    """The integration asked for is not approved: nothing was read."""


def approval_key(integration: Integration) -> str:
    """Names one approval: re-approving (a new integration) gives a new key."""
    return f"{integration.name}@{integration.approved_at}"


def status_summary(integrations: list[Integration]) -> str:
    if not integrations:
        return "no integration exists yet (gig-etl integrations create ...)"
    return ", ".join(f"{i.name} is {i.status.value}" for i in integrations)


@dataclass(frozen=True)
class ApprovalDecision:
    partitions_to_add: list[str]
    first_runs: list[tuple[str, str]]  # (integration, run key)
    handled: list[str]  # approval keys seen so far: the sensor's cursor
    skip_reason: str | None


def decide_on_approvals(
    integrations: list[Integration], existing_partitions: set[str], handled: set[str]
) -> ApprovalDecision:
    """For each approval not handled yet: its partition, if missing, and one first run."""
    approved = [i for i in integrations if i.is_readable]
    new = [i for i in approved if approval_key(i) not in handled]
    skip = None
    if not approved:
        skip = f"no approved integration: {status_summary(integrations)}"
    elif not new:
        skip = f"no new approval; {len(approved)} approved integration(s) run on the schedule"
    return ApprovalDecision(
        partitions_to_add=sorted(i.name for i in approved if i.name not in existing_partitions),
        first_runs=[(i.name, f"approved:{approval_key(i)}") for i in new],
        handled=sorted(handled | {approval_key(i) for i in new}),
        skip_reason=skip,
    )


def scheduled_integrations(
    integrations: list[Integration], existing_partitions: set[str]
) -> tuple[list[str], str | None]:
    """The integrations a scheduled tick runs (approved, with a partition), or why none."""
    runnable = [i.name for i in integrations if i.is_readable and i.name in existing_partitions]
    if runnable:
        return runnable, None
    return [], f"nothing to refresh: {status_summary(integrations)}"
