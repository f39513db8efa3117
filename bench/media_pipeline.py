"""bench/media_pipeline: the media path's own cost per call-frame, in-process.

    .venv/bin/python -m bench.media_pipeline [--app echo|meeting] [--sessions 1000]
        [--frames 300] [--warm 300] [--instructions]

The real server on the shared RTP port (``MediaEngine``, ``SharedRtpPort``, the
sessions, jitter buffers, streams, and for ``meeting`` the focus and the audio
bridge with three of the participants talking), fed from memory instead of a
socket: every session gets one G.711 packet per 20 ms frame and the clock is
advanced by hand. What is left out is what the kernel and the reactor cost
(the loopback benches show those), so this is the part of a call-frame the
Python code is responsible for.

It prints microseconds per call-frame (noisy on a shared machine), and with
``--instructions`` the instructions per call-frame counted by valgrind's
callgrind: the same for the same code and inputs whatever else the machine is
doing, so two versions of the code can be compared on a busy machine. The
count is the difference between two runs with different frame counts, which
takes set-up and warm-up out.
"""

from __future__ import annotations

import argparse
import platform
import re
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from twisted.internet.task import Clock

from confserver.adapters.calls.services import EchoApp
from confserver.adapters.focus.focus import ConferenceLeg, Focus
from confserver.adapters.media.session import MediaApp, MediaEngine, MediaTarget
from confserver.focus.conference import Admission
from confserver.media.codecs import default_registry
from confserver.media.stream import AudioStream
from confserver.storage.meetings import MeetingRecord

HEADER = struct.Struct("!BBHII")
SHARED_PORT = 40000
TALKERS = 3


class MemorySocket:
    """A bound socket that delivers what the bench hands it and counts what is sent."""

    def __init__(self, on_datagram: Callable[[bytes, tuple[str, int]], None]) -> None:
        self.deliver = on_datagram
        self.sent = 0

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent += 1

    def drain(self, limit: int) -> None:
        pass

    def close(self) -> None:
        pass


class NoMeetings:
    def get(self, conference_id: str) -> None:
        return None


def build(app: str, sessions: int) -> tuple[Clock, MemorySocket, list[bytes]]:
    """A media engine with ``sessions`` calls on the shared port; the payload each sends."""
    sockets: list[MemorySocket] = []

    def factory(host: str, port: int, on_datagram: Any, burst: int = 1) -> MemorySocket:
        sock = MemorySocket(on_datagram)
        sockets.append(sock)
        return sock

    reactor = Clock()
    reactor.advance(1000.0)
    codecs = default_registry()
    engine = MediaEngine(reactor, "127.0.0.1", codecs, inactivity_timeout=1e9,
                         sockets=factory, shared_port=SHARED_PORT)
    engine.bind_shared_port()
    pcmu = codecs.create("PCMU")
    quiet = b"\xff" * 160  # μ-law zeros
    payloads = [quiet] * sessions
    make_app: Callable[[int], MediaApp] = lambda _i: EchoApp()  # noqa: E731
    if app == "meeting":
        focus = Focus("example.com", NoMeetings(), auth=None,  # type: ignore[arg-type]
                      media=engine, codecs=codecs, clock=reactor.seconds)
        record = MeetingRecord("7654321", "sip:alice@example.com", "", "scheduled",
                               "anonymous", True, None, None, None, "active", 0.0)
        runtime = focus._activate(record)
        for i in range(min(TALKERS, sessions)):
            tone = 8000 * np.sin(np.arange(160) * (0.2 + 0.1 * i))
            payloads[i] = pcmu.encode(tone.astype(np.int16))

        def make_app(i: int) -> MediaApp:
            runtime.conference.add(f"p{i}", None, "", Admission("join", role="attendee"), 0.0)
            return ConferenceLeg(runtime, f"p{i}")
    for i in range(sessions):
        stream = AudioStream(codecs.create("PCMU"), 0, 101)
        target = MediaTarget("127.0.0.2", 10000 + 2 * i, 10001 + 2 * i, False)
        engine.open(SHARED_PORT, stream, target, make_app(i), "sendrecv", lambda: None)
    return reactor, sockets[0], payloads


def run(app: str, sessions: int, frames: int, warm: int) -> tuple[float, int]:
    """Seconds per call-frame over ``frames`` frames after ``warm``; packets sent in all."""
    reactor, rtp, payloads = build(app, sessions)
    sources = [("127.0.0.2", 10000 + 2 * i) for i in range(sessions)]
    spent = 0.0
    for frame in range(warm + frames):
        packets = [HEADER.pack(0x80, 0, frame & 0xFFFF, frame * 160, 0x1000 + i) + payloads[i]
                   for i in range(sessions)]
        started = time.perf_counter()
        for packet, source in zip(packets, sources, strict=True):
            rtp.deliver(packet, source)
        reactor.advance(0.02)
        if frame >= warm:
            spent += time.perf_counter() - started
    return spent / (frames * sessions), rtp.sent


def instructions(app: str, sessions: int, frames: int, warm: int) -> float:
    """Instructions per call-frame: callgrind totals of two runs, differenced."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (Debian package valgrind)")
    totals = []
    for count in (frames // 4, frames):
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
             "-m", "bench.media_pipeline", "--app", app, "--sessions", str(sessions),
             "--frames", str(count), "--warm", str(warm)],
            capture_output=True, text=True, check=True)
        found = re.search(r"Collected : (\d+)", done.stderr)
        if found is None:
            raise SystemExit(f"callgrind printed no total: {done.stderr[-500:]}")
        totals.append(int(found.group(1)))
    return (totals[1] - totals[0]) / (sessions * (frames - frames // 4))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", choices=("echo", "meeting"), default="echo")
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--warm", type=int, default=300,
                        help="frames before measuring (jitter buffers settle, silent "
                             "participants come to rest in the dominant-speaker tracker)")
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions with callgrind (slow: use --sessions 100)")
    args = parser.parse_args()
    for name in ("sessions", "frames"):
        if getattr(args, name) < 4:
            parser.error(f"--{name} must be at least 4")
    if args.warm < 0:
        parser.error("--warm must not be negative")
    print(f"machine: {platform.node()} {platform.machine()}, Python {platform.python_version()}",
          flush=True)
    if args.instructions:
        count = instructions(args.app, args.sessions, args.frames, args.warm)
        print(f"{args.app}, {args.sessions} sessions: {count:,.0f} instructions per call-frame")
        return
    per_frame, sent = run(args.app, args.sessions, args.frames, args.warm)
    print(f"{args.app}, {args.sessions} sessions: {per_frame * 1e6:.2f} us per call-frame "
          f"({sent} packets sent)")


if __name__ == "__main__":
    main()
