"""Switched video: forward one sender's video to each receiver, sans-I/O.

No transcoding. Everyone sees the dominant speaker; the speaker sees the
previous speaker; a leader can pin one participant for everyone. Each
receiver gets one continuous stream: its own SSRC, sequence numbers without
gaps or jumps across a switch, timestamps that keep moving forward. A switch
waits for a key frame from the new sender (it is asked for one with an RTCP
PLI) and keeps forwarding the old sender meanwhile, so nobody's picture
breaks up.
"""

from __future__ import annotations

import secrets
from collections.abc import Hashable
from dataclasses import dataclass, field

from confserver.media.rtp import RtpPacket

VIDEO_CLOCK = 90000
SWITCH_GAP = 3000  # 33 ms at 90 kHz between the last old and first new frame


def is_keyframe(codec: str, payload: bytes) -> bool:
    """True for the first packet of a key frame (VP8, RFC 7741) or any packet
    carrying an IDR slice or SPS (H.264, RFC 6184)."""
    if not payload:
        return False
    name = codec.upper()
    if name == "VP8":
        first = payload[0]
        start, partition = first & 0x10, first & 0x07
        offset = 1
        if first & 0x80:  # X: extended control bits
            if len(payload) < 2:
                return False
            ext = payload[1]
            offset = 2
            if ext & 0x80:  # I: picture ID, one or two bytes
                if len(payload) <= offset:
                    return False
                offset += 2 if payload[offset] & 0x80 else 1
            if ext & 0x40:  # L: TL0PICIDX
                offset += 1
            if ext & 0x30:  # T or K: TID/KEYIDX
                offset += 1
        if not start or partition != 0 or len(payload) <= offset:
            return False
        return not payload[offset] & 0x01  # P bit clear: a key frame
    if name == "H264":
        nal = payload[0] & 0x1F
        if nal in (5, 7):
            return True
        if nal == 24:  # STAP-A: several NAL units, each behind a 16-bit size
            i = 1
            while i + 2 < len(payload):
                size = int.from_bytes(payload[i:i + 2], "big")
                if size == 0 or i + 2 + size > len(payload):
                    return False
                if payload[i + 2] & 0x1F in (5, 7):
                    return True
                i += 2 + size
            return False
        if nal == 28 and len(payload) > 1:  # FU-A: the start fragment of an IDR
            return bool(payload[1] & 0x80) and payload[1] & 0x1F == 5
    return False


@dataclass(slots=True)
class _Receiver:
    codec: str
    payload_type: int
    ssrc: int = field(default_factory=lambda: secrets.randbits(32))
    source: Hashable | None = None        # whose video it gets now
    wanted: Hashable | None = None        # whose video it should get (after a key frame)
    next_seq: int = field(default_factory=lambda: secrets.randbits(16))
    last_ts: int | None = None
    seq_offset: int = 0
    ts_offset: int = 0
    last_in_seq: int | None = None


@dataclass(frozen=True, slots=True)
class Forward:
    receiver: Hashable
    data: bytes


@dataclass(slots=True)
class SwitchResult:
    forwards: list[Forward] = field(default_factory=list)
    keyframe_requests: set[Hashable] = field(default_factory=set)


class VideoSwitch:
    def __init__(self) -> None:
        self.senders: dict[Hashable, str] = {}        # pid -> codec
        self.receivers: dict[Hashable, _Receiver] = {}
        self.speaker: Hashable | None = None
        self.previous: Hashable | None = None
        self.pinned: Hashable | None = None

    # ------------------------------------------------------------ membership
    def add(self, pid: Hashable, codec: str, payload_type: int, sends: bool = True,
            receives: bool = True) -> set[Hashable]:
        """A participant with video; returns the senders to ask for a key frame."""
        if sends:
            self.senders[pid] = codec.upper()
        if receives:
            self.receivers[pid] = _Receiver(codec.upper(), payload_type)
        return self._retarget()

    def remove(self, pid: Hashable) -> set[Hashable]:
        self.senders.pop(pid, None)
        self.receivers.pop(pid, None)
        if self.pinned == pid:
            self.pinned = None
        if self.speaker == pid:
            self.speaker, self.previous = self.previous, None
        elif self.previous == pid:
            self.previous = None
        for receiver in self.receivers.values():
            if receiver.source == pid:
                receiver.source = None
        return self._retarget()

    # ------------------------------------------------------------ who sees whom
    def set_speaker(self, pid: Hashable | None) -> set[Hashable]:
        if pid == self.speaker or (pid is not None and pid not in self.senders):
            return set()
        self.previous, self.speaker = self.speaker, pid
        return self._retarget()

    def pin(self, pid: Hashable | None) -> set[Hashable]:
        if pid is not None and pid not in self.senders:
            raise ValueError(f"{pid} sends no video")
        self.pinned = pid
        return self._retarget()

    def _choice(self, viewer: Hashable, receiver: _Receiver) -> Hashable | None:
        candidates = [self.pinned] if self.pinned is not None else []
        candidates += [self.speaker, self.previous]
        candidates += sorted(self.senders, key=str)  # someone rather than no one
        for pid in candidates:
            if pid is not None and pid != viewer and self.senders.get(pid) == receiver.codec:
                return pid
        return None

    def _retarget(self) -> set[Hashable]:
        requests: set[Hashable] = set()
        for viewer, receiver in self.receivers.items():
            choice = self._choice(viewer, receiver)
            if choice != receiver.wanted:
                receiver.wanted = choice
                if choice is not None and choice != receiver.source:
                    requests.add(choice)
        return requests

    # ------------------------------------------------------------ forwarding
    def on_packet(self, sender: Hashable, packet: RtpPacket) -> SwitchResult:
        result = SwitchResult()
        codec = self.senders.get(sender)
        if codec is None:
            return result
        keyframe: bool | None = None
        for viewer, receiver in self.receivers.items():
            if receiver.wanted == sender and receiver.source != sender:
                if keyframe is None:
                    keyframe = is_keyframe(codec, packet.payload)
                if not keyframe and receiver.source is not None:
                    continue  # keep showing the old sender until the new one can be decoded
                self._switch(receiver, sender, packet)
            if receiver.source != sender:
                continue
            out = RtpPacket(receiver.payload_type, (packet.sequence + receiver.seq_offset) & 0xFFFF,
                            (packet.timestamp + receiver.ts_offset) & 0xFFFFFFFF, receiver.ssrc,
                            packet.payload, packet.marker)
            receiver.next_seq = (out.sequence + 1) & 0xFFFF
            receiver.last_ts = out.timestamp
            result.forwards.append(Forward(viewer, bytes(out)))
        return result

    @staticmethod
    def _switch(receiver: _Receiver, sender: Hashable, packet: RtpPacket) -> None:
        receiver.source = sender
        receiver.seq_offset = (receiver.next_seq - packet.sequence) & 0xFFFF
        if receiver.last_ts is None:
            receiver.ts_offset = secrets.randbits(32)
        else:
            receiver.ts_offset = (receiver.last_ts + SWITCH_GAP - packet.timestamp) & 0xFFFFFFFF

    def keyframe_for(self, viewer: Hashable) -> Hashable | None:
        """A receiver asked for a key frame (PLI/FIR): the sender to pass it on to."""
        receiver = self.receivers.get(viewer)
        if receiver is None:
            return None
        return receiver.wanted if receiver.wanted is not None else receiver.source

    def source_of(self, viewer: Hashable) -> Hashable | None:
        receiver = self.receivers.get(viewer)
        return receiver.source if receiver is not None else None
