"""The ``switchboard`` command line.

Every command that prints data also takes ``--json``. Errors print one line
``switchboard: error: ...`` to stderr and exit non-zero (2 for usage errors,
1 for everything else).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

from confserver.config import Config, ConfigError, load_config
from confserver.storage.database import Database, StorageError, open_database
from confserver.storage.users import UserDirectory, UserError

T = TypeVar("T")


class CliError(Exception):
    """A command failed for a reason the user can act on."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"switchboard: error: {message} (see '{self.prog} --help')\n")


def _config(args: argparse.Namespace) -> Config:
    path = args.config or os.environ.get("SWITCHBOARD_CONFIG") or None
    try:
        config = load_config(path)
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    if getattr(args, "database", None):
        from dataclasses import replace
        config = replace(config, database_url=args.database)
    return config


def _db(args: argparse.Namespace) -> Database:
    try:
        return open_database(_config(args).database_url)
    except StorageError as exc:
        raise CliError(str(exc)) from exc


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(text)


# ---------------------------------------------------------------- commands

def cmd_serve(args: argparse.Namespace) -> int:
    from confserver.server.process import serve

    return serve(_config(args))


def _password(args: argparse.Namespace) -> str:
    if args.password is not None:
        return str(args.password)
    if not sys.stdin.isatty():
        raise CliError("--password is required when not run from a terminal")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Again: "):
        raise CliError("the two passwords differ")
    return first


def _users(args: argparse.Namespace, action: Callable[[UserDirectory], T]) -> T:
    """Run one user operation, turning bad input into a one-line CLI error."""
    db = _db(args)
    try:
        return action(UserDirectory(db))
    except UserError as exc:
        raise CliError(str(exc)) from exc
    finally:
        db.close()


def cmd_user_add(args: argparse.Namespace) -> int:
    password = _password(args)
    record = _users(args, lambda users: users.add(args.uri, password, args.name or "",
                                                  args.phone, time.time()))
    _emit(args, record.as_dict(), f"added {record.sip_uri}")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    users = _users(args, lambda directory: directory.list())
    rows = [u.as_dict() for u in users]
    lines = [f"{'SIP URI':32} {'NAME':24} PHONE"]
    lines += [f"{u.sip_uri:32} {u.display_name:24} {u.phone or '-'}" for u in users]
    _emit(args, rows, "\n".join(lines) if users else "no users")
    return 0


def cmd_user_remove(args: argparse.Namespace) -> int:
    _users(args, lambda users: users.remove(args.uri))
    _emit(args, {"removed": args.uri}, f"removed {args.uri}")
    return 0


def cmd_user_passwd(args: argparse.Namespace) -> int:
    password = _password(args)
    _users(args, lambda users: users.set_password(args.uri, password, time.time()))
    _emit(args, {"updated": args.uri}, f"password changed for {args.uri}")
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    db = _db(args)
    try:
        revision = db.current_revision()
    finally:
        db.close()
    _emit(args, {"revision": revision}, f"database at revision {revision}")
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    config = _config(args)
    data = {"source": config.source, "domain": config.domain,
            "listen": [str(a) for a in config.listen], "database": config.database_url}
    _emit(args, data, f"{config.source}: OK ({config.domain}, {len(config.listen)} listeners)")
    return 0


def cmd_tls_generate(args: argparse.Namespace) -> int:
    from confserver.tls import generate_self_signed

    try:
        generate_self_signed(args.cert, args.key, args.host, overwrite=args.force)
    except FileExistsError as exc:
        raise CliError(f"{exc.filename} exists (use --force to replace it)") from exc
    except OSError as exc:
        raise CliError(f"cannot write TLS files: {exc.strerror}") from exc
    _emit(args, {"certificate": args.cert, "private_key": args.key},
          f"wrote {args.cert} and {args.key}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from confserver.demo import install_demo_data

    db = _db(args)
    try:
        summary = install_demo_data(db, _config(args))
    finally:
        db.close()
    _emit(args, summary, "\n".join(summary["lines"]))
    return 0


# ---------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--config", metavar="FILE", help="TOML configuration file")
    common.add_argument("--database", metavar="URL", help="override [database] url")
    common.add_argument("--json", action="store_true", help="print machine-readable JSON")

    parser = _Parser(prog="switchboard", description="Switchboard conferencing and voice server")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("serve", parents=[common], help="run the server")
    p.set_defaults(func=cmd_serve)

    user = sub.add_parser("user", help="manage users")
    usub = user.add_subparsers(dest="action", required=True, parser_class=_Parser)
    p = usub.add_parser("add", parents=[common], help="add a user")
    p.add_argument("uri", help="SIP URI, e.g. sip:alice@example.com")
    p.add_argument("--name", help="display name")
    p.add_argument("--phone", help="line URI number in E.164, e.g. +14255550101")
    p.add_argument("--password", help="SIP password (prompted when omitted)")
    p.set_defaults(func=cmd_user_add)
    p = usub.add_parser("list", parents=[common], help="list users")
    p.set_defaults(func=cmd_user_list)
    p = usub.add_parser("remove", parents=[common], help="remove a user")
    p.add_argument("uri")
    p.set_defaults(func=cmd_user_remove)
    p = usub.add_parser("passwd", parents=[common], help="change a user's password")
    p.add_argument("uri")
    p.add_argument("--password")
    p.set_defaults(func=cmd_user_passwd)

    db = sub.add_parser("db", help="database maintenance")
    dsub = db.add_subparsers(dest="action", required=True, parser_class=_Parser)
    p = dsub.add_parser("upgrade", parents=[common], help="apply pending migrations")
    p.set_defaults(func=cmd_db_upgrade)

    cfg = sub.add_parser("config", help="configuration")
    csub = cfg.add_subparsers(dest="action", required=True, parser_class=_Parser)
    p = csub.add_parser("check", parents=[common], help="validate a configuration file")
    p.set_defaults(func=cmd_config_check)

    tls = sub.add_parser("tls", help="TLS material")
    tsub = tls.add_subparsers(dest="action", required=True, parser_class=_Parser)
    p = tsub.add_parser("generate", parents=[common], help="write a self-signed certificate")
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--host", default="localhost")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_tls_generate)

    p = sub.add_parser("demo", parents=[common], help="install demo data (idempotent)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"switchboard: error: {exc}", file=sys.stderr)
        return 1
    except StorageError as exc:
        print(f"switchboard: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("switchboard: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
