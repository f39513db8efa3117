"""bench/flood: signed-in users' calls while the server is flooded with INVITEs.

    .venv/bin/python -m bench.flood [--seconds 20] [--rate 20000] [--sources 2000]
                                    [--legit 50] [--only no|one|many]

The server runs pinned to CPU 0, every load generator to CPU 1. Legitimate callers
(signed-in users, ten addresses 127.0.1.x, sipp answering the digest challenge)
call sip:echo at ``--legit`` calls/s in all, each call a second long. Two floods
of INVITEs to sip:noanswer follow, one after the other, each for ``--seconds``:

- **one source**: sipp sends ``--rate`` INVITEs/s from 127.0.2.1;
- **many sources**: ``--sources`` addresses (127.0.3.x and up) at ``--rate /
  --sources`` INVITEs/s each, from a sender of our own (sipp has one address).

A first window without a flood is the control: the legitimate calls' own CPU and
memory (their transactions are kept 32 s, so RSS grows with them at first).
For each: the INVITEs/s the flood really sent (the generators check their own
timing), the share of the legitimate calls that connected, the server's CPU
(share of one core) and its RSS at the start and the end of the flood.
Targets (issue 31): at least 99% of the legitimate calls connect, the server
under one core, its memory flat.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tests.integration.server import RunningServer, free_port

from .cpu_meter import cpu_seconds
from .sip_cps import last_stat, rss_kib

SCENARIOS = Path(__file__).parent / "scenarios"
USERS = 10  # legitimate callers, each its own user and address
PASSWORD = "legit-caller-pw"


def pinned(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 \
        else []


@dataclass
class Window:
    label: str
    sent_per_second: float
    legit_ok: int
    legit_failed: int
    cpu_share: float
    rss_start_mib: float
    rss_end_mib: float
    rss_peak_mib: float

    @property
    def legit_share(self) -> float:
        total = self.legit_ok + self.legit_failed
        return self.legit_ok / total if total else 0.0

    def line(self) -> str:
        return (f"{self.label:<12} {self.sent_per_second:>9,.0f} {self.legit_ok:>6} "
                f"{self.legit_failed:>6} {100 * self.legit_share:>8.1f}% {self.cpu_share:>6.2f} "
                f"{self.rss_start_mib:>8.1f} {self.rss_end_mib:>8.1f} {self.rss_peak_mib:>8.1f}")


def start_server(workdir: Path) -> RunningServer:
    # nothing trusted: every address is counted, as on a server facing the Internet
    server = RunningServer(workdir, log_level="warning", command_prefix=tuple(pinned(0)),
                           rtp_ports="20000-30000", limits="")
    server.write_config()
    for n in range(USERS):
        server.add_user(f"user{n}", PASSWORD)
    server.start()
    return server


def legit_callers(server: RunningServer, workdir: Path, rate: float, seconds: float
                  ) -> list[tuple[subprocess.Popen[str], Path]]:
    """USERS sipp instances, each a signed-in user on an address of its own."""
    out = []
    each = rate / USERS
    for n in range(USERS):
        stat = workdir / f"legit-{n}-{time.monotonic_ns()}.csv"
        cmd = [*pinned(1), "sipp", "-sf", str(SCENARIOS / "signed_in_echo_call.xml"),
               f"127.0.0.1:{server.port}", "-i", f"127.0.1.{n + 1}", "-p", str(free_port()),
               "-mp", str(free_port()), "-t", "u1", "-s", f"user{n}",
               "-key", "domain", "example.com", "-au", f"user{n}", "-ap", PASSWORD,
               "-auth_uri", "echo@example.com", "-r", f"{each * 10:.0f}", "-rp", "10000",
               "-m", str(int(each * seconds)), "-l", str(int(each * 8) + 8),
               "-timeout", f"{seconds + 60:.0f}s", "-nostdin", "-trace_stat", "-stf",
               str(stat), "-fd", "1"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                text=True, cwd=workdir)
        out.append((proc, stat))
    return out


def one_source_flood(server: RunningServer, workdir: Path, rate: int, seconds: float
                     ) -> tuple[subprocess.Popen[str], Path]:
    stat = workdir / f"flood-{time.monotonic_ns()}.csv"
    cmd = [*pinned(1), "sipp", "-sf", str(SCENARIOS / "flood_invite.xml"),
           f"127.0.0.1:{server.port}", "-i", "127.0.2.1", "-p", str(free_port()),
           "-t", "u1", "-key", "domain", "example.com", "-r", str(rate), "-rp", "1000",
           "-m", str(int(rate * seconds)), "-l", str(rate * 2), "-nostdin",
           "-trace_stat", "-stf", str(stat), "-fd", "1"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            text=True, cwd=workdir), stat


def spray(port: int, sources: int, rate: float, seconds: float) -> None:
    """The many-source flood, run as its own process: INVITEs to sip:noanswer from
    ``sources`` addresses in turn, paced to ``rate`` in all; prints what it sent."""
    socks = []
    for n in range(sources):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((f"127.0.{3 + n // 250}.{1 + n % 250}", 0))
        sock.setblocking(False)
        socks.append(sock)
    template = ("INVITE sip:noanswer@example.com SIP/2.0\r\n"
                "Via: SIP/2.0/UDP {host}:{sport};branch=z9hG4bKs{n}\r\nMax-Forwards: 70\r\n"
                "From: <sip:s{n}@flood.invalid>;tag={n}\r\nTo: <sip:noanswer@example.com>\r\n"
                "Call-ID: s{n}@flood\r\nCSeq: 1 INVITE\r\nContact: <sip:s@{host}:{sport}>\r\n"
                "Content-Length: 0\r\n\r\n")
    target = ("127.0.0.1", port)
    sent = 0
    start = time.monotonic()
    end = start + seconds
    while True:
        now = time.monotonic()
        if now >= end:
            break
        due = int((now - start) * rate)
        while sent < due:
            sock = socks[sent % sources]
            host, sport = sock.getsockname()
            with contextlib.suppress(BlockingIOError):
                sock.sendto(template.format(host=host, sport=sport, n=sent).encode(), target)
            sent += 1
        time.sleep(0.001)
    elapsed = time.monotonic() - start
    print(f"{sent} {elapsed:.3f}", flush=True)


def run_window(server: RunningServer, workdir: Path, label: str, rate: int, sources: int,
               seconds: float, legit: float) -> Window:
    assert server.proc is not None
    pid = server.proc.pid
    callers = legit_callers(server, workdir, legit, seconds + 4)
    time.sleep(2.0)  # the users sign in before the flood (as on any working day)
    rss: list[int] = [rss_kib(pid)]
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    if label == "no flood":  # the control: what the legitimate calls alone cost
        done = time.monotonic() + seconds
        sampler = threading.Thread(target=_sample, daemon=True, args=(
            pid, rss, lambda: 0 if time.monotonic() >= done else None))
        sampler.start()
        sampler.join()
        sent = 0.0
    elif label == "one source":
        flood, stat = one_source_flood(server, workdir, rate, seconds)
        sampler = threading.Thread(target=_sample, args=(pid, rss, flood.poll), daemon=True)
        sampler.start()
        flood.wait()
        sent = float(last_stat(stat).get("OutgoingCall(C)", 0)) / max(
            time.monotonic() - t0, 1e-9)
    else:
        proc = subprocess.Popen([*pinned(1), sys.executable, "-m", "bench.flood", "--spray",
                                 str(server.port), str(sources), str(rate), str(seconds)],
                                stdout=subprocess.PIPE, text=True,
                                cwd=Path(__file__).resolve().parents[1])
        sampler = threading.Thread(target=_sample, args=(pid, rss, proc.poll), daemon=True)
        sampler.start()
        out, _ = proc.communicate()
        count, elapsed = out.split()
        sent = int(count) / float(elapsed)
    cpu = ((cpu_seconds(pid) or 0.0) - (cpu0 or 0.0)) / (time.monotonic() - t0)
    rss.append(rss_kib(pid))
    ok = failed = 0
    for proc, path in callers:
        proc.wait(timeout=seconds + 120)
        stat = last_stat(path)
        ok += int(stat.get("SuccessfulCall(C)", 0))
        failed += int(stat.get("FailedCall(C)", 0))
    return Window(label, sent, ok, failed, cpu, rss[0] / 1024, rss[-1] / 1024, max(rss) / 1024)


def _sample(pid: int, into: list[int], running: object) -> None:
    while running() is None:  # type: ignore[operator]
        into.append(rss_kib(pid))
        time.sleep(1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=int, default=20000)
    parser.add_argument("--sources", type=int, default=2000)
    parser.add_argument("--legit", type=float, default=50.0)
    parser.add_argument("--only", choices=("no", "one", "many"))
    parser.add_argument("--spray", nargs=4, metavar=("PORT", "SOURCES", "RATE", "SECONDS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.spray:
        port, sources, rate, seconds = args.spray
        spray(int(port), int(sources), float(rate), float(seconds))
        return
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}")
    print(f"legitimate: {args.legit:g} signed-in calls/s from {USERS} addresses; flood "
          f"{args.rate:,} INVITE/s for {args.seconds:g} s")
    print(f"{'flood':<12} {'sent/s':>9} {'ok':>6} {'failed':>6} {'connected':>9} {'cpu':>6} "
          f"{'rss MiB':>8} {'after':>8} {'peak':>8}")
    windows = [w for w in ("no flood", "one source", "many sources")
               if args.only is None or w.startswith(args.only)]
    for label in windows:
        server = start_server(Path(tempfile.mkdtemp(prefix="sb-bench-flood-")))
        try:
            window = run_window(server, server.workdir, label, args.rate, args.sources,
                                args.seconds, args.legit)
        finally:
            server.stop()
        print(window.line(), flush=True)


if __name__ == "__main__":
    main()
