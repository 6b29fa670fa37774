"""The approval gate against the real broker, through the CLI and real Dagster runs."""

import time

import pytest
from click.testing import CliRunner

from gig_etl.cli import main
from gig_etl.contract import PROFILE_ATTRIBUTES
from gig_etl.lib.home import raw_root
from gig_etl.lib.raw_store import RawStore
from gig_etl.lib.warehouse import embedded_lake, open_lake
from gig_etl.simulate import generate_traffic, produce_traffic
from gig_etl_tests.pipeline import failure_text, materialize_integration, register


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def recorded_offsets(home, integration: str, tenant: str) -> dict:
    store = RawStore(raw_root(home))
    return {kind: store.next_offsets(integration, f"gig.{tenant}.{kind}") for kind in ("profiles", "events")}


@pytest.fixture
def traffic(kafka_connection, tenant) -> int:
    return produce_traffic(kafka_connection, tenant, generate_traffic(tenant, 40, seed=9)).total


def test_an_awaiting_integration_is_never_read_and_after_approval_the_next_tick_reads_it(
    kafka_broker, tenant, traffic, isolated_home
):
    code, out = cli("integrations", "create", "acme", "--tenant-id", tenant, "--bootstrap-servers", kafka_broker.bootstrap_servers)
    assert (code, out.strip()) == (0, "created integration 'acme': awaiting_approval")

    code, out = cli("run", "--integration", "acme")
    assert code == 2
    assert out.strip() == "Error: integration 'acme' is awaiting_approval, not approved: nothing was read"
    code, out = cli("run")
    assert code == 0 and "skipped: no approved integration: acme is awaiting_approval" in out
    direct = materialize_integration(isolated_home, "acme", raise_on_error=False)
    assert not direct.success and "is awaiting_approval, not approved" in failure_text(direct)
    assert recorded_offsets(isolated_home, "acme", tenant) == {"profiles": {}, "events": {}}

    assert cli("integrations", "approve", "acme") == (0, "integration 'acme' is approved\n")
    code, out = cli("run")
    assert code == 0, out
    assert "acme: run " in out and "succeeded" in out
    offsets = recorded_offsets(isolated_home, "acme", tenant)
    assert sum(offsets["profiles"].values()) + sum(offsets["events"].values()) == traffic
    code, out = cli("integrations", "list")
    header, row = out.splitlines()
    assert header.split() == ["NAME", "STATUS", "TENANT", "BOOTSTRAP", "SERVERS", "IDENTIFIER", "LAST", "RUN", "OUTCOME", "LAG"]
    name, status, listed_tenant, servers, identifier, day, time_of_day, utc, outcome, lag = row.split()
    assert (name, status, listed_tenant, servers, identifier) == ("acme", "approved", tenant, kafka_broker.bootstrap_servers, "customer_id")
    assert (utc, outcome, lag) == ("UTC", "success", f"{traffic:,}")  # the lag the drain found: all of it
    assert header.index("LAST RUN") == row.index(day)  # aligned columns


def test_rejected_and_disabled_integrations_are_not_read(kafka_broker, tenant, traffic, isolated_home):
    bootstrap = kafka_broker.bootstrap_servers
    cli("integrations", "create", "nope", "--tenant-id", tenant, "--bootstrap-servers", bootstrap)
    cli("integrations", "reject", "nope")
    cli("integrations", "create", "paused", "--tenant-id", tenant, "--bootstrap-servers", bootstrap)
    cli("integrations", "approve", "paused")
    assert cli("integrations", "disable", "paused") == (0, "integration 'paused' is disabled\n")

    for name, status in (("nope", "rejected"), ("paused", "disabled")):
        code, out = cli("run", "--integration", name)
        assert code == 2 and f"is {status}, not approved" in out
        assert recorded_offsets(isolated_home, name, tenant) == {"profiles": {}, "events": {}}
    code, out = cli("run")
    assert "skipped: no approved integration: nope is rejected, paused is disabled" in out


def test_approval_seeds_the_attribute_catalog_before_any_data(kafka_broker, tenant, isolated_home):
    register(isolated_home, "fresh", tenant, kafka_broker.bootstrap_servers)  # its topics do not exist yet
    code, out = cli("run", "--integration", "fresh")
    assert code == 0, out
    with open_lake(embedded_lake(isolated_home), read_only=True) as db:
        rows = db.execute(
            "SELECT attribute, data_type FROM attribute_catalog WHERE integration = 'fresh' ORDER BY attribute"
        ).fetchall()
    assert rows == sorted((spec.column, spec.type.duckdb_type) for spec in PROFILE_ATTRIBUTES.values())


