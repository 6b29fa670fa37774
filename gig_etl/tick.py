"""`gig-etl run`: one scheduler tick from the command line, through the same Dagster
job and gate as the daemon, on the persistent instance so its runs show in the UI."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Callable

import dagster as dg

from gig_etl.definitions import defs
from gig_etl.defs.integrations.jobs import (
    CLI_PID_TAG,
    SHARD_TAG,
    SLOT_TAG,
    TICK_TAG,
    drain_shard_job,
    load_integration_job,
    refresh_integration_job,
    shard_run_config,
)
from gig_etl.defs.integrations.partitions import integrations_partitions
from gig_etl.instance import dagster_instance, dagster_storage_errors
from gig_etl.lib.deployment import current_deployment
from gig_etl.lib.gate import NotApproved, status_summary
from gig_etl.lib.shard import Shard, all_shards
from gig_etl.workers import run_workers

# Where a `gig-etl run` runs (and CLI_PID_TAG), to tell later whether its process is still alive.
_HOST_TAG = "gig_etl/host"

# The terminal gets one line per asset from the run's metadata, and a failure in
# one line; Dagster's own log (with any traceback) is in the UI.
_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass(frozen=True)
class RunOutcome:
    integration: str
    run_id: str
    success: bool
    error: str | None
    metadata: dict[str, dict]  # per asset key: its materialisation metadata


def run_tick(
    home: Path, integration: str | None = None, echo: Callable[[str], None] = print, shard: Shard | None = None,
    tick: str | None = None,
) -> list[RunOutcome]:
    """Runs the refresh job for the named integration, or for every approved one.
    With GIG_ETL_DRAIN_SHARDS=N, each integration's drain is N runs side by side,
    each in a process of its own (`gig-etl run --shard K/N`), then one load run.
    With `shard`, only that shard's drain of the named integration, for `tick`."""
    registry = current_deployment(home).registry()
    if integration is not None:
        target = registry.get(integration)
        if not target.is_readable:
            raise NotApproved(f"integration {target.name!r} is {target.status.value}, not approved: nothing was read")
        names = [target.name]
    else:
        integrations = registry.list()
        names = [i.name for i in integrations if i.is_readable]
        if not names:
            echo(f"skipped: no approved integration: {status_summary(integrations)}")
            return []
    with dagster_storage_errors(home):
        return _run_each(home, names, echo, shard, tick)


def _run_each(
    home: Path, names: list[str], echo: Callable[[str], None], shard: Shard | None, tick: str | None
) -> list[RunOutcome]:
    instance = dagster_instance(home)
    # What the approval sensor does when the daemon runs it.
    missing = set(names) - set(instance.get_dynamic_partitions(integrations_partitions.name))
    if missing:
        instance.add_dynamic_partitions(integrations_partitions.name, sorted(missing))
    shards = current_deployment(home).drain_shards
    outcomes = []
    for name in names:
        for run_id in fail_abandoned_runs(instance, name):
            echo(f"{name}: run {run_id} was left unfinished by a process that died; marked failed")
        tags = {_HOST_TAG: socket.gethostname(), CLI_PID_TAG: str(os.getpid()), SLOT_TAG: name}
        if shard is not None:
            job, run_config = drain_shard_job, shard_run_config(shard, _RUN_CONFIG)
            tags |= {SLOT_TAG: f"{name}/{shard.name}", SHARD_TAG: f"{shard.index}/{shard.count}", TICK_TAG: tick or ""}
        elif shards > 1:
            tick = datetime.now(UTC).isoformat(timespec="seconds")
            failed = _drain_shards(home, name, shards, tick, echo)
            if failed:
                outcomes.append(RunOutcome(name, "-", False, failed, {}))
                continue
            job, run_config = load_integration_job, _RUN_CONFIG
            tags |= {TICK_TAG: tick}
        else:
            job, run_config = refresh_integration_job, _RUN_CONFIG
        result = defs.resolve_job_def(job.name).execute_in_process(
            partition_key=name, instance=instance, raise_on_error=False, run_config=run_config, tags=tags,
        )
        error = None
        if not result.success:
            failures = result.get_step_failure_events()
            error = _failure_text(failures[0]) if failures else "the run failed"
        outcomes.append(
            RunOutcome(
                name if shard is None else f"{name} {shard}",
                result.run_id,
                result.success,
                error,
                {
                    e.materialization.asset_key.to_user_string(): {
                        k: v.value for k, v in e.materialization.metadata.items()
                    }
                    for e in result.get_asset_materialization_events()
                },
            )
        )
    return outcomes


