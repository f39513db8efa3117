"""The floor under relayed G.711 in Python: what the bare minimum of a relay costs.

    python -m bench.relay_floor --calls 1000,1500 --seconds 10

For each size, a child process runs the least a relay written in Python can do
per packet: wait on epoll, ``recvfrom`` on one shared UDP port, find the other
leg by the source address in a dict, rewrite the RTP header (sequence number,
timestamp and SSRC, as ``AudioStream.relay_datagram`` does) and ``sendto`` the
other leg; no SIP, no statistics, no clock, no sessions. The load generator of
``bench/mediation_media`` (the same code, pinned to CPU 1 with the child on
CPU 0) sends a PCMU frame every 20 ms from both legs of every call and counts
what arrives. The child's CPU share in the steady window is the floor that
Switchboard's relayed calls sit above, on the same machine and kernel. Prints a
JSON line per size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from bench.mediation_load import stream_rtp, tone_frames, udp

RELAY = r"""
import json, os, select, socket, struct, sys, time
os.sched_setaffinity(0, {0})
port, pairs, seconds = int(sys.argv[1]), json.load(open(sys.argv[2])), float(sys.argv[3])
peer = {}
for a, b in pairs:
    peer[("127.0.0.1", a)] = (("127.0.0.1", b), 0x1000 + a)
    peer[("127.0.0.1", b)] = (("127.0.0.1", a), 0x1000 + b)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
sock.bind(("127.0.0.1", port))
sock.setblocking(False)
poller = select.epoll()
poller.register(sock.fileno(), select.EPOLLIN)
recvfrom, sendto = sock.recvfrom, sock.sendto
unpack_from, pack = struct.Struct("!HI").unpack_from, struct.Struct("!BBHII").pack
print("ready", flush=True)
end = time.monotonic() + seconds
while time.monotonic() < end:
    for _fd, _event in poller.poll(0.5):
        for _ in range(256):
            try:
                data, addr = recvfrom(2048)
            except BlockingIOError:
                break
            found = peer.get(addr)
            if found is None or len(data) < 12:
                continue
            seq, ts = unpack_from(data, 2)
            try:
                sendto(pack(0x80, data[1], (seq + 7) & 0xFFFF, (ts + 160) & 0xFFFFFFFF,
                            found[1]) + data[12:], found[0])
            except OSError:
                pass
"""


def run(calls: int, seconds: float) -> dict[str, object]:
    relay_port = udp().getsockname()[1]  # a free port; the relay binds it again
    frames = tone_frames("PCMU", 440.0)
    legs = [(udp(), udp()) for _ in range(calls)]
    pairs = [(a.getsockname()[1], b.getsockname()[1]) for a, b in legs]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(pairs, f)
    relay = subprocess.Popen([sys.executable, "-c", RELAY, str(relay_port), f.name,
                              str(seconds + 5)], stdout=subprocess.PIPE, text=True)
    try:
        assert relay.stdout is not None and relay.stdout.readline().strip() == "ready"
        os.sched_setaffinity(0, {1})
        sockets = []
        for index, (a, b) in enumerate(legs):
            sockets.append((a, relay_port, 0, 160, frames, 1 + index))
            sockets.append((b, relay_port, 0, 160, frames, 100_000 + index))
        result = stream_rtp(sockets, "127.0.0.1", seconds, relay.pid)
    finally:
        relay.kill()
        relay.wait(timeout=10)
        os.unlink(f.name)
        for a, b in legs:
            a.close()
            b.close()
    return {"calls": calls, "relay_cpu": result["server_cpu"],
            "frames_missing": result["frames_missing"], "late_gaps": result["late_gaps"],
            "tick_rate": round(float(result["tick_rate"]), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", default="1000,1500", help="comma-separated sizes")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    for calls in (int(c) for c in args.calls.split(",")):
        print(json.dumps(run(calls, args.seconds)), flush=True)
        time.sleep(1.0)


if __name__ == "__main__":
    main()
