"""SQL identifiers: the one place where a name becomes SQL text.

Every name GiG sends is untrusted. Values always travel as parameters or
registered tables; a name reaches SQL only as an identifier made here, and
only a name that passes the rule below becomes one.
"""

from __future__ import annotations

import re

# Lower-case ASCII letters, digits and '_', starting with a letter or '_', at most
# 63 characters: never needs escaping, is no reserved word once quoted, and two
# such names clash case-insensitively only if they are equal.
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")

# A GiG attribute name that gets a column of its own, `gig_<name>`: the same rule,
# leaving room for the prefix. Any other name keeps its value in EXTRA_ATTRIBUTES.
_ATTRIBUTE_NAME = re.compile(r"[a-z][a-z0-9_]{0,58}")

ATTRIBUTE_PREFIX = "gig_"
# The `profiles` column that holds, per profile, the attributes with no column of
# their own: a map from the GiG name, exactly as sent, to the value as text.
EXTRA_ATTRIBUTES = "extra_attributes"


class UnsafeIdentifier(ValueError):
    """A name that must never reach SQL text."""


def is_safe_identifier(name: str) -> bool:
    return _IDENTIFIER.fullmatch(name) is not None


def quote_identifier(name: str) -> str:
    """`name` as a quoted SQL identifier; raises UnsafeIdentifier for any name
    outside the rule, so nothing else can be spliced in."""
    if not is_safe_identifier(name):
        raise UnsafeIdentifier(f"not a safe SQL identifier: {name[:80]!r}")
    return f'"{name}"'


def column_for_attribute(name: str) -> str | None:
    """The `profiles` column of a GiG attribute, `gig_<name>`, when the name may be
    one; None when its value belongs in EXTRA_ATTRIBUTES instead."""
    if _ATTRIBUTE_NAME.fullmatch(name) is None:
        return None
    return ATTRIBUTE_PREFIX + name


def string_literal(text: str) -> str:
    """`text` as an SQL string literal, for the few statements that take no
    parameters (ATTACH, LOAD, COMMENT ON) and only ever configuration or text
    gig-etl writes itself, never a message's content."""
    if "\x00" in text:
        raise UnsafeIdentifier("a NUL cannot be in an SQL string")
    return "'" + text.replace("'", "''") + "'"
