"""SDP (RFC 4566) and the offer/answer model (RFC 3264), including hold."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from confserver.media.sdes import CryptoAttribute, SdesError, choose_crypto, new_crypto

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_REVERSE = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly",
            "inactive": "inactive"}


class SdpError(ValueError):
    """Malformed or unacceptable session description."""


# what one description may hold: a call has a few streams with a few formats each; a
# peer's offer beyond these is refused before any work (negotiation is linear anyway)
MAX_MEDIA = 16
MAX_FORMATS = 64      # on one m= line
MAX_LINES = 1024


@dataclass(slots=True)
class Origin:
    username: str = "-"
    session_id: int = 0
    version: int = 0
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "127.0.0.1"

    def __str__(self) -> str:
        return (f"{self.username} {self.session_id} {self.version} "
                f"{self.nettype} {self.addrtype} {self.address}")


@dataclass(slots=True)
class Media:
    kind: str
    port: int
    proto: str
    formats: list[str]
    connection: str | None = None
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    bandwidths: list[str] = field(default_factory=list)
    port_count: int | None = None
    info: str | None = None

    def attribute(self, name: str) -> str | None:
        for key, value in self.attributes:
            if key == name:
                return value or ""
        return None

    def attribute_values(self, name: str) -> list[str]:
        return [v or "" for k, v in self.attributes if k == name]

    @property
    def direction(self) -> str:
        for key, _ in self.attributes:
            if key in DIRECTIONS:
                return key
        return ""

    def set_direction(self, direction: str) -> None:
        self.attributes = [(k, v) for k, v in self.attributes if k not in DIRECTIONS]
        self.attributes.append((direction, None))

    def rtpmap(self) -> dict[str, tuple[str, int, int]]:
        """payload type -> (encoding name, clock rate, channels), static types included."""
        out: dict[str, tuple[str, int, int]] = {}
        for fmt in self.formats:
            if fmt in STATIC_PAYLOADS:
                out[fmt] = STATIC_PAYLOADS[fmt]
        for value in self.attribute_values("rtpmap"):
            pt, _, enc = value.partition(" ")
            name, _, rest = enc.partition("/")
            rate, _, channels = rest.partition("/")
            try:
                out[pt] = (name, int(rate), int(channels or 1))
            except ValueError as exc:
                raise SdpError(f"bad rtpmap {value!r}") from exc
        return out

    def fmtp(self, pt: str) -> str | None:
        for value in self.attribute_values("fmtp"):
            fpt, _, params = value.partition(" ")
            if fpt == pt:
                return params
        return None


STATIC_PAYLOADS = {"0": ("PCMU", 8000, 1), "8": ("PCMA", 8000, 1), "9": ("G722", 8000, 1),
                   "3": ("GSM", 8000, 1), "18": ("G729", 8000, 1), "13": ("CN", 8000, 1)}


@dataclass(slots=True)
class SessionDescription:
    origin: Origin = field(default_factory=Origin)
    name: str = "-"
    connection: str | None = None
    times: list[str] = field(default_factory=lambda: ["0 0"])
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    media: list[Media] = field(default_factory=list)
    bandwidths: list[str] = field(default_factory=list)
    version: int = 0
    extra: list[str] = field(default_factory=list)  # i=, u=, e=, p=, z=, k=, r= lines

    @classmethod
    def parse(cls, data: bytes | str) -> SessionDescription:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        sdp = cls(times=[])
        current: Media | None = None
        seen_v = seen_o = False
        lines = text.replace("\r\n", "\n").split("\n")
        if len(lines) > MAX_LINES:
            raise SdpError(f"more than {MAX_LINES} lines")
        for lineno, raw in enumerate(lines, 1):
            line = raw.rstrip("\r")
            if not line:
                continue
            if len(line) < 2 or line[1] != "=":
                raise SdpError(f"line {lineno}: not 'x=value': {line[:40]!r}")
            key, value = line[0], line[2:]
            if key == "v":
                if value.strip() != "0":
                    raise SdpError(f"unsupported SDP version {value!r}")
                seen_v = True
            elif key == "o":
                parts = value.split()
                if len(parts) != 6:
                    raise SdpError(f"bad origin line {value!r}")
                try:
                    sdp.origin = Origin(parts[0], int(parts[1]), int(parts[2]),
                                        parts[3], parts[4], parts[5])
                except ValueError as exc:
                    raise SdpError(f"bad origin line {value!r}") from exc
                seen_o = True
            elif key == "s":
                sdp.name = value
            elif key == "c":
                parts = value.split()
                if len(parts) != 3 or parts[0] != "IN":
                    raise SdpError(f"bad connection line {value!r}")
                address = parts[2].split("/")[0]
                if current is None:
                    sdp.connection = address
                else:
                    current.connection = address
            elif key == "t":
                sdp.times.append(value)
            elif key == "b":
                (current.bandwidths if current else sdp.bandwidths).append(value)
            elif key == "a":
                name, colon, val = value.partition(":")
                attr = (name, val if colon else None)
                (current.attributes if current else sdp.attributes).append(attr)
            elif key == "m":
                parts = value.split()
                if len(parts) < 4:
                    raise SdpError(f"bad media line {value!r}")
                port_text, _, count = parts[1].partition("/")
                if not port_text.isdigit() or int(port_text) > 65535:
                    raise SdpError(f"bad media port {parts[1]!r}")
                if len(sdp.media) >= MAX_MEDIA:
                    raise SdpError(f"more than {MAX_MEDIA} media lines")
                if len(parts) - 3 > MAX_FORMATS:
                    raise SdpError(f"more than {MAX_FORMATS} formats on one media line")
                current = Media(parts[0], int(port_text), parts[2], parts[3:],
                                port_count=int(count) if count.isdigit() else None)
                sdp.media.append(current)
            elif key == "i" and current is not None:
                current.info = value
            else:
                sdp.extra.append(line)
        if not (seen_v and seen_o):
            raise SdpError("missing v= or o= line")
        if not sdp.times:
            sdp.times = ["0 0"]
        for media in sdp.media:
            if media.port and media.connection is None and sdp.connection is None:
                raise SdpError(f"no connection address for {media.kind} stream")
        return sdp

    def copy(self) -> SessionDescription:
        """An independent copy (what ``copy.deepcopy`` gives, a tenth of the cost:
        every field below the lists is an immutable str, int or tuple)."""
        return replace(self, origin=replace(self.origin), times=list(self.times),
                       attributes=list(self.attributes), bandwidths=list(self.bandwidths),
                       extra=list(self.extra),
                       media=[replace(m, formats=list(m.formats), attributes=list(m.attributes),
                                      bandwidths=list(m.bandwidths)) for m in self.media])

    def __bytes__(self) -> bytes:
        lines = ["v=0", f"o={self.origin}", f"s={self.name or '-'}"]
        lines += [x for x in self.extra if x[0] in "iuep"]
        if self.connection:
            lines.append(f"c=IN {_addrtype(self.connection)} {self.connection}")
        lines += [f"b={b}" for b in self.bandwidths]
        lines += [f"t={t}" for t in self.times]
        lines += [x for x in self.extra if x[0] in "rzk"]
        lines += [f"a={k}" if v is None else f"a={k}:{v}" for k, v in self.attributes]
        for m in self.media:
            port = f"{m.port}/{m.port_count}" if m.port_count else str(m.port)
            lines.append(f"m={m.kind} {port} {m.proto} {' '.join(m.formats)}")
            if m.info is not None:
                lines.append(f"i={m.info}")
            if m.connection:
                lines.append(f"c=IN {_addrtype(m.connection)} {m.connection}")
            lines += [f"b={b}" for b in m.bandwidths]
            lines += [f"a={k}" if v is None else f"a={k}:{v}" for k, v in m.attributes]
        return ("\r\n".join(lines) + "\r\n").encode()

    def media_direction(self, media: Media) -> str:
        """Effective direction, treating the old c=0.0.0.0 hold as sendonly."""
        direction = media.direction or _session_direction(self) or "sendrecv"
        address = media.connection or self.connection
        if address == "0.0.0.0" and direction == "sendrecv":
            return "sendonly"
        return direction


def _session_direction(sdp: SessionDescription) -> str:
    for key, _ in sdp.attributes:
        if key in DIRECTIONS:
            return key
    return ""


def _addrtype(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


@dataclass(frozen=True, slots=True)
class Codec:
    """A codec we can offer/accept: encoding name, clock rate, channels, fmtp."""

    name: str
    clock_rate: int
    channels: int = 1
    static_pt: int | None = None
    fmtp: str | None = None


DEFAULT_AUDIO_CODECS = (
    Codec("opus", 48000, 2, None, "useinbandfec=1"),
    Codec("G722", 8000, 1, 9),
    Codec("PCMU", 8000, 1, 0),
    Codec("PCMA", 8000, 1, 8),
)
TELEPHONE_EVENT = Codec("telephone-event", 8000, 1, None, "0-16")
OFFERED_SUITES = ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32")
# switched (forwarded, never transcoded) video: the offer's own fmtp is echoed
DEFAULT_VIDEO_CODECS = (Codec("VP8", 90000), Codec("H264", 90000))


def codecs_in_order(names: tuple[str, ...]) -> tuple[Codec, ...]:
    """The audio codecs named, in that preference order."""
    by_name = {c.name.lower(): c for c in DEFAULT_AUDIO_CODECS}
    return tuple(by_name[n.lower()] for n in names if n.lower() in by_name)


@dataclass(slots=True)
class NegotiatedStream:
    """What one accepted m= line settled on."""

    index: int
    kind: str
    remote_address: str
    remote_port: int
    payload_type: int
    codec: Codec
    dtmf_payload_type: int | None
    direction: str  # our direction, as written in the answer
    ptime: int = 20
    rtcp_mux: bool = False
    remote_rtcp_port: int = 0
    local_crypto: str | None = None   # SDES (RFC 4568): our a=crypto, when SRTP
    remote_crypto: str | None = None
    audio_level_id: int | None = None  # RFC 6464: the extension ID of the peer's audio level


def answer_offer(offer: SessionDescription, address: str, port_for: list[int],
                 codecs: tuple[Codec, ...] = DEFAULT_AUDIO_CODECS,
                 session_id: int = 0, version: int = 0,
                 want_direction: str = "sendrecv", srtp: str = "optional",
                 video_port: int | None = None,
                 video_codecs: tuple[Codec, ...] = DEFAULT_VIDEO_CODECS,
                 ) -> tuple[SessionDescription, list[NegotiatedStream]]:
    """Build an answer: the first audio stream gets our best common codec, others port 0.

    With ``video_port``, the first plain-RTP video stream is accepted too, with
    the first of ``video_codecs`` the offer has, and key frame feedback
    (RTCP PLI and FIR) advertised.

    ``port_for`` gives the local RTP port for each audio stream we accept,
    in order. The answer's direction reflects the offer's (hold) combined
    with ``want_direction`` (our own hold state). ``srtp`` is our policy:
    "required" accepts only SRTP streams, "off" only plain RTP, "optional"
    answers SRTP when the offer carries a usable a=crypto (RTP/SAVP, or
    best-effort crypto in RTP/AVP) and plain RTP otherwise.
    """
    answer = SessionDescription(origin=Origin("switchboard", session_id, version, "IN",
                                              _addrtype(address), address),
                                name="switchboard", connection=address)
    streams: list[NegotiatedStream] = []
    ports = list(port_for)
    for index, media in enumerate(offer.media):
        chosen = None
        crypto = None
        if media.kind == "audio" and media.port != 0 and "RTP/" in media.proto and ports \
                and not streams:
            chosen = _choose_codec(media, codecs)
            secure_proto = "SAVP" in media.proto
            offered = media.attribute_values("crypto")
            if secure_proto or (offered and srtp != "off"):
                crypto = choose_crypto(offered) if srtp != "off" else None
                if crypto is None and (secure_proto or srtp == "required"):
                    chosen = None  # SRTP demanded but not possible
            elif srtp == "required":
                chosen = None
        if chosen is None and media.kind == "video" and video_port is not None \
                and media.port != 0 and media.proto == "RTP/AVP" \
                and not any(s.kind == "video" for s in streams):
            video = _choose_codec(media, video_codecs)
            if video is not None:
                streams.append(_answer_video(offer, media, index, video, video_port,
                                             want_direction, answer))
                continue
        if chosen is None:
            answer.media.append(Media(media.kind, 0, media.proto, media.formats[:1]))
            continue
        pt, codec = chosen
        dtmf_pt = _find_payload(media, TELEPHONE_EVENT)
        offered_dir = offer.media_direction(media)
        direction = _combine_direction(_REVERSE[offered_dir], want_direction)
        local_port = ports.pop(0)
        formats = [str(pt)] + ([str(dtmf_pt)] if dtmf_pt is not None else [])
        out = Media("audio", local_port, media.proto, formats)
        out.attributes.append(("rtpmap", f"{pt} {codec.name}/{codec.clock_rate}"
                               + (f"/{codec.channels}" if codec.channels > 1 else "")))
        fmtp = media.fmtp(str(pt))
        if codec.name.lower() == "opus":
            out.attributes.append(("fmtp", f"{pt} {codec.fmtp or fmtp or ''}".rstrip()))
        if dtmf_pt is not None:
            out.attributes += [("rtpmap", f"{dtmf_pt} telephone-event/8000"),
                               ("fmtp", f"{dtmf_pt} 0-16")]
        ptime_text = media.attribute("ptime")
        ptime = int(ptime_text) if ptime_text and ptime_text.isdigit() else 20
        # we send 20 ms packets (the media clock's frame) and take any length the
        # peer sends: its a=ptime is a hint to start the jitter buffer with (RFC 4566)
        out.attributes.append(("ptime", "20"))
        if media.attribute("rtcp-mux") is not None:
            out.attributes.append(("rtcp-mux", None))
        if crypto is not None:
            out.attributes.append(("crypto", str(crypto[1])))
        level_id = offered_audio_level(media)
        if level_id is not None:
            # we only receive it: the mixer skips decoding what the sender says is quiet
            out.attributes.append(("extmap", f"{level_id}/recvonly {AUDIO_LEVEL_URI}"))
        out.set_direction(direction)
        answer.media.append(out)
        remote = media.connection or offer.connection or "0.0.0.0"
        rtcp_attr = (media.attribute("rtcp") or "").split(" ")[0]
        rtcp_port = int(rtcp_attr) if rtcp_attr.isdigit() else media.port + 1
        streams.append(NegotiatedStream(index, "audio", remote, media.port, pt, codec,
                                        dtmf_pt, direction, ptime,
                                        media.attribute("rtcp-mux") is not None, rtcp_port,
                                        str(crypto[1]) if crypto else None,
                                        str(crypto[0]) if crypto else None, level_id))
    if not any(s.kind == "audio" for s in streams):
        raise SdpError("no acceptable audio stream in the offer")
    return answer, streams


AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"


def offered_audio_level(media: Media) -> int | None:
    """The ID under which the offerer will send its RFC 6464 audio level (RFC 8285
    ``a=extmap``), or None: not offered, offered only for the other direction, or
    an ID no header can carry."""
    for value in media.attribute_values("extmap"):
        fields = value.split()
        if len(fields) < 2 or fields[1] != AUDIO_LEVEL_URI:
            continue
        ident, _, direction = fields[0].partition("/")
        if not ident.isdigit() or direction not in ("", "sendrecv", "sendonly"):
            continue
        number = int(ident)
        if 1 <= number <= 255 and number != 15:  # 15 is reserved in the one-byte form
            return number
    return None


def _answer_video(offer: SessionDescription, media: Media, index: int,
                  chosen: tuple[int, Codec], port: int, want_direction: str,
                  answer: SessionDescription) -> NegotiatedStream:
    pt, codec = chosen
    direction = _combine_direction(_REVERSE[offer.media_direction(media)], want_direction)
    out = Media("video", port, media.proto, [str(pt)])
    out.attributes.append(("rtpmap", f"{pt} {codec.name}/{codec.clock_rate}"))
    fmtp = media.fmtp(str(pt))
    if fmtp:
        out.attributes.append(("fmtp", f"{pt} {fmtp}"))
    out.attributes += [("rtcp-fb", f"{pt} nack pli"), ("rtcp-fb", f"{pt} ccm fir")]
    if media.attribute("rtcp-mux") is not None:
        out.attributes.append(("rtcp-mux", None))
    out.set_direction(direction)
    answer.media.append(out)
    remote = media.connection or offer.connection or "0.0.0.0"
    rtcp_attr = (media.attribute("rtcp") or "").split(" ")[0]
    rtcp_port = int(rtcp_attr) if rtcp_attr.isdigit() else media.port + 1
    return NegotiatedStream(index, "video", remote, media.port, pt, codec, None, direction, 20,
                            media.attribute("rtcp-mux") is not None, rtcp_port)


def _combine_direction(a: str, b: str) -> str:
    """Intersect two directions (each seen from our side)."""
    send = a in ("sendrecv", "sendonly") and b in ("sendrecv", "sendonly")
    recv = a in ("sendrecv", "recvonly") and b in ("sendrecv", "recvonly")
    if send and recv:
        return "sendrecv"
    if send:
        return "sendonly"
    return "recvonly" if recv else "inactive"


def _offered_payloads(media: Media) -> dict[tuple[str, int], int]:
    """(encoding name lower-cased, clock rate) -> the first payload type offered for it:
    one pass over the formats and the rtpmaps, whatever their number."""
    formats = set(media.formats)
    out: dict[tuple[str, int], int] = {}
    for pt, (name, rate, _channels) in media.rtpmap().items():
        if pt in formats and pt.isdigit():
            out.setdefault((name.lower(), rate), int(pt))
    return out


def _find_payload(media: Media, codec: Codec) -> int | None:
    return _offered_payloads(media).get((codec.name.lower(), codec.clock_rate))


def _choose_codec(media: Media, codecs: tuple[Codec, ...]) -> tuple[int, Codec] | None:
    """Our preference order wins among the codecs both sides support."""
    offered = _offered_payloads(media)
    for codec in codecs:
        pt = offered.get((codec.name.lower(), codec.clock_rate))
        if pt is not None:
            return pt, codec
    return None


def make_offer(address: str, port: int, codecs: tuple[Codec, ...] = DEFAULT_AUDIO_CODECS,
               session_id: int = 0, version: int = 0,
               direction: str = "sendrecv", srtp: str = "off") -> SessionDescription:
    """An audio offer. ``srtp`` is our policy: "required" offers RTP/SAVP with SDES
    keys, "optional" offers RTP/AVP with the same keys (best-effort SRTP: a peer
    that answers with a=crypto gets SRTP, one that ignores it plain RTP), "off"
    plain RTP."""
    sdp = SessionDescription(origin=Origin("switchboard", session_id, version, "IN",
                                           _addrtype(address), address),
                             name="switchboard", connection=address)
    media = Media("audio", port, "RTP/SAVP" if srtp == "required" else "RTP/AVP", [])
    dynamic = 96
    for codec in (*codecs, TELEPHONE_EVENT):
        pt = codec.static_pt if codec.static_pt is not None else dynamic
        if codec.static_pt is None:
            dynamic += 1
        media.formats.append(str(pt))
        rate = f"{codec.name}/{codec.clock_rate}" + (f"/{codec.channels}" if codec.channels > 1 else "")
        media.attributes.append(("rtpmap", f"{pt} {rate}"))
        if codec.fmtp:
            media.attributes.append(("fmtp", f"{pt} {codec.fmtp}"))
    media.attributes.append(("ptime", "20"))
    if srtp != "off":
        for tag, suite in enumerate(OFFERED_SUITES, start=1):
            media.attributes.append(("crypto", str(new_crypto(tag, suite))))
    media.set_direction(direction)
    sdp.media.append(media)
    return sdp


def streams_from_answer(offer: SessionDescription, answer: SessionDescription,
                        codecs: tuple[Codec, ...] = DEFAULT_AUDIO_CODECS) -> list[NegotiatedStream]:
    """What an answer to our offer settled on (RFC 3264 §6: the answer's first
    format that we offered); empty when the audio stream was declined."""
    for index, media in enumerate(answer.media):
        if media.kind != "audio" or media.port == 0 or index >= len(offer.media):
            continue
        mapping = media.rtpmap()
        for fmt in media.formats:
            if fmt not in mapping or not fmt.isdigit():
                continue
            name, rate, _channels = mapping[fmt]
            codec = next((c for c in codecs if c.name.lower() == name.lower()
                          and c.clock_rate == rate), None)
            if codec is None:
                continue
            keys = _answered_crypto(offer.media[index], media)
            if keys is None:
                return []
            dtmf = _find_payload(media, TELEPHONE_EVENT)
            theirs = answer.media_direction(media)
            rtcp_attr = (media.attribute("rtcp") or "").split(" ")[0]
            ptime_text = media.attribute("ptime")
            return [NegotiatedStream(
                index, "audio", media.connection or answer.connection or "0.0.0.0", media.port,
                int(fmt), codec, dtmf, _REVERSE[theirs],
                int(ptime_text) if ptime_text and ptime_text.isdigit() else 20,
                media.attribute("rtcp-mux") is not None,
                int(rtcp_attr) if rtcp_attr.isdigit() else media.port + 1, *keys)]
    return []


def _answered_crypto(offered: Media, answered: Media
                     ) -> tuple[str | None, str | None] | None:
    """(our key, theirs) an answer settled on: both None for plain RTP; None when the
    answer is unusable (SRTP we required refused, or an a=crypto we did not offer)."""
    values = answered.attribute_values("crypto")
    if not values:
        return None if "SAVP" in offered.proto else (None, None)
    ours = {}
    for value in offered.attribute_values("crypto"):
        attribute = CryptoAttribute.parse(value)
        ours[attribute.tag] = attribute
    try:
        theirs = CryptoAttribute.parse(values[0])
    except SdesError:
        return None
    mine = ours.get(theirs.tag)
    if mine is None or mine.suite != theirs.suite:
        return None
    return str(mine), str(theirs)


def keep_local_key(answer: SessionDescription, stream: NegotiatedStream,
                   previous: str | None) -> None:
    """Answer a re-offer with the SRTP key we already send with, when the crypto it
    answers has the same tag and suite (RFC 4568 §7.1.4 lets the answerer keep its
    key): a hold or a session refresh then changes no keys and media goes on as it was."""
    if previous is None or stream.local_crypto is None:
        return
    try:
        old, new = CryptoAttribute.parse(previous), CryptoAttribute.parse(stream.local_crypto)
    except SdesError:
        return
    if (old.tag, old.suite) != (new.tag, new.suite):
        return
    media = answer.media[stream.index]
    media.attributes = [("crypto", previous) if name == "crypto" and value == stream.local_crypto
                        else (name, value) for name, value in media.attributes]
    stream.local_crypto = previous


def reoffered_key(stream: NegotiatedStream, offered: Media) -> str | None:
    """The peer's SRTP key in a re-offer, for the tag and suite of ours (it may have
    re-keyed); None for a plain-RTP call. SdpError when an SRTP call's re-offer has no
    such key (dropping encryption mid-call is not taken)."""
    if stream.local_crypto is None:
        return None
    ours = CryptoAttribute.parse(stream.local_crypto)
    for value in offered.attribute_values("crypto"):
        try:
            theirs = CryptoAttribute.parse(value)
        except SdesError:
            continue
        if (theirs.tag, theirs.suite) == (ours.tag, ours.suite):
            return str(theirs)
    raise SdpError(f"the offer drops the SRTP suite {ours.suite} agreed for this call")


def audio_direction(sdp: SessionDescription) -> str:
    """The direction of the first active audio stream, as its sender wrote it."""
    audio = next((m for m in sdp.media if m.kind == "audio" and m.port), None)
    return sdp.media_direction(audio) if audio is not None else "inactive"


def with_direction(sdp: SessionDescription, direction: str) -> SessionDescription:
    """Our earlier SDP again with its audio in ``direction`` and the next version
    (RFC 3264 §8: a re-offer that only holds or resumes keeps everything else)."""
    out = sdp.copy()
    out.origin.version += 1
    for media in out.media:
        if media.kind == "audio" and media.port:
            media.set_direction(direction)
    return out


def answer_direction(offered: str) -> str:
    """Our direction answering an offer of ``offered`` when we are willing to do both."""
    return _REVERSE.get(offered, "inactive")


def narrowed(offer: SessionDescription, stream: NegotiatedStream) -> SessionDescription:
    """Our offer cut down to what the answer settled on (the agreed codec and
    telephone-event, and of the SRTP keys we proposed the one agreed: an answer
    carries exactly one, RFC 4568 §5.1.2), the SDP later re-offers and answers in the
    dialog start from."""
    out = offer.copy()
    media = out.media[stream.index] if stream.index < len(out.media) else None
    if media is None:
        return out
    keep = {pt for pt, (name, rate, _ch) in media.rtpmap().items()
            if (name.lower() == stream.codec.name.lower() and rate == stream.codec.clock_rate)
            or name.lower() == TELEPHONE_EVENT.name}
    media.formats = [f for f in media.formats if f in keep]
    media.attributes = [(k, v) for k, v in media.attributes
                        if (k not in ("rtpmap", "fmtp") or (v or "").split(" ")[0] in keep)
                        and (k != "crypto" or v == stream.local_crypto)]
    return out
