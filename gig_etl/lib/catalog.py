"""The attribute catalog: every GiG attribute an integration's profiles carry,
and where each one's value is kept."""

from __future__ import annotations

from typing import Collection

import duckdb
import polars as pl

from gig_etl.contract import PROFILE_ATTRIBUTES
from gig_etl.lib.identifiers import ATTRIBUTE_PREFIX, EXTRA_ATTRIBUTES, column_for_attribute

ATTRIBUTE_CATALOG_SCHEMA = pl.Schema(
    {"integration": pl.String, "attribute": pl.String, "data_type": pl.String, "column_name": pl.String}
)

# How many `profiles` columns attributes outside the contract may add, across all
# integrations (the `profiles` table is shared): past it, new names go to the map.
DEFAULT_MAX_ATTRIBUTE_COLUMNS = 300


def known_attribute_catalog(integration: str) -> pl.DataFrame:
    """The catalog rows of every attribute the contract knows, as the product
    promises them on approval, before any data arrives."""
    return pl.DataFrame(
        {
            "integration": [integration] * len(PROFILE_ATTRIBUTES),
            "attribute": [spec.column for spec in PROFILE_ATTRIBUTES.values()],
            "data_type": [spec.type.duckdb_type for spec in PROFILE_ATTRIBUTES.values()],
            "column_name": [spec.column for spec in PROFILE_ATTRIBUTES.values()],
        },
        schema=ATTRIBUTE_CATALOG_SCHEMA,
    )


def place_new_attributes(names: Collection[str], existing_columns: Collection[str], room: int) -> dict[str, str]:
    """Where each newly seen GiG attribute name keeps its values: `gig_<name>` when
    the name may be a column (`column_for_attribute`), that column exists or there
    is `room` for one more, and no column differs from it only in case; else
    EXTRA_ATTRIBUTES. Names in sorted order take the room, so a rebuild places
    them alike."""
    existing = set(existing_columns)
    folded = {column.lower() for column in existing}
    placed = {}
    for name in sorted(names):
        column = column_for_attribute(name)
        if column is not None and column in existing:
            placed[name] = column
        elif column is not None and column not in folded and room > 0:
            placed[name] = column
            existing.add(column)
            folded.add(column)
            room -= 1
        else:
            placed[name] = EXTRA_ATTRIBUTES
    return placed


def dynamic_columns(columns: Collection[str]) -> int:
    """How many of the `profiles` gig_ columns are not the contract's."""
    known = {spec.column for spec in PROFILE_ATTRIBUTES.values()}
    return sum(column not in known for column in columns)


def attributes_crowded_out(db: duckdb.DuckDBPyConnection, integration: str) -> list[str]:
    """The integration's attributes kept in EXTRA_ATTRIBUTES although their names
    may be columns: what the column limit turned away."""
    rows = db.execute(
        "SELECT attribute FROM attribute_catalog WHERE integration = ? AND column_name = ? ORDER BY attribute",
        [integration, EXTRA_ATTRIBUTES],
    ).fetchall()
    return [a for (a,) in rows if column_for_attribute(a.removeprefix(ATTRIBUTE_PREFIX)) is not None]
