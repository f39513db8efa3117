"""The SIP UDP transport's socket: room to queue a burst of messages."""

from __future__ import annotations

import socket
from pathlib import Path

from twisted.internet import udp
from twisted.internet.testing import MemoryReactorClock

from confserver.adapters.sip.endpoint import SipEndpoint
from confserver.adapters.sip.transports import SIP_RECEIVE_BUFFER, UdpTransport


def test_the_sip_socket_asks_for_a_receive_buffer_of_megabytes() -> None:
    """Linux's default (about 200 KB) holds under a hundred SIP messages: a pause of a
    few tens of ms at a few hundred calls a second overflowed it and lost ACKs."""
    reactor = MemoryReactorClock()
    transport = UdpTransport(SipEndpoint(reactor), "127.0.0.1", 0)
    port = udp.Port(0, transport, interface="127.0.0.1", reactor=reactor)
    port.startListening()
    try:
        granted = port.socket.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        limit = int(Path("/proc/sys/net/core/rmem_max").read_text())
        # Linux doubles what it grants (for its own bookkeeping), up to rmem_max
        assert granted >= 2 * min(SIP_RECEIVE_BUFFER, limit)
    finally:
        port.stopListening()
