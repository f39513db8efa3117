"""Every RFC 3261 §17 timer path of the four pure transaction machines."""

from __future__ import annotations

from confserver.sip.transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    Deliver,
    Effect,
    Failed,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    StartTimer,
    State,
    StopTimer,
    Terminated,
    TimerSettings,
    Transmit,
    make_response,
)

from .harness import make_request

T = TimerSettings()


def kinds(effects: list[Effect]) -> list[str]:
    return [type(e).__name__ for e in effects]


def started(effects: list[Effect]) -> dict[str, float]:
    return {e.name: e.delay for e in effects if isinstance(e, StartTimer)}


def test_client_invite_retransmits_with_doubling_timer_a_then_times_out() -> None:
    tx = ClientInviteTransaction(make_request("INVITE"), reliable=False, timers=T)
    effects = tx.start()
    assert started(effects) == {"A": 0.5, "B": 32.0}
    delays = []
    for _ in range(6):
        effects = tx.on_timer("A")
        assert isinstance(effects[0], Transmit)
        delays.append(started(effects)["A"])
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    effects = tx.on_timer("B")
    assert Failed("timeout") in effects and Terminated() in effects
    assert tx.state is State.TERMINATED


def test_client_invite_reliable_has_no_timer_a_and_zero_timer_d() -> None:
    invite = make_request("INVITE")
    tx = ClientInviteTransaction(invite, reliable=True, timers=T)
    assert "A" not in started(tx.start())
    effects = tx.on_response(make_response(invite, 486, "Busy Here", "tt"))
    assert started(effects)["D"] == 0.0


def test_client_invite_non_2xx_acked_and_retransmission_reacked() -> None:
    invite = make_request("INVITE")
    tx = ClientInviteTransaction(invite, reliable=False, timers=T)
    tx.start()
    assert kinds(tx.on_response(make_response(invite, 180, "Ringing", "tt"))) == \
        ["StopTimer", "StopTimer", "Deliver"]
    busy = make_response(invite, 486, "Busy Here", "tt")
    effects = tx.on_response(busy)
    acks = [e.message for e in effects if isinstance(e, Transmit)]
    assert len(acks) == 1 and acks[0].method == "ACK"
    ack = acks[0]
    assert ack.top_via.branch == invite.top_via.branch
    assert ack.headers.get("To") == busy.headers.get("To")
    assert started(effects)["D"] == 32.0
    assert tx.on_response(busy) == [Transmit(ack)]  # absorbed, ACK re-sent
    assert tx.on_timer("D") == [Terminated()]


def test_client_invite_2xx_goes_to_accepted_and_passes_retransmissions_up() -> None:
    invite = make_request("INVITE")
    tx = ClientInviteTransaction(invite, reliable=False, timers=T)
    tx.start()
    ok = make_response(invite, 200, "OK", "tt")
    effects = tx.on_response(ok)
    assert Deliver(ok) in effects and started(effects) == {"M": 32.0}
    assert tx.state is State.ACCEPTED
    assert tx.on_response(ok) == [Deliver(ok)]
    assert tx.on_timer("M") == [Terminated()]


def test_client_non_invite_timer_e_caps_at_t2_and_f_times_out() -> None:
    tx = ClientNonInviteTransaction(make_request("OPTIONS"), reliable=False, timers=T)
    assert started(tx.start()) == {"E": 0.5, "F": 32.0}
    delays = [started(tx.on_timer("E"))["E"] for _ in range(5)]
    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert Failed("timeout") in tx.on_timer("F")


def test_client_non_invite_proceeding_retransmits_at_t2_then_completes() -> None:
    request = make_request("BYE", to_tag="x")
    tx = ClientNonInviteTransaction(request, reliable=False, timers=T)
    tx.start()
    tx.on_response(make_response(request, 100, "Trying"))
    assert started(tx.on_timer("E"))["E"] == 4.0
    effects = tx.on_response(make_response(request, 200, "OK"))
    assert started(effects)["K"] == 5.0
    assert tx.on_response(make_response(request, 200, "OK")) == []
    assert tx.on_timer("K") == [Terminated()]


