"""RTP packets (RFC 3550 §5.1) with CSRCs, header extensions (RFC 8285) and padding."""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

ONE_BYTE_PROFILE = 0xBEDE
TWO_BYTE_PROFILE = 0x1000  # top 12 bits; low 4 bits are "appbits"


_HEADER = struct.Struct("!BBHII")
# what a plain packet carries: shared, and read-only so that sharing is safe
_NO_EXTENSIONS: Mapping[int, bytes] = MappingProxyType({})


class RtpError(ValueError):
    """Bytes that are not a valid RTP packet."""


def is_rtcp(data: bytes) -> bool:
    """RTP/RTCP demultiplexing on one port (RFC 5761 §4): RTCP types 192-223."""
    return len(data) >= 2 and 192 <= data[1] <= 223


@dataclass(slots=True)
class RtpPacket:
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extensions: Mapping[int, bytes] = field(default_factory=dict)
    extension_profile: int | None = None
    extension_raw: bytes = b""  # kept when the profile is neither one- nor two-byte
    padding: int = 0

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        if len(data) < 12:
            raise RtpError(f"RTP packet of {len(data)} bytes is shorter than its header")
        b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
        if b0 == 0x80:  # the usual case: no CSRCs, extension or padding
            return cls(b1 & 0x7F, seq, ts, ssrc, data[12:], b1 > 0x7F, (), _NO_EXTENSIONS)
        if b0 >> 6 != 2:
            raise RtpError(f"RTP version {b0 >> 6} is not 2")
        cc = b0 & 0x0F
        offset = 12 + 4 * cc
        if len(data) < offset:
            raise RtpError("CSRC list runs past the packet")
        csrc: tuple[int, ...] = struct.unpack_from(f"!{cc}I", data, 12) if cc else ()
        profile = None
        extensions: Mapping[int, bytes] = _NO_EXTENSIONS
        raw = b""
        if b0 & 0x10:
            if len(data) < offset + 4:
                raise RtpError("extension header runs past the packet")
            profile, words = struct.unpack_from("!HH", data, offset)
            start = offset + 4
            offset = start + 4 * words
            if len(data) < offset:
                raise RtpError("extension runs past the packet")
            raw = data[start:offset]
            if profile == ONE_BYTE_PROFILE:
                extensions = _parse_one_byte(raw)
                raw = b""
            elif profile >> 4 == TWO_BYTE_PROFILE >> 4:
                extensions = _parse_two_byte(raw)
                raw = b""
        end = len(data)
        padding = 0
        if b0 & 0x20:
            padding = data[-1]
            if padding == 0 or offset + padding > len(data):
                raise RtpError("bad RTP padding length")
            end -= padding
        return cls(payload_type=b1 & 0x7F, sequence=seq, timestamp=ts, ssrc=ssrc,
                   payload=bytes(data[offset:end]), marker=bool(b1 & 0x80), csrc=csrc,
                   extensions=extensions, extension_profile=profile, extension_raw=raw,
                   padding=padding)

    def __bytes__(self) -> bytes:
        if not (self.csrc or self.padding or self.extensions or self.extension_raw
                or self.extension_profile is not None):
            return _HEADER.pack(0x80, (0x80 if self.marker else 0) | (self.payload_type & 0x7F),
                                self.sequence & 0xFFFF, self.timestamp & 0xFFFFFFFF,
                                self.ssrc & 0xFFFFFFFF) + self.payload
        ext = b""
        if self.extensions or self.extension_raw or self.extension_profile is not None:
            if self.extension_raw:
                body = self.extension_raw
                profile = self.extension_profile or 0
            elif all(1 <= i <= 14 and 1 <= len(v) <= 16 for i, v in self.extensions.items()):
                body, profile = _build_one_byte(self.extensions), ONE_BYTE_PROFILE
            else:
                body, profile = _build_two_byte(self.extensions), TWO_BYTE_PROFILE
            body += b"\x00" * (-len(body) % 4)
            ext = struct.pack("!HH", profile, len(body) // 4) + body
        b0 = 0x80 | (0x20 if self.padding else 0) | (0x10 if ext else 0) | len(self.csrc)
        b1 = (0x80 if self.marker else 0) | (self.payload_type & 0x7F)
        out = struct.pack("!BBHII", b0, b1, self.sequence & 0xFFFF, self.timestamp & 0xFFFFFFFF,
                          self.ssrc & 0xFFFFFFFF)
        if self.csrc:
            out += struct.pack(f"!{len(self.csrc)}I", *self.csrc)
        out += ext + self.payload
        if self.padding:
            out += b"\x00" * (self.padding - 1) + bytes([self.padding])
        return out


def _parse_one_byte(raw: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    i = 0
    while i < len(raw):
        byte = raw[i]
        if byte == 0:  # padding
            i += 1
            continue
        ident, length = byte >> 4, (byte & 0x0F) + 1
        if ident == 15:
            break  # reserved: stop processing (RFC 8285 §4.2)
        if i + 1 + length > len(raw):
            raise RtpError("one-byte extension element runs past the extension")
        out[ident] = raw[i + 1 : i + 1 + length]
        i += 1 + length
    return out


def _parse_two_byte(raw: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    i = 0
    while i < len(raw):
        if raw[i] == 0:
            i += 1
            continue
        if i + 2 > len(raw):
            raise RtpError("two-byte extension header truncated")
        ident, length = raw[i], raw[i + 1]
        if i + 2 + length > len(raw):
            raise RtpError("two-byte extension element runs past the extension")
        out[ident] = raw[i + 2 : i + 2 + length]
        i += 2 + length
    return out


def _build_one_byte(extensions: Mapping[int, bytes]) -> bytes:
    return b"".join(bytes([(i << 4) | (len(v) - 1)]) + v for i, v in sorted(extensions.items()))


def _build_two_byte(extensions: Mapping[int, bytes]) -> bytes:
    return b"".join(bytes([i, len(v)]) + v for i, v in sorted(extensions.items()))


# RFC 6464 client-to-mixer audio level
def audio_level(packet: RtpPacket, ext_id: int) -> tuple[bool, int] | None:
    """(voice activity, level in -dBov 0..127) from the extension, if present."""
    value = packet.extensions.get(ext_id)
    if not value:
        return None
    return bool(value[0] & 0x80), value[0] & 0x7F


def set_audio_level(packet: RtpPacket, ext_id: int, voice: bool, level_dbov: int) -> None:
    level = max(0, min(127, level_dbov))
    # a new mapping: a parsed plain packet's extensions are a shared read-only one
    packet.extensions = {**packet.extensions, ext_id: bytes([(0x80 if voice else 0) | level])}
