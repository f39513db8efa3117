"""baresip registers with digest and calls sip:echo (headless: aufile in and out)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .peers import baresip_config, run_baresip
from .server import RunningServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = RunningServer(tmp_path_factory.mktemp("baresip-server"))
    srv.write_config()
    srv.add_user("alice", "alice-secret")
    srv.start()
    yield srv
    assert srv.stop() == 0


def speech_wav(path: Path) -> Path:
    subprocess.run(["sox", "-n", "-r", "8000", "-b", "16", "-e", "signed", "-c", "1", str(path),
                    "synth", "4", "sine", "440"], check=True, timeout=30)
    return path


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_baresip_registers_and_calls_echo(server: RunningServer, tmp_path: Path,
                                          transport: str) -> None:
    account = (f"<sip:alice@example.com;transport={transport}>;auth_pass=alice-secret;"
               f'outbound="sip:127.0.0.1:{server.port};transport={transport}";regint=600')
    cfg = baresip_config(tmp_path, account, speech_wav(tmp_path / "in.wav"))
    output = run_baresip(cfg, ["/dial sip:echo@example.com"], seconds=5)
    assert f"{{0/{transport.upper()}/v4}} 200 OK () [1 binding]" in output, output[-3000:]
    assert "Call established: sip:echo@example.com" in output, output[-3000:]
    log = server.log()
    assert "ended: remote hangup" in log
