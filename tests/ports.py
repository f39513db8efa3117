"""Which fixed local ports each test may use, in one table.

Tests run in two or more pytest-xdist workers at once, and some start servers
that bind whole RTP ranges. Two tests whose ranges meet can take each other's
ports between a probe and a bind (CI once failed that way), so every fixed
range a test binds on 127.0.0.1 is named here, and a unit test checks that no
two of them overlap. All of them lie below the kernel's ephemeral range
(32768 and up), which no implicit bind can take.
"""

from __future__ import annotations

import os
import socket

POSTGRES = range(20000, 21000)          # tests/pg.py: one TCP port, picked at random
SERVER_RTP = range(21000, 22000)        # RunningServer's default media range
BARESIP_RTP = range(22000, 23000)       # every baresip peer's own RTP ports
LOSSY_RTP = range(23500, 23520)         # test_media: a server behind a lossy relay
SHARED_RTP = range(23600, 23610)        # test_media: the shared port and its range
SHARED_DRAIN = range(23700, 23800)      # test_shared_drain's engines
# test_relay_offload: a shared port per call, then port pairs of their own; the
# same call runs on the compiled relay and in Python at once, in blocks of their own
RELAY_COMPILED = range(23800, 23900)
RELAY_PYTHON = range(23900, 24000)
CONFERENCE_RTP = range(24000, 24100)    # test_conference
LOBBY_RTP = range(24200, 24300)       # test_conference: the lobby
RELAY_COMPILED_PER_CALL = range(24300, 24400)
RELAY_PYTHON_PER_CALL = range(24400, 24500)
DIALIN_RTP = range(25000, 25100)        # test_dialin
SECURITY_RTP = range(25300, 25400)      # test_security's server with the attendant
EXPOSED_RTP = range(25400, 26000)       # test_security's server under a flood
POOL_FRONT_RTP = range(25100, 25200)    # test_pool: the front-end server
POOL_MEDIATION_RTP = range(25200, 25300)  # test_pool: the mediation server
MEDIATION_RTP = range(26000, 26200)     # test_mediation
MEDIATION_MEDIA_RTP = range(26200, 26300)
MEDIATION_SHARED = range(26300, 26302)  # test_mediation's shared port and its RTCP
PEERS = range(27000, 32764)             # tests/integration/server.py's free_port

BLOCKS = {name: value for name, value in globals().items() if isinstance(value, range)}


def server_range(block: range) -> str:
    """A block as a server's ``rtp_ports`` setting: ``first-last``."""
    return f"{block.start}-{block.stop - 1}"


def bindable(port: int, kinds: tuple[int, ...] = (socket.SOCK_DGRAM,)) -> bool:
    """Can ``port`` on 127.0.0.1 be bound now, for each socket kind in ``kinds``?"""
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_even_run(block: range, span: int) -> int:
    """An even port ``p`` in ``block`` with ``p .. p + span - 1`` all free for UDP.

    Each xdist worker starts looking in its own share of the block, so two
    workers running tests of one file rarely reach for the same ports."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    starts = range(block.start + block.start % 2, block.stop - span + 1, 2)
    if not starts:
        raise ValueError(f"block {server_range(block)} is shorter than {span} ports")
    first = len(starts) * (index % workers) // workers
    for offset in range(len(starts)):
        port = starts[(first + offset) % len(starts)]
        if all(bindable(port + i) for i in range(span)):
            return port
    raise RuntimeError(f"no {span} free ports in a row in {server_range(block)}")
