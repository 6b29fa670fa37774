"""A GiG traffic simulator: realistic player lifecycles on a tenant's two topics.

`generate_traffic` is pure: the same arguments give the same messages, byte for
byte. `produce_traffic` sends them to a broker. With `chaos` > 0, each message
is, at that rate, given one of the misbehaviours that GIG_STREAM.md lists under
"What actually arrives" (see `CHAOS_KINDS`).
"""

from __future__ import annotations

import json
import random
import threading
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Callable, Iterable, Iterator

from confluent_kafka import Producer

from gig_etl.contract import (
    PROFILE_ATTRIBUTES,
    PROFILE_MESSAGE_TYPE,
    SCHEMA_VERSION,
    SUBSCRIPTION_CHANNELS,
    TopicKind,
    tenant_topics,
)
from gig_etl.lib.kafka import KafkaConnection, KafkaUnavailable, ensure_topics
from gig_etl.progress import ProgressBar

DEFAULT_DAYS = 90  # simulated lives begin in the days before `now`
DEFAULT_PARTITIONS = 4
FIRST_CUSTOMER_ID = 100_000

# Misbehaviours of the real stream. The duplicate, late and extra-message kinds
# add or move messages; wrong_type, no_zone and wrong_tenant spoil the one they hit.
CHAOS_KINDS = (
    "duplicate",  # the same message_id again, later, on the same partition
    "duplicate_other_partition",  # ... or on another partition
    "late",  # delivered after newer changes of the same customer
    "unknown_attribute",  # a profile change with an attribute not in the contract
    "unknown_event_type",  # an event of a type not in the contract
    "wrong_type",  # a value of the wrong type, e.g. "12,50" for a number
    "no_zone",  # occurred_at without a zone offset
    "wrong_tenant",  # tenant_id of another tenant
    "not_json",  # bytes that are not JSON at all
)

# (country, language, currency, phone prefix)
_MARKETS = (
    ("MT", "en", "EUR", "+356"),
    ("SE", "sv", "SEK", "+46"),
    ("NO", "no", "NOK", "+47"),
    ("FI", "fi", "EUR", "+358"),
    ("DE", "de", "EUR", "+49"),
    ("GB", "en", "GBP", "+44"),
    ("CA", "en", "CAD", "+1"),
    ("BR", "pt", "BRL", "+55"),
    ("IL", "he", "ILS", "+972"),
    ("AE", "ar", "AED", "+971"),
)
# Any Unicode arrives: accents, Cyrillic, right-to-left scripts, CJK and emoji.
_FIRST_NAMES = (
    "Anna", "Lars", "Maria", "Johan", "Zoë", "José", "Ингрид", "Олег", "محمد",
    "فاطمة", "שרה", "דוד", "李娜", "Søren", "Aino", "Émile", "Lucky 🍀",
)
_LAST_NAMES = (
    "Borg", "Andersson", "Virtanen", "Müller", "Smith", "Silva", "Иванова",
    "العلي", "כהן", "王", "Ó Briain", "Camilleri", "Nordström",
)
_BRANDS = ("acme", "acme-sport", "luckyspin")
_PAYMENT_METHODS = ("card", "trustly", "skrill", "neteller", "bank_transfer", "apple_pay")
_GAMES = ("starburst", "book-of-dead", "lightning-roulette", "gonzos-quest", "blackjack-vip")
_TAGS = ("vip", "slots", "sports", "high_roller", "bonus_hunter", "churn_risk", "live_casino")
_BLOCK_REASONS = ("fraud", "chargeback", "responsible_gaming", "duplicate_account")
_CONSENT_RATES = {
    "allow_email": 0.7, "allow_sms": 0.5, "allow_push": 0.4, "allow_web_push": 0.3,
    "allow_inbox": 0.8, "allow_phone_call": 0.15, "allow_post": 0.1,
}
_UNKNOWN_ATTRIBUTES = (("loyalty_tier", ("bronze", "silver", "gold")), ("favourite_game", _GAMES))
_UNKNOWN_EVENT_TYPES = ("mission_completed", "tournament_joined")


