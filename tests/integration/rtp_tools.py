"""Test-side RTP tools: a pcap writer for sipp and a lossy UDP relay."""

from __future__ import annotations

import random
import select
import socket
import struct
import threading
import time
from pathlib import Path

import numpy as np

from confserver.media.codecs.g711 import Pcmu
from confserver.media.dtmf import tone_for
from confserver.media.rtp import RtpPacket


def write_rtp_pcap(path: Path, payloads: list[tuple[int, bytes, int]], ptime: float = 0.02) -> None:
    """A pcap of RTP packets (payload type, payload, timestamp) 20 ms apart."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for i, (pt, payload, ts) in enumerate(payloads):
        rtp = bytes(RtpPacket(pt, i, ts, 0x5151, payload))
        udp = struct.pack("!HHHH", 6000, 6001, 8 + len(rtp), 0) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0,
                         bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])) + udp
        frame = b"\x00" * 12 + b"\x08\x00" + ip
        seconds = 1_700_000_000 + i * ptime
        out += struct.pack("<IIII", int(seconds), int((seconds % 1) * 1e6), len(frame), len(frame))
        out += frame
    path.write_bytes(bytes(out))


def inband_dtmf_pcap(path: Path, digits: str, tone_ms: int = 80, gap_ms: int = 80) -> None:
    """PCMU RTP carrying the digits as in-band tones."""
    pcm = np.concatenate([np.zeros(800, np.int16)] + [
        np.concatenate([tone_for(d, tone_ms), np.zeros(8 * gap_ms, np.int16)]) for d in digits
    ] + [np.zeros(800, np.int16)])
    codec = Pcmu()
    frames = [pcm[i:i + 160] for i in range(0, len(pcm) - 159, 160)]
    write_rtp_pcap(path, [(0, codec.encode(f), i * 160) for i, f in enumerate(frames)])


class LossyRelay:
    """Forwards UDP from ``listen_host`` ports to ``target_host`` on the same ports,
    dropping ``loss`` of the packets going toward the target (bounded in time)."""

    def __init__(self, listen_host: str, target_host: str, ports: range, loss: float,
                 seconds: float, seed: int = 5) -> None:
        self.listen_host = listen_host
        self.target_host = target_host
        self.loss = loss
        self.deadline = time.monotonic() + seconds
        self.rng = random.Random(seed)
        self.forwarded = 0
        self.dropped = 0
        self._outer: dict[socket.socket, int] = {}
        self._inner: dict[int, socket.socket] = {}
        self._client: dict[int, tuple[str, int]] = {}
        for port in ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((listen_host, port))
            self._outer[s] = port
            inner = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            inner.bind((listen_host, 0))
            self._inner[port] = inner
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        by_inner = {s: port for port, s in self._inner.items()}
        sockets = list(self._outer) + list(by_inner)
        while time.monotonic() < self.deadline:
            ready, _, _ = select.select(sockets, [], [], 0.1)
            for s in ready:
                data, addr = s.recvfrom(65535)
                if s in self._outer:
                    port = self._outer[s]
                    self._client[port] = addr
                    if self.rng.random() < self.loss:
                        self.dropped += 1
                        continue
                    self._inner[port].sendto(data, (self.target_host, port))
                    self.forwarded += 1
                else:
                    port = by_inner[s]
                    client = self._client.get(port)
                    if client is not None:
                        next(o for o, p in self._outer.items() if p == port).sendto(data, client)

    def close(self) -> None:
        self.deadline = 0
        self._thread.join(timeout=2)
        for s in list(self._outer) + list(self._inner.values()):
            s.close()


class RtpRecorder:
    """A UDP port that keeps every RTP packet it gets with its arrival time (wall
    clock, to line up with sipp's message log), for at most ``seconds``."""

    def __init__(self, seconds: float, host: str = "127.0.0.1") -> None:
        self.deadline = time.monotonic() + seconds
        self.packets: list[tuple[float, RtpPacket]] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((host, 0))
        self.port: int = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while time.monotonic() < self.deadline:
            ready, _, _ = select.select([self._sock], [], [], 0.1)
            if ready:
                data = self._sock.recv(65535)
                if len(data) >= 12 and not 192 <= data[1] <= 223:  # RTP, not RTCP
                    self.packets.append((time.time(), RtpPacket.parse(data)))

    def close(self) -> None:
        self.deadline = 0
        self._thread.join(timeout=2)
        self._sock.close()
