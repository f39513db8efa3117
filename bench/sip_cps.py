"""bench/sip_cps: signaling-only calls per second against sip:echo, and memory per dialog.

    .venv/bin/python -m bench.sip_cps [--rates 200,400,...] [--seconds 10] [--dialogs 10000]

The server runs pinned to CPU 0 (taskset), sipp to CPU 1. For each rate, sipp
places INVITE/200/ACK/BYE calls for --seconds; a rate counts as sustained when
every call succeeds and sipp kept up with the rate. The server's own CPU time
per call (from /proc) gives the single-core ceiling too. Then --dialogs calls
are held open at once and the server's RSS growth per dialog is reported.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.integration.peers import SCENARIOS
from tests.integration.server import RunningServer, free_port

# Signaling only by default: an offerless INVITE whose ACK declines media, so no
# RTP session is opened. --with-media uses the ordinary echo call (SDP offer).
SIGNALING = Path(__file__).parent / "scenarios" / "signaling_call.xml"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


SCENARIO = SIGNALING


def sipp(port: int, workdir: Path, rate: int, calls: int, pause_ms: int, limit: int,
         timeout: int) -> subprocess.Popen[str]:
    pin = ["taskset", "-c", "1"] if shutil.which("taskset") and os.cpu_count() and os.cpu_count() > 1 else []
    cmd = [*pin, "sipp", "-sf", str(SCENARIO), f"127.0.0.1:{port}",
           "-i", "127.0.0.1", "-p", str(free_port()), "-mp", str(free_port()), "-t", "u1",
           "-s", "echo", "-key", "domain", "example.com", "-r", str(rate), "-m", str(calls),
           "-l", str(limit), "-d", str(pause_ms), "-timeout", f"{timeout}s", "-timeout_error",
           "-nostdin", "-trace_stat", "-stf", str(workdir / f"stat-{rate}.csv"), "-fd", "1"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            text=True, cwd=workdir)


def last_stat(path: Path) -> dict[str, str]:
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    head = lines[0].split(";")
    return dict(zip(head, lines[-1].split(";"), strict=False))


def run_rate(server: RunningServer, workdir: Path, rate: int, seconds: int) -> dict[str, float]:
    assert server.proc is not None
    calls = rate * seconds
    cpu0 = cpu_seconds(server.proc.pid)
    t0 = time.monotonic()
    proc = sipp(server.port, workdir, rate, calls, 0, rate * 4, seconds * 4 + 30)
    code = proc.wait()
    elapsed = time.monotonic() - t0
    cpu = cpu_seconds(server.proc.pid) - cpu0
    stat = last_stat(workdir / f"stat-{rate}.csv")
    ok = int(stat.get("SuccessfulCall(C)", 0))
    failed = int(stat.get("FailedCall(C)", 0))
    return {"rate": rate, "calls": calls, "successful": ok, "failed": failed,
            "exit": code, "elapsed": elapsed, "achieved_cps": float(stat.get("CallRate(C)", 0)),
            "server_cpu_ms_per_call": 1000 * cpu / max(ok, 1)}


@dataclass(frozen=True)
class RateSummary:
    """Repeated sipp runs at one rate: totals and medians."""

    rate: int
    successful: int
    failed: int
    median_cps: float
    median_cpu_ms: float
    sustained: bool

    def line(self) -> str:
        return (f"{self.rate:>6} {self.successful:>7} {self.failed:>6} {self.median_cps:>10.0f} "
                f"{self.median_cpu_ms:>12.3f}")


def summarize(rate: int, runs: list[dict[str, float]]) -> RateSummary:
    """Sustained: every call of every run succeeded and sipp kept up with the rate
    (it opens calls at the target rate only while answers keep up)."""
    ok = sum(int(r["successful"]) for r in runs)
    failed = sum(int(r["failed"]) for r in runs)
    cps = sorted(r["achieved_cps"] for r in runs)[len(runs) // 2]
    cpu = sorted(r["server_cpu_ms_per_call"] for r in runs)[len(runs) // 2]
    sustained = (failed == 0 and all(r["exit"] == 0 for r in runs)
                 and ok == sum(int(r["calls"]) for r in runs) and cps >= 0.95 * rate)
    return RateSummary(rate, ok, failed, cps, cpu, sustained)


def print_ceiling(best: int, cpu_costs: list[float], repeats: int, seconds: int) -> None:
    median_cpu = sorted(cpu_costs)[len(cpu_costs) // 2]
    print(f"highest sustained rate: {best} calls/s with zero failures "
          f"(median of {repeats} runs of {seconds} s)")
    print(f"median server CPU per call: {median_cpu:.3f} ms "
          f"(single-core ceiling ~{1000 / median_cpu:.0f} calls/s)")


def hold_dialogs(server: RunningServer, workdir: Path, dialogs: int) -> dict[str, float]:
    assert server.proc is not None
    rate = 500
    ramp = dialogs / rate
    hold_ms = int((ramp + 45) * 1000)  # stay up past every INVITE transaction's 32 s timer L
    base = rss_kib(server.proc.pid)
    proc = sipp(server.port, workdir, rate, dialogs, hold_ms, dialogs + 100, int(ramp + 120))
    time.sleep(ramp + 36)
    peak = rss_kib(server.proc.pid)
    proc.wait()
    return {"dialogs": dialogs, "rss_before_kib": base, "rss_held_kib": peak,
            "kib_per_dialog": (peak - base) / dialogs, "sipp_exit": proc.returncode}


# sipp is one address: every per-address check still runs for it (nothing trusted),
# with limits too high to refuse it, so the figure includes their cost
CHECKED = ('[services]\npublic = ["127.0.0.1/32"]\n[limits]\n'
           'messages_per_second = 1000000\nmessage_burst = 1000000\n'
           'invites_per_second = 1000000\ninvite_burst = 1000000\n'
           'strangers_per_second = 1000000\nstrangers_burst = 1000000\n'
           'unknown_calls_per_source = 100000\nunknown_calls = 1000000\n')


def start_server(workdir: Path) -> RunningServer:
    pin = ("taskset", "-c", "0") if shutil.which("taskset") else ()
    server = RunningServer(workdir, log_level="warning", command_prefix=pin,
                           rtp_ports="20000-65000", media_extra="inactivity_timeout = 300",
                           limits=CHECKED)
    server.start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="250,500,750,1000,1250,1500")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dialogs", type=int, default=10000)
    parser.add_argument("--with-media", action="store_true",
                        help="SDP offer in the INVITE: every call also opens an RTP session")
    args = parser.parse_args()
    global SCENARIO
    SCENARIO = SCENARIOS / "echo_call.xml" if args.with_media else SIGNALING
    print(f"scenario: {SCENARIO.name}")
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}")
    if args.dialogs:
        # a fresh server, so the figure is not inflated by earlier load
        server = start_server(Path(tempfile.mkdtemp(prefix="sb-bench-hold-")))
        try:
            held = hold_dialogs(server, server.workdir, args.dialogs)
        finally:
            server.stop()
        print(f"{held['dialogs']} concurrent dialogs: RSS {held['rss_before_kib'] / 1024:.1f} -> "
              f"{held['rss_held_kib'] / 1024:.1f} MiB, {held['kib_per_dialog']:.2f} KiB per dialog "
              f"(sipp exit {held['sipp_exit']})")
    server = start_server(Path(tempfile.mkdtemp(prefix="sb-bench-cps-")))
    print(f"{'rate':>6} {'ok':>7} {'failed':>6} {'median cps':>10} {'cpu ms/call':>12}")
    best = 0
    cpu_costs: list[float] = []
    try:
        for rate in [int(r) for r in args.rates.split(",")]:
            runs = [run_rate(server, server.workdir, rate, args.seconds) for _ in range(args.repeats)]
            summary = summarize(rate, runs)
            cpu_costs.append(summary.median_cpu_ms)
            print(f"{summary.line()}  {'sustained' if summary.sustained else 'NOT sustained'}")
            if not summary.sustained:
                break
            best = rate
        print_ceiling(best, cpu_costs, args.repeats, args.seconds)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
