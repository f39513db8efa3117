"""The ``switchboard`` command line.

Every command that prints data also takes ``--json``. Errors print one line
``switchboard: error: ...`` to stderr and exit non-zero (2 for usage errors,
1 for everything else).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from confserver import cli_phone
from confserver.cli_support import (
    CliError,
    Parser,
    config_of,
    database_of,
    emit,
    secret_from,
    with_db,
)
from confserver.roles import installed_roles, role_demo_data
from confserver.storage.database import Database, StorageError
from confserver.storage.meetings import (
    MeetingDirectory,
    MeetingError,
    MeetingRecord,
    conference_uri,
)
from confserver.storage.users import UserDirectory, UserError

T = TypeVar("T")
_config = config_of
_db = database_of
_emit = emit


# ---------------------------------------------------------------- commands

def cmd_serve(args: argparse.Namespace) -> int:
    from confserver.process import serve

    return serve(_config(args))


def _password(args: argparse.Namespace) -> str:
    return secret_from(args, "password", "Password")


def _with_db(args: argparse.Namespace, action: Callable[[Database], T]) -> T:
    return with_db(args, action, (UserError, MeetingError))


def _users(args: argparse.Namespace, action: Callable[[UserDirectory], T]) -> T:
    return _with_db(args, lambda db: action(UserDirectory(db)))


def cmd_user_add(args: argparse.Namespace) -> int:
    password = _password(args)
    record = _users(args, lambda users: users.add(args.uri, password, args.name or "",
                                                  args.phone, time.time(), args.extension))
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


def _meetings(args: argparse.Namespace, action: Callable[[MeetingDirectory], T]) -> T:
    return _with_db(args, lambda db: action(MeetingDirectory(db)))


def _when(option: str, text: str | None) -> float | None:
    """An ISO 8601 date and time (local time unless it names an offset) as a timestamp."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise CliError(f"{option} {text!r} is not a date and time like 2026-12-01T10:00") from exc
    return moment.timestamp()


def _list_option(text: str | None) -> list[str]:
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def _meeting_lines(record: MeetingRecord, domain: str) -> list[str]:
    def stamp(value: float | None) -> str:
        return datetime.fromtimestamp(value).isoformat(timespec="minutes") if value else "-"

    return [f"conference ID:  {record.conference_id}",
            f"conference URI: {conference_uri(domain, record.conference_id)}",
            f"organizer:      {record.organizer}",
            f"subject:        {record.subject or '-'}",
            f"access:         {record.access}" + (" (passcode set)" if record.has_passcode else ""),
            f"kind:           {record.kind}, {record.state}",
            f"start / end:    {stamp(record.starts_at)} / {stamp(record.ends_at)}",
            f"expires:        {stamp(record.expires_at)}",
            f"presenters:     {', '.join(record.presenters) or '-'}",
            f"attendees:      {', '.join(record.attendees) or '-'}"]


def cmd_meeting_create(args: argparse.Namespace) -> int:
    domain = _config(args).domain
    starts_at, ends_at = _when("--start", args.start), _when("--end", args.end)
    record = _meetings(args, lambda meetings: meetings.create(
        args.organizer, args.access, now=time.time(), passcode=args.passcode,
        conference_id=args.id, subject=args.subject or "",
        presenters=_list_option(args.presenters), attendees=_list_option(args.attendees),
        starts_at=starts_at, ends_at=ends_at, kind="adhoc" if args.adhoc else "scheduled"))
    _emit(args, record.as_dict(domain), "\n".join(_meeting_lines(record, domain)))
    return 0


def cmd_meeting_list(args: argparse.Namespace) -> int:
    domain = _config(args).domain
    records = _meetings(args, lambda meetings: meetings.list(include_ended=args.all))
    lines = [f"{'ID':10} {'ACCESS':10} {'STATE':7} {'ORGANIZER':28} SUBJECT"]
    lines += [f"{r.conference_id:10} {r.access:10} {r.state:7} {r.organizer:28} {r.subject}"
              for r in records]
    _emit(args, [r.as_dict(domain) for r in records],
          "\n".join(lines) if records else "no meetings")
    return 0


def cmd_meeting_show(args: argparse.Namespace) -> int:
    domain = _config(args).domain
    record = _meetings(args, lambda meetings: meetings.require(args.conference_id))
    _emit(args, record.as_dict(domain), "\n".join(_meeting_lines(record, domain)))
    return 0


def cmd_meeting_end(args: argparse.Namespace) -> int:
    domain = _config(args).domain
    record = _meetings(args, lambda meetings: meetings.end(args.conference_id, time.time()))
    _emit(args, record.as_dict(domain), f"ended meeting {record.conference_id}")
    return 0


