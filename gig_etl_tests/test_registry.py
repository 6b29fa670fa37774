import pytest

from gig_etl.lib.registry import (
    CredentialsError,
    IntegrationRegistry,
    IntegrationStatus,
    RegistryError,
    registry_path,
)


@pytest.fixture
def registry(tmp_path) -> IntegrationRegistry:
    return IntegrationRegistry(registry_path(tmp_path))


def test_a_new_integration_awaits_approval_then_is_approved(registry):
    created = registry.create("acme", "acme-casino", "broker-1:9092,broker-2:9092", identifier="email")
    assert created.status is IntegrationStatus.AWAITING_APPROVAL and created.approved_at is None
    approved = registry.approve("acme")
    assert approved.status is IntegrationStatus.APPROVED and approved.approved_at
    assert registry.get("acme") == approved
    assert registry.get("acme").identifier == "email"


def test_an_approved_integration_cannot_be_edited(registry):
    registry.create("acme", "acme-casino", "b:9092")
    registry.approve("acme")
    with pytest.raises(RegistryError, match="can no longer be edited: create a new integration"):
        registry.edit("acme", bootstrap_servers="other:9092")
    assert registry.get("acme").bootstrap_servers == "b:9092"


def test_editing_before_approval_changes_it_and_keeps_it_waiting(registry):
    registry.create("acme", "acme-casino", "b:9092")
    registry.reject("acme")
    edited = registry.edit("acme", bootstrap_servers="c:9093", identifier="username")
    assert (edited.bootstrap_servers, edited.identifier) == ("c:9093", "username")
    assert edited.status is IntegrationStatus.AWAITING_APPROVAL


def test_status_moves_follow_the_lifecycle(registry):
    registry.create("acme", "acme-casino", "b:9092")
    with pytest.raises(RegistryError, match="cannot disable integration 'acme': it is awaiting_approval"):
        registry.disable("acme")
    assert registry.reject("acme").status is IntegrationStatus.REJECTED
    with pytest.raises(RegistryError, match="only awaiting_approval integrations can be approved"):
        registry.approve("acme")
    registry.create("beta", "acme-casino", "b:9092")
    registry.approve("beta")
    assert registry.disable("beta").status is IntegrationStatus.DISABLED
    assert not registry.get("beta").is_readable


def test_names_are_unique_but_a_tenant_may_have_two_integrations(registry):
    registry.create("acme", "acme-casino", "b:9092")
    registry.create("acme-crm", "acme-casino", "b:9092", identifier="email")
    with pytest.raises(RegistryError, match="'acme' exists already"):
        registry.create("acme", "other", "b:9092")
    assert [i.name for i in registry.list()] == ["acme", "acme-crm"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"identifier": "player_no"}, "unknown identifier 'player_no'"),
        ({"tenant_id": "  "}, "the tenant ID is empty"),
        ({"bootstrap_servers": "b:99999"}, "malformed bootstrap servers"),
        ({"bootstrap_servers": "no-port"}, "malformed bootstrap servers"),
        ({"name": "Bad Name"}, "invalid name"),
        ({"security_protocol": "SSL"}, "unknown security protocol"),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "username": "u"}, "needs --password-env"),
        ({"security_protocol": "SASL_SSL", "username": "u", "password_env": "P"}, "needs a SASL mechanism"),
        ({"username": "u"}, "needs a SASL security protocol"),
    ],
)
def test_bad_input_is_refused_with_the_reason(registry, overrides, message):
    arguments = {"name": "acme", "tenant_id": "acme-casino", "bootstrap_servers": "b:9092"} | overrides
    with pytest.raises(RegistryError, match=message):
        registry.create(**arguments)
    assert registry.list() == []


def test_unknown_integration(registry):
    with pytest.raises(RegistryError, match="unknown integration 'nope'"):
        registry.get("nope")


def test_the_password_is_read_from_its_variable_and_never_stored(registry, monkeypatch):
    registry.create(
        "acme", "acme-casino", "b:9092", security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
        username="reader", password_env="ACME_KAFKA_PASSWORD",
    )
    with pytest.raises(CredentialsError, match="integration 'acme', broker .*: the environment variable ACME_KAFKA_PASSWORD"):
        registry.get("acme").connection()
    monkeypatch.setenv("ACME_KAFKA_PASSWORD", "hunter2-secret")
    connection = registry.get("acme").connection()
    assert connection.client_config()["sasl.password"] == "hunter2-secret"
    assert "hunter2" not in repr(connection)
    stored = b"".join(p.read_bytes() for p in registry.path.parent.glob("registry.sqlite*"))
    assert b"ACME_KAFKA_PASSWORD" in stored and b"hunter2" not in stored


_SASL = {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "username": "reader", "password_env": "ACME_PW"}


@pytest.mark.parametrize(
    "setting, value",
    [
        ("name", "acme\n"), ("name", "ac\x00me"), ("tenant_id", "acme-casino\n"), ("bootstrap_servers", "b:9092\n"),
        ("bootstrap_servers", "b:9092\t,c:9092"), ("password_env", "ACME_PW\n"), ("username", "reader\r"),
    ],
)
def test_a_setting_with_a_control_character_is_refused_naming_it(registry, setting, value):
    # `$` in a pattern matches before a trailing newline: "acme\n" was a valid name.
    settings = {"name": "acme", "tenant_id": "acme-casino", "bootstrap_servers": "b:9092", **_SASL, setting: value}
    with pytest.raises(RegistryError, match=f"the {setting.replace('_', ' ')} .* holds a control character"):
        registry.create(settings.pop("name"), settings.pop("tenant_id"), settings.pop("bootstrap_servers"), **settings)
    assert registry.list() == []


def test_an_empty_password_variable_is_refused_naming_it_the_integration_and_the_broker(registry):
    integration = registry.create("acme", "acme-casino", "b:9092", **_SASL)
    with pytest.raises(CredentialsError, match="integration 'acme', broker b:9092: the environment variable ACME_PW .* is empty"):
        integration.connection({"ACME_PW": ""})


def test_a_refused_move_names_the_status_it_needs_in_plain_words(registry):
    registry.create("acme", "acme-casino", "b:9092")
    registry.approve("acme")
    with pytest.raises(RegistryError, match="only awaiting_approval integrations can be rejected$"):
        registry.reject("acme")
