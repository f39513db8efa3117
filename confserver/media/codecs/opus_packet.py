"""What an Opus packet says about itself without decoding it (RFC 6716).

A mixer decodes every participant only to learn that most of them are silent.
An Opus packet in SILK or hybrid mode carries the sender's own voice activity
decision: the LP layer of each frame starts with one VAD flag per SILK frame,
then the LBRR flag (mid channel first, then side for stereo; §4.2.3). They are
range coded with probability one half each, and from a fresh range decoder such
decisions read the frame's first bits as they stand, so the flags are the top
bits of each frame's first byte (libopus's ``silk_get_TOC`` reads them so, and
WebRTC's ``WebRtcOpus_PacketHasVoiceActivity``). CELT-only frames carry no flag.

:class:`QuietOpus` turns those flags into the ``is_quiet`` judgement the
media stream asks for, keeping it honest with an occasional decode.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable

from ..level import pcm_level_dbov
from .base import Pcm

MAX_FRAME_BYTES = 1275           # R2
MAX_PACKET_MS = 120              # R5

# milliseconds per frame for each configuration (TOC bits 7..3), §3.1
_FRAME_MS: tuple[float, ...] = (
    (10, 20, 40, 60) * 3          # SILK-only NB, MB, WB
    + (10, 20) * 2                # hybrid SWB, FB
    + (2.5, 5, 10, 20) * 4        # CELT-only NB, WB, SWB, FB
)


class MalformedOpus(ValueError):
    """A packet that breaks one of RFC 6716's rules R1 to R7 (§3.4)."""


def _length(packet: bytes, at: int) -> tuple[int, int]:
    """A frame length coded in one or two bytes at ``at`` (§3.2.1): (length, next)."""
    if at >= len(packet):
        raise MalformedOpus("a frame length is missing")
    first = packet[at]
    if first < 252:
        return first, at + 1
    if at + 1 >= len(packet):
        raise MalformedOpus("a two-byte frame length is cut short")
    return packet[at + 1] * 4 + first, at + 2


def frames(packet: bytes) -> list[bytes]:
    """The compressed frames of one Opus packet (codes 0 to 3, §3.2); a frame of
    no bytes is a frame the sender left out (DTX) or lost (its FEC-less LBRR)."""
    if not packet:
        raise MalformedOpus("an empty packet has no TOC byte")  # R1
    code = packet[0] & 0x03
    body = len(packet) - 1
    if code == 0:
        parts = [packet[1:]]
    elif code == 1:
        if body % 2:
            raise MalformedOpus("code 1 needs an even number of bytes after the TOC")  # R3
        half = body // 2
        parts = [packet[1:1 + half], packet[1 + half:]]
    elif code == 2:
        size, at = _length(packet, 1)
        if at + size > len(packet):
            raise MalformedOpus("the first frame runs past the packet")  # R4
        parts = [packet[at:at + size], packet[at + size:]]
    else:
        parts = _code3_frames(packet)
    if any(len(part) > MAX_FRAME_BYTES for part in parts):
        raise MalformedOpus(f"a frame is longer than {MAX_FRAME_BYTES} bytes")  # R2
    return parts


def _code3_frames(packet: bytes) -> list[bytes]:
    if len(packet) < 2:
        raise MalformedOpus("code 3 needs a frame count byte")  # R6
    vbr, padded, count = packet[1] & 0x80, packet[1] & 0x40, packet[1] & 0x3F
    if count == 0 or count * _FRAME_MS[packet[0] >> 3] > MAX_PACKET_MS:
        raise MalformedOpus(f"{count} frames is not 1 to {MAX_PACKET_MS} ms of audio")  # R5
    at, padding = 2, 0
    while padded:
        if at >= len(packet):
            raise MalformedOpus("the padding length is cut short")
        step = packet[at]
        at += 1
        padding += 254 if step == 255 else step
        padded = step == 255
    end = len(packet) - padding
    if end < at:
        raise MalformedOpus("the padding is longer than the packet")  # R7
    if not vbr:
        if (end - at) % count:
            raise MalformedOpus("constant-size frames do not divide the packet")  # R6
        size = (end - at) // count
        return [packet[at + i * size:at + (i + 1) * size] for i in range(count)]
    sizes = []
    for _ in range(count - 1):
        size, at = _length(packet, at)
        sizes.append(size)
    if at + sum(sizes) > end:
        raise MalformedOpus("the frames run past the packet")  # R7
    parts = []
    for size in sizes:
        parts.append(packet[at:at + size])
        at += size
    parts.append(packet[at:end])
    return parts


