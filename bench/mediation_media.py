"""bench/mediation_media: concurrent calls per core through the mediation server with
real loopback RTP on both legs, transcoded or relayed.

    .venv/bin/python -m bench.mediation_media [--codecs opus,G722,PCMU]
        [--calls 50,100,...] [--seconds 12] [--rtp shared|per-call[-python]] [--rtpengine]

For each internal codec, calls of rising size go from an internal user offering
only that codec, through the server, to a G.711 (PCMU) gateway: Opus calls are
transcoded both ways through the jitter buffers (Opus at 8 kHz, no resampling),
G.722 calls are converted packet by packet (G.722's lower sub-band, see
confserver/media/packet_convert.py), PCMU calls are relayed untouched. bench/mediation_load
plays both ends on CPU 1; the server runs on CPU 0. A size passes when every
call was set up and both legs of every call got their 50 frames per second in
the steady part of the run, none more than 45 ms after the previous one.

With ``--rtpengine`` each codec is then run the same way through rtpengine
(Debian's ``rtpengine-daemon``, userspace mode, one worker thread, on CPU 0),
driven by bench/rtpengine_load over its ng protocol: the same calls, codecs,
tones and pass rule, media only (rtpengine has no SIP).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.load_runs import new_server, report, row, run_load, start_table
from tests.integration.mediation_setup import ALICE_PW, configure_routing
from tests.integration.server import free_port

TARGETS = {"opus": 100, "G722": 800, "PCMU": 1500}  # the calls per core


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codecs", default="opus,G722,PCMU")
    parser.add_argument("--calls", default="50,100,150,200,250,300,400,500")
    parser.add_argument("--seconds", type=float, default=12.0)
    # ...-python: without the compiled relay ([media] relay_offload = false)
    parser.add_argument("--rtp", choices=("shared", "shared-python", "per-call",
                                          "per-call-python"), default="shared")
    parser.add_argument("--rtpengine", action="store_true",
                        help="also run each codec through rtpengine, for the ratio")
    args = parser.parse_args()
    pin = start_table(args.rtp, ", mediation: internal codec -> PCMU gateway")
    for codec in args.codecs.split(","):
        print(f"-- internal {codec} <-> gateway PCMU "
              f"({'relayed' if codec == 'PCMU' else 'transcoded'}; target "
              f"{TARGETS.get(codec, '?')} per core)")
        best = 0
        for n in [int(c) for c in args.calls.split(",")]:
            server = new_server(args.rtp, pin, f"sb-med-{codec}-")
            gateway_port = free_port()
            configure_routing(server.db, {"cheap": gateway_port, "dear": free_port()})
            result = run_load(server, n, args.seconds, pin,
                              ["--gateway-port", str(gateway_port), "--codec", codec,
                               "--auth", f"alice:{ALICE_PW}"], module="bench.mediation_load")
            if not report(n, result, server):
                break
            best = n
        print(f"largest passing size: {best} concurrent {codec} <-> PCMU calls on one core")
        if args.rtpengine:
            theirs = rtpengine_sizes(codec, [int(c) for c in args.calls.split(",")],
                                     args.seconds, pin)
            ratio = f"{best / theirs:.2f}" if theirs else "n/a"
            print(f"rtpengine: {theirs} concurrent {codec} <-> PCMU calls on one core; "
                  f"Switchboard / rtpengine = {ratio}")


def rtpengine_sizes(codec: str, sizes: list[int], seconds: float, pin: bool) -> int:
    """The largest size rtpengine passes for ``codec``, printing a row per size."""
    binary = shutil.which("rtpengine")
    if binary is None:
        print("rtpengine: not installed (apt install rtpengine-daemon)")
        return 0
    print(f"-- rtpengine: internal {codec} <-> gateway PCMU")
    best = 0
    for n in sizes:
        result = run_rtpengine(binary, codec, n, seconds, pin)
        if isinstance(result, str):
            print(f"{n:>6} {result}")
            break
        ok = result["established"] == n and result["frames_missing"] == 0 \
            and result["late_gaps"] == 0 and result["gateway_got_types"] == [0]
        print(row(n, result, "-", ok))
        if not ok:
            break
        best = n
    return best


def run_rtpengine(binary: str, codec: str, size: int, seconds: float, pin: bool
                  ) -> dict[str, Any] | str:
    ng_port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="sb-rtpengine-"))
    log = (workdir / "rtpengine.log").open("w")
    daemon = subprocess.Popen(
        [*(["taskset", "-c", "0"] if pin else []), binary, "--foreground", "--log-stderr",
         "--log-level=4", "--table=-1", "--interface=127.0.0.1",
         f"--listen-ng=127.0.0.1:{ng_port}", "--port-min=30000", "--port-max=60000",
         "--num-threads=1", "--media-num-threads=1", f"--pidfile={workdir}/pid"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        time.sleep(1.0)  # let it bind
        if daemon.poll() is not None:
            return f"rtpengine exited: {(workdir / 'rtpengine.log').read_text()[-500:]}"
        load = subprocess.run(
            [*(["taskset", "-c", "1"] if pin else []), sys.executable, "-m",
             "bench.rtpengine_load", "--ng", f"127.0.0.1:{ng_port}", "--calls", str(size),
             "--seconds", str(seconds), "--codec", codec, "--server-pid", str(daemon.pid)],
            capture_output=True, text=True, timeout=seconds + 180)
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=10)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(timeout=5)
        log.close()
    if load.returncode != 0:
        return f"load generator failed: {load.stderr[-500:]}"
    result: dict[str, Any] = json.loads(load.stdout.strip().splitlines()[-1])
    return result


if __name__ == "__main__":
    main()
