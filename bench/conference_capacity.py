"""bench/conference_capacity: G.711 participants in one meeting on one core.

    .venv/bin/python -m bench.conference_capacity [--participants 100,200,300] [--seconds 12]
                                                  [--rtp per-call|shared] [--talkers 3]
                                                  [--listener-codec PCMU|opus]
                                                  [--listener-audio encoded|level|dtx]

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
import os
import platform
import shutil

from bench.load_runs import HEADER, new_server, report, run_load
from tests.integration.server import cli

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
    parser.add_argument("--listener-audio", choices=("encoded", "level", "dtx"),
                        default="encoded",
                        help="what Opus listeners send (see bench/rtp_load --help)")
    args = parser.parse_args()
    pin = shutil.which("taskset") is not None and (os.cpu_count() or 1) > 1
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, RTP {args.rtp}, {args.talkers} talkers, "
          f"listeners {args.listener_codec}"
          f"{f' ({args.listener_audio})' if args.listener_codec == 'opus' else ''}")
    print(HEADER)
    best = 0
    for n in [int(c) for c in args.participants.split(",")]:
        server = new_server(args.rtp, pin, "sb-conf-")
        server.add_user("load", PASSWORD)
        made = cli("meeting", "create", "--organizer", "sip:load@example.com", "--access", "open",
                   "--id", MEETING, db=server.db)
        assert made.returncode == 0, made.stderr
        extra = ["--target", f"conf-{MEETING}", "--auth", f"load:{PASSWORD}",
                 "--talkers", str(args.talkers), "--listener-codec", args.listener_codec,
                 "--listener-audio", args.listener_audio]
        if not report(n, run_load(server, n, args.seconds, pin, extra), server):
            break
        best = n
    print(f"largest passing size: {best} participants in one meeting on one core")


if __name__ == "__main__":
    main()
