"""bench/lcr: least-cost routing rate tables at scale.

    .venv/bin/python -m bench.lcr [--prefixes 1000000] [--lookups 200000] [--runs 3]

Builds a table of random E.164 prefixes (2 to 9 digits, every country code
present) and reports the time to load it (targets: under 5 s for a million),
the memory it takes, and the latency of lookups for random numbers (median and
p99 of single lookups timed in batches of 100, target p99 under 5 us). A
second table shows the same with a tenth of the prefixes carrying a
time-of-day window. ``--store`` also imports the table into a fresh SQLite
database through the mediation store (what ``rates import`` does) and reads it
back (what a server does after an import).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import time
import tracemalloc

from mediation.rates import RateTable, Window

EVENING = Window(frozenset(range(5)), 18 * 60, 8 * 60)


def prefixes(count: int, rng: random.Random) -> list[str]:
    out = set()
    while len(out) < count:
        out.add(str(rng.randint(1, 9)) + "".join(rng.choice("0123456789")
                                                 for _ in range(rng.randint(1, 8))))
    return list(out)


def load(items: list[str], windows: bool) -> tuple[RateTable, float]:
    gc.collect()
    started = time.perf_counter()
    table = RateTable()
    for i, prefix in enumerate(items):
        if windows and i % 10 == 0:
            table.add(prefix, 0.001 * (i % 97), EVENING)
        else:
            table.add(prefix, 0.001 * (i % 97))
    return table, time.perf_counter() - started


def lookup_latency(table: RateTable, numbers: list[str]) -> tuple[float, float]:
    batch = 100
    per_lookup = []
    lookup = table.lookup
    for i in range(0, len(numbers), batch):
        chunk = numbers[i:i + batch]
        started = time.perf_counter_ns()
        for n in chunk:
            lookup(n, 2, 20 * 60)
        per_lookup.append((time.perf_counter_ns() - started) / len(chunk) / 1000)
    per_lookup.sort()
    return statistics.median(per_lookup), per_lookup[int(len(per_lookup) * 0.99)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefixes", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--store", action="store_true", help="also time the database round trip")
    args = parser.parse_args()
    rng = random.Random(7)
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}")
    items = prefixes(args.prefixes, rng)
    numbers = ["+" + str(rng.randint(1, 9)) + "".join(rng.choice("0123456789")
                                                      for _ in range(rng.randint(9, 13)))
               for _ in range(args.lookups)]
    for windows in (False, True):
        loads, medians, p99s = [], [], []
        for _ in range(args.runs):
            table, seconds = load(items, windows)
            loads.append(seconds)
            median, p99 = lookup_latency(table, numbers)
            medians.append(median)
            p99s.append(p99)
            del table
        tracemalloc.start()
        table, _ = load(items, windows)
        memory = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        label = "10% with windows" if windows else "no windows"
        print(f"{args.prefixes} prefixes ({label}): load {statistics.median(loads):.2f} s "
              f"(runs {', '.join(f'{x:.2f}' for x in loads)}), {memory / 1e6:.0f} MB "
              f"({memory / args.prefixes:.0f} B/prefix); lookup median "
              f"{statistics.median(medians):.2f} us, p99 {statistics.median(p99s):.2f} us")
        del table
    if args.store:
        store_round_trip(items)


def store_round_trip(items: list[str]) -> None:
    import tempfile

    from confserver.storage.database import open_database
    from mediation.profiles import from_profile
    from mediation.rates import ALWAYS
    from mediation.store import MediationStore

    with tempfile.TemporaryDirectory() as tmp:
        db = open_database(f"sqlite:///{tmp}/sb.db")
        store = MediationStore(db)
        store.add_gateway(from_profile("gw1", "generic-sip", {}))
        started = time.perf_counter()
        store.import_rates("gw1", ((p, 0.01, ALWAYS) for p in items))
        imported = time.perf_counter() - started
        started = time.perf_counter()
        table = store.rate_table("gw1")
        loaded = time.perf_counter() - started
        db.close()
    print(f"SQLite round trip: import {len(items)} rates {imported:.1f} s, "
          f"read back into a table {loaded:.1f} s ({table.size} rates)")


if __name__ == "__main__":
    main()
