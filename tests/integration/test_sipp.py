"""Real peers against ``switchboard serve`` run as a subprocess.

sipp drives OPTIONS, REGISTER with a digest challenge, INVITE/200/ACK/BYE to
sip:echo and CANCEL while ringing over UDP, TCP and TLS (sipp here has no TLS
of its own, so socat carries its TCP connection over TLS to the server).
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .peers import run_sipp, sipp_failures, tls_wrapper
from .server import RunningServer, cli, free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = RunningServer(tmp_path_factory.mktemp("server"))
    srv.write_config()
    srv.add_user("alice", "alice-secret", "+14255550101")
    srv.start()
    yield srv
    assert srv.stop() == 0, srv.log()[-3000:]


@pytest.fixture(scope="module")
def tls_port(server: RunningServer) -> Iterator[int]:
    with tls_wrapper(server.tls_port) as port:
        yield port


TRANSPORTS = ["udp", "tcp", "tls"]


def _target(server: RunningServer, transport: str, tls_port: int) -> tuple[int, str]:
    if transport == "udp":
        return server.port, "u1"
    if transport == "tcp":
        return server.port, "t1"
    return tls_port, "t1"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_options(server: RunningServer, tls_port: int, tmp_path: Path, transport: str) -> None:
    port, mode = _target(server, transport, tls_port)
    result = run_sipp("options.xml", port, tmp_path, transport=mode, calls=3)
    assert result.returncode == 0, sipp_failures(result, tmp_path, "options.xml")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_register_with_digest(server: RunningServer, tls_port: int, tmp_path: Path,
                              transport: str) -> None:
    port, mode = _target(server, transport, tls_port)
    result = run_sipp("register.xml", port, tmp_path, transport=mode, service="alice",
                      user="alice", password="alice-secret")
    assert result.returncode == 0, sipp_failures(result, tmp_path, "register.xml")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_echo_call(server: RunningServer, tls_port: int, tmp_path: Path, transport: str) -> None:
    port, mode = _target(server, transport, tls_port)
    result = run_sipp("echo_call.xml", port, tmp_path, transport=mode, calls=5)
    assert result.returncode == 0, sipp_failures(result, tmp_path, "echo_call.xml")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cancel_while_ringing(server: RunningServer, tls_port: int, tmp_path: Path,
                              transport: str) -> None:
    port, mode = _target(server, transport, tls_port)
    result = run_sipp("cancel.xml", port, tmp_path, transport=mode, service="noanswer", calls=2)
    assert result.returncode == 0, sipp_failures(result, tmp_path, "cancel.xml")


def test_wrong_password_refused(server: RunningServer, tmp_path: Path) -> None:
    result = run_sipp("register.xml", server.port, tmp_path, service="alice", user="alice",
                      password="not-the-password", timeout=10)
    assert result.returncode != 0


def test_cli_changes_apply_without_restart(server: RunningServer, tmp_path: Path) -> None:
    assert cli("user", "add", "sip:carol@example.com", "--password", "carol-secret",
               db=server.db).returncode == 0
    ok = run_sipp("register.xml", server.port, tmp_path, service="carol", user="carol",
                  password="carol-secret")
    assert ok.returncode == 0, sipp_failures(ok, tmp_path, "register.xml")
    assert cli("user", "remove", "sip:carol@example.com", db=server.db).returncode == 0
    refused = run_sipp("register.xml", server.port, tmp_path, service="carol", user="carol",
                       password="carol-secret", timeout=10)
    assert refused.returncode != 0


def test_malformed_datagrams_dropped_and_server_keeps_serving(server: RunningServer) -> None:
    junk = [b"", b"\x00" * 100, b"INVITE\r\n\r\n", b"SIP/2.0 999999 X\r\n\r\n",
            b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -5\r\n\r\n", bytes(range(256)) * 20]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for data in junk:
            s.sendto(data, ("127.0.0.1", server.port))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as tcp:
        tcp.sendall(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -5\r\n\r\n")
        tcp.settimeout(5)
        assert tcp.recv(100) == b""  # framing lost: the server closes the connection
    assert server.options_ok(timeout=2)
    assert server.proc is not None and server.proc.poll() is None


def test_port_in_use_is_reported_plainly(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", port))
        cfg = tmp_path / "sb.toml"
        cfg.write_text(f'[sip]\nlisten = ["udp:127.0.0.1:{port}"]\n'
                       f'[database]\nurl = "sqlite:///{tmp_path}/x.db"\n')
        result = subprocess.run([sys.executable, "-m", "confserver", "serve", "--config", str(cfg)],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"cannot listen on udp:127.0.0.1:{port}" in result.stderr
    assert "in use" in result.stderr


def test_shared_rtp_port_in_use_is_reported_plainly(tmp_path: Path) -> None:
    sip_port, rtp_port = free_port(), free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", rtp_port))
        cfg = tmp_path / "sb.toml"
        cfg.write_text(f'[sip]\nlisten = ["udp:127.0.0.1:{sip_port}"]\n'
                       f'[media]\nshared_port = {rtp_port}\n'
                       f'[database]\nurl = "sqlite:///{tmp_path}/x.db"\n')
        result = subprocess.run([sys.executable, "-m", "confserver", "serve", "--config", str(cfg)],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"cannot listen on udp:127.0.0.1:{rtp_port} (shared RTP port)" in result.stderr
    assert "in use" in result.stderr


def test_sigterm_shuts_down_cleanly(tmp_path: Path) -> None:
    srv = RunningServer(tmp_path)
    srv.start()
    assert srv.stop() == 0
    assert "stopped" in srv.log()
