"""The mediation role's configuration and records in the database: gateways, dial
plans, voice policies and assignments, routes, rate tables and call records.

Every change bumps a version in the settings table; a running server reloads its
routing snapshot when the version moves, so a change made with the CLI reaches
every process of a pool on its next call.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from confserver.storage.database import Database
from confserver.storage.models import Setting

from .dialplan import SCOPES, DialPlan, DialPlanError, NormalizationRule
from .gateways import GatewayError, GatewaySettings, from_stored
from .models import (
    IN_PROGRESS,
    AssignmentRow,
    DialPlanRow,
    GatewayRow,
    MediationCdrRow,
    PolicyRow,
    RateRow,
    RouteRow,
    RuleRow,
)
from .rates import ALWAYS, RateError, RateTable, Window, parse_rate_fields
from .routing import Route, RoutingError, RoutingTable, VoicePolicy, check_name

CONFIG_VERSION = "mediation.config"
RATES_VERSION = "mediation.rates"
_VERSIONS = select(Setting.key, Setting.value).where(
    Setting.key.in_((CONFIG_VERSION, RATES_VERSION)))
_INSERT_CDR = insert(MediationCdrRow)
# a call's last-seen time, while its record still says it is in progress
_TOUCH_CDR = (update(MediationCdrRow)
              .where(MediationCdrRow.record_key == bindparam("key"),
                     MediationCdrRow.disposition == IN_PROGRESS)
              .values(ended_at=bindparam("seen")))
# flags on a queued record (see add_cdrs); not columns
TOUCH = "_touch"
REPLACE = "_replace"
SKIP = "_skip"  # superseded while queued: not written at all
RATE_CHUNK = 20_000


class MediationError(ValueError):
    """Bad input to a mediation operation; the message says which argument and why."""


@dataclass(frozen=True, slots=True)
class StoredPlan:
    plan: DialPlan
    applies_to: str = ""


@dataclass
class MediationConfig:
    """Everything routing needs, read at once (pure data)."""

    gateways: dict[str, GatewaySettings] = field(default_factory=dict)
    plans: dict[str, StoredPlan] = field(default_factory=dict)
    policies: dict[str, VoicePolicy] = field(default_factory=dict)
    default_policy: str | None = None
    assignments: dict[str, tuple[str, str]] = field(default_factory=dict)
    table: RoutingTable = field(default_factory=lambda: RoutingTable(()))

    def dial_plan_for_user(self, user: str | None, site: str = "") -> DialPlan | None:
        """The user's own plan, else their site's, else the global one."""
        if user is not None:
            own = self.assignments.get(user, ("", ""))[0]
            if own and own in self.plans:
                return self.plans[own].plan
        for scope, key in (("site", site), ("global", "")):
            for stored in self.plans.values():
                if stored.plan.scope == scope and (scope == "global" or stored.applies_to == key):
                    return stored.plan
        return None

    def dial_plan_for_gateway(self, gateway: GatewaySettings, site: str = "") -> DialPlan | None:
        if gateway.inbound_dial_plan and gateway.inbound_dial_plan in self.plans:
            return self.plans[gateway.inbound_dial_plan].plan
        return self.dial_plan_for_user(None, site)

    def policy_for_user(self, user: str | None) -> VoicePolicy | None:
        if user is not None:
            own = self.assignments.get(user, ("", ""))[1]
            if own and own in self.policies:
                return self.policies[own]
        if user is not None and self.default_policy:  # anonymous callers get none
            return self.policies.get(self.default_policy)
        return None


def _split(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _policy(row: PolicyRow) -> VoicePolicy:
    return VoicePolicy(row.name, _split(row.usages))


def _route(row: RouteRow) -> Route:
    return Route(row.name, row.pattern, _split(row.usages), _split(row.gateways), row.priority,
                 row.alternate_caller_id, row.suppress_caller_id)


class MediationStore:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock

    # ------------------------------------------------------------ versions
    def version(self, key: str) -> str:
        with self._db.session() as session:
            row = session.get(Setting, key)
            return row.value if row is not None else "0"

    def versions(self) -> tuple[str, str]:
        with self._db.engine.connect() as connection:  # Core: asked every second
            rows = {str(key): str(value) for key, value in connection.execute(_VERSIONS)}
        return rows.get(CONFIG_VERSION, "0"), rows.get(RATES_VERSION, "0")

    def _bump(self, session: Any, key: str) -> None:
        row = session.get(Setting, key)
        now = self._clock()
        if row is None:
            session.add(Setting(key=key, value="1", updated_at=now))
        else:
            row.value = str(int(row.value) + 1)
            row.updated_at = now

    def _commit(self, session: Any, what: str, key: str = CONFIG_VERSION) -> None:
        self._bump(session, key)
        try:
            session.commit()
        except IntegrityError as exc:
            session.rollback()
            raise MediationError(f"{what} already exists") from exc

    # ------------------------------------------------------------ gateways
    def add_gateway(self, settings: GatewaySettings) -> None:
        with self._db.session() as session:
            if session.scalar(select(GatewayRow).where(GatewayRow.name == settings.name)):
                raise MediationError(f"gateway {settings.name} already exists")
            session.add(GatewayRow(name=settings.name, settings=json.dumps(settings.as_dict()),
                                   created_at=self._clock()))
            self._commit(session, f"gateway {settings.name}")

    def update_gateway(self, settings: GatewaySettings) -> None:
        with self._db.session() as session:
            row = session.scalar(select(GatewayRow).where(GatewayRow.name == settings.name))
            if row is None:
                raise MediationError(f"no gateway {settings.name}")
            row.settings = json.dumps(settings.as_dict())
            self._commit(session, f"gateway {settings.name}")

    def remove_gateway(self, name: str) -> None:
        with self._db.session() as session:
            used = [r.name for r in session.scalars(select(RouteRow))
                    if name in _split(r.gateways)]
            if used:
                raise MediationError(f"gateway {name} is used by route(s) {', '.join(used)}; "
                                     "remove it from them first")
            if session.execute(delete(GatewayRow).where(GatewayRow.name == name)
                               ).rowcount == 0:  # type: ignore[attr-defined]
                raise MediationError(f"no gateway {name}")
            session.execute(delete(RateRow).where(RateRow.gateway == name))
            self._bump(session, RATES_VERSION)
            self._commit(session, name)

    def gateways(self) -> list[GatewaySettings]:
        with self._db.session() as session:
            rows = list(session.scalars(select(GatewayRow).order_by(GatewayRow.name)))
        out = []
        for row in rows:
            try:
                out.append(from_stored(row.name, json.loads(row.settings)))
            except (GatewayError, ValueError) as exc:
                raise MediationError(f"gateway {row.name}: stored settings are invalid: {exc}"
                                     ) from exc
        return out

    def gateway(self, name: str) -> GatewaySettings:
        for settings in self.gateways():
            if settings.name == name:
                return settings
        raise MediationError(f"no gateway {name}")

    # ------------------------------------------------------------ dial plans
    def add_plan(self, name: str, scope: str, applies_to: str = "") -> None:
        _checked(lambda: check_name("dial plan", name))
        if scope not in SCOPES:
            raise MediationError(f"--scope: {scope!r} is not one of {', '.join(SCOPES)}")
        if scope == "site" and not applies_to:
            raise MediationError("--site: a site plan needs the site it applies to")
        with self._db.session() as session:
            if session.scalar(select(DialPlanRow).where(DialPlanRow.name == name)):
                raise MediationError(f"dial plan {name} already exists")
            if scope == "global" and session.scalar(
                    select(DialPlanRow).where(DialPlanRow.scope == "global")):
                raise MediationError("there is already a global dial plan (one is allowed)")
            session.add(DialPlanRow(name=name, scope=scope, applies_to=applies_to))
            self._commit(session, f"dial plan {name}")

    def remove_plan(self, name: str) -> None:
        with self._db.session() as session:
            row = session.scalar(select(DialPlanRow).where(DialPlanRow.name == name))
            if row is None:
                raise MediationError(f"no dial plan {name}")
            session.execute(delete(RuleRow).where(RuleRow.plan_id == row.id))
            session.delete(row)
            self._commit(session, name)

    def add_rule(self, plan: str, rule: NormalizationRule) -> None:
        with self._db.session() as session:
            row = session.scalar(select(DialPlanRow).where(DialPlanRow.name == plan))
            if row is None:
                raise MediationError(f"no dial plan {plan}")
            if session.scalar(select(RuleRow).where(RuleRow.plan_id == row.id,
                                                    RuleRow.name == rule.name)):
                raise MediationError(f"dial plan {plan} already has a rule {rule.name}")
            session.add(RuleRow(plan_id=row.id, name=rule.name, pattern=rule.pattern,
                                translation=rule.translation, priority=rule.priority,
                                internal=rule.internal_extension))
            self._commit(session, f"rule {rule.name}")

    def remove_rule(self, plan: str, name: str) -> None:
        with self._db.session() as session:
            row = session.scalar(select(DialPlanRow).where(DialPlanRow.name == plan))
            if row is None:
                raise MediationError(f"no dial plan {plan}")
            if session.execute(delete(RuleRow).where(RuleRow.plan_id == row.id,
                                                     RuleRow.name == name)
                               ).rowcount == 0:  # type: ignore[attr-defined]
                raise MediationError(f"dial plan {plan} has no rule {name}")
            self._commit(session, name)

    def plans(self) -> dict[str, StoredPlan]:
        with self._db.session() as session:
            plans = list(session.scalars(select(DialPlanRow).order_by(DialPlanRow.name)))
            rules = list(session.scalars(select(RuleRow).order_by(RuleRow.id)))
        by_plan: dict[int, list[NormalizationRule]] = {}
        for r in rules:
            by_plan.setdefault(r.plan_id, []).append(
                NormalizationRule(r.name, r.pattern, r.translation, r.priority, r.internal))
        return {p.name: StoredPlan(DialPlan(p.name, p.scope, tuple(by_plan.get(p.id, []))),
                                   p.applies_to) for p in plans}

    def plan(self, name: str) -> DialPlan:
        stored = self.plans().get(name)
        if stored is None:
            raise MediationError(f"no dial plan {name}")
        return stored.plan

    # ------------------------------------------------------------ policies, assignments
    def add_policy(self, name: str, usages: tuple[str, ...], default: bool = False) -> None:
        policy = _checked(lambda: VoicePolicy(name, usages))
        with self._db.session() as session:
            if session.scalar(select(PolicyRow).where(PolicyRow.name == name)):
                raise MediationError(f"voice policy {name} already exists")
            if default:
                for row in session.scalars(select(PolicyRow).where(PolicyRow.is_default)):
                    row.is_default = False
            session.add(PolicyRow(name=policy.name, usages=",".join(policy.usages),
                                  is_default=default))
            self._commit(session, f"voice policy {name}")

    def remove_policy(self, name: str) -> None:
        with self._db.session() as session:
            if session.execute(delete(PolicyRow).where(PolicyRow.name == name)
                               ).rowcount == 0:  # type: ignore[attr-defined]
                raise MediationError(f"no voice policy {name}")
            for row in session.scalars(select(AssignmentRow).where(
                    AssignmentRow.voice_policy == name)):
                row.voice_policy = ""
            self._commit(session, name)

    def policies(self) -> tuple[dict[str, VoicePolicy], str | None]:
        with self._db.session() as session:
            rows = list(session.scalars(select(PolicyRow).order_by(PolicyRow.name)))
        default = next((r.name for r in rows if r.is_default), None)
        return {r.name: _policy(r) for r in rows}, default

    def assign(self, user: str, dial_plan: str | None = None,
               voice_policy: str | None = None) -> None:
        with self._db.session() as session:
            if dial_plan and not session.scalar(select(DialPlanRow).where(
                    DialPlanRow.name == dial_plan)):
                raise MediationError(f"--dial-plan: no dial plan {dial_plan}")
            if voice_policy and not session.scalar(select(PolicyRow).where(
                    PolicyRow.name == voice_policy)):
                raise MediationError(f"--voice-policy: no voice policy {voice_policy}")
            row = session.get(AssignmentRow, user)
            if row is None:
                row = AssignmentRow(user_uri=user, dial_plan="", voice_policy="")
                session.add(row)
            if dial_plan is not None:
                row.dial_plan = dial_plan
            if voice_policy is not None:
                row.voice_policy = voice_policy
            self._commit(session, user)

    def assignments(self) -> dict[str, tuple[str, str]]:
        with self._db.session() as session:
            return {r.user_uri: (r.dial_plan, r.voice_policy)
                    for r in session.scalars(select(AssignmentRow))}

    # ------------------------------------------------------------ routes
    def add_route(self, route: Route) -> None:
        with self._db.session() as session:
            known = set(session.scalars(select(GatewayRow.name)))
            unknown = [g for g in route.gateways if g not in known]
            if unknown:
                raise MediationError(f"--gateways: no gateway {', '.join(unknown)}")
            if session.scalar(select(RouteRow).where(RouteRow.name == route.name)):
                raise MediationError(f"route {route.name} already exists")
            session.add(RouteRow(name=route.name, pattern=route.pattern,
                                 usages=",".join(route.usages),
                                 gateways=",".join(route.gateways), priority=route.priority,
                                 alternate_caller_id=route.alternate_caller_id,
                                 suppress_caller_id=route.suppress_caller_id))
            self._commit(session, f"route {route.name}")

    def remove_route(self, name: str) -> None:
        with self._db.session() as session:
            if session.execute(delete(RouteRow).where(RouteRow.name == name)
                               ).rowcount == 0:  # type: ignore[attr-defined]
                raise MediationError(f"no route {name}")
            self._commit(session, name)

    def routes(self) -> list[Route]:
        with self._db.session() as session:
            return [_route(r) for r in session.scalars(
                select(RouteRow).order_by(RouteRow.priority, RouteRow.id))]

    # ------------------------------------------------------------ rates
    def import_rates(self, gateway: str, rows: Iterable[tuple[str, float, Window]],
                     progress: Callable[[int], None] | None = None) -> int:
        """Replace the gateway's rate table with ``rows`` in one transaction."""
        with self._db.session() as session:
            if not session.scalar(select(GatewayRow).where(GatewayRow.name == gateway)):
                raise MediationError(f"no gateway {gateway}")
            session.execute(delete(RateRow).where(RateRow.gateway == gateway))
            count = 0
            chunk: list[dict[str, Any]] = []
            for prefix, cost, window in rows:
                days = "" if window.days == ALWAYS.days else "".join(
                    str(d) for d in sorted(window.days))
                chunk.append({"gateway": gateway, "prefix": prefix, "cost": cost, "days": days,
                              "start_minute": window.start, "end_minute": window.end})
                if len(chunk) >= RATE_CHUNK:
                    session.execute(insert(RateRow), chunk)
                    count += len(chunk)
                    chunk = []
                    if progress is not None:
                        progress(count)
            if chunk:
                session.execute(insert(RateRow), chunk)
                count += len(chunk)
            self._bump(session, RATES_VERSION)
            session.commit()
        if progress is not None:
            progress(count)
        return count

    def rate_table(self, gateway: str) -> RateTable:
        table = RateTable()
        with self._db.session() as session:
            result = session.execute(select(RateRow.prefix, RateRow.cost, RateRow.days,
                                            RateRow.start_minute, RateRow.end_minute)
                                     .where(RateRow.gateway == gateway))
            for prefix, cost, days, start, end in result:
                if not days and start == 0 and end == 1440:
                    table.add(prefix, cost)
                else:
                    table.add(prefix, cost, Window(frozenset(int(d) for d in days) if days
                                                   else ALWAYS.days, start, end))
        return table

    def rate_counts(self) -> dict[str, int]:
        with self._db.session() as session:
            return dict(session.execute(select(RateRow.gateway, func.count())
                                        .group_by(RateRow.gateway)).all())

    # ------------------------------------------------------------ snapshot
    def snapshot(self, rates: dict[str, RateTable] | None = None) -> MediationConfig:
        """The whole routing configuration; ``rates`` reuses tables already loaded."""
        gateways = {g.name: g for g in self.gateways()}
        policies, default = self.policies()
        if rates is None:
            rates = {}
            for name in self.rate_counts():
                rates[name] = self.rate_table(name)
        try:
            table = RoutingTable(self.routes(), rates)
        except (RoutingError, DialPlanError) as exc:
            raise MediationError(f"stored routing is invalid: {exc}") from exc
        return MediationConfig(gateways, self.plans(), policies, default, self.assignments(),
                               table)

    # ------------------------------------------------------------ call records
    def add_cdrs(self, records: list[dict[str, Any]]) -> None:
        """Several call records in one transaction. Plain records are inserted in
        one statement (built once). A record flagged ``REPLACE`` takes the place of
        the row written under its ``record_key`` when its call was answered (or is
        inserted when there is none); a ``{TOUCH: True, "record_key", "ended_at"}``
        row only moves that row's ``ended_at`` on while it is still in progress.
        Flagged rows are applied after the plain ones, in order; rows flagged
        ``SKIP`` are left out."""
        records = [r for r in records if not r.get(SKIP)]
        if not records:
            return
        with self._db.engine.begin() as connection:
            plain = [r for r in records if not r.get(TOUCH) and not r.get(REPLACE)]
            if plain:
                connection.execute(_INSERT_CDR, plain)
            for record in records:
                key = record.get("record_key")
                if record.get(TOUCH):
                    connection.execute(_TOUCH_CDR, {"key": key, "seen": record["ended_at"]})
                elif record.get(REPLACE):
                    values = {k: v for k, v in record.items() if k != REPLACE}
                    done = connection.execute(update(MediationCdrRow)
                                              .where(MediationCdrRow.record_key == key)
                                              .values(**values))
                    if done.rowcount == 0:
                        connection.execute(_INSERT_CDR, [values])

    def add_cdr(self, record: dict[str, Any]) -> None:
        self.add_cdrs([record])

    def cdr_count(self) -> int:
        with self._db.session() as session:
            return int(session.scalar(select(func.count()).select_from(MediationCdrRow)) or 0)

    def recent_cdrs(self, limit: int = 50) -> list[dict[str, Any]]:
        with self._db.session() as session:
            rows = list(session.scalars(select(MediationCdrRow)
                                        .order_by(MediationCdrRow.id.desc()).limit(limit)))
        return [{c.name: getattr(r, c.name) for c in MediationCdrRow.__table__.columns
                 if c.name != "id"} for r in rows]


def _checked(make: Callable[[], Any]) -> Any:
    try:
        return make()
    except (RoutingError, DialPlanError, GatewayError) as exc:
        raise MediationError(str(exc)) from exc


def read_rate_csv(stream: TextIO) -> Iterator[tuple[int, tuple[str, float, Window] | str]]:
    """Each data line's number and its rate, or the error on that line. A first line
    naming the columns (``prefix,cost,...``) is skipped; ``#`` starts a comment."""
    for lineno, fields in enumerate(csv.reader(stream), start=1):
        if not fields or not "".join(fields).strip() or fields[0].lstrip().startswith("#"):
            continue
        if lineno == 1 and fields[0].strip().lower() == "prefix":
            continue
        try:
            yield lineno, parse_rate_fields(fields)
        except RateError as exc:
            yield lineno, str(exc)