def test_client_transport_error_fails() -> None:
    tx = ClientNonInviteTransaction(make_request("OPTIONS"), reliable=True, timers=T)
    tx.start()
    assert tx.on_transport_error() == [Failed("transport"), Terminated()]
    assert tx.on_transport_error() == []


def test_server_invite_sends_100_after_200ms_and_absorbs_retransmissions() -> None:
    invite = make_request("INVITE")
    tx = ServerInviteTransaction(invite, reliable=False, timers=T)
    assert started(tx.start()) == {"trying": 0.2}
    [trying] = tx.on_timer("trying")
    assert isinstance(trying, Transmit) and trying.message.status == 100
    assert tx.on_request(invite) == [trying]


def test_server_invite_no_100_when_tu_answers_fast() -> None:
    invite = make_request("INVITE")
    tx = ServerInviteTransaction(invite, reliable=False, timers=T)
    tx.start()
    effects = tx.send(make_response(invite, 180, "Ringing", "tt"))
    assert StopTimer("trying") in effects
    assert tx.on_timer("trying") == []


def test_server_invite_non_2xx_timer_g_h_and_ack_to_confirmed_then_i() -> None:
    invite = make_request("INVITE")
    tx = ServerInviteTransaction(invite, reliable=False, timers=T)
    tx.start()
    busy = make_response(invite, 486, "Busy Here", "tt")
    assert started(tx.send(busy)) == {"H": 32.0, "G": 0.5}
    delays = [started(tx.on_timer("G"))["G"] for _ in range(5)]
    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert tx.on_request(invite) == [Transmit(busy)]
    ack = make_request("ACK", to_tag="tt", cseq=1)
    effects = tx.on_request(ack)
    assert tx.state is State.CONFIRMED and started(effects) == {"I": 5.0}
    assert tx.on_request(ack) == []  # ACK retransmissions absorbed
    assert tx.on_timer("I") == [Terminated()]


def test_server_invite_timer_h_fires_without_ack() -> None:
    invite = make_request("INVITE")
    tx = ServerInviteTransaction(invite, reliable=False, timers=T)
    tx.start()
    tx.send(make_response(invite, 404, "Not Found", "tt"))
    assert Failed("timeout") in tx.on_timer("H")


def test_server_invite_2xx_retransmitted_until_ack_then_l() -> None:
    invite = make_request("INVITE")
    tx = ServerInviteTransaction(invite, reliable=False, timers=T)
    tx.start()
    ok = make_response(invite, 200, "OK", "tt")
    assert started(tx.send(ok)) == {"L": 32.0, "G2xx": 0.5}
    assert tx.on_timer("G2xx")[0] == Transmit(ok)
    assert tx.ack_for_2xx() == [StopTimer("G2xx")]
    assert tx.on_timer("L") == [StopTimer("G2xx"), Terminated()]


def test_server_invite_2xx_without_ack_reports_no_ack() -> None:
    invite = make_request("INVITE")
    tx = ServerInviteTransaction(invite, reliable=True, timers=T)
    tx.start()
    tx.send(make_response(invite, 200, "OK", "tt"))
    assert Failed("no-ack") in tx.on_timer("L")


def test_server_non_invite_timer_j_and_retransmission() -> None:
    request = make_request("OPTIONS")
    tx = ServerNonInviteTransaction(request, reliable=False, timers=T)
    tx.start()
    assert tx.on_request(request) == []  # nothing to repeat yet
    ok = make_response(request, 200, "OK")
    assert started(tx.send(ok)) == {"J": 32.0}
    assert tx.on_request(request) == [Transmit(ok)]
    assert tx.send(ok) == []  # a second final response is refused
    assert tx.on_timer("J") == [Terminated()]
    reliable = ServerNonInviteTransaction(request, reliable=True, timers=T)
    reliable.start()
    assert started(reliable.send(ok)) == {"J": 0.0}
