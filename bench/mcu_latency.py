"""bench/mcu_latency: added latency through the MCU, packet in to mixed packet out.

    .venv/bin/python -m bench.mcu_latency [--onsets 40]

Two participants join one meeting over real loopback SIP/RTP (G.711). The
talker sends silence and, once a second, 200 ms of tone; the listener notes
when the first loud packet of each burst arrives. The latency of a burst is
that arrival minus the send time of the burst's first packet: it covers the
jitter buffer, the wait for the next 20 ms tick, VAD, mixing, encoding and
both sockets. Prints p50, p95 and max.

Where a sender's packets fall between the mixing clock's ticks (its phase)
decides how long its first packet waits for a tick, and each real call has
its own. So half a second before each burst the talker starts a new source
(a new SSRC, which the MCU's jitter buffer takes afresh) shifted by a further
1/``--phases`` of a frame: the bursts sample every phase evenly.
"""

from __future__ import annotations

import argparse
import os
import platform
import select
import socket
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.rtp_load import ack_failure, in_dialog, invite, talker_payloads
from confserver.media.codecs.g711 import ULAW_DECODE
from confserver.sip.digest import DigestClient
from confserver.sip.message import Response, SipParseError, parse_message
from confserver.sip.sdp import SessionDescription
from tests.integration.server import RunningServer, cli

MEETING = "7654321"
PASSWORD = "load-password"
TARGET = f"conf-{MEETING}"


def join(sip: socket.socket, server: tuple[str, int], calls: dict[int, socket.socket]
         ) -> tuple[dict[int, int], dict[int, str]]:
    """INVITE (answering the digest challenge) for each call; returns RTP ports and tags."""
    digest = DigestClient.create("load", PASSWORD)
    sip_port = sip.getsockname()[1]
    ports: dict[int, int] = {}
    tags: dict[int, str] = {}
    for call, rtp in calls.items():
        sip.sendto(invite(call, rtp.getsockname()[1], sip_port, TARGET), server)
    deadline = time.monotonic() + 20
    while len(ports) < len(calls) and time.monotonic() < deadline:
        try:
            msg = parse_message(sip.recv(65535))
            msg.validate()
        except (TimeoutError, SipParseError):
            continue
        if not isinstance(msg, Response) or msg.cseq is None:
            continue
        call = int(msg.call_id[5:])
        if msg.status == 401 and msg.cseq.number == 1:
            sip.sendto(ack_failure(call, sip_port, TARGET, msg.headers.get("To") or "", 1), server)
            auth = digest.authorization(msg.headers.get_all("WWW-Authenticate"), "INVITE",
                                        f"sip:{TARGET}@example.com")
            sip.sendto(invite(call, calls[call].getsockname()[1], sip_port, TARGET, 2, auth),
                       server)
        elif msg.status == 200:
            ports[call] = SessionDescription.parse(msg.body).media[0].port
            tags[call] = msg.to_tag or ""
            sip.sendto(in_dialog("ACK", call, tags[call], sip_port, msg.cseq.number, TARGET),
                       server)
    return ports, tags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onsets", type=int, default=40)
    parser.add_argument("--phases", type=int, default=10,
                        help="tick phases the talker's sources step through")
    args = parser.parse_args()
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}")
    workdir = Path(tempfile.mkdtemp(prefix="sb-latency-"))
    server = RunningServer(workdir, log_level="info")
    server.write_config()
    server.add_user("load", PASSWORD)
    assert cli("meeting", "create", "--organizer", "sip:load@example.com", "--access", "open",
               "--id", MEETING, db=server.db).returncode == 0
    server.start()
    sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sip.bind(("127.0.0.1", 0))
    sip.settimeout(0.5)
    calls = {}
    for call in (0, 1):
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        rtp.setblocking(False)
        calls[call] = rtp
    latencies: list[float] = []
    try:
        ports, tags = join(sip, ("127.0.0.1", server.port), calls)
        assert len(ports) == 2, server.log()[-2000:]
        tone = talker_payloads(0)
        silence = b"\xff" * 160
        start = time.monotonic()
        tick = 0
        burst_sent: float | None = None
        heard_burst = True
        while len(latencies) < args.onsets and time.monotonic() - start < args.onsets * 1.2 + 10:
            in_burst = tick % 50 < 10 and tick >= 100  # 2 s of warm-up first
            if in_burst and tick % 50 == 0:
                burst_sent, heard_burst = time.monotonic(), False
            source = (tick + 25) // 50  # the talker's source changes mid-silence
            for call in (0, 1):
                body = tone[tick % 50] if (call == 0 and in_burst) else silence
                ssrc = 7 + 16 * source if call == 0 else 8
                header = bytes([0x80, 0]) + (tick & 0xFFFF).to_bytes(2, "big") + \
                    ((tick * 160) & 0xFFFFFFFF).to_bytes(4, "big") + ssrc.to_bytes(4, "big")
                calls[call].sendto(header + body, ("127.0.0.1", ports[call]))
            tick += 1
            phase = ((tick + 25) // 50 % args.phases) * 0.02 / args.phases
            next_tick = start + tick * 0.02 + phase
            while (timeout := next_tick - time.monotonic()) > 0:
                ready, _, _ = select.select([calls[1]], [], [], timeout)
                if not ready:
                    continue
                try:
                    data = calls[1].recv(2048)
                except BlockingIOError:
                    continue
                if len(data) <= 12 or data[1] >= 192 or heard_burst or burst_sent is None:
                    continue
                offset = 12 + 4 * (data[0] & 0x0F)
                pcm = ULAW_DECODE[np.frombuffer(data[offset:], dtype=np.uint8)]
                if np.abs(pcm.astype(np.int32)).max() > 2000:
                    latencies.append((time.monotonic() - burst_sent) * 1000)
                    heard_burst = True
        for call, tag in tags.items():
            sip.sendto(in_dialog("BYE", call, tag, sip.getsockname()[1], 3, TARGET),
                       ("127.0.0.1", server.port))
    finally:
        server.stop()
    if len(latencies) < 5:
        print(f"only {len(latencies)} bursts were heard; see {workdir}/server.log")
        return
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    print(f"bursts: {len(ordered)}  latency p50 {statistics.median(ordered):.1f} ms  "
          f"p95 {p95:.1f} ms  max {ordered[-1]:.1f} ms")


if __name__ == "__main__":
    main()
