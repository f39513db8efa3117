"""Runs ``switchboard serve`` as a subprocess on free loopback ports."""

from __future__ import annotations

import itertools
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text

from confserver.storage.database import open_database
from confserver.tls import generate_self_signed

from ..ports import PEERS, SERVER_RTP, bindable, server_range

ROOT = Path(__file__).resolve().parents[2]


# Ports the tests hand to peers come from below the kernel's ephemeral range
# (32768-60999 here): a port taken from the ephemeral range could be given to
# some other socket's implicit bind between our check and the peer's bind,
# which is how baresip once failed with "Address already in use". The fixed
# RTP ranges the tests configure (tests/ports.py) stay out of this pool.
# Handed out in turn from a random start, so two calls never return the same
# port until the pool wraps round, and concurrent test runs rarely meet.
PEER_PORTS = PEERS[::4]
_next_peer_port = itertools.islice(itertools.cycle(PEER_PORTS),
                                   random.randrange(len(PEER_PORTS)), None)


def free_port() -> int:
    """A port free for UDP and TCP alike on 127.0.0.1, outside the ephemeral
    range. Each is a multiple of 4, so a peer that also uses the next ports
    (sipp's RTP at port+2) does not run into another peer's port."""
    for _ in range(len(PEER_PORTS)):
        port = next(_next_peer_port)
        if all(bindable(p, (socket.SOCK_STREAM, socket.SOCK_DGRAM)) for p in (port, port + 2)):
            return port
    raise RuntimeError("no free port in the tests' peer range")


def cli(*args: str, db: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "confserver", *args, "--database", db],
                          capture_output=True, text=True, timeout=60)


@dataclass
class RunningServer:
    workdir: Path
    domain: str = "example.com"
    port: int = 0
    tls_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    extra_config: str = ""
    log_level: str = "debug"
    rtp_ports: str = server_range(SERVER_RTP)
    media_extra: str = ""
    command_prefix: tuple[str, ...] = ()
    database_url: str = ""  # "": an SQLite file in workdir
    # the suite's peers and load generators all run on 127.0.0.1: it may use the test
    # services and is spared the per-source limits; an attacker in a test has an
    # address of its own (127.0.0.2 and up), to which every limit applies
    limits: str = ('[services]\npublic = ["127.0.0.1/32"]\n'
                   '[limits]\ntrusted_networks = ["127.0.0.1/32"]\n')
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.port = self.port or free_port()
        self.tls_port = self.tls_port or free_port()
        self.log_path = self.workdir / "server.log"

    @property
    def db(self) -> str:
        return self.database_url or f"sqlite:///{self.workdir}/sb.db"

    @property
    def config_path(self) -> Path:
        return self.workdir / "sb.toml"

    def write_config(self) -> None:
        cert, key = self.workdir / "cert.pem", self.workdir / "key.pem"
        if not cert.exists():
            generate_self_signed(str(cert), str(key), "localhost")
        self.config_path.write_text(f"""
[sip]
listen = ["udp:127.0.0.1:{self.port}", "tcp:127.0.0.1:{self.port}", "tls:127.0.0.1:{self.tls_port}"]
domain = "{self.domain}"
tls_certificate = "{cert}"
tls_private_key = "{key}"
ring_timeout = 30
[media]
address = "127.0.0.1"
rtp_ports = "{self.rtp_ports}"
{self.media_extra}
[database]
url = "{self.db}"
[log]
level = "{self.log_level}"
{self.extra_config}
{self.limits}""")

    def add_user(self, user: str, password: str, phone: str | None = None) -> None:
        args = ["user", "add", f"sip:{user}@{self.domain}", "--password", password]
        if phone:
            args += ["--phone", phone]
        result = cli(*args, db=self.db)
        assert result.returncode == 0, result.stderr

    def start(self) -> None:
        self.write_config()
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen([*self.command_prefix, sys.executable, "-m", "confserver",
                                          "serve", "--config", str(self.config_path)],
                                         stdout=log, stderr=log, cwd=ROOT,
                                         env=dict(os.environ, PYTHONUNBUFFERED="1"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            if self.options_ok():
                return
            time.sleep(0.1)
        raise RuntimeError("server did not answer OPTIONS within 30 s")

    def options_ok(self, timeout: float = 0.5) -> bool:
        request = (f"OPTIONS sip:{self.domain} SIP/2.0\r\n"
                   "Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKprobe{n}\r\n"
                   "From: <sip:probe@example.com>;tag=p\r\nTo: <sip:probe@example.com>\r\n"
                   "Call-ID: probe{n}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                   "Content-Length: 0\r\n\r\n").replace("{n}", str(time.monotonic_ns()))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            s.settimeout(timeout)
            # rport makes the answer come back to this socket whatever Via says
            s.sendto(request.replace(";branch=", ";rport;branch=").encode(),
                     ("127.0.0.1", self.port))
            try:
                data, _ = s.recvfrom(65535)
            except OSError:
                return False
        return data.startswith(b"SIP/2.0 200")

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
                return -9
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @contextmanager
    def reconfigured(self, timeout: float = 15.0) -> Iterator[None]:
        """Around a change to mediation's tables: on leaving, waits until the server
        has loaded the configuration the database now holds (it checks for changes
        every few seconds, so a check between two CLI commands loads a half-made
        change: waiting for any reload is not enough)."""
        yield
        database = open_database(self.db, migrate=False)
        try:
            with database.engine.connect() as connection:
                rows = {key: value for key, value in connection.execute(text(
                    "SELECT key, value FROM settings WHERE key IN "
                    "('mediation.config', 'mediation.rates')"))}
        finally:
            database.close()
        marker = (f"mediation configuration loaded (configuration version "
                  f"{rows.get('mediation.config', '0')}, rates version "
                  f"{rows.get('mediation.rates', '0')})")
        deadline = time.monotonic() + timeout
        while marker not in self.log():
            if time.monotonic() > deadline:
                raise AssertionError(f"the server did not load {marker!r} within {timeout} s: "
                                     f"{self.log()[-2000:]}")
            time.sleep(0.1)
