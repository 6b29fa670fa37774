"""The GiG player data stream, version 1 (`docs/GIG_STREAM.md`) as code.

Every other module reads the contract's facts from here: envelope fields,
profile attributes and their types, the event types, the subscription
channels and the topic names. Change the contract here and nowhere else.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

SCHEMA_VERSION = 1


class TopicKind(str, enum.Enum):
    """The two topics every tenant has."""

    PROFILES = "profiles"
    EVENTS = "events"

    def topic(self, tenant_id: str) -> str:
        return f"gig.{tenant_id}.{self.value}"


def tenant_topics(tenant_id: str) -> dict[TopicKind, str]:
    return {kind: kind.topic(tenant_id) for kind in TopicKind}


# --- the envelope -----------------------------------------------------------

ENVELOPE_FIELDS: Mapping[str, type] = MappingProxyType(
    {
        "schema_version": int,
        "message_id": str,
        "tenant_id": str,
        "customer_id": str,
        "type": str,
        "occurred_at": str,  # RFC 3339 with a zone offset
        "data": dict,
    }
)

PROFILE_MESSAGE_TYPE = "profile"


# --- attribute types ----------------------------------------------------------


class AttributeType(str, enum.Enum):
    """The value types the contract uses, with the warehouse type each loads as."""

    STRING = "string"
    DATE = "date"  # YYYY-MM-DD
    TIMESTAMP = "timestamp"  # RFC 3339 with a zone offset
    INTEGER = "integer"
    DECIMAL = "decimal"  # money: at most 4 decimals
    BOOLEAN = "boolean"
    STRING_LIST = "string_list"

    @property
    def duckdb_type(self) -> str:
        return _DUCKDB_TYPES[self]


# Money as DECIMAL(18,4): a value must stay below this in magnitude to load.
DECIMAL_DIGITS, DECIMAL_PLACES = 18, 4
DECIMAL_LIMIT = 10 ** (DECIMAL_DIGITS - DECIMAL_PLACES)

_DUCKDB_TYPES = {
    AttributeType.STRING: "VARCHAR",
    AttributeType.DATE: "DATE",
    AttributeType.TIMESTAMP: "TIMESTAMPTZ",
    AttributeType.INTEGER: "BIGINT",
    AttributeType.DECIMAL: f"DECIMAL({DECIMAL_DIGITS},{DECIMAL_PLACES})",
    AttributeType.BOOLEAN: "BOOLEAN",
    AttributeType.STRING_LIST: "VARCHAR[]",
}


@dataclass(frozen=True)
class AttributeSpec:
    name: str
    type: AttributeType
    allowed: tuple[str, ...] | None = None  # closed set of string values
    min_value: int | None = None
    max_value: int | None = None

    @property
    def column(self) -> str:
        return attribute_column(self.name)


def attribute_column(attribute: str) -> str:
    """The warehouse name of a GiG attribute: `gig_<name>`."""
    return f"gig_{attribute}"


KYC_STATUSES = ("unverified", "pending", "verified", "rejected")


def _attributes(*specs: AttributeSpec) -> Mapping[str, AttributeSpec]:
    return MappingProxyType({spec.name: spec for spec in specs})


_S, _D, _T = AttributeType.STRING, AttributeType.DATE, AttributeType.TIMESTAMP
_I, _M, _B = AttributeType.INTEGER, AttributeType.DECIMAL, AttributeType.BOOLEAN

PROFILE_ATTRIBUTES: Mapping[str, AttributeSpec] = _attributes(
    AttributeSpec("username", _S),
    AttributeSpec("email", _S),
    AttributeSpec("mobile_phone", _S),
    AttributeSpec("first_name", _S),
    AttributeSpec("last_name", _S),
    AttributeSpec("birth_date", _D),
    AttributeSpec("country", _S),
    AttributeSpec("language", _S),
    AttributeSpec("currency", _S),
    AttributeSpec("brand", _S),
    AttributeSpec("registration_date", _T),
    AttributeSpec("vip_level", _I, min_value=0, max_value=10),
    AttributeSpec("is_test_account", _B),
    AttributeSpec("kyc_status", _S, allowed=KYC_STATUSES),
    AttributeSpec("real_balance", _M),
    AttributeSpec("bonus_balance", _M),
    AttributeSpec("fpp_balance", _I),
    AttributeSpec("tags", AttributeType.STRING_LIST),
    AttributeSpec("lifetime_deposit_amount", _M),
    AttributeSpec("lifetime_withdrawal_amount", _M),
    AttributeSpec("lifetime_bonus_amount", _M),
    AttributeSpec("deposit_count", _I),
    AttributeSpec("withdrawal_count", _I),
    AttributeSpec("casino_lifetime_win", _M),
    AttributeSpec("sports_lifetime_win", _M),
    AttributeSpec("last_login_at", _T),
    AttributeSpec("last_deposit_at", _T),
    AttributeSpec("is_blocked", _B),
    AttributeSpec("block_reason", _S),
    AttributeSpec("self_excluded_until", _T),
    AttributeSpec("allow_email", _B),
    AttributeSpec("allow_sms", _B),
    AttributeSpec("allow_push", _B),
    AttributeSpec("allow_web_push", _B),
    AttributeSpec("allow_inbox", _B),
    AttributeSpec("allow_phone_call", _B),
    AttributeSpec("allow_post", _B),
)

# The subscription attributes and the channel each one sets.
SUBSCRIPTION_CHANNELS: Mapping[str, str] = MappingProxyType(
    {
        "allow_email": "email",
        "allow_sms": "sms",
        "allow_push": "mobile_push",
        "allow_web_push": "web_push",
        "allow_inbox": "inbox",
        "allow_phone_call": "phone",
        "allow_post": "post",
    }
)

# The identifiers an integration may map data to profiles with.
PROFILE_IDENTIFIERS = ("customer_id", "email", "username", "mobile_phone")


# --- events -------------------------------------------------------------------


@dataclass(frozen=True)
class EventType:
    type: str
    display_name: str
    fields: tuple[str, ...]

    @property
    def attribute_fields(self) -> tuple[str, ...]:
        """The fields that are also profile attributes: an event updates those."""
        return tuple(f for f in self.fields if f in PROFILE_ATTRIBUTES)


PAYMENT_STATUSES = ("pending", "approved", "declined", "cancelled", "rollback")

_PAYMENT = ("payment_id", "amount", "currency", "payment_method", "status")

EVENT_TYPES: Mapping[str, EventType] = MappingProxyType(
    {
        e.type: e
        for e in (
            EventType("bonus", "Bonus", ("bonus_id", "bonus_amount", "lifetime_bonus_amount", "currency")),
            EventType("customer_balance", "Customer Balance", ("real_balance", "bonus_balance", "currency")),
            EventType("customer_blocks", "Customer Blocks", ("is_blocked", "block_reason", "self_excluded_until")),
            EventType("customer_consent", "Customer Consent", tuple(SUBSCRIPTION_CHANNELS)),
            EventType(
                "customer_created",
                "Customer Created",
                ("registration_date", "country", "currency", "brand", "email"),
            ),
            EventType("customer_fpp", "Customer FPP", ("fpp_balance", "fpp_earned")),
            EventType("customer_tag", "Customer Tag", ("tags", "added", "removed")),
            EventType("customer_verified", "Customer Verified", ("kyc_status", "verified_at")),
            EventType(
                "game_activity", "Game Activity", ("casino_lifetime_win", "game_id", "win_amount", "currency")
            ),
            EventType(
                "payment_deposit",
                "Payment - Deposit",
                (*_PAYMENT, "lifetime_deposit_amount", "deposit_count"),
            ),
            EventType(
                "payment_withdrawal",
                "Payment - Withdrawal",
                (*_PAYMENT, "lifetime_withdrawal_amount", "withdrawal_count"),
            ),
            EventType(
                "sport_activity", "Sport Activity", ("sports_lifetime_win", "bet_id", "win_amount", "currency")
            ),
        )
    }
)


# Types of the event fields that are not profile attributes (those take the
# attribute's type). "Money is a decimal number" (GIG_STREAM.md, Events).
EVENT_FIELDS: Mapping[str, AttributeSpec] = _attributes(
    AttributeSpec("bonus_id", _S),
    AttributeSpec("bonus_amount", _M),
    AttributeSpec("fpp_earned", _I),
    AttributeSpec("added", AttributeType.STRING_LIST),
    AttributeSpec("removed", AttributeType.STRING_LIST),
    AttributeSpec("verified_at", _T),
    AttributeSpec("game_id", _S),
    AttributeSpec("bet_id", _S),
    AttributeSpec("win_amount", _M),
    AttributeSpec("payment_id", _S),
    AttributeSpec("amount", _M),
    AttributeSpec("payment_method", _S),
    AttributeSpec("status", _S, allowed=PAYMENT_STATUSES),
)


def field_spec(name: str) -> AttributeSpec | None:
    """The declared type of a `data` field, attribute or event field; None if unknown."""
    return PROFILE_ATTRIBUTES.get(name) or EVENT_FIELDS.get(name)


def event_display_name(event_type: str) -> str:
    """The display name of an event type; an unknown type is its own name."""
    known = EVENT_TYPES.get(event_type)
    return known.display_name if known else event_type
