"""Starts a real, throw-away PostgreSQL server for the storage tests."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
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
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
