"""Where files go: a local folder, or a prefix of an S3 bucket (no Dagster imports).

Both are reached through pyarrow's filesystems, so the code that reads and writes
raw batches is the same for each. What differs is how a file is published whole:
a local file is written under a temporary name, synced and renamed; an S3 object
appears whole or not at all when its upload completes (S3 has no rename).
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs

from gig_etl.lib.state_db import ConfigurationError

PARQUET_ROW_GROUP_SIZE = 128 * 1024
PARQUET_COMPRESSION = "zstd"

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class ObjectStoreUnavailable(RuntimeError):
    """The S3 server cannot be reached or refused a request; one line."""


@dataclass(frozen=True)
class ObjectStore:
    """An S3 bucket and prefix, its endpoint, and the *names* of the variables
    holding its keys (never the keys)."""

    bucket: str
    prefix: str
    endpoint: str | None = None  # None: AWS itself
    region: str = "us-east-1"
    access_key_env: str = "AWS_ACCESS_KEY_ID"
    secret_key_env: str = "AWS_SECRET_ACCESS_KEY"

    @classmethod
    def from_url(cls, url: str, setting: str, **settings: str | None) -> ObjectStore:
        if not url.startswith("s3://"):
            raise ConfigurationError(f"{setting}={url!r} is not an s3://bucket/prefix URL")
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not _BUCKET.fullmatch(bucket):
            raise ConfigurationError(f"{setting}={url!r}: {bucket!r} is not an S3 bucket name")
        endpoint = settings.get("endpoint")
        if endpoint is not None and not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?/?", endpoint):
            raise ConfigurationError(f"GIG_ETL_S3_ENDPOINT={endpoint!r} is not a URL such as http://host:8333")
        return cls(bucket=bucket, prefix=prefix.strip("/"), **{k: v for k, v in settings.items() if v})

    def url(self, *parts: str) -> str:
        return "s3://" + "/".join(p.strip("/") for p in (self.bucket, self.prefix, *parts) if p.strip("/")) + "/"

    def keys(self, environ: Mapping[str, str]) -> tuple[str, str]:
        found = [environ.get(self.access_key_env), environ.get(self.secret_key_env)]
        for name, value in zip((self.access_key_env, self.secret_key_env), found):
            if not value:
                raise ConfigurationError(f"the S3 key variable {name} is not set")
        return found[0], found[1]  # type: ignore[return-value]

    @property
    def endpoint_host(self) -> str | None:
        return self.endpoint.split("://", 1)[1].rstrip("/") if self.endpoint else None

    @property
    def uses_tls(self) -> bool:
        return not (self.endpoint or "https://").startswith("http://")

    def filesystem(self, environ: Mapping[str, str] = os.environ) -> fs.S3FileSystem:
        access_key, secret_key = self.keys(environ)
        return fs.S3FileSystem(
            access_key=access_key, secret_key=secret_key, region=self.region,
            endpoint_override=self.endpoint_host, scheme="https" if self.uses_tls else "http",
            connect_timeout=5, request_timeout=30, allow_bucket_creation=True,
            retry_strategy=fs.AwsStandardS3RetryStrategy(max_attempts=3),
        )

    def duckdb_secret(self) -> dict[str, str | EnvironmentValue]:
        """The settings of a DuckDB S3 secret for this store; the keys as the
        variables that hold them."""
        settings: dict[str, str | EnvironmentValue] = {
            "KEY_ID": EnvironmentValue(self.access_key_env), "SECRET": EnvironmentValue(self.secret_key_env),
            "REGION": self.region, "USE_SSL": "true" if self.uses_tls else "false",
        }
        if self.endpoint_host:
            settings |= {"ENDPOINT": self.endpoint_host, "URL_STYLE": "path"}
        return settings


@dataclass(frozen=True)
class EnvironmentValue:
    """A setting's value that is a secret: the variable holding it, read when used."""

    variable: str


class FileArea:
    """Files under one root. A file's `location` is what its filesystem calls it:
    an absolute path locally, `bucket/key` on S3."""

    def __init__(self, filesystem: fs.FileSystem, base: str, store: ObjectStore | None = None) -> None:
        self.filesystem = filesystem
        self.base = base.rstrip("/")
        self.store = store

    @classmethod
    def local(cls, folder: Path) -> FileArea:
        return cls(fs.LocalFileSystem(), str(Path(folder).resolve()))

    @classmethod
    def on_s3(cls, store: ObjectStore, *parts: str) -> FileArea:
        return cls(store.filesystem(), store.url(*parts).removeprefix("s3://").rstrip("/"), store)

    @property
    def is_local(self) -> bool:
        return self.store is None

    def location(self, relative: str) -> str:
        return f"{self.base}/{relative}"

    def relative(self, location: str) -> str:
        return location.removeprefix(self.base + "/")

    def display(self, location: str | None = None) -> str:
        """How a person should see a location (or the root): a path, or an s3:// URL."""
        where = self.base if location is None else location
        return where if self.is_local else f"s3://{where}"

    def prepare(self) -> None:
        """Creates the root (locally a folder; on S3 the bucket, if missing)."""
        with self._errors():
            self.filesystem.create_dir(self.base if self.is_local else self.base.split("/", 1)[0], recursive=True)

    def write_parquet(self, table: pa.Table, location: str) -> int:
        """Publishes `table` at `location` whole, replacing what was there; returns
        its size. A crash leaves the old file or the new one, never half of one."""
        if not self.is_local:
            with self._errors():
                with self.filesystem.open_output_stream(location) as out:
                    pq.write_table(table, out, row_group_size=PARQUET_ROW_GROUP_SIZE, compression=PARQUET_COMPRESSION)
                return self.filesystem.get_file_info(location).size
        path = Path(location)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".parquet.tmp")
        try:
            pq.write_table(table, temporary, row_group_size=PARQUET_ROW_GROUP_SIZE, compression=PARQUET_COMPRESSION)
            with open(temporary, "rb+") as handle:
                os.fsync(handle.fileno())
        except BaseException:
            temporary.unlink(missing_ok=True)  # on a full disk, give the space back now
            raise
        os.replace(temporary, path)
        _fsync_dir(path.parent)
        return path.stat().st_size

    def read_parquet(self, location: str, columns: list[str] | None = None) -> pa.Table:
        """The file's table. A file that is gone raises FileNotFoundError; an S3
        server that cannot be reached, ObjectStoreUnavailable (not a bad file)."""
        with self._errors():
            return pq.read_table(location, columns=columns, filesystem=self.filesystem)

    def delete(self, location: str) -> None:
        with self._errors():
            try:
                self.filesystem.delete_file(location)
            except FileNotFoundError:
                pass

    def list(self, under: str, suffixes: tuple[str, ...]) -> list[str]:
        """The locations of the files below `under` (relative) ending in one of `suffixes`."""
        with self._errors():
            found = self.filesystem.get_file_info(fs.FileSelector(self.location(under), allow_not_found=True, recursive=True))
        return [f.path for f in found if f.type == fs.FileType.File and f.path.endswith(suffixes)]

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """An S3 failure as one ObjectStoreUnavailable line naming the server."""
        try:
            yield
        except FileNotFoundError:
            raise
        except OSError as exc:
            if self.store is None:
                raise
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ObjectStoreUnavailable(
                f"the S3 store {self.store.url()} at {self.store.endpoint or 'AWS S3'} is unavailable: {first}"
            ) from exc


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
