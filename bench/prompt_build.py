"""bench/prompt_build: time and disk to build every prompt of all 14 languages.

    .venv/bin/python -m bench.prompt_build [--jobs 4] [--runs 3]

Each run builds from scratch into a fresh directory (espeak-ng, then 8 and
16 kHz WAVs); the median run is reported, then a second build over the first
shows what skipping costs.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from confserver.storage.access_numbers import LANGUAGES
from dialin.catalog import load_catalogs
from dialin.prompt_build import build_prompts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    catalogs = list(load_catalogs(LANGUAGES).values())
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, {args.jobs} espeak-ng jobs")
    seconds, sizes, built = [], [], 0
    for _ in range(args.runs):
        out = Path(tempfile.mkdtemp(prefix="sb-prompts-"))
        started = time.perf_counter()
        report = build_prompts(catalogs, out, jobs=args.jobs)
        seconds.append(time.perf_counter() - started)
        sizes.append(report.bytes_on_disk)
        built = report.built
        started = time.perf_counter()
        again = build_prompts(catalogs, out, jobs=args.jobs)
        rebuild = time.perf_counter() - started
        shutil.rmtree(out)
    print(f"languages {len(catalogs)}, prompt pieces {built} (x2 rates)")
    print(f"full build: median {statistics.median(seconds):.1f} s "
          f"(runs {', '.join(f'{s:.1f}' for s in seconds)})")
    print(f"disk: {statistics.median(sizes) / 1e6:.1f} MB")
    print(f"second build (all skipped: {again.skipped}): {rebuild:.2f} s")


if __name__ == "__main__":
    main()