@dataclass(frozen=True)
class SimulatedMessage:
    kind: TopicKind
    key: bytes
    value: bytes | None  # None: a tombstone (the customer was erased)
    # Added to the key's partition; non-zero sends a re-sent message elsewhere.
    partition_shift: int = 0
    chaos: str | None = None
    event_type: str | None = None  # for events, the envelope's type

    def partition(self, partitions: int) -> int:
        """The partition this message goes to: librdkafka's consistent hash of the key."""
        return (zlib.crc32(self.key) + self.partition_shift) % partitions


@dataclass
class TrafficSummary:
    customers: int = 0
    messages: Counter[str] = field(default_factory=Counter)  # per topic kind
    event_types: Counter[str] = field(default_factory=Counter)
    profile_changes: int = 0
    tombstones: int = 0
    chaos: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.messages.values())

    def record(self, message: SimulatedMessage) -> None:
        self.messages[message.kind.value] += 1
        if message.chaos:
            self.chaos[message.chaos] += 1
        if message.value is None:
            self.tombstones += 1
        elif message.event_type:
            self.event_types[message.event_type] += 1
        elif message.kind is TopicKind.PROFILES and message.chaos != "not_json":
            self.profile_changes += 1

    def report(self) -> str:
        lines = [
            f"customers: {self.customers:,}",
            f"messages: {self.total:,} "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(self.messages.items())),
            f"profile changes: {self.profile_changes:,}, tombstones (erasures): {self.tombstones:,}",
            "events: " + ", ".join(f"{k} {v:,}" for k, v in sorted(self.event_types.items())),
        ]
        if self.chaos:
            lines.append("chaos: " + ", ".join(f"{k} {v:,}" for k, v in sorted(self.chaos.items())))
        return "\n".join(lines)


def format_timestamp(moment: datetime, offset_hours: int = 0) -> str:
    """RFC 3339 with milliseconds, in UTC ('Z') or at a fixed offset."""
    if offset_hours:
        local = moment.astimezone(timezone(timedelta(hours=offset_hours)))
        return local.isoformat(timespec="milliseconds")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def envelope(
    tenant: str, customer_id: str, type_: str, occurred_at: datetime | str, data: dict, message_id: str | None = None
) -> dict:
    """A GiG envelope, for hand-written scenarios; `occurred_at` as given if text."""
    return {
        "schema_version": SCHEMA_VERSION,
        "message_id": message_id or str(uuid.uuid4()),
        "tenant_id": tenant,
        "customer_id": customer_id,
        "type": type_,
        "occurred_at": occurred_at if isinstance(occurred_at, str) else format_timestamp(occurred_at),
        "data": data,
    }


def message(
    kind: TopicKind, key: str | bytes, value: dict | bytes | None, partition_shift: int = 0
) -> SimulatedMessage:
    """One message to produce: an envelope (encoded as GiG does), raw bytes, or a tombstone."""
    key_bytes = key.encode() if isinstance(key, str) else key
    if isinstance(value, dict):
        encoded = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
        event_type = value.get("type") if kind is TopicKind.EVENTS else None
        return SimulatedMessage(kind, key_bytes, encoded, partition_shift, event_type=event_type)
    return SimulatedMessage(kind, key_bytes, value, partition_shift)


@dataclass
class _Change:
    """One message of a customer's life before encoding: an envelope or a tombstone."""

    kind: TopicKind
    envelope: dict | None


