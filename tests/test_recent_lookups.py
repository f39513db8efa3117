"""The short-lived cache of directory answers mediation keeps (pure, on a fake clock)."""

from __future__ import annotations

from confserver.recent import RecentLookups


def test_answers_are_reused_for_the_ttl_then_asked_again_and_absent_ones_too() -> None:
    now = [100.0]
    asked: list[str] = []
    lookups = RecentLookups(lambda: now[0], ttl=1.0, limit=3)

    def load(key: str, value: str | None) -> str | None:
        asked.append(key)
        return value

    assert lookups.get(("phone", "+1"), lambda: load("+1", "bob")) == "bob"
    assert lookups.get(("phone", "+2"), lambda: load("+2", None)) is None
    now[0] += 0.9
    assert lookups.get(("phone", "+1"), lambda: load("+1", "carol")) == "bob"
    assert lookups.get(("phone", "+2"), lambda: load("+2", "dave")) is None
    assert asked == ["+1", "+2"]
    now[0] += 0.2  # past the second: an admin's change is seen
    assert lookups.get(("phone", "+1"), lambda: load("+1", "carol")) == "carol"
    assert asked == ["+1", "+2", "+1"]
    for n in range(5):  # beyond the limit everything is dropped, never unbounded
        lookups.get(("extension", str(n)), lambda: None)
    assert len(lookups._entries) <= 3