def is_dtx(payload: bytes) -> bool:
    """An Opus DTX frame: libopus's encoder makes packets of two bytes or less when
    it finds nothing worth sending, and senders then pause."""
    return len(payload) <= 2


def silk_frames_per_frame(toc: int) -> int:
    """SILK frames in each Opus frame of this configuration; 0 for CELT-only."""
    config = toc >> 3
    if config >= 16:
        return 0
    if config >= 12:
        return 1  # hybrid: one 10 or 20 ms SILK frame
    return (1, 1, 2, 3)[config & 3]


def voice_activity(packet: bytes) -> bool | None:
    """Whether the sender's encoder heard voice in any frame of ``packet``: True or
    False from the SILK VAD flags, None when the packet cannot say (CELT-only,
    malformed). A packet whose frames are all empty heard nothing."""
    if not packet:
        return None
    per_frame = silk_frames_per_frame(packet[0])
    if not per_frame:
        return None
    try:
        parts = frames(packet)
    except MalformedOpus:
        return None
    mid = (0xFF << (8 - per_frame)) & 0xFF          # the mid (or mono) channel's flags
    side = (mid >> (per_frame + 1)) if packet[0] & 0x04 else 0  # after mid's LBRR flag
    return any(part and part[0] & (mid | side) for part in parts)


# how many quiet frames (a second) the sender's flags may vouch for before one is
# decoded to check that it is really quiet: the flags say "no voice", not "no sound"
RECHECK_FRAMES = 50


class QuietOpus:
    """The ``is_quiet`` judgement for one Opus decoder.

    A DTX frame is quiet. Otherwise a frame whose SILK flags say the sender heard
    no voice is quiet while the last such frame decoded measured quieter than the
    threshold. The first voiceless frame after voice is decoded to check (the
    tail of a word can be voiceless and still loud), and then one after every 26
    to 50 (``RECHECK_FRAMES``) taken on trust. So a steady tone, music or loud noise (no
    voice to SILK's VAD, but not quiet) is decoded every frame and reaches the
    mixer's own VAD and gate, while a silent participant costs two decodes (the
    check and the warm-up before it) in about 38 frames.

    A frame judged quiet is not decoded, which leaves the decoder's state behind;
    the last one skipped is decoded (output dropped) before the next real decode,
    so the decoder predicts from the frame just before, as it would have."""

    def __init__(self) -> None:
        self._skipped: bytes | None = None
        self._vouched = 0                 # quiet frames taken on the flags since a check
        self._checked_dbov = -1.0         # level of the last voiceless frame decoded
        self._check_against: float | None = None  # a check decode is due, at this threshold

    def is_quiet(self, payload: bytes, below_dbov: float) -> bool:
        if is_dtx(payload):
            self._skipped = payload
            return True
        if voice_activity(payload) is not False:
            self._checked_dbov = -1.0  # the next voiceless frame is checked: a word's tail?
            return False
        if self._checked_dbov >= below_dbov and self._vouched < RECHECK_FRAMES:
            self._vouched += 1
            self._skipped = payload
            return True
        self._check_against = below_dbov
        return False

    def before_decode(self, decode: Callable[[bytes], Pcm]) -> None:
        """Bring the decoder up to the frame before the one it is about to decode."""
        skipped, self._skipped = self._skipped, None
        if skipped is not None:
            with contextlib.suppress(ValueError):  # a bad payload skipped: nothing to catch up
                decode(skipped)

    def decoded(self, pcm: Pcm) -> None:
        """The frame just decoded, measured if it was decoded to check a quiet run."""
        if self._check_against is not None:
            self._check_against = None
            self._checked_dbov = pcm_level_dbov(pcm)
            # the next check after a half to a whole RECHECK_FRAMES: participants who
            # fell silent together must not all be decoded in the same 20 ms again
            self._vouched = secrets.randbelow(RECHECK_FRAMES // 2)