class _CustomerLife:
    """Builds one customer's messages in time order, keeping the profile consistent
    with the events: every event field that is a profile attribute is also sent as
    a profile change at the same moment, as GiG does."""

    def __init__(self, tenant: str, customer_id: str, rng: random.Random, now: datetime, end: datetime) -> None:
        self.tenant = tenant
        self.customer_id = customer_id
        self.rng = rng
        self.now = now
        self.end = end  # the time of simulation: a life is cut there, nothing happens later
        self.offset_hours = rng.choice((0, 0, 0, 0, 1))  # some systems send local time
        self.state: dict[str, object] = {}
        self.changes: list[_Change] = []

    # -- building blocks --------------------------------------------------------

    def wait(self, min_s: float, max_s: float) -> None:
        self.now += timedelta(seconds=self.rng.uniform(min_s, max_s))

    def _append(self, kind: TopicKind, envelope: dict | None) -> None:
        if self.now <= self.end:
            self.changes.append(_Change(kind, envelope))

    def _envelope(self, type_: str, data: dict) -> dict:
        return {
            "schema_version": SCHEMA_VERSION,
            "message_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "tenant_id": self.tenant,
            "customer_id": self.customer_id,
            "type": type_,
            "occurred_at": format_timestamp(self.now, self.offset_hours),
            "data": data,
        }

    def profile(self, **attributes: object) -> None:
        self.state.update(attributes)
        self._append(TopicKind.PROFILES, self._envelope(PROFILE_MESSAGE_TYPE, attributes))

    def event(self, type_: str, data: dict, **also_changed: object) -> None:
        """An event, and the profile change it implies (its attribute fields plus
        `also_changed`, attributes that moved with it but are not event fields)."""
        self._append(TopicKind.EVENTS, self._envelope(type_, data))
        implied = {k: v for k, v in data.items() if k in PROFILE_ATTRIBUTES} | also_changed
        if implied:
            self.profile(**implied)

    def money(self, name: str) -> float:
        return float(self.state.get(name, 0.0))  # type: ignore[arg-type]

    def count(self, name: str) -> int:
        return int(self.state.get(name, 0))  # type: ignore[call-overload]

    def balance_event(self) -> None:
        self.event(
            "customer_balance",
            {
                "real_balance": round(self.money("real_balance"), 2),
                "bonus_balance": round(self.money("bonus_balance"), 2),
                "currency": self.state["currency"],
            },
        )

    # -- the lifecycle ----------------------------------------------------------

    def register(self) -> None:
        rng = self.rng
        country, language, currency, prefix = rng.choice(_MARKETS)
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        username = f"player_{self.customer_id}" if rng.random() < 0.5 else f"{first.split()[0].lower()}_{self.customer_id}"
        registered = format_timestamp(self.now, self.offset_hours)
        email = f"player{self.customer_id}@example.com"
        brand = rng.choice(_BRANDS)
        birth = date(1950, 1, 1) + timedelta(days=rng.randrange(0, 365 * 55))
        self.profile(
            username=username,
            email=email,
            mobile_phone=prefix + "".join(str(rng.randrange(10)) for _ in range(8)),
            first_name=first,
            last_name=last,
            birth_date=birth.isoformat(),
            country=country,
            language=language,
            currency=currency,
            brand=brand,
            registration_date=registered,
            vip_level=0,
            is_test_account=rng.random() < 0.02,
            kyc_status="unverified",
            real_balance=0.0,
            bonus_balance=0.0,
            fpp_balance=0,
            tags=[],
            lifetime_deposit_amount=0.0,
            lifetime_withdrawal_amount=0.0,
            lifetime_bonus_amount=0.0,
            deposit_count=0,
            withdrawal_count=0,
            casino_lifetime_win=0.0,
            sports_lifetime_win=0.0,
            is_blocked=False,
            block_reason=None,
            self_excluded_until=None,
        )
        created = {"registration_date": registered, "country": country, "currency": currency, "brand": brand}
        if rng.random() < 0.8:  # email is optional on this event
            created["email"] = email
        # The registration profile change above already carries these fields.
        self._append(TopicKind.EVENTS, self._envelope("customer_created", created))
        self.wait(1, 60)
        self.event("customer_consent", {a: rng.random() < p for a, p in _CONSENT_RATES.items()})

    def session(self, number: int) -> None:
        rng = self.rng
        self.wait(3600, 86400 * 3)
        self.profile(last_login_at=format_timestamp(self.now, self.offset_hours))
        if number == 0 or rng.random() < 0.45:
            self.deposit(number)
        if self.money("real_balance") > 0 and rng.random() < 0.7:
            self.play(casino=rng.random() < 0.65)
        if rng.random() < 0.2:
            self.bonus(number)
        if rng.random() < 0.4:
            earned = rng.randrange(5, 200)
            self.wait(5, 600)
            self.event("customer_fpp", {"fpp_balance": self.count("fpp_balance") + earned, "fpp_earned": earned})
        if rng.random() < 0.1:
            self.retag()
        if rng.random() < 0.05:
            attribute = rng.choice(tuple(SUBSCRIPTION_CHANNELS))
            self.wait(5, 600)
            self.event("customer_consent", {attribute: not self.state.get(attribute, False)})
        if rng.random() < 0.05:
            self.wait(5, 600)
            self.profile(vip_level=min(10, self.count("vip_level") + 1))
        if self.money("real_balance") > 20 and rng.random() < 0.3:
            self.withdraw(number)

    def deposit(self, number: int) -> None:
        rng = self.rng
        payment = {
            "payment_id": f"dep-{self.customer_id}-{number}",
            "amount": round(rng.choice((10, 20, 25, 50, 100, 200, 500)) * rng.uniform(0.8, 1.2), 2),
            "currency": self.state["currency"],
            "payment_method": rng.choice(_PAYMENT_METHODS),
        }
        self.wait(5, 600)
        self._deposit_status(payment, "pending")
        self.wait(5, 300)
        outcome = rng.choices(("approved", "declined", "cancelled"), (0.85, 0.1, 0.05))[0]
        if outcome != "approved":
            self._deposit_status(payment, outcome)
            return
        self.state["lifetime_deposit_amount"] = round(self.money("lifetime_deposit_amount") + payment["amount"], 2)
        self.state["deposit_count"] = self.count("deposit_count") + 1
        self.state["real_balance"] = round(self.money("real_balance") + payment["amount"], 2)
        self._deposit_status(payment, "approved", last_deposit_at=format_timestamp(self.now, self.offset_hours))
        self.balance_event()
        if self.state.get("kyc_status") == "unverified":
            self.verify()
        if rng.random() < 0.02:  # a chargeback undoes the approved deposit
            self.wait(3600, 86400)
            self.state["lifetime_deposit_amount"] = round(self.money("lifetime_deposit_amount") - payment["amount"], 2)
            self.state["deposit_count"] = self.count("deposit_count") - 1
            self.state["real_balance"] = round(self.money("real_balance") - payment["amount"], 2)
            self._deposit_status(payment, "rollback")
            self.balance_event()

    def _deposit_status(self, payment: dict, status: str, **also_changed: object) -> None:
        self.event(
            "payment_deposit",
            payment
            | {
                "status": status,
                "lifetime_deposit_amount": round(self.money("lifetime_deposit_amount"), 2),
                "deposit_count": self.count("deposit_count"),
            },
            **also_changed,
        )

    def withdraw(self, number: int) -> None:
        rng = self.rng
        amount = round(rng.uniform(10, self.money("real_balance")), 2)
        payment = {
            "payment_id": f"wd-{self.customer_id}-{number}",
            "amount": amount,
            "currency": self.state["currency"],
            "payment_method": rng.choice(_PAYMENT_METHODS),
        }
        for status in ("pending", rng.choices(("approved", "declined"), (0.9, 0.1))[0]):
            self.wait(60, 7200)
            if status == "approved":
                self.state["lifetime_withdrawal_amount"] = round(self.money("lifetime_withdrawal_amount") + amount, 2)
                self.state["withdrawal_count"] = self.count("withdrawal_count") + 1
                self.state["real_balance"] = round(self.money("real_balance") - amount, 2)
            self.event(
                "payment_withdrawal",
                payment
                | {
                    "status": status,
                    "lifetime_withdrawal_amount": round(self.money("lifetime_withdrawal_amount"), 2),
                    "withdrawal_count": self.count("withdrawal_count"),
                },
            )
        if self.state["withdrawal_count"]:
            self.balance_event()

    def play(self, casino: bool) -> None:
        rng = self.rng
        for _ in range(rng.randrange(1, 4)):
            balance = self.money("real_balance")
            if balance <= 0:
                break
            self.wait(30, 1800)
            win = round(rng.uniform(-min(balance, 50.0), 45.0), 2)
            self.state["real_balance"] = round(balance + win, 2)
            if casino:
                lifetime = round(self.money("casino_lifetime_win") + win, 2)
                data = {"casino_lifetime_win": lifetime, "game_id": rng.choice(_GAMES)}
            else:
                lifetime = round(self.money("sports_lifetime_win") + win, 2)
                data = {"sports_lifetime_win": lifetime, "bet_id": f"bet-{rng.getrandbits(40):x}"}
            data |= {"win_amount": win, "currency": self.state["currency"]}
            self.event("game_activity" if casino else "sport_activity", data)
            self.balance_event()

    def bonus(self, number: int) -> None:
        amount = round(self.rng.uniform(5, 50), 2)
        self.wait(5, 3600)
        self.state["bonus_balance"] = round(self.money("bonus_balance") + amount, 2)
        self.event(
            "bonus",
            {
                "bonus_id": f"bonus-{self.customer_id}-{number}",
                "bonus_amount": amount,
                "lifetime_bonus_amount": round(self.money("lifetime_bonus_amount") + amount, 2),
                "currency": self.state["currency"],
            },
        )
        self.balance_event()

    def verify(self) -> None:
        self.wait(60, 3600)
        self.event("customer_verified", {"kyc_status": "pending", "verified_at": None})
        self.wait(3600, 86400 * 2)
        status = "verified" if self.rng.random() < 0.9 else "rejected"
        verified_at = format_timestamp(self.now, self.offset_hours) if status == "verified" else None
        self.event("customer_verified", {"kyc_status": status, "verified_at": verified_at})

    def retag(self) -> None:
        current = list(self.state.get("tags") or [])
        added = [t for t in self.rng.sample(_TAGS, 2) if t not in current][:1]
        removed = current[:1] if current and self.rng.random() < 0.4 else []
        tags = [t for t in current if t not in removed] + added
        self.wait(5, 3600)
        self.event("customer_tag", {"tags": tags, "added": added, "removed": removed})

    def block_or_exclude(self) -> None:
        self.wait(3600, 86400 * 5)
        if self.rng.random() < 0.5:
            data = {"is_blocked": True, "block_reason": self.rng.choice(_BLOCK_REASONS), "self_excluded_until": None}
        else:
            until = format_timestamp(self.now + timedelta(days=self.rng.choice((30, 180, 365))))
            data = {"is_blocked": False, "block_reason": None, "self_excluded_until": until}
        self.event("customer_blocks", data)

    def erase(self) -> None:
        self._append(TopicKind.PROFILES, None)


