import re
from pathlib import Path


from gig_etl.contract import (
    EVENT_TYPES,
    PAYMENT_STATUSES,
    PROFILE_ATTRIBUTES,
    SUBSCRIPTION_CHANNELS,
    AttributeType,
    TopicKind,
    attribute_column,
    event_display_name,
    field_spec,
    tenant_topics,
)

CONTRACT_DOC = Path(__file__).resolve().parents[1] / "docs" / "GIG_STREAM.md"


def test_topics_are_named_after_the_tenant():
    assert tenant_topics("acme-casino") == {
        TopicKind.PROFILES: "gig.acme-casino.profiles",
        TopicKind.EVENTS: "gig.acme-casino.events",
    }


def test_the_twelve_event_types_and_their_display_names():
    assert sorted(e.display_name for e in EVENT_TYPES.values()) == [
        "Bonus", "Customer Balance", "Customer Blocks", "Customer Consent", "Customer Created",
        "Customer FPP", "Customer Tag", "Customer Verified", "Game Activity",
        "Payment - Deposit", "Payment - Withdrawal", "Sport Activity",
    ]


def test_an_unknown_event_type_is_named_after_itself():
    assert event_display_name("payment_deposit") == "Payment - Deposit"
    assert event_display_name("mission_completed") == "mission_completed"


def test_subscription_attributes_are_boolean_attributes_with_distinct_channels():
    assert len(set(SUBSCRIPTION_CHANNELS.values())) == 7
    for attribute in SUBSCRIPTION_CHANNELS:
        assert PROFILE_ATTRIBUTES[attribute].type is AttributeType.BOOLEAN


def test_events_update_the_profile_through_shared_field_names():
    assert EVENT_TYPES["payment_deposit"].attribute_fields == ("currency", "lifetime_deposit_amount", "deposit_count")
    assert set(EVENT_TYPES["customer_consent"].attribute_fields) == set(SUBSCRIPTION_CHANNELS)
    assert EVENT_TYPES["customer_fpp"].attribute_fields == ("fpp_balance",)


def test_every_event_field_has_a_declared_type():
    for event in EVENT_TYPES.values():
        for name in event.fields:
            assert field_spec(name) is not None, (event.type, name)
    assert field_spec("amount").type is AttributeType.DECIMAL
    assert field_spec("loyalty_tier") is None


def test_warehouse_names_and_types():
    assert attribute_column("vip_level") == "gig_vip_level"
    assert PROFILE_ATTRIBUTES["real_balance"].type.duckdb_type == "DECIMAL(18,4)"
    assert PROFILE_ATTRIBUTES["tags"].type.duckdb_type == "VARCHAR[]"
    assert PROFILE_ATTRIBUTES["birth_date"].type.duckdb_type == "DATE"
    assert PROFILE_ATTRIBUTES["last_login_at"].type.duckdb_type == "TIMESTAMPTZ"


def _doc_section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def test_the_code_lists_exactly_what_the_contract_document_lists():
    text = CONTRACT_DOC.read_text()
    attribute_rows = _doc_section(text, "## Profile changes").split("The subscription attributes map")[0]
    documented = {
        name
        for row in attribute_rows.splitlines()
        if row.startswith("| `")
        for name in re.findall(r"`([a-z_]+)`", row.split("|")[1])
    }
    assert documented == set(PROFILE_ATTRIBUTES)

    channel_rows = re.findall(r"^\| `(allow_[a-z_]+)` \| `([a-z_]+)` \|$", text, re.M)
    assert dict(channel_rows) == dict(SUBSCRIPTION_CHANNELS)

    event_table = _doc_section(text, "## Events")
    event_rows = [r for r in re.findall(r"^\| `([a-z_]+)` \| ([^|]+?) \| [^|]+ \| ([^|]+) \|$", event_table, re.M) if r[0] != "type"]
    assert {t: name for t, name, _ in event_rows} == {t: e.display_name for t, e in EVENT_TYPES.items()}
    for event_type, _, fields in event_rows:
        if event_type != "customer_consent":  # "one or more of the seven allow_* booleans"
            documented_fields = set(re.findall(r"`([a-z_]+)`", fields)) - set(PAYMENT_STATUSES)
            assert documented_fields == set(EVENT_TYPES[event_type].fields), event_type
