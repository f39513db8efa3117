"""CLI commands for phone access: access numbers, dial-in PINs and the PIN policy."""

from __future__ import annotations

import argparse
import time
from typing import Any

from confserver.cli_support import CliError, config_of, emit, secret_from, with_db
from confserver.storage.access_numbers import (
    AccessNumberDirectory,
    AccessNumberError,
    AccessNumberRecord,
)
from confserver.storage.pins import PinError, PinStore
from confserver.storage.users import UserError

ERRORS = (AccessNumberError, PinError, UserError)


def _number_line(n: AccessNumberRecord) -> str:
    others = ",".join(n.secondary_languages) or "-"
    return f"{n.number:16} {n.display_name:20} {n.region or '-':12} {n.language:6} {others:24} {n.sip_uri}"


def cmd_access_add(args: argparse.Namespace) -> int:
    domain = config_of(args).domain
    secondary = tuple(x.strip() for x in (args.also or "").split(",") if x.strip())
    record = with_db(args, lambda db: AccessNumberDirectory(db).add(
        args.number, name=args.name, language=args.language, domain=domain,
        secondary=secondary, region=args.region or "", sip_uri=args.uri, now=time.time()),
        ERRORS)
    emit(args, record.as_dict(),
         f"added access number {record.number} ({record.display_name})\n"
         f"  SIP URI: {record.sip_uri}\n"
         f"  languages: {', '.join(record.languages)}")
    return 0


def cmd_access_list(args: argparse.Namespace) -> int:
    numbers = with_db(args, lambda db: AccessNumberDirectory(db).list(), ERRORS)
    header = f"{'NUMBER':16} {'NAME':20} {'REGION':12} {'LANG':6} {'ALSO':24} SIP URI"
    emit(args, [n.as_dict() for n in numbers],
         "\n".join([header, *map(_number_line, numbers)]) if numbers else "no access numbers")
    return 0


def cmd_access_remove(args: argparse.Namespace) -> int:
    with_db(args, lambda db: AccessNumberDirectory(db).remove(args.number), ERRORS)
    emit(args, {"removed": args.number}, f"removed access number {args.number}")
    return 0


def cmd_set_pin(args: argparse.Namespace) -> int:
    pin = secret_from(args, "pin", "PIN")
    with_db(args, lambda db: PinStore(db).set_pin(args.uri, pin, time.time()), ERRORS)
    emit(args, {"updated": args.uri}, f"dial-in PIN set for {args.uri}")
    return 0


def cmd_unlock_pin(args: argparse.Namespace) -> int:
    with_db(args, lambda db: PinStore(db).unlock(args.uri), ERRORS)
    emit(args, {"unlocked": args.uri}, f"dial-in PIN unlocked for {args.uri}")
    return 0


def _policy_text(policy: dict[str, Any]) -> str:
    return "\n".join(f"{key.replace('_', '-'):16} {value}" for key, value in policy.items())


def cmd_policy_show(args: argparse.Namespace) -> int:
    policy = with_db(args, lambda db: PinStore(db).policy(), ERRORS).as_dict()
    emit(args, policy, _policy_text(policy))
    return 0


def cmd_policy_set(args: argparse.Namespace) -> int:
    changes: dict[str, object] = {}
    for option in ("min_length", "max_failures", "lockout_minutes", "expiry_days"):
        value = getattr(args, option)
        if value is not None:
            changes[option] = value
    if args.allow_trivial is not None:
        changes["allow_trivial"] = args.allow_trivial == "yes"
    if not changes:
        raise CliError("give at least one setting to change (see 'switchboard pin-policy set "
                       "--help')")
    policy = with_db(args, lambda db: PinStore(db).set_policy(time.time(), **changes),
                     ERRORS).as_dict()
    emit(args, policy, _policy_text(policy))
    return 0


def add_user_commands(users: Any, common: argparse.ArgumentParser) -> None:
    p = users.add_parser("set-pin", parents=[common], help="set a user's dial-in PIN",
                         description="Set the PIN a user keys in, with their extension or "
                                     "phone number, to join meetings by phone as a leader.")
    p.add_argument("uri")
    p.add_argument("--pin", help="the PIN (prompted when omitted)")
    p.set_defaults(func=cmd_set_pin)
    p = users.add_parser("unlock-pin", parents=[common],
                         help="lift a PIN lockout before it runs out")
    p.add_argument("uri")
    p.set_defaults(func=cmd_unlock_pin)


def _positive_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    access = sub.add_parser("access-number", help="dial-in access numbers")
    asub = access.add_subparsers(dest="action", required=True, parser_class=type(access))
    p = asub.add_parser("add", parents=[common], help="add an access number",
                        description="Add a dial-in access number; prints the SIP URI SIP "
                                    "clients can call directly.")
    p.add_argument("number", help="E.164 number, e.g. +14255550100")
    p.add_argument("--name", required=True, help="display name, e.g. Redmond")
    p.add_argument("--language", required=True, help="primary language, e.g. en-US")
    p.add_argument("--also", help="up to four more languages, e.g. fr-FR,de-DE,ja-JP")
    p.add_argument("--region", help="region (for the admin's own listing)")
    p.add_argument("--uri", help="SIP URI (default sip:<number>@<domain>)")
    p.set_defaults(func=cmd_access_add)
    p = asub.add_parser("list", parents=[common], help="list access numbers")
    p.set_defaults(func=cmd_access_list)
    p = asub.add_parser("remove", parents=[common], help="remove an access number")
    p.add_argument("number", help="its E.164 number or SIP URI")
    p.set_defaults(func=cmd_access_remove)

    policy = sub.add_parser("pin-policy", help="dial-in PIN policy")
    psub = policy.add_subparsers(dest="action", required=True, parser_class=type(policy))
    p = psub.add_parser("show", parents=[common], help="show the PIN policy")
    p.set_defaults(func=cmd_policy_show)
    p = psub.add_parser("set", parents=[common], help="change the PIN policy")
    p.add_argument("--min-length", type=_positive_int, help="4 to 24 (default 5)")
    p.add_argument("--max-failures", type=_positive_int,
                   help="wrong PINs in a row before the PIN locks (default 5)")
    p.add_argument("--lockout-minutes", type=_number,
                   help="a locked PIN unlocks after this long (default 15)")
    p.add_argument("--expiry-days", type=_number, help="0 for never (default 0)")
    p.add_argument("--allow-trivial", choices=("yes", "no"),
                   help="allow 11111, 12345 and the user's own numbers (default no)")
    p.set_defaults(func=cmd_policy_set)
