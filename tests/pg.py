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
        port = random.randrange(20000, 21000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port for PostgreSQL in 20000-20999")


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a SQLAlchemy URL of a fresh server on 127.0.0.1; stop it afterwards."""
    bindir = _bindir()
    base = tempfile.mkdtemp(prefix="sb-pg-")
    data = os.path.join(base, "data")
    port = _free_port()
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(base, "postgres")
        os.chmod(base, 0o700)
        prefix = ["runuser", "-u", "postgres", "--"]

    def run(*args: str) -> None:
        subprocess.run(prefix + list(args), check=True, capture_output=True, timeout=120)

    run(f"{bindir}/initdb", "-D", data, "-U", "switchboard", "--auth=trust", "-E", "UTF8")
    run(f"{bindir}/pg_ctl", "-D", data, "-w", "-t", "60", "-l", os.path.join(base, "log"),
        "-o", f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    try:
        run(f"{bindir}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "switchboard",
            "switchboard")
        yield f"postgresql+psycopg://switchboard@127.0.0.1:{port}/switchboard"
    finally:
        subprocess.run([*prefix, f"{bindir}/pg_ctl", "-D", data, "-m", "fast", "-w", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


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
