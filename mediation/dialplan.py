"""Dial plans (location profiles): ordered normalization rules turning what a user
dialed into an E.164 number or an internal extension. Pure code.

A rule is a regular expression matched against the whole dialed string (after
visual separators are removed), a translation using ``$1``-style groups, a
priority (lower first; ties keep their order), and whether the result is an
internal extension rather than a public number. The first rule that matches
wins, as in Office Communications Server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SCOPES = ("global", "site", "user", "gateway")
_SEPARATORS = re.compile(r"[\s().\-/]")
_GROUP = re.compile(r"\$(\d)")
E164 = re.compile(r"\+[1-9]\d{1,14}\Z")




class DialPlanError(ValueError):
    """A rule or a plan is malformed; the message says which and why."""


@dataclass(frozen=True, slots=True)
class NormalizationRule:
    name: str
    pattern: str
    translation: str
    priority: int = 0
    internal_extension: bool = False
    _compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise DialPlanError("a rule needs a name")
        try:
            compiled = re.compile(self.pattern)
        except re.error as exc:
            raise DialPlanError(f"rule {self.name}: pattern {self.pattern!r} is not a valid "
                                f"regular expression: {exc}") from exc
        groups = {int(g) for g in _GROUP.findall(self.translation)}
        if groups and max(groups) > compiled.groups:
            raise DialPlanError(f"rule {self.name}: translation {self.translation!r} uses "
                                f"${max(groups)} but the pattern has {compiled.groups} groups")
        object.__setattr__(self, "_compiled", compiled)

    def apply(self, digits: str) -> str | None:
        match = self._compiled.fullmatch(digits)
        if match is None:
            return None
        return _GROUP.sub(lambda m: match.group(int(m.group(1))) or "", self.translation)


@dataclass(frozen=True, slots=True)
class Normalized:
    dialed: str
    rule: NormalizationRule
    number: str

    @property
    def internal(self) -> bool:
        return self.rule.internal_extension


@dataclass(frozen=True, slots=True)
class DialPlan:
    name: str
    scope: str = "global"
    rules: tuple[NormalizationRule, ...] = ()

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise DialPlanError(f"dial plan {self.name}: scope {self.scope!r} is not one of "
                                f"{', '.join(SCOPES)}")
        ordered = tuple(sorted(self.rules, key=lambda r: r.priority))  # stable for ties
        object.__setattr__(self, "rules", ordered)

    def normalize(self, dialed: str) -> Normalized | None:
        """The first rule that matches, and its result. A number already in E.164 that
        no rule rewrites stands as dialed; None when nothing applies. A rule whose
        public result is not E.164 is a mistake in the plan: the next rule is tried."""
        digits = _SEPARATORS.sub("", dialed)
        for rule in (*self.rules, KEEP_E164):
            number = rule.apply(digits)
            if number is None:
                continue
            if not rule.internal_extension and not E164.match(number):
                continue
            return Normalized(dialed, rule, number)
        return None


KEEP_E164 = NormalizationRule("already E.164", r"(\+[1-9]\d{1,14})", "$1", priority=1 << 30)
