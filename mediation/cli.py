"""The mediation role's CLI: gateways and their profiles, dial plans, voice policies,
routes, rate tables and call records."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from confserver.cli_support import CliError, ProgressBar, config_of, emit, with_db
from confserver.storage.database import Database

from .dialplan import SCOPES, DialPlanError, NormalizationRule
from .gateways import GatewayError, parse_address, with_overrides
from .models import IN_PROGRESS, STALE_AFTER
from .profiles import from_profile, load_profiles
from .rates import RateError, parse_days, parse_time
from .routing import Refusal, Route, RoutingError
from .store import MediationError, MediationStore, read_rate_csv

ERRORS = (MediationError, GatewayError, DialPlanError, RoutingError, RateError)


def _store(db: Database) -> MediationStore:
    return MediationStore(db)


def _pairs(items: list[str] | None, option: str = "--set") -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CliError(f"{option}: {item!r} must be key=value")
        out[key.strip()] = value.strip()
    return out


def _list(text: str | None) -> tuple[str, ...]:
    return tuple(x.strip() for x in (text or "").split(",") if x.strip())


# ---------------------------------------------------------------- gateways
def cmd_gateway_add(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = _pairs(args.set)
    if args.address:
        try:
            overrides["host"], overrides["port"] = parse_address(args.address)
        except GatewayError as exc:
            raise CliError(str(exc)) from exc
    try:
        settings = from_profile(args.name, args.profile, overrides) if args.profile \
            else from_profile(args.name, "generic-sip", overrides)
    except GatewayError as exc:
        raise CliError(str(exc)) from exc
    with_db(args, lambda db: _store(db).add_gateway(settings), ERRORS)
    emit(args, settings.public_dict(),
         f"added gateway {settings.name} at {settings.transport}:{settings.host}:{settings.port}"
         f" (profile {settings.profile}: {settings.model or '-'})")
    return 0


def cmd_gateway_set(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = _pairs(args.pairs, "setting")
    if args.address:
        overrides["host"], overrides["port"] = parse_address(args.address)

    def change(db: Database) -> Any:
        store = _store(db)
        updated = with_overrides(store.gateway(args.name), overrides)
        store.update_gateway(updated)
        return updated

    settings = with_db(args, change, ERRORS)
    emit(args, settings.public_dict(), f"gateway {settings.name} updated")
    return 0


def cmd_gateway_list(args: argparse.Namespace) -> int:
    gateways = with_db(args, lambda db: _store(db).gateways(), ERRORS)
    lines = [f"{'NAME':16} {'ADDRESS':26} {'PROFILE':26} {'CODECS':12} {'DTMF':8} MAX"]
    for g in gateways:
        lines.append(f"{g.name:16} {g.transport + ':' + g.host + ':' + str(g.port):26} "
                     f"{g.profile or '-':26} {','.join(g.codecs):12} {g.dtmf:8} "
                     f"{g.max_calls or '-'}")
    emit(args, [g.public_dict() for g in gateways],
         "\n".join(lines) if gateways else "no gateways")
    return 0


def cmd_gateway_show(args: argparse.Namespace) -> int:
    g = with_db(args, lambda db: _store(db).gateway(args.name), ERRORS)
    data = g.public_dict()
    emit(args, data, "\n".join(f"{k:22} {v}" for k, v in data.items()))
    return 0


def cmd_gateway_remove(args: argparse.Namespace) -> int:
    with_db(args, lambda db: _store(db).remove_gateway(args.name), ERRORS)
    emit(args, {"removed": args.name}, f"removed gateway {args.name}")
    return 0


def cmd_gateway_profiles(args: argparse.Namespace) -> int:
    try:
        profiles = load_profiles()
    except GatewayError as exc:
        raise CliError(str(exc)) from exc
    emit(args, profiles, "\n".join(f"{name:28} {p.get('model', '')}"
                                   for name, p in profiles.items()))
    return 0


# ---------------------------------------------------------------- dial plans
def cmd_plan_add(args: argparse.Namespace) -> int:
    with_db(args, lambda db: _store(db).add_plan(args.name, args.scope, args.site or ""), ERRORS)
    emit(args, {"added": args.name, "scope": args.scope}, f"added {args.scope} dial plan {args.name}")
    return 0


def cmd_plan_remove(args: argparse.Namespace) -> int:
    with_db(args, lambda db: _store(db).remove_plan(args.name), ERRORS)
    emit(args, {"removed": args.name}, f"removed dial plan {args.name}")
    return 0


def cmd_rule_add(args: argparse.Namespace) -> int:
    try:
        rule = NormalizationRule(args.rule, args.pattern, args.translation, args.priority,
                                 args.internal)
    except DialPlanError as exc:
        raise CliError(str(exc)) from exc
    with_db(args, lambda db: _store(db).add_rule(args.plan, rule), ERRORS)
    emit(args, {"plan": args.plan, "rule": args.rule},
         f"added rule {args.rule} to dial plan {args.plan}")
    return 0


def cmd_rule_remove(args: argparse.Namespace) -> int:
    with_db(args, lambda db: _store(db).remove_rule(args.plan, args.rule), ERRORS)
    emit(args, {"plan": args.plan, "removed": args.rule}, f"removed rule {args.rule}")
    return 0


def cmd_plan_list(args: argparse.Namespace) -> int:
    plans = with_db(args, lambda db: _store(db).plans(), ERRORS)
    data = [{"name": n, "scope": s.plan.scope, "site": s.applies_to,
             "rules": [{"name": r.name, "pattern": r.pattern, "translation": r.translation,
                        "priority": r.priority, "internal_extension": r.internal_extension}
                       for r in s.plan.rules]} for n, s in plans.items()]
    lines: list[str] = []
    for name, stored in plans.items():
        site = f", site {stored.applies_to}" if stored.applies_to else ""
        lines.append(f"{name} ({stored.plan.scope}{site})")
        for r in stored.plan.rules:
            flag = " [internal]" if r.internal_extension else ""
            lines.append(f"  {r.priority:>4} {r.name:20} {r.pattern:28} -> {r.translation}{flag}")
    emit(args, data, "\n".join(lines) if lines else "no dial plans")
    return 0


def cmd_plan_test(args: argparse.Namespace) -> int:
    plan = with_db(args, lambda db: _store(db).plan(args.plan), ERRORS)
    result = plan.normalize(args.number)
    if result is None:
        emit(args, {"plan": plan.name, "dialed": args.number, "matched": None},
             f"no rule of {plan.name} matches {args.number!r} (and it is not E.164)")
        return 1
    kind = "internal extension" if result.internal else "E.164"
    emit(args, {"plan": plan.name, "dialed": args.number, "rule": result.rule.name,
                "pattern": result.rule.pattern, "number": result.number,
                "internal_extension": result.internal},
         f"rule:    {result.rule.name} ({result.rule.pattern} -> {result.rule.translation})\n"
         f"result:  {result.number} ({kind})")
    return 0


def cmd_plan_assign(args: argparse.Namespace) -> int:
    with_db(args, lambda db: _store(db).assign(args.user, dial_plan=args.plan), ERRORS)
    emit(args, {"user": args.user, "dial_plan": args.plan},
         f"{args.user} now uses dial plan {args.plan or '(the default)'}")
    return 0


# ---------------------------------------------------------------- voice policies, routes
def cmd_policy_add(args: argparse.Namespace) -> int:
    usages = _list(args.usages)
    with_db(args, lambda db: _store(db).add_policy(args.name, usages, args.default), ERRORS)
    emit(args, {"added": args.name, "usages": list(usages), "default": args.default},
         f"added voice policy {args.name}: {', '.join(usages) or '(no usages)'}"
         + (" (the default)" if args.default else ""))
    return 0


def cmd_policy_remove(args: argparse.Namespace) -> int:
    with_db(args, lambda db: _store(db).remove_policy(args.name), ERRORS)
    emit(args, {"removed": args.name}, f"removed voice policy {args.name}")
    return 0


def cmd_policy_list(args: argparse.Namespace) -> int:
    policies, default = with_db(args, lambda db: _store(db).policies(), ERRORS)
    emit(args, [{"name": p.name, "usages": list(p.usages), "default": p.name == default}
                for p in policies.values()],
         "\n".join(f"{p.name:20} {', '.join(p.usages)}{'  (default)' if p.name == default else ''}"
                   for p in policies.values()) or "no voice policies")
    return 0


def cmd_policy_assign(args: argparse.Namespace) -> int:
    with_db(args, lambda db: _store(db).assign(args.user, voice_policy=args.policy), ERRORS)
    emit(args, {"user": args.user, "voice_policy": args.policy},
         f"{args.user} now has voice policy {args.policy or '(the default)'}")
    return 0


def cmd_route_add(args: argparse.Namespace) -> int:
    try:
        route = Route(args.name, args.pattern, _list(args.usages), _list(args.gateways),
                      args.priority, args.caller_id or "", args.suppress_caller_id)
    except RoutingError as exc:
        raise CliError(str(exc)) from exc
    with_db(args, lambda db: _store(db).add_route(route), ERRORS)
    emit(args, {"added": route.name}, f"added route {route.name}: {route.pattern} via "
                                      f"{', '.join(route.gateways)} for {', '.join(route.usages)}")
    return 0


def cmd_route_remove(args: argparse.Namespace) -> int:
    with_db(args, lambda db: _store(db).remove_route(args.name), ERRORS)
    emit(args, {"removed": args.name}, f"removed route {args.name}")
    return 0


def cmd_route_list(args: argparse.Namespace) -> int:
    routes = with_db(args, lambda db: _store(db).routes(), ERRORS)
    lines = [f"{'PRI':>4} {'NAME':16} {'PATTERN':28} {'USAGES':24} GATEWAYS"]
    lines += [f"{r.priority:>4} {r.name:16} {r.pattern:28} {','.join(r.usages):24} "
              f"{','.join(r.gateways)}" for r in routes]
    emit(args, [{"name": r.name, "pattern": r.pattern, "usages": list(r.usages),
                 "gateways": list(r.gateways), "priority": r.priority,
                 "caller_id": r.alternate_caller_id, "suppress_caller_id": r.suppress_caller_id}
                for r in routes], "\n".join(lines) if routes else "no routes")
    return 0


def _when(text: str | None) -> tuple[int, int]:
    if not text:
        now = time.localtime()
        return now.tm_wday, now.tm_hour * 60 + now.tm_min
    day, _, clock = text.strip().partition(" ")
    try:
        days = parse_days(day)
        if len(days) != 1:
            raise RateError(f"--at: {day!r} must be one day")
        return next(iter(days)), parse_time(clock or "12:00")
    except RateError as exc:
        raise CliError(f"--at {text!r}: {exc}") from exc


def cmd_route_test(args: argparse.Namespace) -> int:
    weekday, minute = _when(args.at)
    site = config_of(args).mediation_site

    def plan(db: Database) -> dict[str, Any]:
        config = _store(db).snapshot()
        dial_plan = config.dial_plan_for_user(args.user, site)
        normalized = dial_plan.normalize(args.number) if dial_plan else None
        number = normalized.number if normalized else args.number
        result = config.table.plan(number, config.policy_for_user(args.user),
                                   weekday=weekday, minute=minute)
        data: dict[str, Any] = {"dialed": args.number, "number": number,
                                "dial_plan": dial_plan.name if dial_plan else None,
                                "rule": normalized.rule.name if normalized else None}
        if isinstance(result, Refusal):
            data.update(status=result.status, reason=result.reason,
                        diagnostic=result.diagnostic)
        else:
            data["attempts"] = [{"gateway": a.gateway, "route": a.route.name, "usage": a.usage,
                                 "cost": a.cost} for a in result.attempts]
        return data

    data = with_db(args, plan, ERRORS)
    lines = [f"number:  {data['number']} (dial plan {data['dial_plan'] or '-'}, "
             f"rule {data['rule'] or '-'})"]
    if "attempts" in data:
        for i, a in enumerate(data["attempts"], 1):
            cost = f"{a['cost']:.4f}/min" if a["cost"] is not None else "no rate"
            lines.append(f"  {i}. {a['gateway']:16} route {a['route']:16} usage {a['usage']:16} {cost}")
    else:
        lines.append(f"refused: {data['status']} {data['reason']}: {data['diagnostic']}")
    emit(args, data, "\n".join(lines))
    return 0 if "attempts" in data else 1


# ---------------------------------------------------------------- rates, records
def cmd_rates_import(args: argparse.Namespace) -> int:
    try:
        handle = open(args.file, encoding="utf-8", newline="")  # noqa: SIM115
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror or exc}") from exc
    with handle:
        rows, errors = [], []
        for lineno, parsed in read_rate_csv(handle):
            if isinstance(parsed, str):
                errors.append(f"{args.file}:{lineno}: {parsed}")
            else:
                rows.append(parsed)
    for line in errors[:50]:
        print(line, file=sys.stderr)
    if len(errors) > 50:
        print(f"... and {len(errors) - 50} more bad lines", file=sys.stderr)
    if errors and not args.skip_bad:
        raise CliError(f"{len(errors)} bad line(s) in {args.file}; nothing imported "
                       "(fix them, or use --skip-bad to import the good lines)")
    bar = ProgressBar(len(rows), "rate", f"importing {args.gateway}",
                      hidden=args.json or len(rows) < 10_000)
    progress = bar.reached

    started = time.monotonic()
    try:
        count = with_db(args, lambda db: _store(db).import_rates(args.gateway, rows, progress),
                        ERRORS)
    finally:
        bar.close()
    seconds = time.monotonic() - started
    emit(args, {"gateway": args.gateway, "imported": count, "bad_lines": len(errors),
                "seconds": round(seconds, 2)},
         f"imported {count} rates for {args.gateway} in {seconds:.1f} s"
         + (f" ({len(errors)} bad lines skipped)" if errors else ""))
    return 0


def cmd_rates_show(args: argparse.Namespace) -> int:
    weekday, minute = _when(args.at)
    table = with_db(args, lambda db: _store(db).rate_table(args.gateway), ERRORS)
    rate = table.lookup(args.number, weekday, minute)
    if rate is None:
        emit(args, {"gateway": args.gateway, "number": args.number, "rate": None},
             f"{args.gateway} has no rate for {args.number} at that time ({table.size} rates)")
        return 1
    emit(args, {"gateway": args.gateway, "number": args.number, "prefix": rate.prefix,
                "cost": rate.cost},
         f"{args.gateway}: prefix {rate.prefix}, {rate.cost:.4f} per minute")
    return 0


def cmd_cdrs(args: argparse.Namespace) -> int:
    rows = with_db(args, lambda db: _store(db).recent_cdrs(args.limit), ERRORS)
    lines = [f"{'STARTED':19} {'DIR':8} {'CALLER':22} {'NUMBER':16} {'GATEWAY':12} "
             f"{'RESULT':12} {'SIP':4} {'SECS':>6} MOS"]
    now = time.time()
    for r in rows:
        if r["disposition"] == IN_PROGRESS and now - r["ended_at"] > STALE_AFTER:
            # its process stopped mid-call: ended_at is the last time it was seen
            r["disposition"] = "interrupted"
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["started_at"]))
        secs = (r["ended_at"] - r["answered_at"]) if r["answered_at"] else 0.0
        mos = "/".join(f"{m:.1f}" for m in (r["internal_mos"], r["gateway_mos"]) if m) or "-"
        lines.append(f"{stamp:19} {r['direction']:8} {r['caller'][:22]:22} "
                     f"{r['normalized'] or r['dialed']:16} {r['gateway'] or '-':12} "
                     f"{r['disposition']:12} {r['sip_status']:<4} {secs:6.1f} {mos}")
    emit(args, rows, "\n".join(lines) if rows else "no mediation calls")
    return 0


# ---------------------------------------------------------------- the parser
def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    gateway = commands.add_parser("gateway", help="PSTN gateways and SIP trunks")
    sub = gateway.add_subparsers(dest="action", required=True, parser_class=type(gateway))
    p = sub.add_parser("add", parents=[common], help="add a gateway or trunk from a profile")
    p.add_argument("name")
    p.add_argument("--profile", help="a profile from hardware/ (see 'gateway profiles')")
    p.add_argument("--address", help="host[:port] (default port 5060)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override one setting (repeatable)")
    p.set_defaults(func=cmd_gateway_add)
    p = sub.add_parser("set", parents=[common], help="change settings of a gateway")
    p.add_argument("name")
    p.add_argument("pairs", nargs="*", metavar="KEY=VALUE")
    p.add_argument("--address")
    p.set_defaults(func=cmd_gateway_set)
    for name, func, help_text in (("list", cmd_gateway_list, "list gateways"),
                                  ("profiles", cmd_gateway_profiles, "list hardware profiles")):
        p = sub.add_parser(name, parents=[common], help=help_text)
        p.set_defaults(func=func)
    for name, func, help_text in (("show", cmd_gateway_show, "show a gateway's settings"),
                                  ("remove", cmd_gateway_remove, "remove a gateway")):
        p = sub.add_parser(name, parents=[common], help=help_text)
        p.add_argument("name")
        p.set_defaults(func=func)

    dialplan = commands.add_parser("dialplan", help="dial plans and normalization rules")
    sub = dialplan.add_subparsers(dest="action", required=True, parser_class=type(dialplan))
    p = sub.add_parser("add", parents=[common], help="add a dial plan")
    p.add_argument("name")
    p.add_argument("--scope", choices=SCOPES, default="user")
    p.add_argument("--site", help="the site a site plan applies to ([mediation] site)")
    p.set_defaults(func=cmd_plan_add)
    p = sub.add_parser("remove", parents=[common], help="remove a dial plan and its rules")
    p.add_argument("name")
    p.set_defaults(func=cmd_plan_remove)
    p = sub.add_parser("list", parents=[common], help="dial plans and their rules")
    p.set_defaults(func=cmd_plan_list)
    p = sub.add_parser("rule", parents=[common], help="add a normalization rule")
    p.add_argument("plan")
    p.add_argument("rule", help="the rule's name")
    p.add_argument("--pattern", required=True, help="regular expression on the whole number")
    p.add_argument("--translation", required=True, help="result, with $1-style groups")
    p.add_argument("--priority", type=int, default=0, help="lower first")
    p.add_argument("--internal", action="store_true", help="the result is an internal extension")
    p.set_defaults(func=cmd_rule_add)
    p = sub.add_parser("unrule", parents=[common], help="remove a normalization rule")
    p.add_argument("plan")
    p.add_argument("rule")
    p.set_defaults(func=cmd_rule_remove)
    p = sub.add_parser("test", parents=[common], help="normalize a number with a plan")
    p.add_argument("plan")
    p.add_argument("number")
    p.set_defaults(func=cmd_plan_test)
    p = sub.add_parser("assign", parents=[common], help="give a user their own dial plan")
    p.add_argument("user")
    p.add_argument("plan", nargs="?", default="", help="omit to use the default again")
    p.set_defaults(func=cmd_plan_assign)

    policy = commands.add_parser("voice-policy", help="voice policies (ordered PSTN usages)")
    sub = policy.add_subparsers(dest="action", required=True, parser_class=type(policy))
    p = sub.add_parser("add", parents=[common], help="add a voice policy")
    p.add_argument("name")
    p.add_argument("--usages", required=True, help="comma-separated PSTN usages, in order")
    p.add_argument("--default", action="store_true", help="the policy of users without one")
    p.set_defaults(func=cmd_policy_add)
    p = sub.add_parser("remove", parents=[common], help="remove a voice policy")
    p.add_argument("name")
    p.set_defaults(func=cmd_policy_remove)
    p = sub.add_parser("list", parents=[common], help="list voice policies")
    p.set_defaults(func=cmd_policy_list)
    p = sub.add_parser("assign", parents=[common], help="give a user a voice policy")
    p.add_argument("user")
    p.add_argument("policy", nargs="?", default="", help="omit to use the default again")
    p.set_defaults(func=cmd_policy_assign)

    route = commands.add_parser("route", help="PSTN routes")
    sub = route.add_subparsers(dest="action", required=True, parser_class=type(route))
    p = sub.add_parser("add", parents=[common], help="add a route")
    p.add_argument("name")
    p.add_argument("--pattern", required=True, help="regular expression on the E.164 number")
    p.add_argument("--usages", required=True, help="PSTN usages that may use it")
    p.add_argument("--gateways", required=True, help="gateways/trunks, comma-separated")
    p.add_argument("--priority", type=int, default=0)
    p.add_argument("--caller-id", help="alternate calling number shown on this route")
    p.add_argument("--suppress-caller-id", action="store_true")
    p.set_defaults(func=cmd_route_add)
    p = sub.add_parser("remove", parents=[common], help="remove a route")
    p.add_argument("name")
    p.set_defaults(func=cmd_route_remove)
    p = sub.add_parser("list", parents=[common], help="list routes")
    p.set_defaults(func=cmd_route_list)
    p = sub.add_parser("test", parents=[common],
                       help="which gateways a user's call to a number would try")
    p.add_argument("number")
    p.add_argument("--user", help="the caller's SIP URI (policy and dial plan)")
    p.add_argument("--at", help="when, e.g. 'Mon 14:30' (default now)")
    p.set_defaults(func=cmd_route_test)

    rates = commands.add_parser("rates", help="least-cost routing rate tables")
    sub = rates.add_subparsers(dest="action", required=True, parser_class=type(rates))
    p = sub.add_parser("import", parents=[common],
                       help="replace a gateway's rates from CSV: prefix,cost[,days[,start,end]]")
    p.add_argument("gateway")
    p.add_argument("file")
    p.add_argument("--skip-bad", action="store_true", help="import the good lines anyway")
    p.set_defaults(func=cmd_rates_import)
    p = sub.add_parser("show", parents=[common], help="the rate a gateway charges for a number")
    p.add_argument("gateway")
    p.add_argument("number")
    p.add_argument("--at", help="when, e.g. 'Sat 09:00' (default now)")
    p.set_defaults(func=cmd_rates_show)

    mediation = commands.add_parser("mediation", help="mediation server records")
    sub = mediation.add_subparsers(dest="action", required=True, parser_class=type(mediation))
    p = sub.add_parser("cdrs", parents=[common], help="recent PSTN call records")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_cdrs)
