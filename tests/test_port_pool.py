"""RTP port allocation: even ports, reuse, and ports another program holds."""

from __future__ import annotations

import socket

from confserver.server.calls import PortPool
from confserver.server.udp import port_pair_free


def test_even_ports_are_handed_out_and_come_back() -> None:
    pool = PortPool(20001, 20008)
    assert [pool.allocate(), pool.allocate(), pool.allocate()] == [20002, 20004, 20006]
    assert pool.allocate() is None and pool.in_use == 3
    pool.release(20004)
    pool.release(20004)  # twice is harmless
    assert pool.allocate() == 20004 and pool.allocate() is None


def test_a_port_the_probe_finds_busy_is_passed_over_and_tried_later() -> None:
    busy = {20002}
    pool = PortPool(20000, 20006, probe=lambda port: port not in busy)
    assert pool.allocate() == 20000
    assert pool.allocate() == 20004  # 20002 is held elsewhere
    assert pool.allocate() is None  # looked at once, still busy: no endless loop
    busy.clear()
    assert pool.allocate() == 20002


def test_the_probe_sees_a_port_bound_by_another_socket() -> None:
    probe = port_pair_free("127.0.0.1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        assert not probe(port)  # RTP port taken
        assert not probe(port - 1)  # its RTCP port (the one above) taken