def _drain_shards(home: Path, name: str, shards: int, tick: str, echo: Callable[[str], None]) -> str | None:
    """Each shard's drain in a worker process of its own, side by side; echoes what
    each did. Returns the first failure, or None when every shard drained."""
    done = run_workers(
        home, [["--integration", name, "--shard", f"{s.index}/{s.count}", "--tick", tick] for s in all_shards(shards)]
    )
    for result in done:
        for line in result.output.splitlines():
            echo(line)
    failures = [r for r in done if r.status != 0]
    if not failures:
        return None
    last = failures[0].output.splitlines()
    return f"{len(failures)} of {shards} shards failed to drain, nothing loaded: " + (last[-1] if last else "no output")


def fail_abandoned_runs(instance: dg.DagsterInstance, integration: str) -> list[str]:
    """Marks failed the integration's runs that `gig-etl run` started on this machine
    and whose process is gone (killed, machine restarted): otherwise they would show
    as running in the UI, and hold the integration's slot in the run queue, for ever.
    Returns their run ids."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED],
            tags={"dagster/partition": integration, _HOST_TAG: socket.gethostname()},
        )
    )
    abandoned = []
    for record in records:
        run = record.dagster_run
        if not _process_alive(int(run.tags[CLI_PID_TAG])):
            instance.report_run_failed(run, "the gig-etl process running it died before the run ended")
            abandoned.append(run.run_id)
    return abandoned


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _failure_text(event) -> str:
    data = event.step_failure_data
    if data.user_failure_data is not None and data.user_failure_data.description:
        return data.user_failure_data.description
    if data.error is None:
        return "the step failed"
    # What went wrong, inside the errors Dagster wraps it in, without its class's name.
    error = data.error
    while error.cause is not None and (error.cls_name or "").startswith("Dagster"):
        error = error.cause
    text = error.message.strip().splitlines()[0] if error.message.strip() else "the step failed"
    prefix, _, rest = text.partition(": ")
    return rest if rest and prefix.rsplit(".", 1)[-1] == error.cls_name else text


def outcome_lines(outcome: RunOutcome) -> list[str]:
    """What a run did, for a terminal: a line for the run, one per asset, one for the load."""
    if not outcome.success:
        return [f"{outcome.integration}: run {outcome.run_id} failed: {outcome.error}"]
    lines = [f"{outcome.integration}: run {outcome.run_id} succeeded"]
    load = None
    for asset, meta in sorted(outcome.metadata.items()):
        if "bytes_written" in meta:  # a drain
            left = meta.get("lag_after")
            lines.append(
                f"  {asset}: {meta['rows']:,} messages from {meta['topic']} "
                f"in {meta['files']} Parquet files ({meta['bytes_written']:,} bytes)"
                + (f"; {left:,} newer left for the next run" if isinstance(left, int) and left > 0 else "")
            )
            for gap in meta.get("gaps") or []:
                lines.append(
                    f"  warning: {meta['topic']} [{gap['partition']}] offsets {gap['from']}..{gap['to'] - 1} "
                    "were deleted by the broker before they were read (recorded in the raw manifest's gaps table)"
                )
        elif "dagster/row_count" in meta:  # a table or a view
            lines.append(f"  {asset}: {meta['dagster/row_count']:,} rows")
            if asset == "warehouse/quarantine":  # loaded from both topics: its accounting is the run's
                load = meta
    if load is not None:
        lines.append(
            f"  load: {load['read']:,} read = {load['loaded']:,} loaded + {load['duplicates']:,} duplicates "
            f"+ {load['quarantined']:,} quarantined; {load['erasures']:,} erasures"
        )
        if load.get("quarantine_erased"):
            lines.append(
                f"  quarantine: {load['quarantine_erased']:,} messages about erased customers not kept (erased with them)"
            )
    return lines
