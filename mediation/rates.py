"""Least-cost routing rate tables: prefix → cost per minute, with optional
time-of-day and day-of-week windows. Pure code.

Lookups probe the table by prefix length, longest first (at most 15 probes of
a hash table for an E.164 number): the equivalent of a digit trie, without a
node object per digit, so a million prefixes load in seconds and take a few
tens of bytes each.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_DIGITS = 15
WEEK = frozenset(range(7))


class RateError(ValueError):
    """A rate or a window is malformed; the message says which field and why."""


@dataclass(frozen=True, slots=True)
class Window:
    """When a rate applies: days (0 = Monday) and minutes of the day [start, end);
    ``start > end`` wraps past midnight."""

    days: frozenset[int] = WEEK
    start: int = 0
    end: int = 24 * 60

    def __post_init__(self) -> None:
        if not self.days or not self.days <= WEEK:
            raise RateError("days must be some of 0 (Monday) to 6 (Sunday)")
        if not (0 <= self.start <= 24 * 60 and 0 <= self.end <= 24 * 60):
            raise RateError("times must be between 00:00 and 24:00")

    def covers(self, weekday: int, minute: int) -> bool:
        if self.start <= self.end:
            return weekday in self.days and self.start <= minute < self.end
        # wraps past midnight: the part after midnight belongs to the previous day's window
        if minute >= self.start:
            return weekday in self.days
        return minute < self.end and (weekday - 1) % 7 in self.days


ALWAYS = Window()


@dataclass(frozen=True, slots=True)
class Rate:
    prefix: str
    cost: float  # per minute
    window: Window = ALWAYS


class RateTable:
    def __init__(self) -> None:
        self._by_prefix: dict[str, Rate | list[Rate]] = {}
        self._lengths: tuple[int, ...] = ()  # prefix lengths present, longest first
        self.size = 0

    def add(self, prefix: str, cost: float, window: Window = ALWAYS) -> None:
        digits = prefix.lstrip("+")
        if not digits.isdigit() or len(digits) > MAX_DIGITS:
            raise RateError(f"prefix {prefix!r} must be 1 to {MAX_DIGITS} digits")
        if not cost >= 0:
            raise RateError(f"cost {cost!r} must be zero or more")
        rate = Rate(digits, float(cost), window)
        existing = self._by_prefix.get(digits)
        if len(digits) not in self._lengths:
            self._lengths = tuple(sorted({*self._lengths, len(digits)}, reverse=True))
        if existing is None:
            self._by_prefix[digits] = rate  # the common case: one rate, no list
        elif isinstance(existing, list):
            existing.append(rate)
        else:
            self._by_prefix[digits] = [existing, rate]
        self.size += 1

    def lookup(self, number: str, weekday: int = 0, minute: int = 0) -> Rate | None:
        """The rate of the longest prefix of ``number`` that has one for that time."""
        digits = number[1:] if number.startswith("+") else number
        table = self._by_prefix
        for length in self._lengths:
            if length > len(digits):
                continue
            found = table.get(digits[:length])
            if found is None:
                continue
            if isinstance(found, Rate):
                if found.window is ALWAYS or found.window.covers(weekday, minute):
                    return found
                continue
            applying = [r for r in found if r.window.covers(weekday, minute)]
            if applying:
                return min(applying, key=lambda r: r.cost)
        return None


# ---------------------------------------------------------------- CSV rate files

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_days(text: str) -> frozenset[int]:
    """``Mon-Fri``, ``Sat,Sun``, ``0-4`` (0 = Monday); empty means every day."""
    text = text.strip().lower()
    if not text:
        return WEEK
    days: set[int] = set()
    for part in text.replace(" ", "").split(","):
        first, _, last = part.partition("-")
        a, b = _day(first), _day(last or first)
        if a <= b:
            days.update(range(a, b + 1))
        else:  # Sat-Mon wraps
            days.update([*range(a, 7), *range(0, b + 1)])
    return frozenset(days)


def _day(text: str) -> int:
    if text.isdigit() and int(text) < 7:
        return int(text)
    if text[:3] in DAY_NAMES:
        return DAY_NAMES.index(text[:3])
    raise RateError(f"day {text!r} is not Mon..Sun or 0..6")


def parse_time(text: str) -> int:
    """``HH:MM`` as minutes of the day (``24:00`` allowed as an end)."""
    hours, sep, minutes = text.strip().partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit() or len(minutes) != 2:
        raise RateError(f"time {text!r} is not HH:MM")
    value = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or value > 24 * 60:
        raise RateError(f"time {text!r} is not between 00:00 and 24:00")
    return value


def parse_rate_fields(fields: list[str]) -> tuple[str, float, Window]:
    """One CSV line: ``prefix,cost[,days[,start,end]]``."""
    fields = [f.strip() for f in fields]
    if len(fields) < 2 or len(fields) == 4 or len(fields) > 5:
        raise RateError("expected prefix,cost or prefix,cost,days or prefix,cost,days,start,end")
    prefix = fields[0].lstrip("+")
    if not prefix.isdigit() or len(prefix) > MAX_DIGITS:
        raise RateError(f"prefix {fields[0]!r} must be 1 to {MAX_DIGITS} digits")
    try:
        cost = float(fields[1])
    except ValueError:
        raise RateError(f"cost {fields[1]!r} is not a number") from None
    if not cost >= 0 or cost == float("inf"):
        raise RateError(f"cost {fields[1]!r} must be zero or more")
    window = ALWAYS
    if len(fields) >= 3 and (fields[2] or len(fields) == 5):
        days = parse_days(fields[2])
        start, end = (parse_time(fields[3]), parse_time(fields[4])) if len(fields) == 5 \
            else (0, 24 * 60)
        if start == end:
            raise RateError("a window's start and end must differ")
        window = Window(days, start, end)
        if window == ALWAYS:
            window = ALWAYS
    return prefix, cost, window
