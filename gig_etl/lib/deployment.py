"""Where each piece of gig-etl's state lives, from the environment (no Dagster imports).

Embedded, the default: everything under `$GIG_ETL_HOME`. A team sets
`GIG_ETL_POSTGRES_URL` to keep the registry, the raw manifest, the lake's catalog,
the locks and Dagster's runs in one shared Postgres database, and
`GIG_ETL_OBJECT_STORE` to keep raw Parquet and the lake's files in S3. Secrets
are never settings: each names the variable that holds one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from gig_etl.lib.file_area import FileArea, ObjectStore
from gig_etl.lib.home import raw_root, resolve_home
from gig_etl.lib.raw_store import RawStore
from gig_etl.lib.registry import IntegrationRegistry, registry_path
from gig_etl.lib.state_db import POSTGRES_SCHEMA, ConfigurationError, PostgresSettings, StateDatabase
from gig_etl.lib.warehouse import Lake, embedded_lake

POSTGRES_URL_ENV = "GIG_ETL_POSTGRES_URL"  # postgresql://user@host:port/database
POSTGRES_PASSWORD_ENV = "GIG_ETL_POSTGRES_PASSWORD_ENV"  # the name of the variable holding its password
OBJECT_STORE_ENV = "GIG_ETL_OBJECT_STORE"  # s3://bucket/prefix
S3_ENDPOINT_ENV = "GIG_ETL_S3_ENDPOINT"  # http(s)://host:port; unset: AWS
S3_REGION_ENV = "GIG_ETL_S3_REGION"
S3_ACCESS_KEY_ENV = "GIG_ETL_S3_ACCESS_KEY_ENV"  # the name of the variable holding the key id
S3_SECRET_KEY_ENV = "GIG_ETL_S3_SECRET_KEY_ENV"  # the name of the variable holding the secret key
# How many runs drain one integration side by side: partition p is shard p mod N.
DRAIN_SHARDS_ENV = "GIG_ETL_DRAIN_SHARDS"
# An explicit lake, overriding the one the settings above imply.
LAKE_CATALOG_ENV = "GIG_ETL_LAKE_CATALOG"
LAKE_DATA_PATH_ENV = "GIG_ETL_LAKE_DATA_PATH"


@dataclass(frozen=True)
class Deployment:
    """The home (always local: Dagster's own files, the embedded defaults), and the
    shared servers, if any."""

    home: Path
    postgres: PostgresSettings | None = None
    object_store: ObjectStore | None = None
    lake_catalog: str | None = None
    lake_data_path: str | None = None
    drain_shards: int = 1

    def _shared(self, what: str) -> StateDatabase | None:
        """`what` in the shared Postgres database; None: SQLite files under the home."""
        return StateDatabase(what, postgres=self.postgres) if self.postgres else None

    def registry(self) -> IntegrationRegistry:
        return IntegrationRegistry(registry_path(self.home), state=self._shared("the integration registry"))

    def raw_store(self) -> RawStore:
        state = self._shared("the raw manifest")
        if self.object_store is None:
            return RawStore(raw_root(self.home), state=state)
        return RawStore(state=state, files=FileArea.on_s3(self.object_store, "raw"))

    def shared_locks(self) -> StateDatabase | None:
        """Where locks every machine sees are held (Postgres); None: file locks under the home."""
        return self._shared("the locks")

    def lake(self) -> Lake:
        embedded = embedded_lake(self.home)
        catalog = self.lake_catalog
        if catalog is None and self.postgres is not None:
            catalog = f"postgres:{self.postgres.libpq()}"
        data_path = self.lake_data_path
        if data_path is None and self.object_store is not None:
            data_path = self.object_store.url("lake")
        if catalog is None and data_path is None:
            return embedded
        return Lake(
            catalog=catalog or embedded.catalog, data_path=data_path or embedded.data_path,
            postgres=self.postgres if self.lake_catalog is None else None, object_store=self.object_store,
        )

    def describe(self) -> list[str]:
        """Where everything lands, a line each."""
        raw = self.object_store.url("raw") if self.object_store else str(raw_root(self.home))
        state = f"{self.postgres.describe()} (schema {POSTGRES_SCHEMA})" if self.postgres else f"SQLite files under {self.home}"
        runs = self.postgres.describe() if self.postgres else f"SQLite under {self.home / 'dagster'}"
        lake = self.lake()
        return [
            f"registry and raw manifest: {state}",
            f"raw Parquet:               {raw}",
            f"lake catalog:              {lake.catalog_description()}",
            f"lake data:                 {lake.data_path}",
            f"Dagster runs and events:   {runs}",
        ]


def current_deployment(home: str | os.PathLike[str] | None = None, environ: Mapping[str, str] = os.environ) -> Deployment:
    """The deployment the environment describes; ConfigurationError names a wrong setting."""
    postgres = None
    if environ.get(POSTGRES_URL_ENV):
        postgres = PostgresSettings.from_url(environ[POSTGRES_URL_ENV], environ.get(POSTGRES_PASSWORD_ENV), POSTGRES_URL_ENV)
        postgres.password(environ)  # a named variable that is not set is a mistake now, not mid-run
    elif environ.get(POSTGRES_PASSWORD_ENV):
        raise ConfigurationError(f"{POSTGRES_PASSWORD_ENV} is set but {POSTGRES_URL_ENV} is not")
    object_store = None
    if environ.get(OBJECT_STORE_ENV):
        object_store = ObjectStore.from_url(
            environ[OBJECT_STORE_ENV], OBJECT_STORE_ENV, endpoint=environ.get(S3_ENDPOINT_ENV),
            region=environ.get(S3_REGION_ENV), access_key_env=environ.get(S3_ACCESS_KEY_ENV),
            secret_key_env=environ.get(S3_SECRET_KEY_ENV),
        )
        object_store.keys(environ)
    else:
        for setting in (S3_ENDPOINT_ENV, S3_ACCESS_KEY_ENV, S3_SECRET_KEY_ENV):
            if environ.get(setting):
                raise ConfigurationError(f"{setting} is set but {OBJECT_STORE_ENV} is not")
    shards = environ.get(DRAIN_SHARDS_ENV) or "1"
    if not shards.isdigit() or not 1 <= int(shards) <= 64:
        raise ConfigurationError(f"{DRAIN_SHARDS_ENV}={shards!r} is not a number of shards from 1 to 64")
    return Deployment(
        home=resolve_home(home), postgres=postgres, object_store=object_store, drain_shards=int(shards),
        lake_catalog=environ.get(LAKE_CATALOG_ENV) or None, lake_data_path=environ.get(LAKE_DATA_PATH_ENV) or None,
    )
