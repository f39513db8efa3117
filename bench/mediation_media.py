"""bench/mediation_media: concurrent calls per core through the mediation server with
real loopback RTP on both legs, transcoded or relayed.

    .venv/bin/python -m bench.mediation_media [--codecs opus,G722,PCMU]
        [--calls 50,100,...] [--seconds 12] [--rtp shared|per-call]

For each internal codec, calls of rising size go from an internal user offering
only that codec, through the server, to a G.711 (PCMU) gateway: Opus and G.722
calls are transcoded both ways (with resampling), PCMU calls are relayed (the
samples pass unchanged and re-encode to the same bytes). bench/mediation_load
plays both ends on CPU 1; the server runs on CPU 0. A size passes when every
call was set up and both legs of every call got their 50 frames per second in
the steady part of the run, none more than 45 ms after the previous one.
"""

from __future__ import annotations

import argparse

from bench.load_runs import new_server, report, run_load, start_table
from tests.integration.mediation_setup import ALICE_PW, configure_routing
from tests.integration.server import free_port

TARGETS = {"opus": 100, "G722": 800, "PCMU": 1500}  # the calls per core


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codecs", default="opus,G722,PCMU")
    parser.add_argument("--calls", default="50,100,150,200,250,300,400,500")
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--rtp", choices=("shared", "per-call"), default="shared")
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


if __name__ == "__main__":
    main()
