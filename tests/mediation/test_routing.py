"""Route authorization, least-cost ordering, failover decisions, gateway health,
trunk registration timing, caller ID, the E-model and gateway profiles (pure cores)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from mediation.callerid import outbound_numbers
from mediation.emodel import estimate_mos, mos_from_r, r_factor
from mediation.failover import FailoverSequence, fails_over
from mediation.gateways import (
    GatewayError,
    GatewaySettings,
    Translation,
    from_stored,
    with_overrides,
)
from mediation.health import GatewayHealth, HealthSettings
from mediation.media_bridge import COMFORT_NOISE_DBOV, MediaBridge
from mediation.profiles import from_profile, load_profiles
from mediation.rates import RateError, RateTable, Window, parse_days, parse_rate_fields
from mediation.registration import RegistrationState
from mediation.routing import Refusal, Route, RoutePlan, RoutingError, RoutingTable, VoicePolicy
from mediation.store import read_rate_csv

LOCAL = VoicePolicy("local", ("local",))
WORLD = VoicePolicy("world", ("local", "international"))
ROUTES = [
    Route("na", r"\+1\d{10}", ("local",), ("gw-a", "gw-b", "gw-c"), priority=1),
    Route("intl", r"\+[2-9]\d{6,14}", ("international",), ("gw-b",), priority=2),
]


def rates(**costs: dict[str, float]) -> dict[str, RateTable]:
    tables = {}
    for gateway, prefixes in costs.items():
        table = RateTable()
        for prefix, cost in prefixes.items():
            table.add(prefix, cost)
        tables[gateway.replace("_", "-")] = table
    return tables


def gateways_of(plan: RoutePlan | Refusal) -> list[str]:
    assert isinstance(plan, RoutePlan), plan
    return [a.gateway for a in plan.attempts]


def test_usage_authorizes_the_route() -> None:
    table = RoutingTable(ROUTES)
    refused = table.plan("+442079460000", LOCAL)
    assert isinstance(refused, Refusal) and refused.status == 403
    assert "no usage" in refused.reason and "intl" in refused.diagnostic
    assert gateways_of(table.plan("+442079460000", WORLD)) == ["gw-b"]


def test_no_route_no_policy_no_gateway() -> None:
    table = RoutingTable(ROUTES)
    assert isinstance(r := table.plan("+12", WORLD), Refusal) and r.status == 404
    assert isinstance(r := table.plan("+14255550100", None), Refusal) and r.status == 403
    down = table.plan("+14255550100", LOCAL, usable=lambda gw: False)
    assert isinstance(down, Refusal) and down.status == 503
    assert "gw-a, gw-b, gw-c" in down.diagnostic


def test_cheapest_first_for_the_longest_prefix_unpriced_last() -> None:
    table = RoutingTable(ROUTES, rates(gw_a={"1": 0.02}, gw_b={"1": 0.01, "1425": 0.05}))
    assert gateways_of(table.plan("+14255550100", LOCAL)) == ["gw-a", "gw-b", "gw-c"]
    assert gateways_of(table.plan("+12065550100", LOCAL)) == ["gw-b", "gw-a", "gw-c"]


def test_equal_cost_takes_turns() -> None:
    table = RoutingTable(ROUTES, rates(gw_a={"1": 0.01}, gw_b={"1": 0.01}, gw_c={"1": 0.03}))
    firsts = [gateways_of(table.plan("+14255550100", LOCAL))[0] for _ in range(4)]
    assert firsts == ["gw-a", "gw-b", "gw-a", "gw-b"]
    assert gateways_of(table.plan("+14255550100", LOCAL))[2] == "gw-c"


def test_time_windows_change_the_order() -> None:
    evening = Window(frozenset(range(7)), 18 * 60, 8 * 60)
    a, b = RateTable(), RateTable()
    a.add("1", 0.02)
    b.add("1", 0.03)
    b.add("1", 0.005, evening)
    table = RoutingTable(ROUTES, {"gw-a": a, "gw-b": b})
    assert gateways_of(table.plan("+14255550100", LOCAL, weekday=2, minute=12 * 60))[0] == "gw-a"
    assert gateways_of(table.plan("+14255550100", LOCAL, weekday=2, minute=23 * 60))[0] == "gw-b"
    assert gateways_of(table.plan("+14255550100", LOCAL, weekday=3, minute=7 * 60))[0] == "gw-b"


def test_policy_usage_order_comes_before_cost() -> None:
    routes = [Route("cheap-intl", r"\+.*", ("international",), ("gw-x",)),
              Route("local", r"\+.*", ("local",), ("gw-y",))]
    table = RoutingTable(routes, rates(gw_x={"1": 0.0}, gw_y={"1": 0.5}))
    assert gateways_of(table.plan("+14255550100", WORLD)) == ["gw-y", "gw-x"]


def test_bad_routes_and_policies_are_refused() -> None:
    with pytest.raises(RoutingError, match="regular expression"):
        Route("r", "(", ("local",), ("gw",))
    with pytest.raises(RoutingError, match="gateway"):
        Route("r", ".*", ("local",), ())
    with pytest.raises(RoutingError, match="twice"):
        VoicePolicy("p", ("a", "a"))
    with pytest.raises(RoutingError, match="name"):
        VoicePolicy("bad name", ("a",))


@pytest.mark.parametrize("status,translations,expected", [
    (503, None, True), (500, None, True), (408, None, True), (None, None, True),
    (404, None, False), (486, None, False), (603, None, False),
    (404, {404: 503}, True),
])
def test_failover_decision(status: int | None, translations: dict[int, int] | None,
                           expected: bool) -> None:
    assert fails_over(status, translations) is expected


def test_failover_sequence_never_repeats_a_gateway() -> None:
    table = RoutingTable([Route("a", ".*", ("local",), ("g1", "g2")),
                          Route("b", ".*", ("local",), ("g2", "g3"))])
    plan = table.plan("+14255550100", LOCAL)
    assert isinstance(plan, RoutePlan)
    sequence = FailoverSequence(plan.attempts)
    first = sequence.next_attempt()
    assert first is not None and first.gateway == "g1"
    sequence.record("g1", 503)
    second = sequence.next_attempt(usable=["g3"])  # g2 went down meanwhile
    assert second is not None and second.gateway == "g3"
    assert sequence.next_attempt() is None


def test_gateway_goes_down_backs_off_and_comes_back() -> None:
    health = GatewayHealth(HealthSettings(interval=10, failures_to_down=3, max_backoff=40))
    assert [health.probe_result(False) for _ in range(2)] == [10, 10] and health.up
    assert health.probe_result(False) == 10 and not health.up
    assert [health.probe_result(False) for _ in range(3)] == [20, 40, 40]
    assert not health.available(0)
    assert health.probe_result(True) == 10 and health.available(0)


def test_repeated_call_failures_throttle_a_gateway() -> None:
    health = GatewayHealth(HealthSettings(throttle_after=3, throttle_for=60))
    for _ in range(2):
        health.call_result(True, 100.0)
    health.call_result(False, 100.0)  # a success resets the count
    for _ in range(3):
        health.call_result(True, 100.0)
    assert not health.available(130.0) and health.describe(130.0) == "throttled"
    assert health.available(160.0)


def test_registration_refreshes_before_expiry_and_moves_to_the_alternate() -> None:
    state = RegistrationState(("reg1:5060", "reg2:5060"), 600)
    assert state.on_success(600, 0.0) == 300 and state.registered(599)
    assert not state.registered(601)
    assert state.on_failure(0.0) == 30 and state.registrar == "reg2:5060"
    assert state.on_failure(0.0) == 60 and state.registrar == "reg1:5060"
    assert [state.on_failure(0.0) for _ in range(6)][-1] == 600
    assert state.on_success(4, 0.0) == 2


def test_caller_id_translation_alternate_and_suppression() -> None:
    trunk = GatewaySettings("t", strip_plus=True, calling_translations=(
        Translation(r"\+1425555(\d{4})", "+1425555$1"),))
    plain = outbound_numbers(trunk, None, "+442079460000", "+14255550101", "Alice")
    assert (plain.called, plain.calling, plain.display, plain.asserted, plain.privacy) == \
        ("442079460000", "14255550101", "Alice", "14255550101", False)
    site = Route("r", ".*", ("local",), ("t",), alternate_caller_id="+14255550000")
    main = outbound_numbers(trunk, site, "+442079460000", "+14255550101", "Alice")
    assert (main.calling, main.display) == ("14255550000", "")
    hidden = Route("r", ".*", ("local",), ("t",), suppress_caller_id=True)
    private = outbound_numbers(trunk, hidden, "+442079460000", "+14255550101", "Alice")
    assert (private.calling, private.privacy, private.asserted) == ("anonymous", True, "14255550101")
    called_rule = GatewaySettings("t2", called_translations=(Translation(r"\+44(\d+)", "0044$1"),))
    assert outbound_numbers(called_rule, None, "+442079460000", "", "").called == "00442079460000"


def test_e_model_mos() -> None:
    assert mos_from_r(93.2) == pytest.approx(4.41, abs=0.01)
    assert r_factor("PCMU", 0.0, 0.0) == pytest.approx(93.2)
    clean = estimate_mos("PCMU", 0.0, 2.0, 20.0)
    lossy = estimate_mos("PCMU", 5.0, 2.0, 20.0)
    slow = estimate_mos("PCMU", 0.0, 2.0, 600.0)
    assert clean > 4.3 and 3.3 < lossy < 4.0 and slow < clean


def test_every_profile_builds_and_overrides_are_checked() -> None:
    profiles = load_profiles()
    assert {"generic-sip", "audiocodes-mediant-1000", "dialogic-dmg4000",
            "itsp-registration-trunk"} <= set(profiles)
    for name in profiles:
        extra = {"registrar": "127.0.0.1:5099", "username": "u"} if "registration" in name else {}
        settings = from_profile("gw1", name, {"host": "127.0.0.1", "port": 5070, **extra})
        assert settings.profile == name and settings.model
        assert from_stored("gw1", settings.as_dict()) == settings
    dmg = from_profile("gw2", "dialogic-dmg4000", {"codecs": "pcma,pcmu"})
    assert dmg.dtmf == "info" and dmg.translations == {404: 503} and dmg.codecs == ("PCMA", "PCMU")
    with pytest.raises(GatewayError, match="dtmf"):
        with_overrides(dmg, {"dtmf": "smoke-signals"})
    with pytest.raises(GatewayError, match="not a gateway setting"):
        with_overrides(dmg, {"colour": "blue"})
    with pytest.raises(GatewayError, match="max_calls"):
        with_overrides(dmg, {"max_calls": "many"})
    with pytest.raises(GatewayError, match="registrar"):
        from_profile("t", "itsp-registration-trunk", {})
    with pytest.raises(GatewayError, match="no profile"):
        from_profile("t", "no-such-box", {})


def test_rate_csv_lines_and_errors() -> None:
    assert parse_rate_fields(["+44", "0.02"])[:2] == ("44", 0.02)
    _p, _c, window = parse_rate_fields(["1", "0.01", "Mon-Fri", "18:00", "08:00"])
    assert window.days == frozenset(range(5)) and (window.start, window.end) == (1080, 480)
    assert parse_days("Sat-Mon") == frozenset({5, 6, 0})
    for bad, message in ((["x1", "1"], "prefix"), (["1", "cheap"], "cost"), (["1", "-1"], "zero"),
                         (["1", "1", "Funday"], "day"), (["1", "1", "Mon", "25:00", "26:00"], "time"),
                         (["1"], "expected")):
        with pytest.raises(RateError, match=message):
            parse_rate_fields(bad)
    text = "prefix,cost\n# comment\n1,0.01\n44,abc\n\n33,0.02,Sat,09:00,17:00\n"
    lines = list(read_rate_csv(io.StringIO(text)))
    assert [n for n, _ in lines] == [3, 4, 6]
    assert isinstance(lines[1][1], str) and "cost" in lines[1][1]


def test_media_bridge_passes_g711_unchanged_and_resamples_wideband() -> None:
    class Session:
        dtmf_in_burst = False
        stream = None

    digits: list[tuple[int, str]] = []
    bridge = MediaBridge(lambda side, digit, _m: digits.append((side, digit)))
    frame = (np.arange(160, dtype=np.int16) * 50)
    assert bridge.frame(0, Session(), frame, 8000, 160) is None  # the other leg not yet pulled
    out = bridge.frame(1, Session(), None, 8000, 160)
    assert out is not None and np.array_equal(out, frame)
    # leg 1 at 16 kHz: leg 0's 8 kHz audio arrives resampled, 320 samples a frame
    wide = MediaBridge(lambda *_a: None)
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(1600) / 8000)).astype(np.int16)
    got = []
    for i in range(10):
        wide.frame(0, Session(), tone[i * 160:(i + 1) * 160], 8000, 160)
        piece = wide.frame(1, Session(), None, 16000, 320)
        if piece is not None:
            assert len(piece) == 320
            got.append(piece)
    assert len(got) >= 8
    muted = MediaBridge(lambda *_a: None)

    class Keying(Session):
        dtmf_in_burst = True

    muted.frame(1, Keying(), frame, 8000, 160)
    silent = muted.frame(0, Session(), None, 8000, 160)
    assert silent is not None and not silent.any()
    bridge.sides[1].on_digit(None, "5", "inband")
    assert digits == [(1, "5")]


def test_a_silent_leg_gives_the_other_faint_comfort_noise_not_nothing() -> None:
    """Leg 0 talks, then stops sending (DTX, a hold): leg 1 keeps getting a frame
    each tick, faint noise at COMFORT_NOISE_DBOV, and real audio again once leg 0
    resumes; relayed G.711 samples still pass unchanged."""
    class Session:
        dtmf_in_burst = False
        stream = None

    bridge = MediaBridge(lambda *_a: None, np.random.default_rng(7))
    speech = (np.arange(160, dtype=np.int16) * 40)
    assert bridge.frame(1, Session(), None, 8000, 160) is None  # leg 0 not started yet
    bridge.frame(0, Session(), speech, 8000, 160)
    out = bridge.frame(1, Session(), None, 8000, 160)
    assert out is not None and np.array_equal(out, speech)
    for _tick in range(25):  # half a second of nothing from leg 0
        bridge.frame(0, Session(), None, 8000, 160)
        noise = bridge.frame(1, Session(), None, 8000, 160)
        assert noise is not None and len(noise) == 160
        rms = float(np.sqrt(np.mean(noise.astype(np.float64) ** 2)))
        expected = 32767 * 10 ** (-COMFORT_NOISE_DBOV / 20)
        assert 0.5 * expected < rms < 2 * expected
    assert bridge.comfort_frames == [26, 25]  # leg 1 sent nothing all along either
    bridge.frame(0, Session(), speech, 8000, 160)
    again = bridge.frame(1, Session(), None, 8000, 160)
    assert again is not None and np.array_equal(again, speech)
