"""The attribute catalog: every GiG attribute an integration's profiles carry."""

from __future__ import annotations

import polars as pl

from gig_etl.contract import PROFILE_ATTRIBUTES

ATTRIBUTE_CATALOG_SCHEMA = pl.Schema({"integration": pl.String, "attribute": pl.String, "data_type": pl.String})


def known_attribute_catalog(integration: str) -> pl.DataFrame:
    """The catalog rows of every attribute the contract knows, as the product
    promises them on approval, before any data arrives."""
    return pl.DataFrame(
        {
            "integration": [integration] * len(PROFILE_ATTRIBUTES),
            "attribute": [spec.column for spec in PROFILE_ATTRIBUTES.values()],
            "data_type": [spec.type.duckdb_type for spec in PROFILE_ATTRIBUTES.values()],
        },
        schema=ATTRIBUTE_CATALOG_SCHEMA,
    )
