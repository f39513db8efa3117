"""RTP port allocation: even ports, reuse, and ports another program holds."""

from __future__ import annotations

import socket

from confserver.adapters.media.ports import PortPool
from confserver.adapters.media.udp import port_pair_free


def test_even_ports_are_handed_out_and_come_back() -> None:
    pool = PortPool(20001, 20008)
    assert sorted([pool.allocate(), pool.allocate(), pool.allocate()]) == [20002, 20004, 20006]
    assert pool.allocate() is None and pool.in_use == 3
    pool.release(20004)
    pool.release(20004)  # twice is harmless
    assert pool.allocate() == 20004 and pool.allocate() is None


def test_ports_are_taken_at_random() -> None:
    """Nobody can tell the next call's port from the last one's."""
    orders = {tuple(PortPool(20000, 20200).allocate() for _ in range(5)) for _ in range(20)}
    assert len(orders) > 15
    pool = PortPool(20000, 20200)
    taken = [pool.allocate() for _ in range(100)]
    assert sorted(taken) == list(range(20000, 20200, 2))  # each once


def test_a_port_the_probe_finds_busy_is_passed_over_and_tried_later() -> None:
    busy = {20002}
    pool = PortPool(20000, 20006, probe=lambda port: port not in busy)
    assert {pool.allocate(), pool.allocate()} == {20000, 20004}  # 20002 is held elsewhere
    assert pool.allocate() is None  # looked at once, still busy: no endless loop
    busy.clear()
    assert pool.allocate() == 20002


def test_the_last_ports_are_kept_for_privileged_calls() -> None:
    """Strangers' calls take at most 80% of the range; signed-in users and gateways
    get the rest."""
    pool = PortPool(20000, 20020, reserve=0.2)  # ten ports, two kept back
    strangers = [pool.allocate(privileged=False) for _ in range(10)]
    assert len([p for p in strangers if p is not None]) == 8
    assert pool.allocate(privileged=True) is not None
    assert pool.allocate(privileged=True) is not None
    assert pool.allocate(privileged=True) is None


def test_the_probe_sees_a_port_bound_by_another_socket() -> None:
    probe = port_pair_free("127.0.0.1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        assert not probe(port)  # RTP port taken
        assert not probe(port - 1)  # its RTCP port (the one above) taken