def _customer_changes(tenant: str, customer_id: str, rng: random.Random, end: datetime, days: int) -> list[_Change]:
    """One customer's life: it begins in the `days` before `end` and is cut at `end`."""
    begins = end - timedelta(seconds=rng.uniform(0, days * 86400))
    life = _CustomerLife(tenant, customer_id, rng, begins, end)
    life.register()
    for number in range(rng.choice((1, 1, 2, 3, 4, 5, 6, 8, 10, 14))):
        life.session(number)
    if rng.random() < 0.06:
        life.block_or_exclude()
    if rng.random() < 0.01:
        life.erase()
    return life.changes


def _encode(change: _Change, key: bytes) -> SimulatedMessage:
    if change.envelope is None:
        return SimulatedMessage(change.kind, key, None)
    value = json.dumps(change.envelope, ensure_ascii=False, separators=(",", ":")).encode()
    event_type = change.envelope["type"] if change.kind is TopicKind.EVENTS else None
    return SimulatedMessage(change.kind, key, value, event_type=event_type)


def _spoil(envelope: dict, chaos: str, rng: random.Random) -> dict | None:
    """A spoiled copy of `envelope` for the in-place chaos kinds, or None if it has
    nothing that kind can spoil."""
    spoiled = json.loads(json.dumps(envelope))
    if chaos == "no_zone":
        moment = datetime.fromisoformat(envelope["occurred_at"])
        spoiled["occurred_at"] = moment.replace(tzinfo=None).isoformat(timespec="milliseconds")
    elif chaos == "wrong_tenant":
        spoiled["tenant_id"] = f"{envelope['tenant_id']}-other"
    elif chaos == "wrong_type":
        data = spoiled["data"]
        numbers = [k for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        flags = [k for k, v in data.items() if isinstance(v, bool)]
        if numbers:
            name = rng.choice(sorted(numbers))
            data[name] = f"{data[name]:.2f}".replace(".", ",")  # "12,50": a European decimal
        elif flags:
            data[rng.choice(sorted(flags))] = "yes"
        else:
            return None
    return spoiled


def _extra_message(chaos: str, template: dict, rng: random.Random, key: bytes) -> SimulatedMessage:
    """A new message of the kinds that add one: unknown attribute or type, not JSON."""
    envelope = dict(template, message_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)))
    if chaos == "unknown_attribute":
        name, values = rng.choice(_UNKNOWN_ATTRIBUTES)
        envelope |= {"type": PROFILE_MESSAGE_TYPE, "data": {name: rng.choice(values)}}
        kind = TopicKind.PROFILES
    elif chaos == "unknown_event_type":
        event_type = rng.choice(_UNKNOWN_EVENT_TYPES)
        envelope |= {"type": event_type, "data": {"reference": f"{event_type}-{rng.getrandbits(32):x}", "points": rng.randrange(1, 100)}}
        kind = TopicKind.EVENTS
        value = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
        return SimulatedMessage(kind, key, value, chaos=chaos, event_type=event_type)
    else:  # not_json: a truncated payload, half of them with a byte that is not UTF-8
        kind = rng.choice((TopicKind.PROFILES, TopicKind.EVENTS))
        raw = json.dumps(envelope, separators=(",", ":")).encode()
        garbage = raw[: rng.randrange(5, max(6, len(raw) // 2))]
        return SimulatedMessage(kind, key, b"\xff" + garbage if rng.random() < 0.5 else garbage, chaos=chaos)
    value = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
    return SimulatedMessage(kind, key, value, chaos=chaos)


def _first_newer(changes: list[_Change], position: int) -> int | None:
    """The position of the first later change with a newer occurred_at. One customer's
    timestamps share one offset, so their strings order as the moments do."""
    moment = changes[position].envelope["occurred_at"]
    for later in range(position + 1, len(changes)):
        envelope = changes[later].envelope
        if envelope is not None and envelope["occurred_at"] > moment:
            return later
    return None


def _with_chaos(
    messages: list[SimulatedMessage], changes: list[_Change], rng: random.Random, rate: float
) -> tuple[list[SimulatedMessage], list[SimulatedMessage]]:
    """Applies chaos to one customer's messages. Returns the messages to send now,
    in order, and the re-sent duplicates to send later (so they arrive 'hours apart')."""
    out: list[SimulatedMessage] = []
    later: list[SimulatedMessage] = []
    held: list[tuple[int, SimulatedMessage]] = []  # late messages: (position they wait for, message)

    def send(position: int, message: SimulatedMessage) -> None:
        """Sends a message, then the late ones that waited for it."""
        out.append(message)
        released = [m for waits_for, m in held if waits_for == position]
        held[:] = [(w, m) for w, m in held if w != position]
        for late_message in released:
            out.append(late_message)

    for position, (message, change) in enumerate(zip(messages, changes)):
        if change.envelope is None or rng.random() >= rate:
            send(position, message)
            continue
        chaos = rng.choice(CHAOS_KINDS)
        if chaos in ("duplicate", "duplicate_other_partition"):
            send(position, message)
            shift = 1 if chaos == "duplicate_other_partition" else 0
            later.append(SimulatedMessage(message.kind, message.key, message.value, shift, chaos, message.event_type))
        elif chaos == "late":
            newer = _first_newer(changes, position)
            if newer is None:  # nothing newer follows: it cannot be late
                send(position, message)
            else:  # held back until a newer change, or one a little after it, has been sent
                waits_for = min(len(messages) - 1, newer + rng.randrange(0, 3))
                held.append((waits_for, SimulatedMessage(message.kind, message.key, message.value, 0, chaos, message.event_type)))
        elif chaos in ("unknown_attribute", "unknown_event_type", "not_json"):
            send(position, message)
            out.append(_extra_message(chaos, change.envelope, rng, message.key))
        else:
            spoiled = _spoil(change.envelope, chaos, rng)
            if spoiled is None:
                send(position, message)
            else:
                value = json.dumps(spoiled, ensure_ascii=False, separators=(",", ":")).encode()
                send(position, SimulatedMessage(message.kind, message.key, value, 0, chaos, message.event_type))
    out.extend(m for _, m in held)  # waited for a message that was itself held: send last
    return out, later


def generate_traffic(
    tenant: str,
    customers: int,
    seed: int = 0,
    chaos: float = 0.0,
    now: datetime | None = None,
    days: int = DEFAULT_DAYS,
    first_customer_id: int = FIRST_CUSTOMER_ID,
) -> Iterator[SimulatedMessage]:
    """Every message of `customers` simulated lifecycles over the `days` before
    `now` (the time of simulation unless given), customer by customer, each
    customer's messages in time order (chaos aside). Deterministic for a given
    `now`; nothing happens after it but a self-exclusion's end."""
    if not 0.0 <= chaos <= 1.0:
        raise ValueError(f"chaos is a rate between 0 and 1, not {chaos}")
    end = now or datetime.now(UTC)
    pending_duplicates: list[SimulatedMessage] = []
    for index in range(customers):
        customer_id = str(first_customer_id + index)
        rng = random.Random(f"{seed}:{tenant}:{customer_id}")
        changes = _customer_changes(tenant, customer_id, rng, end, days)
        key = customer_id.encode()
        messages = [_encode(change, key) for change in changes]
        if chaos:
            messages, duplicates = _with_chaos(messages, changes, rng, chaos)
            # Re-sent copies go out a few customers later, as a retry hours later would.
            yield from pending_duplicates
            pending_duplicates = duplicates
        yield from messages
    yield from pending_duplicates


def produce_traffic(
    connection: KafkaConnection,
    tenant: str,
    messages: Iterable[SimulatedMessage],
    partitions: int = DEFAULT_PARTITIONS,
    progress: Callable[[TrafficSummary], None] | None = None,
    progress_every: int = 100_000,
) -> TrafficSummary:
    """Creates the tenant's topics if missing and produces `messages` to them."""
    topics = tenant_topics(tenant)
    ensure_topics(connection, list(topics.values()), partitions)
    producer = Producer(
        connection.client_config()
        | {"linger.ms": 50, "batch.size": 1_000_000, "compression.type": "lz4", "message.max.bytes": 2_000_000}
    )
    partition_counts = {
        kind: len(producer.list_topics(topic, timeout=15).topics[topic].partitions) for kind, topic in topics.items()
    }
    failures: list[str] = []

    def delivered(err, _msg) -> None:
        if err is not None:
            failures.append(err.str())

    summary = TrafficSummary()
    customers_seen: set[bytes] = set()
    for message in messages:
        customers_seen.add(message.key)
        while True:
            try:
                producer.produce(
                    topics[message.kind],
                    key=message.key,
                    value=message.value,
                    partition=message.partition(partition_counts[message.kind]),
                    on_delivery=delivered,
                )
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.1)
        summary.record(message)
        if summary.total % 10_000 == 0:
            producer.poll(0)
        if progress and summary.total % progress_every == 0:
            summary.customers = len(customers_seen)
            progress(summary)
    remaining = producer.flush(60)
    summary.customers = len(customers_seen)
    if remaining or failures:
        detail = failures[0] if failures else f"{remaining} messages still queued after 60 s"
        raise KafkaUnavailable(
            f"producing to {connection.bootstrap_servers} failed for {len(failures) or remaining} messages: {detail}"
        )
    return summary


def trickle(
    connection: KafkaConnection,
    tenant: str,
    stop: threading.Event,
    customers_per_tick: int = 5,
    interval_s: float = 15.0,
    chaos: float = 0.01,
    first_customer_id: int = 5_000_000,
) -> int:
    """Keeps producing a little traffic of new customers, living now, until `stop`
    is set (the live demo of `make ui`); returns how many messages it produced."""
    produced, tick = 0, 0
    while not stop.wait(interval_s if tick else 0):
        messages = generate_traffic(
            tenant, customers_per_tick, seed=tick, chaos=chaos, days=1,
            first_customer_id=first_customer_id + tick * customers_per_tick,
        )
        produced += produce_traffic(connection, tenant, messages).total
        tick += 1
    return produced


def produce_with_progress(
    connection: KafkaConnection, tenant: str, messages: Iterable[SimulatedMessage], customers: int,
    partitions: int = DEFAULT_PARTITIONS,
) -> TrafficSummary:
    """`produce_traffic` with a progress bar over the customers, on a terminal."""
    with ProgressBar(f"producing gig.{tenant}.*", customers) as bar:
        summary = produce_traffic(
            connection, tenant, messages, partitions, progress_every=5_000,
            progress=lambda summary: bar.update(summary.customers, f"{summary.total:,} messages"),
        )
        bar.update(bar.total, f"{summary.total:,} messages")
    return summary

