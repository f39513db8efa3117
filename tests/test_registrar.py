"""REGISTER end to end through the endpoint, with digest and the location service."""

from __future__ import annotations

import logging

import pytest

from confserver.adapters.sip.registrar import RegisterResult
from confserver.sip.digest import DigestClient
from confserver.sip.message import Response

from .harness import Harness, make_request

AOR = "sip:alice@example.com"


def register(h: Harness, contacts: list[str], *, expires: str | None = None, cseq: int = 1,
             password: str = "alice-password", call_id: str = "reg1@test",
             algorithm_pref: str | None = None) -> Response:
    extra = [("Contact", c) for c in contacts]
    if expires is not None:
        extra.append(("Expires", expires))
    request = make_request("REGISTER", "sip:example.com", to=AOR, cseq=cseq, call_id=call_id,
                           extra=extra, contact=False, branch=f"z9hG4bK{call_id.replace('@', '.')}{cseq}a")
    h.feed(request)
    [challenge] = h.responses()
    if challenge.status != 401:
        return challenge
    challenges = challenge.headers.get_all("WWW-Authenticate")
    if algorithm_pref:
        challenges = [c for c in challenges if f"algorithm={algorithm_pref}" in c]
    request = make_request("REGISTER", "sip:example.com", to=AOR, cseq=cseq + 1, call_id=call_id,
                           extra=extra, contact=False, branch=f"z9hG4bK{call_id.replace('@', '.')}{cseq}b")
    request.headers.add("Authorization", DigestClient.create("alice", password).authorization(
        challenges, "REGISTER", "sip:example.com"))
    h.feed(request)
    [final] = h.responses()
    return final


def setup() -> Harness:
    h = Harness()
    h.users.add(AOR, "alice-password", "Alice", "+14255550101")
    return h


def test_register_challenge_then_ok_with_sha256() -> None:
    h = setup()
    ok = register(h, ["<sip:alice@10.0.0.1:5060>"], algorithm_pref="SHA-256")
    assert ok.status == 200
    assert ok.headers.get("Contact") == "<sip:alice@10.0.0.1:5060>;expires=3600"
    assert ok.headers.get("Date")


def test_register_md5() -> None:
    h = setup()
    assert register(h, ["<sip:alice@10.0.0.1>"], algorithm_pref="MD5").status == 200


def test_several_devices_and_unregister_one() -> None:
    h = setup()
    register(h, ["<sip:alice@10.0.0.1>;expires=600"], call_id="phone")
    ok = register(h, ["<sip:alice@10.0.0.2>;q=0.5"], call_id="laptop")
    assert len(ok.headers.values("Contact")) == 2
    ok = register(h, ["<sip:alice@10.0.0.1>;expires=0"], call_id="phone", cseq=10)
    assert ok.headers.values("Contact") == ["<sip:alice@10.0.0.2>;expires=3600;q=0.5"]


def test_wildcard_unregister_needs_expires_zero() -> None:
    h = setup()
    register(h, ["<sip:alice@10.0.0.1>"])
    assert register(h, ["*"], cseq=5).status == 400
    ok = register(h, ["*"], expires="0", cseq=7)
    assert ok.status == 200 and ok.headers.get("Contact") is None
    assert h.bindings.current(AOR, h.clock.seconds()) == []


def test_expiry_removes_binding() -> None:
    h = setup()
    register(h, ["<sip:alice@10.0.0.1>"], expires="120")
    h.clock.advance(121)
    assert h.bindings.current(AOR, h.clock.seconds()) == []


def test_too_brief_interval_gets_423() -> None:
    h = setup()
    resp = register(h, ["<sip:alice@10.0.0.1>"], expires="10")
    assert resp.status == 423 and resp.headers.get("Min-Expires") == "60"


def test_max_expires_clamped() -> None:
    h = setup()
    ok = register(h, ["<sip:alice@10.0.0.1>"], expires="999999")
    assert ok.headers.get("Contact", ) == "<sip:alice@10.0.0.1>;expires=3600"


def test_wrong_password_forbidden() -> None:
    h = setup()
    assert register(h, ["<sip:alice@10.0.0.1>"], password="wrong-password").status == 403


def test_stale_nonce_rechallenged_with_stale_true() -> None:
    h = setup()
    request = make_request("REGISTER", "sip:example.com", to=AOR, contact=False,
                           extra=[("Contact", "<sip:alice@10.0.0.1>")])
    h.feed(request)
    [challenge] = h.responses()
    h.clock.advance(301)
    retry = make_request("REGISTER", "sip:example.com", to=AOR, cseq=2, contact=False,
                         branch="z9hG4bKstale", extra=[("Contact", "<sip:alice@10.0.0.1>")])
    retry.headers.add("Authorization", DigestClient.create("alice", "alice-password").authorization(
        challenge.headers.get_all("WWW-Authenticate"), "REGISTER", "sip:example.com"))
    h.feed(retry)
    [resp] = h.responses()
    assert resp.status == 401 and "stale=true" in (resp.headers.get("WWW-Authenticate") or "")


def test_replayed_credentials_rechallenged() -> None:
    h = setup()
    request = make_request("REGISTER", "sip:example.com", to=AOR, contact=False,
                           extra=[("Contact", "<sip:alice@10.0.0.1>")])
    h.feed(request)
    [challenge] = h.responses()
    auth = DigestClient.create("alice", "alice-password").authorization(
        challenge.headers.get_all("WWW-Authenticate"), "REGISTER", "sip:example.com")
    statuses = []
    for i in (2, 3):
        again = make_request("REGISTER", "sip:example.com", to=AOR, cseq=i, contact=False,
                             branch=f"z9hG4bKrep{i}", extra=[("Contact", "<sip:alice@10.0.0.1>")])
        again.headers.add("Authorization", auth)
        h.feed(again)
        statuses += [r.status for r in h.responses()]
    assert statuses == [200, 401]