def cmd_recording_list(args: argparse.Namespace) -> int:
    import wave

    directory = Path(_config(args).recording_directory)
    rows: list[dict[str, object]] = []
    if directory.is_dir():
        for path in sorted(directory.glob("*.wav")):
            conference_id, _, stamp = path.stem.partition("-")
            try:
                with wave.open(str(path)) as wav:
                    seconds = wav.getnframes() / wav.getframerate()
            except (OSError, EOFError, wave.Error):
                seconds = -1.0  # still being written, or damaged
            rows.append({"file": str(path), "conference_id": conference_id, "started": stamp,
                         "seconds": round(seconds, 1), "bytes": path.stat().st_size})
    lines = [f"{'CONFERENCE':11} {'STARTED (UTC)':17} {'SECONDS':>8}  FILE"]
    lines += [f"{r['conference_id']!s:11} {r['started']!s:17} {r['seconds']!s:>8}  {r['file']}"
              for r in rows]
    _emit(args, rows, "\n".join(lines) if rows else f"no recordings in {directory}")
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
    config = _config(args)
    try:
        summary = install_demo_data(db, config)
        for role in installed_roles():
            summary["lines"] += role_demo_data(role, db, config)
    finally:
        db.close()
    _emit(args, summary, "\n".join(summary["lines"]))
    return 0


# ---------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    common = Parser(add_help=False)
    common.add_argument("--config", metavar="FILE", help="TOML configuration file")
    common.add_argument("--database", metavar="URL", help="override [database] url")
    common.add_argument("--json", action="store_true", help="print machine-readable JSON")

    parser = Parser(prog="switchboard", description="Switchboard conferencing and voice server")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("serve", parents=[common], help="run the server")
    p.set_defaults(func=cmd_serve)

    user = sub.add_parser("user", help="manage users")
    usub = user.add_subparsers(dest="action", required=True, parser_class=Parser)
    p = usub.add_parser("add", parents=[common], help="add a user")
    p.add_argument("uri", help="SIP URI, e.g. sip:alice@example.com")
    p.add_argument("--name", help="display name")
    p.add_argument("--phone", help="line URI number in E.164, e.g. +14255550101")
    p.add_argument("--extension", help="internal extension (2-15 digits), for dial-in sign-in")
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
    cli_phone.add_user_commands(usub, common)
    cli_phone.add_commands(sub, common)

    meeting = sub.add_parser("meeting", help="manage meetings")
    msub = meeting.add_subparsers(dest="action", required=True, parser_class=Parser)
    p = msub.add_parser("create", parents=[common], help="create a meeting",
                        description="Create a meeting; prints its conference ID and the "
                                    "conference SIP URI clients dial to join.")
    p.add_argument("--organizer", required=True, help="SIP URI of a Switchboard user")
    p.add_argument("--access", required=True,
                   help="open (any signed-in user), closed (invitees only) or "
                        "anonymous (anyone with the ID and passcode)")
    p.add_argument("--passcode", help="4-24 digits; required for anonymous meetings")
    p.add_argument("--id", help="conference ID, 4-16 digits (random 7 digits when omitted)")
    p.add_argument("--subject")
    p.add_argument("--presenters", help="comma-separated SIP URIs")
    p.add_argument("--attendees", help="comma-separated SIP URIs")
    p.add_argument("--start", help="start, e.g. 2026-12-01T10:00 (local time)")
    p.add_argument("--end", help="end; the meeting expires 14 days after it")
    p.add_argument("--adhoc", action="store_true", help="an ad-hoc meeting (no schedule)")
    p.set_defaults(func=cmd_meeting_create)
    p = msub.add_parser("list", parents=[common], help="list active meetings")
    p.add_argument("--all", action="store_true", help="include ended meetings")
    p.set_defaults(func=cmd_meeting_list)
    p = msub.add_parser("show", parents=[common], help="show one meeting")
    p.add_argument("conference_id")
    p.set_defaults(func=cmd_meeting_show)
    p = msub.add_parser("end", parents=[common], help="end a meeting")
    p.add_argument("conference_id")
    p.set_defaults(func=cmd_meeting_end)

    recording = sub.add_parser("recording", help="meeting recordings")
    rsub = recording.add_subparsers(dest="action", required=True, parser_class=Parser)
    p = rsub.add_parser("list", parents=[common], help="list recordings ([media] recordings)")
    p.set_defaults(func=cmd_recording_list)

    db = sub.add_parser("db", help="database maintenance")
    dsub = db.add_subparsers(dest="action", required=True, parser_class=Parser)
    p = dsub.add_parser("upgrade", parents=[common], help="apply pending migrations")
    p.set_defaults(func=cmd_db_upgrade)

    cfg = sub.add_parser("config", help="configuration")
    csub = cfg.add_subparsers(dest="action", required=True, parser_class=Parser)
    p = csub.add_parser("check", parents=[common], help="validate a configuration file")
    p.set_defaults(func=cmd_config_check)

    tls = sub.add_parser("tls", help="TLS material")
    tsub = tls.add_subparsers(dest="action", required=True, parser_class=Parser)
    p = tsub.add_parser("generate", parents=[common], help="write a self-signed certificate")
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--host", default="localhost")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_tls_generate)

    p = sub.add_parser("demo", parents=[common], help="install demo data (idempotent)")
    p.set_defaults(func=cmd_demo)
    for role in installed_roles():
        role.add_commands(sub, common)
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
