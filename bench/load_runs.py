"""What the capacity benches share: a pinned server, one bench/rtp_load run against
it, and the judged row of the result table."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.integration.server import RunningServer

HEADER = (f"{'size':>6} {'set up':>7} {'missing frames':>15} {'late':>5} {'late ticks':>11} "
          f"{'server CPU':>10} {'load lag ms':>11}  result")


def start_table(rtp: str, extra: str = "") -> bool:
    """Print the machine line and the table header; True when the server and the load
    generator can be pinned to CPUs of their own."""
    import os
    import platform
    import shutil

    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, RTP {rtp}{extra}")
    print(HEADER)
    return shutil.which("taskset") is not None and (os.cpu_count() or 1) > 1


def new_server(rtp: str, pin: bool, prefix: str) -> RunningServer:
    """A server on CPU 0 with a wide RTP range (or the shared port), config written."""
    server = RunningServer(Path(tempfile.mkdtemp(prefix=prefix)), log_level="info",
                           command_prefix=("taskset", "-c", "0") if pin else (),
                           rtp_ports="20000-65000",
                           media_extra="inactivity_timeout = 300" +
                           ("\nshared_port = 19998" if rtp.startswith("shared") else "") +
                           ("\nrelay_offload = false" if rtp.endswith("-python") else ""))
    server.write_config()
    return server


def run_load(server: RunningServer, size: int, seconds: float, pin: bool,
             extra: list[str], module: str = "bench.rtp_load") -> dict[str, Any] | str:
    """Start the server, run the load generator on CPU 1; its JSON result or an error."""
    server.start()
    assert server.proc is not None
    try:
        load = subprocess.run(
            [*(["taskset", "-c", "1"] if pin else []), sys.executable, "-m", module,
             "--server", f"127.0.0.1:{server.port}", "--calls", str(size),
             "--seconds", str(seconds), "--server-pid", str(server.proc.pid), *extra],
            capture_output=True, text=True, timeout=seconds + 180)
    finally:
        server.stop()
    if load.returncode != 0:
        return f"load generator failed: {load.stderr[-500:]}"
    result: dict[str, Any] = json.loads(load.stdout.strip().splitlines()[-1])
    return result


def report(size: int, result: dict[str, Any] | str, server: RunningServer) -> bool:
    """Print the row; a size passes when every call got every frame in the steady window,
    none late, and under 1% of the window's ticks came a frame late to some call.
    "late ticks" shows the server's own count of late clock ticks (whole run, set-up
    included) / that share of the steady window as the receivers saw it."""
    if isinstance(result, str):
        print(f"{size:>6} {result}")
        return False
    found = re.findall(r"media clock: (\d+) late ticks", server.log())
    late_ticks: object = int(found[-1]) if found else -1
    share = result.get("late_tick_share")
    ok = result["established"] == size and result["frames_missing"] == 0 \
        and result["late_gaps"] == 0 and (share is None or share < 0.01)
    if share is not None:
        late_ticks = f"{late_ticks}/{share:.1%}"
    print(row(size, result, late_ticks, ok))
    return ok


def row(size: int, result: dict[str, Any], late_ticks: object, ok: bool) -> str:
    """One line of the table. The server's CPU share (of one core) is over the steady
    window; "load lag" is how late, at worst, the load generator sent a tick's packets
    (tens of ms there means the generator, not the server, was the limit)."""
    cpu = result.get("server_cpu")
    lag = result.get("send_lag_ms_max")
    return (f"{size:>6} {result['established']:>7} {result['frames_missing']:>15} "
            f"{result['late_gaps']:>5} {late_ticks!s:>11} "
            f"{'-' if cpu is None else f'{cpu:.2f}':>10} {'-' if lag is None else lag!s:>11}"
            f"  {'PASS' if ok else 'FAIL'}")
