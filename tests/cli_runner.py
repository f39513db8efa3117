"""Running the switchboard CLI as a subprocess against a test database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_cli(*args: str, db: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SWITCHBOARD_CONFIG="")
    return subprocess.run([sys.executable, "-m", "confserver", *args, "--database",
                           f"sqlite:///{db}"] if args and args[0] not in ("--help",) else
                          [sys.executable, "-m", "confserver", *args],
                          capture_output=True, text=True, timeout=60, env=env, input=stdin)
