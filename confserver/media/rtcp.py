"""RTCP packets (RFC 3550 §6): SR, RR, SDES, BYE, and compound packets."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

SR, RR, SDES, BYE, APP = 200, 201, 202, 203, 204
SDES_CNAME = 1


class RtcpError(ValueError):
    """Bytes that are not a valid RTCP packet."""


@dataclass(slots=True)
class ReportBlock:
    ssrc: int
    fraction_lost: int       # 0..255, fraction of 256
    cumulative_lost: int     # signed 24-bit
    highest_sequence: int    # extended highest sequence number
    jitter: int              # timestamp units
    last_sr: int = 0         # middle 32 bits of the last SR's NTP time
    delay_since_last_sr: int = 0  # 1/65536 s

    @classmethod
    def parse(cls, data: bytes, offset: int) -> ReportBlock:
        ssrc, lost_word, highest, jitter, lsr, dlsr = struct.unpack_from("!IIIIII", data, offset)
        cumulative = lost_word & 0xFFFFFF
        if cumulative & 0x800000:
            cumulative -= 0x1000000
        return cls(ssrc, lost_word >> 24, cumulative, highest, jitter, lsr, dlsr)

    def __bytes__(self) -> bytes:
        lost = max(-0x800000, min(0x7FFFFF, self.cumulative_lost)) & 0xFFFFFF
        return struct.pack("!IIIIII", self.ssrc, (self.fraction_lost & 0xFF) << 24 | lost,
                           self.highest_sequence & 0xFFFFFFFF, self.jitter & 0xFFFFFFFF,
                           self.last_sr & 0xFFFFFFFF, self.delay_since_last_sr & 0xFFFFFFFF)


@dataclass(slots=True)
class SenderReport:
    ssrc: int
    ntp_timestamp: int   # 64-bit NTP time
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: list[ReportBlock] = field(default_factory=list)

    def body(self) -> tuple[int, int, bytes]:
        data = struct.pack("!IQIII", self.ssrc, self.ntp_timestamp, self.rtp_timestamp,
                           self.packet_count, self.octet_count)
        return SR, len(self.reports), data + b"".join(bytes(r) for r in self.reports)


@dataclass(slots=True)
class ReceiverReport:
    ssrc: int
    reports: list[ReportBlock] = field(default_factory=list)

    def body(self) -> tuple[int, int, bytes]:
        return RR, len(self.reports), struct.pack("!I", self.ssrc) + b"".join(
            bytes(r) for r in self.reports)


@dataclass(slots=True)
class SourceDescription:
    chunks: list[tuple[int, list[tuple[int, bytes]]]] = field(default_factory=list)

    def body(self) -> tuple[int, int, bytes]:
        out = b""
        for ssrc, items in self.chunks:
            chunk = struct.pack("!I", ssrc)
            for kind, value in items:
                chunk += bytes([kind, len(value[:255])]) + value[:255]
            chunk += b"\x00"  # end of items
            chunk += b"\x00" * (-len(chunk) % 4)
            out += chunk
        return SDES, len(self.chunks), out

    def cname(self, ssrc: int) -> bytes | None:
        for chunk_ssrc, items in self.chunks:
            if chunk_ssrc == ssrc:
                for kind, value in items:
                    if kind == SDES_CNAME:
                        return value
        return None


@dataclass(slots=True)
class Goodbye:
    ssrcs: list[int] = field(default_factory=list)
    reason: bytes = b""

    def body(self) -> tuple[int, int, bytes]:
        out = b"".join(struct.pack("!I", s) for s in self.ssrcs)
        if self.reason:
            out += bytes([len(self.reason[:255])]) + self.reason[:255]
            out += b"\x00" * (-len(out) % 4)
        return BYE, len(self.ssrcs), out


@dataclass(slots=True)
class UnknownRtcp:
    packet_type: int
    count: int
    payload: bytes

    def body(self) -> tuple[int, int, bytes]:
        return self.packet_type, self.count, self.payload


PSFB = 206   # payload-specific feedback (RFC 4585)
FMT_PLI = 1  # picture loss indication
FMT_FIR = 4  # full intra request (RFC 5104)


@dataclass(slots=True)
class KeyframeRequest:
    """A PLI (RFC 4585 §6.3.1) or a FIR (RFC 5104 §4.3.1): send a key frame."""

    sender_ssrc: int
    media_ssrc: int
    fir: bool = False
    fir_sequence: int = 0

    def body(self) -> tuple[int, int, bytes]:
        if self.fir:  # the FCI names the media sender and a command sequence number
            return PSFB, FMT_FIR, struct.pack("!IIIB3x", self.sender_ssrc, 0, self.media_ssrc,
                                              self.fir_sequence & 0xFF)
        return PSFB, FMT_PLI, struct.pack("!II", self.sender_ssrc, self.media_ssrc)


RtcpPacket = (SenderReport | ReceiverReport | SourceDescription | Goodbye | KeyframeRequest
              | UnknownRtcp)


def serialize(packet: RtcpPacket) -> bytes:
    ptype, count, body = packet.body()
    body += b"\x00" * (-len(body) % 4)
    return struct.pack("!BBH", 0x80 | (count & 0x1F), ptype, len(body) // 4) + body


def serialize_compound(packets: list[RtcpPacket]) -> bytes:
    return b"".join(serialize(p) for p in packets)


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """Every packet of a compound RTCP datagram; raises RtcpError on bad framing."""
    out: list[RtcpPacket] = []
    offset = 0
    if len(data) < 4:
        raise RtcpError("RTCP packet shorter than its header")
    while offset < len(data):
        if len(data) - offset < 4:
            raise RtcpError("trailing bytes after the last RTCP packet")
        b0, ptype, words = struct.unpack_from("!BBH", data, offset)
        if b0 >> 6 != 2:
            raise RtcpError(f"RTCP version {b0 >> 6} is not 2")
        length = 4 * (words + 1)
        if offset + length > len(data):
            raise RtcpError("RTCP length runs past the datagram")
        end = offset + length
        if b0 & 0x20:
            pad = data[end - 1]
            if pad == 0 or pad > length - 4:
                raise RtcpError("bad RTCP padding")
            end -= pad
        body = data[offset + 4 : end]
        out.append(_parse_one(ptype, b0 & 0x1F, body))
        offset += length
    return out


def _parse_one(ptype: int, count: int, body: bytes) -> RtcpPacket:
    try:
        if ptype == SR:
            ssrc, ntp, rtp_ts, packets, octets = struct.unpack_from("!IQIII", body)
            reports = [ReportBlock.parse(body, 24 + 24 * i) for i in range(count)]
            return SenderReport(ssrc, ntp, rtp_ts, packets, octets, reports)
        if ptype == RR:
            (ssrc,) = struct.unpack_from("!I", body)
            return ReceiverReport(ssrc, [ReportBlock.parse(body, 4 + 24 * i) for i in range(count)])
        if ptype == SDES:
            return _parse_sdes(body, count)
        if ptype == BYE:
            ssrcs = list(struct.unpack_from(f"!{count}I", body)) if count else []
            reason = b""
            pos = 4 * count
            if pos < len(body):
                n = body[pos]
                reason = bytes(body[pos + 1 : pos + 1 + n])
            return Goodbye(ssrcs, reason)
        if ptype == PSFB and count == FMT_PLI:
            sender, media = struct.unpack_from("!II", body)
            return KeyframeRequest(sender, media)
        if ptype == PSFB and count == FMT_FIR:
            sender, _unused, media, sequence = struct.unpack_from("!IIIB", body)
            return KeyframeRequest(sender, media, fir=True, fir_sequence=sequence)
    except struct.error as exc:
        raise RtcpError(f"truncated RTCP packet type {ptype}") from exc
    return UnknownRtcp(ptype, count, bytes(body))


def _parse_sdes(body: bytes, count: int) -> SourceDescription:
    chunks = []
    pos = 0
    for _ in range(count):
        if pos + 4 > len(body):
            raise RtcpError("truncated SDES chunk")
        (ssrc,) = struct.unpack_from("!I", body, pos)
        pos += 4
        items = []
        while pos < len(body) and body[pos] != 0:
            if pos + 2 > len(body):
                raise RtcpError("truncated SDES item")
            kind, length = body[pos], body[pos + 1]
            if pos + 2 + length > len(body):
                raise RtcpError("SDES item runs past the chunk")
            items.append((kind, bytes(body[pos + 2 : pos + 2 + length])))
            pos += 2 + length
        pos += 1
        pos += -pos % 4
        chunks.append((ssrc, items))
    return SourceDescription(chunks)
