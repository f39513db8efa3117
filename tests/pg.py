"""Starts a real, throw-away PostgreSQL server for the storage tests."""

from __future__ import annotations

import glob
import os
import random
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .ports import POSTGRES


def _bindir() -> str:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(candidate, "pg_ctl")):
            return candidate
    found = shutil.which("pg_ctl")
    if found:
        return os.path.dirname(found)
    raise RuntimeError("PostgreSQL server binaries not found: run 'make test' (installs postgresql)")


def _free_port() -> int:
    """A TCP port below the kernel's ephemeral range (which starts at 32768),
    so no outgoing connection can take it before PostgreSQL binds it."""
    for _ in range(200):
        port = random.choice(POSTGRES)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port for PostgreSQL in {POSTGRES.start}-{POSTGRES.stop - 1}")


class PostgresServer:
    """A throw-away PostgreSQL server on 127.0.0.1 that a test may stop (as if its
    process were killed) and start again on the same data and port."""

    def __init__(self) -> None:
        self._bindir = _bindir()
        self._base = tempfile.mkdtemp(prefix="sb-pg-")
        self._data = os.path.join(self._base, "data")
        self.port = _free_port()
        self._prefix: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root
            shutil.chown(self._base, "postgres")
            os.chmod(self._base, 0o700)
            self._prefix = ["runuser", "-u", "postgres", "--"]
        self._run(f"{self._bindir}/initdb", "-D", self._data, "-U", "switchboard",
                  "--auth=trust", "-E", "UTF8")
        self.start()
        try:
            self._run(f"{self._bindir}/createdb", "-h", "127.0.0.1", "-p", str(self.port),
                      "-U", "switchboard", "switchboard")
        except BaseException:
            self.remove()
            raise
        self.url = f"postgresql+psycopg://switchboard@127.0.0.1:{self.port}/switchboard"

    def _run(self, *args: str) -> None:
        subprocess.run(self._prefix + list(args), check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._run(f"{self._bindir}/pg_ctl", "-D", self._data, "-w", "-t", "60", "-l",
                  os.path.join(self._base, "log"), "-o",
                  f"-p {self.port} -k {self._base} -c listen_addresses=127.0.0.1 -c fsync=off",
                  "start")

    def stop(self, mode: str = "fast") -> None:
        """``mode`` "immediate" ends every server process at once, without a checkpoint
        (what a crash leaves; the next start recovers from the log)."""
        subprocess.run([*self._prefix, f"{self._bindir}/pg_ctl", "-D", self._data, "-m", mode,
                        "-w", "stop"], capture_output=True, timeout=60)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self._base, ignore_errors=True)


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a SQLAlchemy URL of a fresh server on 127.0.0.1; stop it afterwards."""
    server = PostgresServer()
    try:
        yield server.url
    finally:
        server.remove()


def fresh_schema(base_url: str) -> str:
    """The URL of a new, empty schema on the server at ``base_url``: tests sharing one
    server stay independent."""
    from sqlalchemy import text  # the storage tests import this module too

    from confserver.storage.database import open_database

    schema = "t" + uuid.uuid4().hex[:10]
    setup = open_database(base_url, migrate=False)
    try:
        with setup.engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    finally:
        setup.close()
    return base_url + f"?options=-csearch_path%3D{schema}"


def empty_database(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> str:
    """The URL of an empty database: an SQLite file, or a fresh PostgreSQL schema (one
    per test keeps them independent)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/sb.db"
    return fresh_schema(request.getfixturevalue("postgres_url"))
