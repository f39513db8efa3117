"""Rate limits, back-off and attempt windows: sans-I/O, driven by ``now``."""

from __future__ import annotations

import pytest

from confserver.limits.backoff import FailureBackoff
from confserver.limits.buckets import RateLimiter
from confserver.limits.calls import CallLimits
from confserver.limits.logins import LoginThrottle
from confserver.limits.requests import RequestLimits
from confserver.limits.window import AttemptWindow


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    limiter = RateLimiter(rate=10, burst=5)
    assert [limiter.allow("a", 0.0) for _ in range(7)] == [True] * 5 + [False] * 2
    assert limiter.allow("b", 0.0)  # each key has its own bucket
    assert limiter.retry_after("a", 0.0) == pytest.approx(0.1)
    assert not limiter.allow("a", 0.05)
    assert limiter.allow("a", 0.16)
    allowed = sum(limiter.allow("a", 1.0 + i / 1000) for i in range(1000))  # 1,000/s for 1 s
    assert 10 <= allowed <= 16


def test_a_bucket_table_forgets_the_least_recent_keys_beyond_its_bound() -> None:
    limiter = RateLimiter(rate=1, burst=1, max_keys=100)
    for source in range(10_000):
        limiter.allow(source, 0.0)
    assert len(limiter) == 100


def test_back_off_doubles_after_the_free_failures_and_a_success_clears_it() -> None:
    backoff = FailureBackoff(free=3, first=1.0, longest=8.0)
    waits = [backoff.failed("alice", 0.0) for _ in range(8)]
    assert waits == [0, 0, 0, 1, 2, 4, 8, 8]
    assert backoff.retry_after("alice", 3.0) == 5.0
    backoff.succeeded("alice")
    assert backoff.retry_after("alice", 3.0) == 0.0


def test_back_off_is_forgotten_after_a_quiet_spell() -> None:
    backoff = FailureBackoff(free=1, first=10.0, forget_after=60.0)
    backoff.failed("x", 0.0)
    assert backoff.failed("x", 1.0) == 10.0
    assert backoff.retry_after("x", 100.0) == 0.0
    assert backoff.failed("x", 100.0) == 0.0


def test_a_window_refuses_past_its_limit_until_the_oldest_failure_leaves_it() -> None:
    window = AttemptWindow(limit=3, seconds=600)
    for t in (0.0, 10.0, 20.0):
        assert not window.exhausted("192.0.2.1", t)
        window.failed("192.0.2.1", t)
    assert window.exhausted("192.0.2.1", 30.0)
    assert window.retry_after("192.0.2.1", 30.0) == 570.0
    assert not window.exhausted("192.0.2.2", 30.0)
    assert not window.exhausted("192.0.2.1", 600.0)
    window.failed("192.0.2.1", 601.0)
    assert window.exhausted("192.0.2.1", 601.0)


def test_a_guessing_stranger_waits_but_the_users_own_phone_signs_in() -> None:
    throttle = LoginThrottle(by_source=FailureBackoff(free=3), by_user=FailureBackoff(free=5))
    throttle.succeeded("alice", "192.0.2.10", 0.0)  # her phone, earlier today
    for i in range(12):
        throttle.failed("alice", "198.51.100.7", 10.0 + i)
    assert throttle.source_wait("198.51.100.7", 30.0) > 0
    assert throttle.user_wait("alice", "198.51.100.8", 30.0) > 0   # another stranger
    assert throttle.user_wait("alice", "192.0.2.10", 30.0) == 0.0  # her phone
    assert throttle.source_wait("192.0.2.10", 30.0) == 0.0


def test_calls_nobody_vouched_for_are_limited_per_source_and_in_total() -> None:
    limits = CallLimits(per_source=2, unknown_total=3, per_user=1)
    assert [limits.admit(None, "198.51.100.1") for _ in range(3)] == \
        [None, None, "too many calls from 198.51.100.1"]
    assert limits.admit(None, "198.51.100.2") is None
    assert limits.admit(None, "198.51.100.3") == "too many calls from callers who did not sign in"
    assert limits.admit("gateway:gw1", "192.0.2.5") is None  # its own max_calls applies
    assert limits.admit("user:sip:alice@example.com", "192.0.2.9") is None
    assert limits.admit("user:sip:alice@example.com", "192.0.2.10") == \
        "too many calls at once for sip:alice@example.com"
    limits.release(None, "198.51.100.1")
    assert limits.admit(None, "198.51.100.3") is None
    limits.release("user:sip:alice@example.com", "192.0.2.9")
    assert limits.admit("user:sip:alice@example.com", "192.0.2.10") is None


def test_request_limits_drop_a_flood_and_answer_excess_invites_busy() -> None:
    limits = RequestLimits(RateLimiter(50, 100), RateLimiter(10, 20),
                           trusted=["127.0.0.1/32"])
    read = sum(limits.message("198.51.100.1", 0.0) for _ in range(20_000))
    assert read == 100 and limits.dropped == 19_900
    assert all(limits.message("127.0.0.1", 0.0) for _ in range(1_000))  # trusted
    assert [limits.invite("198.51.100.2", 0.0) for _ in range(21)][-2:] == [0.0, 1.0]
    limits.trusted_hosts.add("192.0.2.7")  # a gateway: limited by its own settings
    assert all(limits.invite("192.0.2.7", 0.0) == 0.0 for _ in range(100))
    assert limits.message("198.51.100.1", 1.0)  # a second later, 50 more


def test_many_sources_each_within_their_rate_are_shed_together_but_signed_in_ones_pass() -> None:
    throttle = LoginThrottle()
    throttle.succeeded("alice", "192.0.2.10", 0.0)
    limits = RequestLimits(RateLimiter(50, 100), RateLimiter(10, 20),
                           strangers=RateLimiter(1000, 1000),
                           known=lambda host: throttle.source_known(host, 0.5))
    read = sum(limits.message(f"198.51.{n // 250}.{n % 250}", 0.5)
               for n in range(2000) for _ in range(10))
    assert read == 1000  # 20,000 messages from 2,000 strangers: the shared budget
    assert all(limits.message("192.0.2.10", 0.5) for _ in range(50))  # alice's phone
