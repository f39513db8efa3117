"""Load generator for bench/mediation_media: N calls through the mediation server,
RTP both ways on both legs.

    python -m bench.mediation_load --server 127.0.0.1:5060 --gateway-port 5070
        --calls 200 --seconds 12 --codec opus --auth alice:PASSWORD

Plays both ends of every call. As the internal user it places the calls (digest
answered) offering only ``--codec``; as the gateway (the server's configured
G.711 gateway on ``--gateway-port``) it answers the server's INVITEs with PCMU.
Then every 20 ms each caller socket sends a frame of a tone in ``--codec`` to
the server's internal leg and each gateway socket a PCMU frame to its gateway
leg, so the server transcodes (or relays) both directions of every call. Counts
what arrives on every socket in the steady part of the run; busy-polls. Prints
one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import select
import socket
import struct
import time
from typing import Any

import numpy as np

from bench.cpu_meter import WindowCpu
from bench.rtp_load import ack_failure, in_dialog, invite
from confserver.media.codecs import default_registry
from confserver.sip.message import Request, Response, SipParseError, parse_message
from confserver.sip.sdp import SessionDescription

NUMBER = "4255550123"
PAYLOAD_TYPES = {"PCMU": 0, "G722": 9, "opus": 111}
TIMESTAMP_STEP = {"PCMU": 160, "G722": 160, "opus": 960}  # G.722's RTP clock is 8 kHz


def tone_frames(codec: str, frequency: float, frames: int = 50) -> list[bytes]:
    """One second of a tone, encoded frame by frame (looped while streaming)."""
    encoder = default_registry().create(codec)
    rate = encoder.sample_rate
    n = rate // 50
    t = np.arange(n * frames) / rate
    pcm = (6000 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)
    return [encoder.encode(pcm[i * n:(i + 1) * n]) for i in range(frames)]


def gateway_answer(request: Request, rtp_port: int, tag: str) -> bytes:
    sdp = ("v=0\r\no=gw 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           f"m=audio {rtp_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
    h = request.headers
    vias = "".join(f"Via: {v}\r\n" for v in h.get_all("Via"))
    return (f"SIP/2.0 200 OK\r\n{vias}From: {h.get('From')}\r\nTo: {h.get('To')};tag={tag}\r\n"
            f"Call-ID: {h.get('Call-ID')}\r\nCSeq: {h.get('CSeq')}\r\n"
            f"Contact: <sip:gw@127.0.0.1>\r\nContent-Type: application/sdp\r\n"
            f"Content-Length: {len(sdp)}\r\n\r\n{sdp}").encode()


def simple_ok(request: Request) -> bytes:
    h = request.headers
    vias = "".join(f"Via: {v}\r\n" for v in h.get_all("Via"))
    return (f"SIP/2.0 200 OK\r\n{vias}From: {h.get('From')}\r\nTo: {h.get('To')}\r\n"
            f"Call-ID: {h.get('Call-ID')}\r\nCSeq: {h.get('CSeq')}\r\n"
            f"Content-Length: 0\r\n\r\n").encode()


def udp(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    return sock


Stream = tuple[socket.socket, int, int, int, list[bytes], int]
RTP_HEADER = struct.Struct("!BBHII")


def stream_rtp(sockets: list[Stream], host: str, seconds: float,
               server_pid: int | None = None) -> dict[str, Any]:
    """Every 20 ms each (socket, port, payload type, timestamp step, frames, SSRC)
    sends its next frame to ``host:port``; what arrives on each socket in the steady
    part (from 3 s to the last 0.5 s) is counted, and every gap over 45 ms.

    The generator must stay cheaper than what it measures (about 150,000 packets a
    second each way at 1,500 relayed calls), so each socket is connected to where it
    sends (no address to parse per packet, the route looked up once), a header is
    packed in one call, and packets read in one poll share one clock reading. It
    polls without sleeping on a CPU of its own: a sleeping receiver would have to be
    woken for each packet, and that wake-up (an interrupt to the other CPU) would be
    charged to the server's sends, which a gateway on another machine never costs."""
    poller = select.epoll()
    by_fd: dict[int, int] = {}
    for index, (sock, port, *_rest) in enumerate(sockets):
        sock.connect((host, port))  # the far end answers from there (symmetric RTP)
        by_fd[sock.fileno()] = index
        poller.register(sock.fileno(), select.EPOLLIN)
    receivers = [sock.recv for sock, *_rest in sockets]
    senders = [(sock.send, payload_type, ts_step, frames, ssrc)
               for sock, _port, payload_type, ts_step, frames, ssrc in sockets]
    gateway_side = [ssrc >= 100_000 for *_rest, ssrc in sockets]
    received = [0] * len(sockets)
    last_seen: list[float | None] = [None] * len(sockets)
    gaps_late = 0
    payload_types: dict[str, set[int]] = {"caller": set(), "gateway": set()}
    start = time.monotonic()
    steady_from, steady_to = start + 3.0, start + seconds - 0.5
    server_cpu = WindowCpu(server_pid, steady_from, steady_to)
    tick = 0
    pack = RTP_HEADER.pack
    while True:
        now = time.monotonic()
        if now - start >= seconds:
            break
        server_cpu.poll(now)
        seq, frame = tick & 0xFFFF, tick % 50
        for send, payload_type, ts_step, frames, ssrc in senders:
            try:  # noqa: SIM105 (suppress() costs a context manager per packet)
                send(pack(0x80, payload_type, seq, (tick * ts_step) & 0xFFFFFFFF, ssrc)
                     + frames[frame])
            except OSError:
                pass  # ICMP unreachable from a port the far end closed: a missing frame
        tick += 1
        next_tick = start + tick * 0.02
        while (t := time.monotonic()) < next_tick:
            steady = steady_from <= t <= steady_to
            for fd, _event in poller.poll(0):
                index = by_fd[fd]
                try:
                    data = receivers[index](2048)
                except OSError:
                    continue  # nothing after all, or an ICMP error
                if len(data) < 12 or data[1] >= 192:
                    continue  # RTCP
                payload_types["gateway" if gateway_side[index] else "caller"].add(data[1] & 0x7F)
                if steady:
                    received[index] += 1
                    prev = last_seen[index]
                    if prev is not None and t - prev > 0.045:
                        gaps_late += 1
                last_seen[index] = t
    poller.close()
    expected = int((steady_to - steady_from) / 0.02)
    short = [expected - n for n in received if n < expected - 2]
    return {"expected_per_call": expected, "received_total": sum(received),
            "calls_short": len(short), "frames_missing": sum(short), "late_gaps": gaps_late,
            "ticks_sent": tick, "tick_rate": tick / seconds, "server_cpu": server_cpu.share,
            # what each side received: proves the far side transcoded (or relayed)
            "caller_got_types": sorted(payload_types["caller"]),
            "gateway_got_types": sorted(payload_types["gateway"])}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--gateway-port", type=int, required=True)
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--codec", choices=tuple(PAYLOAD_TYPES), default="PCMU")
    parser.add_argument("--server-pid", type=int,
                        help="report this process's CPU share in the steady window")
    parser.add_argument("--auth", required=True, help="USER:PASSWORD of the caller")
    args = parser.parse_args()
    from confserver.sip.digest import DigestClient

    username, _, password = args.auth.partition(":")
    digest = DigestClient.create(username, password)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    host, port = args.server.rsplit(":", 1)
    server = (host, int(port))
    caller_sip, gateway_sip = udp(), udp(args.gateway_port)
    caller_sip_port = caller_sip.getsockname()[1]
    caller_rtp = [udp() for _ in range(args.calls)]
    gateway_rtp = [udp() for _ in range(args.calls)]
    for sock in (*caller_rtp, *gateway_rtp):
        sock.setblocking(False)
    caller_sip.setblocking(False)
    gateway_sip.setblocking(False)

    # --- set up: our INVITEs out, the server's INVITEs to the gateway answered
    internal: dict[int, int] = {}   # call -> the server's internal-leg RTP port
    tags: dict[int, str] = {}
    legs: dict[str, tuple[int, bytes]] = {}  # gateway Call-ID -> (socket index, our 200)
    external: dict[int, int] = {}   # gateway socket index -> the server's gateway-leg port
    pending = set(range(args.calls))
    sent_at: dict[int, float] = {}
    deadline = time.monotonic() + 90
    while (pending or len(external) < len(internal)) and time.monotonic() < deadline:
        now = time.monotonic()
        waiting = [c for c in sorted(pending) if now - sent_at.get(c, -9.0) > 2.0]
        for call in waiting[:40]:
            caller_sip.sendto(invite(call, caller_rtp[call].getsockname()[1], caller_sip_port,
                                     NUMBER, codec=args.codec), server)
            sent_at[call] = now
        end = time.monotonic() + 0.1
        while time.monotonic() < end:
            ready = select.select([caller_sip, gateway_sip], [], [], 0.02)[0]
            for sock in ready:
                try:
                    data = sock.recv(65535)
                    msg = parse_message(data)
                    msg.validate()
                except (BlockingIOError, SipParseError):
                    continue
                if sock is gateway_sip:
                    if not isinstance(msg, Request):
                        continue
                    if msg.method == "INVITE":
                        call_id = msg.call_id or ""
                        if call_id not in legs:
                            index = len(legs)
                            if index >= args.calls:
                                continue
                            answer = gateway_answer(msg, gateway_rtp[index].getsockname()[1],
                                                    f"gw{index}")
                            legs[call_id] = (index, answer)
                            external[index] = SessionDescription.parse(msg.body).media[0].port
                        gateway_sip.sendto(legs[call_id][1], server)
                    elif msg.method in ("BYE", "OPTIONS"):
                        gateway_sip.sendto(simple_ok(msg), server)
                    continue
                if not isinstance(msg, Response) or not (msg.call_id or "").startswith("load-"):
                    continue
                call = int((msg.call_id or "")[5:])
                if msg.status in (401, 407) and call in pending and msg.cseq is not None \
                        and msg.cseq.number == 1:
                    caller_sip.sendto(ack_failure(call, caller_sip_port, NUMBER,
                                                  msg.headers.get("To") or "", 1), server)
                    challenge = "WWW-Authenticate" if msg.status == 401 else "Proxy-Authenticate"
                    authorization = digest.authorization(msg.headers.get_all(challenge),
                                                         "INVITE", f"sip:{NUMBER}@example.com")
                    caller_sip.sendto(invite(call, caller_rtp[call].getsockname()[1],
                                             caller_sip_port, NUMBER, 2, authorization,
                                             codec=args.codec), server)
                    sent_at[call] = time.monotonic() + 30  # the second INVITE retransmits itself
                    continue
                if msg.status == 200 and msg.cseq is not None and msg.cseq.number == 2:
                    if call in pending:
                        pending.discard(call)
                        internal[call] = SessionDescription.parse(msg.body).media[0].port
                        tags[call] = msg.to_tag or ""
                    caller_sip.sendto(in_dialog("ACK", call, tags[call], caller_sip_port, 2,
                                                NUMBER), server)
    established = min(len(internal), len(external))

    # --- stream: a frame per leg every 20 ms, both legs of every call
    ours = tone_frames(args.codec, 440.0)
    theirs = tone_frames("PCMU", 1000.0)
    pt, step = PAYLOAD_TYPES[args.codec], TIMESTAMP_STEP[args.codec]
    sockets = [(caller_rtp[c], internal[c], pt, step, ours, c) for c in internal] + \
              [(gateway_rtp[i], p, 0, 160, theirs, 100_000 + i) for i, p in external.items()]
    figures = stream_rtp(sockets, host, args.seconds, args.server_pid)

    for call, tag in tags.items():
        caller_sip.sendto(in_dialog("BYE", call, tag, caller_sip_port, 3, NUMBER), server)
    print(json.dumps({"calls": args.calls, "established": established, **figures}))


if __name__ == "__main__":
    main()
