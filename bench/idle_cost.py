"""bench/idle_cost: CPU of a server holding 10,000 scheduled meetings nobody is in.

    .venv/bin/python -m bench.idle_cost [--meetings 10000] [--seconds 20]

Runs the server twice, on an empty database and on one with N scheduled
meetings (each with invitees), and prints the CPU time each used over the
same idle window. Meetings cost nothing until someone joins: the focus loads
one from the database on the first INVITE or SUBSCRIBE, and nothing runs
for the others.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from confserver.storage.database import open_database
from confserver.storage.meetings import MeetingDirectory
from tests.integration.server import RunningServer


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu(meetings: int, seconds: float) -> float:
    workdir = Path(tempfile.mkdtemp(prefix="sb-idle-"))
    server = RunningServer(workdir, log_level="info")
    server.write_config()
    server.add_user("alice", "alice-password")
    if meetings:
        db = open_database(server.db)
        try:
            directory = MeetingDirectory(db)
            now = time.time()
            for i in range(meetings):
                directory.create("sip:alice@example.com", "open", now=now,
                                 conference_id=f"{1000000 + i}",
                                 attendees=[f"sip:user{i}@example.com"],
                                 starts_at=now + 86400, ends_at=now + 90000)
        finally:
            db.close()
    server.start()
    try:
        assert server.proc is not None
        time.sleep(2.0)  # start-up done
        before = cpu_seconds(server.proc.pid)
        time.sleep(seconds)
        return cpu_seconds(server.proc.pid) - before
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meetings", type=int, default=10000)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}")
    empty = idle_cpu(0, args.seconds)
    full = idle_cpu(args.meetings, args.seconds)
    print(f"idle CPU over {args.seconds:.0f} s: empty database {empty:.2f} s "
          f"({100 * empty / args.seconds:.2f}%), {args.meetings} meetings {full:.2f} s "
          f"({100 * full / args.seconds:.2f}%)")


if __name__ == "__main__":
    main()
