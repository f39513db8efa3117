"""Running the real peers: sipp, socat (TLS wrapper for sipp) and baresip."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..ports import BARESIP_RTP, server_range
from .server import free_port

SCENARIOS = Path(__file__).parent / "scenarios"


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise RuntimeError(f"{tool} is not installed: 'make test' installs the Debian peers")
    return path


def run_sipp(scenario: str, port: int, workdir: Path, *, transport: str = "u1",
             service: str = "echo", calls: int = 1, rate: int = 10, user: str | None = None,
             password: str | None = None, timeout: int = 40,
             extra: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [require("sipp"), "-sf", str(SCENARIOS / scenario), f"127.0.0.1:{port}",
           "-i", "127.0.0.1", "-p", str(free_port()), "-mp", str(free_port()),
           "-t", transport, "-m", str(calls), "-r", str(rate), "-s", service,
           "-key", "domain", "example.com", "-timeout", f"{timeout}s", "-timeout_error",
           "-nostdin", "-trace_err", "-error_file", str(workdir / f"{scenario}.err"),
           "-max_socket", "100"]
    if user:
        # sipp's digest uri is the server's address unless told: credentials must name
        # the Request-URI (what every SIP phone puts there); sipp adds the "sip:"
        uri = "example.com" if scenario.startswith("register") else f"{service}@example.com"
        cmd += ["-au", user, "-ap", password or "", "-auth_uri", uri]
    cmd += extra or []
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 20, cwd=workdir)


def sipp_failures(result: subprocess.CompletedProcess[str], workdir: Path, scenario: str) -> str:
    err = workdir / f"{scenario}.err"
    detail = err.read_text(errors="replace")[-3000:] if err.exists() else ""
    return f"sipp exit {result.returncode}\n{result.stdout[-2000:]}\n{detail}"


@contextmanager
def tls_wrapper(tls_port: int) -> Iterator[int]:
    """A local TCP port whose connections socat carries over TLS to the server."""
    port = free_port()
    proc = subprocess.Popen([require("socat"), f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork",
                             f"OPENSSL:127.0.0.1:{tls_port},verify=0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        import socket
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def baresip_codec(name: str) -> str:
    """A codec as baresip's ``audio_codecs`` account parameter names it. A bare name
    means 8000 Hz there, and G.722 is registered at its 16 kHz audio rate: "G722"
    alone matches nothing, and baresip then offers every codec it has."""
    return "G722/16000/1" if name.upper() == "G722" else name


def baresip_config(workdir: Path, account: str, audio_wav: Path, audio_level: bool = False) -> Path:
    """A headless baresip: audio from a WAV file; sndfile dumps what it decodes
    (``dump-*-dec.wav``) and encodes into the config folder. ``audio_level``: it
    offers and sends the RFC 6464 audio level of what it sends."""
    cfg = workdir / "baresip"
    cfg.mkdir(exist_ok=True)
    sip_port = free_port()
    ctrl_port = free_port()
    (cfg / "config").write_text(f"""poll_method epoll
sip_listen 127.0.0.1:{sip_port}
audio_player aufile,{workdir / 'baresip-out.wav'}
audio_source aufile,{audio_wav}
audio_alert aufile,{workdir / 'baresip-alert.wav'}
rtp_ports {server_range(BARESIP_RTP)}
ausrc_srate 8000
auplay_srate 8000
ausrc_channels 1
auplay_channels 1
module_path /usr/lib/baresip/modules
module g711.so
module g722.so
module opus.so
module aufile.so
module sndfile.so
module srtp.so
snd_path {cfg}
module_app account.so
module_app menu.so
module_app ctrl_tcp.so
ctrl_tcp_listen 127.0.0.1:{ctrl_port}
audio_level {"yes" if audio_level else "no"}
""")
    (cfg / "accounts").write_text(account + "\n")
    return cfg


def run_baresip(config_dir: Path, commands: list[str], seconds: int) -> str:
    cmd = [require("baresip"), "-f", str(config_dir), "-t", str(seconds), "-s"]
    for command in commands:
        cmd += ["-e", command]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 20,
                            cwd=config_dir)
    return result.stdout + result.stderr


def decoded_dump(config_dir: Path) -> Path:
    """The WAV baresip's sndfile module wrote of the audio it received."""
    dumps = sorted(config_dir.glob("dump-*-dec.wav"))
    if not dumps:
        raise AssertionError(f"baresip wrote no decoded dump in {config_dir}")
    return dumps[-1]


class Baresip:
    """A headless baresip whose keypad is its ``cons`` console (one UDP datagram per key)."""

    def __init__(self, workdir: Path, account: str, wav: Path) -> None:
        workdir.mkdir(exist_ok=True)
        self.cfg = baresip_config(workdir, account, wav)
        self.cons_port = free_port()
        with (self.cfg / "config").open("a") as config:
            config.write(f"module cons.so\ncons_listen 127.0.0.1:{self.cons_port}\n")
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    def dial(self, target: str, seconds: int) -> None:
        self.proc = subprocess.Popen(
            [require("baresip"), "-f", str(self.cfg), "-t", str(seconds), "-e", f"/dial {target}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=self.cfg)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def wait_for(self, text: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.output):
                return
            time.sleep(0.05)
        raise AssertionError(f"baresip never said {text!r}: {''.join(self.output)[-2000:]}")

    def keys(self, keys: str, gap: float = 0.25) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for key in keys:
                s.sendto(key.encode(), ("127.0.0.1", self.cons_port))
                time.sleep(gap)

    def finish(self, timeout: float = 60) -> str:
        assert self.proc is not None
        self.proc.wait(timeout=timeout)
        return "".join(self.output)
