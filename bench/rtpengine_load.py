"""Load generator for bench/mediation_media's comparison: the same calls as
bench/mediation_load, media only, through rtpengine instead of Switchboard.

    python -m bench.rtpengine_load --ng 127.0.0.1:2223 --calls 200 --seconds 12 --codec opus

For each call it asks rtpengine (its ng control protocol: bencoded dictionaries
over UDP) to relay between a caller offering only ``--codec`` and a gateway
answering PCMU, transcoding when they differ (``codec: transcode PCMU, mask``
the caller's codec toward the gateway). Then both ends stream a tone every
20 ms, counted exactly as bench/mediation_load counts them. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import secrets
import socket
from typing import Any

from bench.mediation_load import PAYLOAD_TYPES, TIMESTAMP_STEP, stream_rtp, tone_frames, udp

RTPMAP = {"PCMU": "0 PCMU/8000", "G722": "9 G722/8000", "opus": "111 opus/48000/2"}


def bencode(value: Any) -> bytes:
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        return b"d" + b"".join(bencode(k) + bencode(value[k]) for k in sorted(value)) + b"e"
    raise TypeError(f"cannot bencode {type(value).__name__}")


def bdecode(data: bytes, at: int = 0) -> tuple[Any, int]:
    kind = data[at:at + 1]
    if kind == b"i":
        end = data.index(b"e", at)
        return int(data[at + 1:end]), end + 1
    if kind in (b"l", b"d"):
        items: list[Any] = []
        at += 1
        while data[at:at + 1] != b"e":
            item, at = bdecode(data, at)
            items.append(item)
        if kind == b"l":
            return items, at + 1
        return {items[i].decode(): items[i + 1] for i in range(0, len(items), 2)}, at + 1
    colon = data.index(b":", at)
    length = int(data[at:colon])
    return data[colon + 1:colon + 1 + length], colon + 1 + length


class NgClient:
    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(5.0)

    def command(self, **fields: Any) -> dict[str, Any]:
        cookie = secrets.token_hex(6).encode()
        self.sock.sendto(cookie + b" " + bencode(fields), self.address)
        while True:
            data = self.sock.recv(65535)
            got, _, body = data.partition(b" ")
            if got == cookie:
                reply, _end = bdecode(body)
                if reply.get("result") != b"ok":
                    raise RuntimeError(f"rtpengine {fields['command']}: {reply}")
                return dict(reply)


def sdp(port: int, codec: str) -> str:
    payload_type, rtpmap = RTPMAP[codec].split(" ", 1)
    return (f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP {payload_type}\r\na=rtpmap:{payload_type} {rtpmap}\r\n"
            f"a=ptime:20\r\na=sendrecv\r\n")


def audio_port(description: bytes) -> int:
    for line in description.decode().splitlines():
        if line.startswith("m=audio "):
            return int(line.split()[1])
    raise RuntimeError("rtpengine's SDP has no audio")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ng", required=True, help="rtpengine's ng control address")
    parser.add_argument("--server", help="ignored (bench.load_runs passes it)")
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--codec", choices=tuple(PAYLOAD_TYPES), default="PCMU")
    parser.add_argument("--server-pid", type=int,
                        help="report rtpengine's CPU share in the steady window")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    host, port = args.ng.rsplit(":", 1)
    ng = NgClient((host, int(port)))
    caller_rtp = [udp() for _ in range(args.calls)]
    gateway_rtp = [udp() for _ in range(args.calls)]
    for sock in (*caller_rtp, *gateway_rtp):
        sock.setblocking(False)
    codec_flags = {} if args.codec == "PCMU" else {
        "codec": {"transcode": ["PCMU"], "mask": [args.codec]}}
    to_caller: dict[int, int] = {}   # call -> rtpengine's port the caller sends to
    to_gateway: dict[int, int] = {}  # call -> rtpengine's port the gateway sends to
    for call in range(args.calls):
        call_id, from_tag = f"load-{call}-{secrets.token_hex(4)}", f"f{call}"
        offer = ng.command(command="offer", **{"call-id": call_id, "from-tag": from_tag},
                           sdp=sdp(caller_rtp[call].getsockname()[1], args.codec),
                           **codec_flags)
        to_gateway[call] = audio_port(offer["sdp"])
        answer = ng.command(command="answer", **{"call-id": call_id, "from-tag": from_tag,
                                                 "to-tag": f"t{call}"},
                            sdp=sdp(gateway_rtp[call].getsockname()[1], "PCMU"))
        to_caller[call] = audio_port(answer["sdp"])
    ours = tone_frames(args.codec, 440.0)
    theirs = tone_frames("PCMU", 1000.0)
    pt, step = PAYLOAD_TYPES[args.codec], TIMESTAMP_STEP[args.codec]
    sockets = [(caller_rtp[c], to_caller[c], pt, step, ours, c) for c in to_caller] + \
              [(gateway_rtp[c], to_gateway[c], 0, 160, theirs, 100_000 + c) for c in to_gateway]
    figures = stream_rtp(sockets, host, args.seconds, args.server_pid)
    print(json.dumps({"calls": args.calls, "established": len(to_caller), **figures}))


if __name__ == "__main__":
    main()
