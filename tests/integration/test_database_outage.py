"""The database server dies under a running Switchboard (PostgreSQL stopped with
``-m immediate``, as a crash leaves it) and comes back.

Checked: requests that need no storage (OPTIONS) are answered throughout; those that
do get a prompt 500 with Retry-After instead of hanging the server; when the
database is back, the same requests are served again without restarting anything;
the data written before the crash is all there."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..pg import PostgresServer
from .server import RunningServer, cli

pytestmark = pytest.mark.integration


@pytest.fixture
def database() -> Iterator[PostgresServer]:
    server = PostgresServer()  # of its own: the test stops it
    yield server
    server.remove()


def invite(server: RunningServer, user: str, n: int) -> tuple[str, float]:
    """An INVITE for ``user`` on a fresh transaction: the final status line and how
    long it took. The ACK for a non-2xx is sent as RFC 3261 17.1.1.3 asks."""
    branch = f"z9hG4bKoutage{n}{time.monotonic_ns()}"
    head = (f"INVITE sip:{user}@example.com SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:9;rport;branch={branch}\r\n"
            f"From: <sip:tester@example.com>;tag=t{n}\r\nTo: <sip:{user}@example.com>\r\n"
            f"Call-ID: outage-{n}-{time.monotonic_ns()}\r\nCSeq: 1 INVITE\r\n"
            "Contact: <sip:tester@127.0.0.1:9>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.5)
        started = time.monotonic()
        s.sendto(head.encode(), ("127.0.0.1", server.port))
        while time.monotonic() - started < 20:
            try:
                data, _ = s.recvfrom(65535)
            except OSError:
                continue
            status = data.split(b"\r\n", 1)[0].decode()
            if not status.startswith("SIP/2.0 1"):
                to = next(line for line in data.decode().split("\r\n")
                          if line.lower().startswith("to:"))
                ack = head.replace("INVITE sip", "ACK sip", 1).replace("CSeq: 1 INVITE",
                                                                        "CSeq: 1 ACK")
                ack = ack.replace(f"To: <sip:{user}@example.com>", to)
                s.sendto(ack.encode(), ("127.0.0.1", server.port))
                return status, time.monotonic() - started
    raise AssertionError(f"no final answer to an INVITE for {user} in 20 s")


def test_the_server_outlives_its_database_crashing_and_serves_when_it_returns(
        database: PostgresServer, tmp_path: Path) -> None:
    for args in (("user", "add", "sip:alice@example.com", "--password", "alice-secret"),
                 ("meeting", "create", "--organizer", "sip:alice@example.com", "--access",
                  "anonymous", "--passcode", "13579", "--id", "7654321")):
        result = cli(*args, db=database.url)
        assert result.returncode == 0, result.stderr
    server = RunningServer(tmp_path, database_url=database.url)
    server.start()
    try:
        assert invite(server, "nobody", 1)[0].startswith("SIP/2.0 404")

        database.stop(mode="immediate")
        time.sleep(1.5)  # past the second that recent lookups are kept
        assert server.options_ok()
        status, took = invite(server, "nobody", 2)
        assert status.startswith("SIP/2.0 500") and took < 5, (status, took)
        assert server.options_ok()

        database.start()  # recovers from its log, on the same port
        deadline = time.monotonic() + 15
        while True:
            status, _took = invite(server, "nobody", 3)
            if status.startswith("SIP/2.0 404") or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert status.startswith("SIP/2.0 404"), status
        assert server.proc is not None and server.proc.poll() is None
    finally:
        server.stop()
    listed = cli("user", "list", "--json", db=database.url)
    assert listed.returncode == 0 and "sip:alice@example.com" in listed.stdout
    meetings = cli("meeting", "list", db=database.url)
    assert meetings.returncode == 0 and "7654321" in meetings.stdout
