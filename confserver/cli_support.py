"""What every ``switchboard`` command shares: the parser class, configuration,
database access and output in text or JSON."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any, NoReturn, TypeVar

from confserver.config import Config, ConfigError, load_config
from confserver.storage.database import Database, StorageError, open_database

T = TypeVar("T")


class CliError(Exception):
    """A command failed for a reason the user can act on."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"switchboard: error: {message} (see '{self.prog} --help')\n")


def config_of(args: argparse.Namespace) -> Config:
    path = args.config or os.environ.get("SWITCHBOARD_CONFIG") or None
    try:
        config = load_config(path)
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    if getattr(args, "database", None):
        config = replace(config, database_url=args.database)
    return config


def database_of(args: argparse.Namespace) -> Database:
    try:
        return open_database(config_of(args).database_url)
    except StorageError as exc:
        raise CliError(str(exc)) from exc


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(text)


class ProgressBar:
    """A progress bar on stderr for a long CLI command, drawn only at a terminal:
    piped into a log or a service journal, each redraw would be a line of noise
    (the command's closing summary says what was done). ``hidden`` also hides it
    (``--json``, or work too small to watch)."""

    def __init__(self, total: int, unit: str, desc: str, hidden: bool = False) -> None:
        from tqdm import tqdm  # imported by the commands that draw one, not by every command

        self._bar = tqdm(total=total, unit=unit, desc=desc, file=sys.stderr,
                         disable=hidden or not sys.stderr.isatty())

    def reached(self, done: int) -> None:
        """``done`` of the total are finished (redrawn at most a few times a second)."""
        if done > self._bar.n:
            self._bar.update(done - self._bar.n)

    def close(self) -> None:
        self._bar.close()


def with_db(args: argparse.Namespace, action: Callable[[Database], T],
            errors: tuple[type[Exception], ...] = ()) -> T:
    """Run one storage operation, turning bad input (``errors``) into a one-line CLI error."""
    db = database_of(args)
    try:
        return action(db)
    except errors as exc:
        raise CliError(str(exc)) from exc
    finally:
        db.close()


def secret_from(args: argparse.Namespace, option: str, label: str) -> str:
    """The value of ``--<option>``, or typed twice at a terminal without echo."""
    value = getattr(args, option)
    if value is not None:
        return str(value)
    if not sys.stdin.isatty():
        raise CliError(f"--{option} is required when not run from a terminal")
    first = getpass.getpass(f"{label}: ")
    if first != getpass.getpass("Again: "):
        raise CliError(f"the two {label.lower()}s differ")
    return first
