"""bench/conference_capacity: G.711 participants in one meeting on one core.

    .venv/bin/python -m bench.conference_capacity [--participants 100,200,300] [--seconds 12]
                                                  [--rtp per-call|shared] [--talkers 3]
                                                  [--listener-codec PCMU|opus]

The server runs pinned to CPU 0; bench/rtp_load (CPU 1) joins N participants
to one open meeting over SIP (digest-authenticated) and streams G.711 from a
socket per participant: the first three send tones, the rest silence. The
full pipeline runs: jitter buffer, decode, VAD, dominant speaker, mixing,
shared encodes, RTCP. A size passes when every participant got its 50 frames
a second in the steady window and no frame came more than 45 ms after the
previous one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.integration.server import RunningServer, cli

MEETING = "7654321"
PASSWORD = "load-password"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", default="100,200,300,400")
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--rtp", choices=("shared", "per-call"), default="per-call")
    parser.add_argument("--talkers", type=int, default=3)
    parser.add_argument("--listener-codec", choices=("PCMU", "opus"), default="PCMU",
                        help="opus: the non-talkers join with Opus (the Opus listeners bench)")
    args = parser.parse_args()
    pin = shutil.which("taskset") is not None and (os.cpu_count() or 1) > 1
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, RTP {args.rtp}, {args.talkers} talkers, "
          f"listeners {args.listener_codec}")
    print(f"{'parts':>6} {'joined':>7} {'missing frames':>15} {'late':>5} {'late ticks':>11}  result")
    best = 0
    for n in [int(c) for c in args.participants.split(",")]:
        workdir = Path(tempfile.mkdtemp(prefix="sb-conf-"))
        server = RunningServer(workdir, log_level="info",
                               command_prefix=("taskset", "-c", "0") if pin else (),
                               rtp_ports="20000-65000",
                               media_extra="inactivity_timeout = 300" +
                               ("\nshared_port = 19998" if args.rtp == "shared" else ""))
        server.write_config()
        server.add_user("load", PASSWORD)
        made = cli("meeting", "create", "--organizer", "sip:load@example.com", "--access", "open",
                   "--id", MEETING, db=server.db)
        assert made.returncode == 0, made.stderr
        server.start()
        try:
            load = subprocess.run(
                [*(["taskset", "-c", "1"] if pin else []), sys.executable, "-m", "bench.rtp_load",
                 "--server", f"127.0.0.1:{server.port}", "--calls", str(n),
                 "--seconds", str(args.seconds), "--target", f"conf-{MEETING}",
                 "--auth", f"load:{PASSWORD}", "--talkers", str(args.talkers),
                 "--listener-codec", args.listener_codec],
                capture_output=True, text=True, timeout=args.seconds + 180)
        finally:
            server.stop()
        if load.returncode != 0:
            print(f"{n:>6} load generator failed: {load.stderr[-500:]}")
            break
        r = json.loads(load.stdout.strip().splitlines()[-1])
        found = re.findall(r"media clock: (\d+) late ticks", server.log())
        late_ticks = int(found[-1]) if found else -1
        ok = r["established"] == n and r["frames_missing"] == 0 and r["late_gaps"] == 0
        print(f"{n:>6} {r['established']:>7} {r['frames_missing']:>15} {r['late_gaps']:>5} "
              f"{late_ticks:>11}  {'PASS' if ok else 'FAIL'}")
        if not ok:
            break
        best = n
    print(f"largest passing size: {best} participants in one meeting on one core")


if __name__ == "__main__":
    main()