def test_cannot_register_someone_elses_aor() -> None:
    h = setup()
    h.users.add("sip:bob@example.com", "bob-password")
    request = make_request("REGISTER", "sip:example.com", to="sip:alice@example.com",
                           contact=False, extra=[("Contact", "<sip:bob@10.0.0.9>")])
    h.feed(request)
    [challenge] = h.responses()
    retry = make_request("REGISTER", "sip:example.com", to="sip:alice@example.com", cseq=2,
                         contact=False, branch="z9hG4bKother",
                         extra=[("Contact", "<sip:bob@10.0.0.9>")])
    retry.headers.add("Authorization", DigestClient.create("bob", "bob-password").authorization(
        challenge.headers.get_all("WWW-Authenticate"), "REGISTER", "sip:example.com"))
    h.feed(retry)
    assert [r.status for r in h.responses()] == [403]


def test_register_for_other_domain_404() -> None:
    h = setup()
    h.feed(make_request("REGISTER", "sip:other.org", to="sip:alice@other.org", contact=False))
    assert [r.status for r in h.responses()] == [404]


def test_removed_user_can_no_longer_register() -> None:
    h = setup()
    assert register(h, ["<sip:alice@10.0.0.1>"]).status == 200
    h.users.remove(AOR)
    assert register(h, ["<sip:alice@10.0.0.1>"], cseq=20).status == 403


def test_out_of_order_register_cseq_500() -> None:
    h = setup()
    register(h, ["<sip:alice@10.0.0.1>"], cseq=10)
    assert register(h, ["<sip:alice@10.0.0.1>"], cseq=3).status == 500


def test_calls_reuse_a_second_old_ha1_but_register_always_asks() -> None:
    h = setup()
    asked: list[str] = []
    real_ha1 = h.users.ha1

    def counting_ha1(username: str, realm: str, algorithm: str) -> str | None:
        asked.append(username)
        return real_ha1(username, realm, algorithm)

    h.users.ha1 = counting_ha1  # type: ignore[method-assign]
    registrar = h.registrar
    challenge = registrar.authenticate(make_request("INVITE", "sip:bob@example.com"), 100.0)[1]
    assert challenge is not None and challenge.status == 401
    challenges = [v for k, v in challenge.headers if k == "WWW-Authenticate"]

    client = DigestClient.create("alice", "alice-password")  # counts its own nonce uses

    def invite(n: int, now: float) -> str | None:
        request = make_request("INVITE", "sip:bob@example.com", cseq=n, branch=f"z9hG4bKha1{n}")
        request.headers.add("Proxy-Authorization", client.authorization(
            challenges, "INVITE", "sip:bob@example.com"))
        return registrar.authenticate(request, now, "Proxy-Authorization")[0]

    assert invite(1, 100.0) == "alice" and invite(2, 100.5) == "alice"
    assert asked == ["alice"]
    h.users.remove(AOR)
    assert invite(3, 100.9) == "alice"  # still the answer from 100.0
    assert invite(4, 101.1) is None and asked == ["alice", "alice"]
    assert register(h, ["<sip:alice@10.0.0.1>"]).status == 403


def test_failed_logins_are_logged_on_one_line_and_a_guessing_source_waits(
        caplog: pytest.LogCaptureFixture) -> None:
    h = setup()
    caplog.set_level(logging.WARNING, "switchboard.auth")
    statuses = []
    for n in range(8):
        request = make_request("REGISTER", "sip:example.com", to=AOR, cseq=100 + n,
                               branch=f"z9hG4bKguess{n}", call_id="guess")
        challenge = h.registrar.authenticate(request, 100.0, source="192.0.2.66")[1]
        if challenge is not None and challenge.status == 401:
            challenges = [v for k, v in challenge.headers if k == "WWW-Authenticate"]
            request.headers.add("Authorization", DigestClient.create("alice", f"guess{n}")
                                .authorization(challenges, "REGISTER", "sip:example.com"))
            challenge = h.registrar.authenticate(request, 100.0, source="192.0.2.66")[1]
        assert challenge is not None
        statuses.append((challenge.status, dict(challenge.headers).get("Retry-After")))
    assert statuses[:6] == [(403, None)] * 6  # five free failures, the sixth earns a wait
    assert statuses[6:] == [(403, "1")] * 2   # refused unchecked while it lasts
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == ('auth failure: user="alice" source=192.0.2.66 method=REGISTER '
                        'reason="wrong password"')
    # alice's own phone, elsewhere, still signs in
    assert register(h, ["<sip:alice@10.0.0.1>"]).status == 200


def test_a_user_name_cannot_forge_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    h = setup()
    caplog.set_level(logging.WARNING, "switchboard.auth")
    request = make_request("REGISTER", "sip:example.com", to=AOR)
    [challenge] = [v for k, v in (h.registrar.authenticate(request, 1.0)[1] or
                                  RegisterResult(0, "", [])).headers if k == "WWW-Authenticate"][:1]
    forged = DigestClient.create("x\r\n2026-12-07 auth ok: user=root", "pw").authorization(
        [challenge], "REGISTER", "sip:example.com")
    request.headers.add("Authorization", forged)
    h.registrar.authenticate(request, 1.0, source="192.0.2.67")
    [line] = [r.getMessage() for r in caplog.records]
    assert "\n" not in line and 'user="x\\r\\n2026-12-07 auth ok: user=root"' in line
