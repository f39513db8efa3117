"""bench/mediation_cps: calls per second through the mediation B2BUA, signaling only.

    .venv/bin/python -m bench.mediation_cps [--rates 100,200,...] [--seconds 10] [--repeats 3]

sipp plays both ends: alice (digest-authenticated, so every call is INVITE / 401 /
ACK / INVITE with credentials) calls a ten-digit number; the server normalizes it,
authorizes it against her voice policy, picks the cheapest gateway by its rate table
and dials a second sipp playing that gateway (100, 180, 200 with G.711 SDP), then
relays ACK and BYE and writes a call record. No RTP flows, but both legs bind their
media sessions as they would for a real call. The server is pinned to CPU 0, both
sipps to CPU 1. A rate counts as sustained when every call of every run succeeds and
sipp kept up with the rate; the server's CPU time per call gives the one-core ceiling.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.sip_cps import cpu_seconds, last_stat, print_ceiling, summarize
from tests.integration.mediation_setup import ALICE_PW, configure_routing, pstn_call_scenario
from tests.integration.peers import SCENARIOS
from tests.integration.server import RunningServer, free_port


def pinned(cpu: int) -> list[str]:
    many = (os.cpu_count() or 1) > 1
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and many else []


def start_gateway(workdir: Path, port: int, calls: int) -> subprocess.Popen[str]:
    cmd = [*pinned(1), "sipp", "-sf", str(SCENARIOS / "gw_answer.xml"), "-i", "127.0.0.1",
           "-p", str(port), "-mp", str(free_port()), "-m", str(calls), "-nostdin",
           "-timeout", "600s", "-trace_stat", "-stf", str(workdir / "gateway-stat.csv"),
           "-fd", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            text=True, cwd=workdir)
    time.sleep(0.3)  # let it bind
    return proc


def run_rate(server: RunningServer, workdir: Path, scenario: Path, rate: int,
             seconds: int) -> dict[str, float]:
    assert server.proc is not None
    calls = rate * seconds
    stat = workdir / f"stat-{rate}-{time.monotonic_ns()}.csv"
    cmd = [*pinned(1), "sipp", "-sf", str(scenario), f"127.0.0.1:{server.port}",
           "-i", "127.0.0.1", "-p", str(free_port()), "-mp", str(free_port()), "-t", "u1",
           "-s", "4255550123", "-key", "domain", "example.com", "-au", "alice",
           "-ap", ALICE_PW, "-auth_uri", "4255550123@example.com", "-r", str(rate),
           "-m", str(calls), "-l", str(rate * 4),
           "-timeout", f"{seconds * 4 + 30}s", "-timeout_error", "-nostdin",
           "-trace_stat", "-stf", str(stat), "-fd", "1", "-trace_err", "-error_file",
           str(stat.with_suffix(".errors"))]
    cpu0 = cpu_seconds(server.proc.pid)
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          cwd=workdir, timeout=seconds * 4 + 60)
    code = done.returncode
    if not stat.exists():
        raise SystemExit(f"sipp wrote no statistics (exit {code}): {done.stderr[-1000:]}")
    cpu = cpu_seconds(server.proc.pid) - cpu0
    rest0 = cpu_seconds(server.proc.pid)
    time.sleep(2.0)  # what the server spends once the calls are over
    rest = (cpu_seconds(server.proc.pid) - rest0) / 2.0
    row = last_stat(stat)
    ok = int(row.get("SuccessfulCall(C)", 0))
    errors = stat.with_suffix(".errors")
    if int(row.get("FailedCall(C)", 0)) and errors.exists():
        print("  sipp:", " | ".join(errors.read_text(errors="replace").splitlines()[:3])[:400])
    return {"calls": calls, "successful": ok, "failed": int(row.get("FailedCall(C)", 0)),
            "exit": code, "achieved_cps": float(row.get("CallRate(C)", 0)),
            "server_cpu_ms_per_call": 1000 * cpu / max(ok, 1), "cpu_at_rest": rest}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="100,200,300,400,500")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shared-port", action="store_true",
                        help="one RTP port pair for every call ([media] shared_port)")
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}")
    workdir = Path(tempfile.mkdtemp(prefix="sb-bench-medcps-"))
    gateway_port = free_port()
    server = RunningServer(workdir, log_level="warning", command_prefix=tuple(pinned(0)),
                           rtp_ports="20000-65000",
                           media_extra="inactivity_timeout = 300" +
                           ("\nshared_port = 19998" if args.shared_port else ""))
    server.write_config()
    # "dear" is never tried: "cheap" answers every call
    configure_routing(server.db, {"cheap": gateway_port, "dear": free_port()})
    scenario = pstn_call_scenario(workdir, 200, hold_ms=0)
    total = sum(rates) * args.seconds * args.repeats
    gateway = start_gateway(workdir, gateway_port, total)
    server.start()
    print(f"{'rate':>6} {'ok':>7} {'failed':>6} {'median cps':>10} {'cpu ms/call':>12} "
          f"{'cpu after':>9}")
    best = 0
    costs: list[float] = []
    try:
        for rate in rates:
            runs = [run_rate(server, workdir, scenario, rate, args.seconds)
                    for _ in range(args.repeats)]
            summary = summarize(rate, runs)
            costs.append(summary.median_cpu_ms)
            rest = max(r["cpu_at_rest"] for r in runs)
            print(f"{summary.line()} {rest:>9.0%}  "
                  f"{'sustained' if summary.sustained else 'NOT sustained'}", flush=True)
            if not summary.sustained:
                break
            best = rate
        print_ceiling(best, costs, args.repeats, args.seconds)
        rows = cli_cdr_count(server.db)
        print(f"call records written: {rows}")
    finally:
        server.stop()
        gateway.kill()
        gateway.wait(timeout=5)


def cli_cdr_count(db: str) -> int:
    from confserver.storage.database import open_database
    from mediation.store import MediationStore
    database = open_database(db)
    try:
        return MediationStore(database).cdr_count()
    finally:
        database.close()


if __name__ == "__main__":
    main()
