"""Dial plan normalization and LCR rate tables (pure cores of the mediation role)."""

from __future__ import annotations

import pytest

from mediation.dialplan import DialPlan, DialPlanError, NormalizationRule
from mediation.rates import RateError, RateTable, Window

REDMOND = DialPlan("Redmond", "site", (
    NormalizationRule("international", r"011(\d{7,15})", "+$1", priority=1),
    NormalizationRule("ten digits", r"1?([2-9]\d{9})", "+1$1", priority=2),
    NormalizationRule("seven digits", r"([2-9]\d{6})", "+1425$1", priority=3),
    NormalizationRule("extension", r"(4\d{3})", "$1", priority=0, internal_extension=True),
    NormalizationRule("broken", r"(\d{3})", "$1", priority=5),  # not E.164: skipped
))


@pytest.mark.parametrize("dialed,rule,number", [
    ("(425) 555-0100", "ten digits", "+14255550100"),
    ("1 425 555 0100", "ten digits", "+14255550100"),
    ("555-0100", "seven digits", "+14255550100"),
    ("011 44 20 7946 0000", "international", "+442079460000"),
    ("4001", "extension", "4001"),
    ("+33 1 23 45 67 89", "already E.164", "+33123456789"),
])
def test_normalization_corpus(dialed: str, rule: str, number: str) -> None:
    result = REDMOND.normalize(dialed)
    assert result is not None and (result.rule.name, result.number) == (rule, number)
    assert result.internal == (rule == "extension")


def test_no_rule_matches() -> None:
    assert REDMOND.normalize("911x") is None
    assert REDMOND.normalize("123") is None  # only the broken rule matches: skipped


def test_priority_orders_rules_and_ties_keep_their_order() -> None:
    plan = DialPlan("p", rules=(NormalizationRule("b", r"(\d+)", "+1$1", priority=1),
                                NormalizationRule("a", r"(\d+)", "+44$1", priority=1),
                                NormalizationRule("first", r"(\d+)", "+33$1", priority=0)))
    assert [r.name for r in plan.rules] == ["first", "b", "a"]


def test_bad_rules_and_plans_are_refused() -> None:
    with pytest.raises(DialPlanError, match="not a valid regular expression"):
        NormalizationRule("x", r"(\d+", "$1")
    with pytest.raises(DialPlanError, match=r"uses \$2 but the pattern has 1 groups"):
        NormalizationRule("x", r"(\d+)", "$2")
    with pytest.raises(DialPlanError, match="scope"):
        DialPlan("x", "planet")


def test_longest_prefix_and_time_windows() -> None:
    table = RateTable()
    table.add("+1", 0.02)
    table.add("1425", 0.01)
    table.add("44", 0.05)
    table.add("447", 0.20)                                    # UK mobiles
    table.add("447", 0.08, Window(frozenset({5, 6})))         # weekends cheaper
    table.add("33", 0.04)
    table.add("33", 0.01, Window(start=22 * 60, end=6 * 60))  # nights, wrapping midnight
    assert table.lookup("+14255550100").cost == 0.01          # type: ignore[union-attr]
    assert table.lookup("+12125550100").cost == 0.02          # type: ignore[union-attr]
    assert table.lookup("+447700900000", weekday=2).cost == 0.20  # type: ignore[union-attr]
    assert table.lookup("+447700900000", weekday=6).cost == 0.08  # type: ignore[union-attr]
    assert table.lookup("+442079460000", weekday=6).cost == 0.05  # type: ignore[union-attr]
    assert table.lookup("+33123456789", minute=23 * 60).cost == 0.01  # type: ignore[union-attr]
    assert table.lookup("+33123456789", weekday=1, minute=5 * 60).cost == 0.01  # type: ignore[union-attr]
    assert table.lookup("+33123456789", minute=12 * 60).cost == 0.04  # type: ignore[union-attr]
    assert table.lookup("+81312345678") is None
    assert table.size == 7


def test_bad_rates_are_refused() -> None:
    table = RateTable()
    for prefix, cost, message in [("1a", 0.1, "digits"), ("1" * 16, 0.1, "digits"),
                                  ("1", -1.0, "zero or more"), ("1", float("nan"), "zero")]:
        with pytest.raises(RateError, match=message):
            table.add(prefix, cost)
    with pytest.raises(RateError, match="days"):
        Window(frozenset({7}))