def test_a_wrong_password_fails_the_run_fast_naming_the_integration_and_the_cause(
    authenticating_broker, tenant, isolated_home, monkeypatch
):
    monkeypatch.setenv("ACME_PASSWORD", "Not-The-Pa55word")
    register(
        isolated_home, "secured", tenant, authenticating_broker.bootstrap_servers,
        security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512", username="reader", password_env="ACME_PASSWORD",
    )
    started = time.monotonic()
    code, out = cli("run", "--integration", "secured")
    assert time.monotonic() - started < 30
    assert code == 1
    assert out.count("\n") == 1, out  # one line, no traceback
    assert "secured: run" in out and "failed: integration 'secured', broker 127.0.0.1:" in out
    assert "refused the credentials of user 'reader'" in out and "Pa55word" not in out
    assert recorded_offsets(isolated_home, "secured", tenant) == {"profiles": {}, "events": {}}


@pytest.mark.parametrize("password, state", [(None, "not set"), ("", "empty")], ids=["unset", "empty"])
def test_a_missing_or_empty_password_variable_fails_the_run_in_one_line_naming_it(
    kafka_broker, tenant, isolated_home, monkeypatch, password, state
):
    if password is None:
        monkeypatch.delenv("NOPASS_PASSWORD", raising=False)
    else:
        monkeypatch.setenv("NOPASS_PASSWORD", password)
    register(
        isolated_home, "nopass", tenant, kafka_broker.bootstrap_servers,
        security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", username="reader", password_env="NOPASS_PASSWORD",
    )
    code, out = cli("run", "--integration", "nopass")
    assert code == 1
    assert (
        f"integration 'nopass', broker {kafka_broker.bootstrap_servers}: the environment variable NOPASS_PASSWORD "
        f"that holds its password is {state}"
    ) in out


def test_cli_lists_shows_and_edits(kafka_broker, isolated_home, monkeypatch):
    monkeypatch.setenv("ACME_PW", "s3cret-value")
    code, out = cli(
        "integrations", "create", "acme", "--tenant-id", "acme-casino", "--bootstrap-servers", "b:9092",
        "--security-protocol", "SASL_SSL", "--sasl-mechanism", "SCRAM-SHA-256", "--username", "reader",
        "--password-env", "ACME_PW", "--identifier", "mobile_phone",
    )
    assert code == 0, out
    code, out = cli("integrations", "show", "acme")
    assert "$ACME_PW (set)" in out and "s3cret" not in out and "mobile_phone" in out
    assert cli("integrations", "edit", "acme", "--bootstrap-servers", "c:9093")[0] == 0
    code, out = cli("integrations", "list")
    assert out.splitlines()[1].split() == ["acme", "awaiting_approval", "acme-casino", "c:9093", "mobile_phone", "-", "-", "-"]
    monkeypatch.delenv("ACME_PW")
    code, out = cli("integrations", "approve", "acme")
    assert code == 0 and out.splitlines() == [
        "integration 'acme' is approved",
        "warning: the environment variable ACME_PW that holds its password is not set here: "
        "its runs fail until it is set where they run",
    ]
    code, out = cli("integrations", "edit", "acme", "--identifier", "email")
    assert code == 2
    assert out == "Error: integration 'acme' is approved and can no longer be edited: create a new integration for the changed connection\n"


@pytest.mark.parametrize(
    "args, message",
    [
        (["integrations", "create", "x", "--tenant-id", "t", "--bootstrap-servers", "b:1", "--identifier", "nick"],
         "Error: invalid --identifier 'nick': one of customer_id, email, username, mobile_phone"),
        (["integrations", "create", "x", "--tenant-id", "t", "--bootstrap-servers", "b:1", "--sasl-mechanism", "SCRAM-SHA512"],
         "Error: invalid --sasl-mechanism 'SCRAM-SHA512': one of SCRAM-SHA-512, SCRAM-SHA-256, PLAIN"),
        (["integrations", "create", "x", "--tenant-id", "", "--bootstrap-servers", "b:1"], "the tenant ID is empty"),
        (["integrations", "create", "x", "--tenant-id", "t", "--bootstrap-servers", "b"], "malformed bootstrap servers"),
        (["integrations", "show", "ghost"], "unknown integration 'ghost'"),
        (["integrations", "approve", "ghost"], "unknown integration 'ghost'"),
        (["run", "--integration", "ghost"], "unknown integration 'ghost'"),
    ],
)
def test_bad_input_ends_with_one_line_and_status_2(args, message):
    code, out = cli(*args)
    assert code == 2
    assert len(out.strip().splitlines()) == 1 and message in out and "Traceback" not in out


def test_a_duplicate_name_ends_with_one_line_and_status_2():
    assert cli("integrations", "create", "x", "--tenant-id", "t", "--bootstrap-servers", "b:1")[0] == 0
    code, out = cli("integrations", "create", "x", "--tenant-id", "t2", "--bootstrap-servers", "b:1")
    assert (code, out) == (2, "Error: an integration named 'x' exists already\n")
