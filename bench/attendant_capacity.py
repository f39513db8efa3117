"""bench/attendant_capacity: concurrent calls at the dial-in attendant on one core.

    .venv/bin/python -m bench.attendant_capacity [--calls 250,500,750] [--seconds 12]
                                                 [--rtp shared|per-call]

Every call dials the access number and sends a steady tone (so the in-band DTMF
detector works on every frame of every call) while the attendant plays its
prompts (welcome, meeting ID, language menu) to it. The server runs pinned to
CPU 0, bench/rtp_load on CPU 1. A size passes as in bench/echo_capacity: every
call set up, every frame of the steady window came back, none late.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.load_runs import new_server, report, run_load, start_table
from dialin.catalog import load_catalogs
from dialin.prompt_build import build_prompts
from tests.integration.server import cli

NUMBER = "+14255550100"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", default="250,500,750")
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--rtp", choices=("shared", "per-call"), default="shared")
    args = parser.parse_args()
    prompts = Path(tempfile.mkdtemp(prefix="sb-prompts-"))
    build_prompts(load_catalogs(("en-US", "fr-FR")).values(), prompts)
    pin = start_table(args.rtp)
    best = 0
    for n in [int(c) for c in args.calls.split(",")]:
        server = new_server(args.rtp, pin, "sb-attendant-")
        server.extra_config = f'[dialin]\nprompts = "{prompts}"\n'
        server.write_config()
        added = cli("access-number", "add", NUMBER, "--name", "Bench", "--language", "en-US",
                    "--also", "fr-FR", db=server.db)
        assert added.returncode == 0, added.stderr
        result = run_load(server, n, args.seconds, pin, ["--target", NUMBER, "--talkers", str(n)])
        if not report(n, result, server):
            break
        best = n
    print(f"largest passing size: {best} concurrent attendant calls on one core "
          "(prompts + in-band DTMF detection)")


if __name__ == "__main__":
    main()
