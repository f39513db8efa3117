"""Load generator for bench/echo_capacity: N echo calls, G.711 RTP both ways.

    python -m bench.rtp_load --server 127.0.0.1:5060 --calls 500 --seconds 10
        [--target conf-7654321 --auth load:PASSWORD --talkers 3]

Sets up the calls over SIP/UDP, streams one packet per call every 20 ms, each
call from an RTP socket of its own (as real phones do, so the server can tell
calls apart on a shared port), and counts what comes back per call in the
steady part of the run. Busy-polls its sockets. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import select
import socket
import time

from bench.cpu_meter import WindowCpu
from confserver.sip.message import Response, SipParseError, parse_message
from confserver.sip.sdp import SessionDescription

MEDIA_LINES = {
    "PCMU": "RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
    "G722": "RTP/AVP 9\r\na=rtpmap:9 G722/8000\r\n",
    "opus": "RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n",
}


LEVEL_EXTMAP = "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n"
# RFC 8285 one-byte header extension: ID 1, one byte, V=0 and level 127 (silence)
SILENT_LEVEL = b"\xbe\xde\x00\x01\x10\x7f\x00\x00"
LATE_TICK_GAP = 0.038  # a frame this long after the previous one: its tick ran a frame late


def invite(call: int, rtp_port: int, sip_port: int, target: str = "echo", cseq: int = 1,
           authorization: str | None = None, opus: bool = False, codec: str = "PCMU",
           extra_media: str = "") -> bytes:
    """An INVITE offering one codec (``opus`` is short for codec="opus")."""
    media = f"m=audio {rtp_port} {MEDIA_LINES['opus' if opus else codec]}{extra_media}"
    sdp = (f"v=0\r\no=load {call} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           f"{media}")
    auth = f"Authorization: {authorization}\r\n" if authorization else ""
    return (f"INVITE sip:{target}@example.com SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{sip_port};branch=z9hG4bKload{call}c{cseq}\r\n"
            f"From: <sip:load@example.com>;tag=l{call}\r\nTo: <sip:{target}@example.com>\r\n"
            f"Call-ID: load-{call}\r\nCSeq: {cseq} INVITE\r\nMax-Forwards: 70\r\n{auth}"
            f"Contact: <sip:load@127.0.0.1:{sip_port}>\r\nContent-Type: application/sdp\r\n"
            f"Content-Length: {len(sdp)}\r\n\r\n{sdp}").encode()


def ack_failure(call: int, sip_port: int, target: str, to_header: str, cseq: int) -> bytes:
    """The ACK of a non-2xx answer: the INVITE's branch, the response's To."""
    return (f"ACK sip:{target}@example.com SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{sip_port};branch=z9hG4bKload{call}c{cseq}\r\n"
            f"From: <sip:load@example.com>;tag=l{call}\r\nTo: {to_header}\r\n"
            f"Call-ID: load-{call}\r\nCSeq: {cseq} ACK\r\nMax-Forwards: 70\r\n"
            f"Content-Length: 0\r\n\r\n").encode()


def in_dialog(method: str, call: int, to_tag: str, sip_port: int, cseq: int,
              target: str = "echo") -> bytes:
    return (f"{method} sip:switchboard@127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{sip_port};branch=z9hG4bK{method.lower()}{call}\r\n"
            f"From: <sip:load@example.com>;tag=l{call}\r\n"
            f"To: <sip:{target}@example.com>;tag={to_tag}\r\n"
            f"Call-ID: load-{call}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n"
            f"Content-Length: 0\r\n\r\n").encode()


def talker_payloads(call: int, frames: int = 50) -> list[bytes]:
    """One second of a tone (a different frequency per talker), PCMU, to loop."""
    import numpy as np

    from confserver.media.codecs.g711 import ULAW_ENCODE

    freq = 300.0 + 200.0 * call
    t = np.arange(160 * frames) / 8000
    pcm = (6000 * np.sin(2 * np.pi * freq * t)).astype(np.int32)
    encoded = bytes(ULAW_ENCODE[pcm + 32768])
    return [encoded[i * 160:(i + 1) * 160] for i in range(frames)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--target", default="echo", help="user part dialed (echo, conf-ID)")
    parser.add_argument("--auth", help="USER:PASSWORD to answer digest challenges with")
    parser.add_argument("--talkers", type=int, default=0,
                        help="the first N calls send a tone, the rest silence")
    parser.add_argument("--server-pid", type=int,
                        help="report this process's CPU share in the steady window")
    parser.add_argument("--listener-codec", choices=("PCMU", "opus"), default="PCMU",
                        help="the codec of the calls that do not talk")
    parser.add_argument("--listener-audio", choices=("encoded", "level", "dtx"),
                        default="encoded",
                        help="what Opus listeners send: encoded silence every 20 ms; the "
                             "same with an RFC 6464 audio level saying silence (as WebRTC "
                             "clients do); or DTX, one two-byte-or-less frame every 400 ms")
    args = parser.parse_args()
    opus_listeners = args.listener_codec == "opus"

    def is_opus(call: int) -> bool:
        return opus_listeners and call >= args.talkers
    opus_media = LEVEL_EXTMAP if args.listener_audio == "level" else ""
    digest = None
    if args.auth:
        from confserver.sip.digest import DigestClient

        username, _, password = args.auth.partition(":")
        digest = DigestClient.create(username, password)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    host, port = args.server.rsplit(":", 1)
    server = (host, int(port))
    sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sip.bind(("127.0.0.1", 0))
    sip.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sip_port = sip.getsockname()[1]
    rtp_sockets: list[socket.socket] = []
    for _ in range(args.calls):
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        rtp.setblocking(False)
        rtp_sockets.append(rtp)

    # --- set up the calls, a few hundred per second
    media: dict[int, int] = {}   # call -> server RTP port
    tags: dict[int, str] = {}
    sip.settimeout(0.2)
    pending = set(range(args.calls))
    deadline = time.monotonic() + 60
    while pending and time.monotonic() < deadline:
        for call in sorted(pending)[:50]:
            sip.sendto(invite(call, rtp_sockets[call].getsockname()[1], sip_port, args.target,
                              opus=is_opus(call), extra_media=opus_media if is_opus(call) else ""),
                       server)
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            try:
                data, _ = sip.recvfrom(65535)
            except TimeoutError:
                break
            try:
                msg = parse_message(data)
                msg.validate()
            except SipParseError:
                continue
            if not isinstance(msg, Response) or not msg.call_id.startswith("load-"):
                continue
            call = int(msg.call_id[5:])
            if msg.status in (401, 407) and digest is not None and call in pending \
                    and msg.cseq is not None and msg.cseq.number == 1:
                sip.sendto(ack_failure(call, sip_port, args.target, msg.headers.get("To") or "",
                                       1), server)
                challenge = "WWW-Authenticate" if msg.status == 401 else "Proxy-Authenticate"
                authorization = digest.authorization(msg.headers.get_all(challenge), "INVITE",
                                                     f"sip:{args.target}@example.com")
                sip.sendto(invite(call, rtp_sockets[call].getsockname()[1], sip_port,
                                  args.target, 2, authorization, opus=is_opus(call),
                                  extra_media=opus_media if is_opus(call) else ""), server)
                continue
            if msg.status != 200 or msg.cseq is None:
                continue
            if call in pending:
                pending.discard(call)
                media[call] = SessionDescription.parse(msg.body).media[0].port
                tags[call] = msg.to_tag or ""
                sip.sendto(in_dialog("ACK", call, tags[call], sip_port, msg.cseq.number,
                                     args.target), server)
    established = len(media)

    # --- stream: one packet per call every 20 ms
    payload = b"\xff" * 160 if args.target != "echo" else b"\xd5" * 160  # silence / a level
    talking = {call: talker_payloads(call) for call in range(min(args.talkers, args.calls))}
    opus_silence = b""
    if opus_listeners:
        import numpy as np

        from confserver.media.codecs import default_registry

        opus_silence = default_registry().create("opus").encode(np.zeros(960, dtype=np.int16))
        if args.listener_audio == "dtx":
            opus_silence = opus_silence[:1]  # the TOC byte alone: a DTX frame
    header = bytearray(b"\x80\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")
    opus_header = bytearray(header)
    opus_header[1] = 111
    if args.listener_audio == "level":
        opus_header[0] = 0x90  # X: a header extension follows
        opus_silence = SILENT_LEVEL + opus_silence
    dtx_every = 20 if args.listener_audio == "dtx" else 1
    poller = select.epoll()
    by_fd: dict[int, int] = {}
    for call in media:
        by_fd[rtp_sockets[call].fileno()] = call
        poller.register(rtp_sockets[call].fileno(), select.EPOLLIN)
    received = dict.fromkeys(media, 0)
    steady_from = time.monotonic() + 2.0
    steady_to = time.monotonic() + args.seconds - 0.5
    server_cpu = WindowCpu(args.server_pid, steady_from, steady_to)
    # this process busy-polls, so its share says nothing; how late its own sends ran does
    own_lag: list[float] = []
    gaps_late = 0
    # the 20 ms slots of the steady window in which some call's frame came a whole
    # frame late (a gap of 38 ms or more: the server's tick ran about a frame late,
    # as its own count has it); the rule is under 1% of the window's ticks
    late_slots: set[int] = set()
    last_seen: dict[int, float] = {}
    start = time.monotonic()
    tick = 0
    while True:
        now = time.monotonic()
        if now - start >= args.seconds:
            break
        server_cpu.poll(now)
        if steady_from <= now <= steady_to:
            own_lag.append(now - (start + tick * 0.02))
        header[2:4] = (tick & 0xFFFF).to_bytes(2, "big")
        header[4:8] = ((tick * 160) & 0xFFFFFFFF).to_bytes(4, "big")
        for call, port in media.items():
            if is_opus(call):
                if (tick + call) % dtx_every:
                    continue  # a DTX sender pauses between its frames
                opus_header[2:4] = header[2:4]
                opus_header[4:8] = ((tick * 960) & 0xFFFFFFFF).to_bytes(4, "big")
                opus_header[8:12] = call.to_bytes(4, "big")
                rtp_sockets[call].sendto(bytes(opus_header) + opus_silence, (host, port))
                continue
            header[8:12] = call.to_bytes(4, "big")
            body = talking[call][tick % 50] if call in talking else payload
            rtp_sockets[call].sendto(bytes(header) + body, (host, port))
        tick += 1
        next_tick = start + tick * 0.02
        while True:
            timeout = next_tick - time.monotonic()
            if timeout <= 0:
                break
            # busy-poll (this process has a CPU to itself): a sleeping receiver would
            # make every packet the server sends pay for waking it up, a cost no
            # real phone on the other end of a network puts on the server
            for fd, _event in poller.poll(0):
                call = by_fd[fd]
                try:
                    data = rtp_sockets[call].recv(2048)
                except BlockingIOError:
                    continue
                if len(data) < 12 or data[1] >= 192:
                    continue
                t = time.monotonic()
                if steady_from <= t <= steady_to:
                    received[call] += 1
                    prev = last_seen.get(call)
                    if prev is not None and t - prev >= LATE_TICK_GAP:
                        late_slots.add(int((t - steady_from) / 0.02))
                        if t - prev > 0.045:
                            gaps_late += 1
                last_seen[call] = t
    expected = int((steady_to - steady_from) / 0.02)
    short = [expected - n for n in received.values() if n < expected - 2]

    # --- hang up
    for call, tag in tags.items():
        sip.sendto(in_dialog("BYE", call, tag, sip_port, 3, args.target), server)
    print(json.dumps({"calls": args.calls, "established": established,
                      "expected_per_call": expected,
                      "received_total": sum(received.values()),
                      "calls_short": len(short), "frames_missing": sum(short),
                      "late_gaps": gaps_late, "ticks_sent": tick,
                      "late_tick_share": len(late_slots) / max(expected, 1),
                      "server_cpu": server_cpu.share,
                      "send_lag_ms_max": round(max(own_lag, default=0.0) * 1000, 1),
                      "tick_rate": tick / args.seconds}))


if __name__ == "__main__":
    main()
