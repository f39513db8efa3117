"""bench/echo_capacity: concurrent G.711 echo calls on one core, real loopback RTP.

    .venv/bin/python -m bench.echo_capacity [--calls 250,500,750,1000] [--seconds 12]
                                            [--rtp shared|per-call]

The server runs pinned to CPU 0; bench/rtp_load (pinned to CPU 1) sets up the
calls and streams RTP to them. A size passes when every call was set up,
every call got its full 50 frames per second back in the steady part of the
run (no dropped frames), and no echo came more than 45 ms after the previous
one (no late frames). The server's late media-clock ticks over the whole run,
call set-up included, are printed for information.
"""

from __future__ import annotations

import argparse

from bench.load_runs import new_server, report, run_load, start_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", default="250,500,750,1000,1250")
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--rtp", choices=("shared", "per-call"), default="shared",
                        help="one RTP port pair for every call ([media] shared_port), "
                             "or a pair per call")
    args = parser.parse_args()
    pin = start_table(args.rtp)
    best = 0
    for n in [int(c) for c in args.calls.split(",")]:
        server = new_server(args.rtp, pin, "sb-echo-")
        if not report(n, run_load(server, n, args.seconds, pin, []), server):
            break
        best = n
    print(f"largest passing size: {best} concurrent G.711 echo calls on one core")


if __name__ == "__main__":
    main()
