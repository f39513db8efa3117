"""SIP requests and responses: parsing, validation and serialization.

Parsing is two-staged. :func:`parse_message` does the lexical work (start
line, unfolding, header split, Content-Length framing). ``validate()`` then
parses the headers every SIP element depends on (Via, From, To, Call-ID,
CSeq, Max-Forwards, Contact, Expires) and caches them; a failure there still
leaves a message good enough to answer with a stateless 400/505.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import ClassVar

from .address import NameAddr, Via, parse_contacts, parse_vias
from .grammar import SipSyntaxError, is_token, parse_uint, split_header_values
from .uri import Uri, parse_uri

_COMPACT = {
    "i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length",
    "c": "Content-Type", "f": "From", "s": "Subject", "k": "Supported", "t": "To",
    "v": "Via", "o": "Event", "r": "Refer-To", "b": "Referred-By", "u": "Allow-Events",
    "x": "Session-Expires", "a": "Accept-Contact", "j": "Reject-Contact",
    "d": "Request-Disposition", "y": "Identity", "n": "Identity-Info",
}
_KNOWN = [
    "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Allow-Events",
    "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact",
    "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
    "Content-Type", "CSeq", "Date", "Error-Info", "Event", "Expires", "From", "In-Reply-To",
    "Max-Forwards", "Min-Expires", "Min-SE", "MIME-Version", "Organization",
    "P-Asserted-Identity", "P-Preferred-Identity", "Priority", "Privacy",
    "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "RAck", "Reason",
    "Record-Route", "Refer-To", "Referred-By", "Reply-To", "Require", "Retry-After",
    "Route", "RSeq", "Server", "Session-Expires", "Subject", "Subscription-State",
    "Supported", "Timestamp", "To", "Unsupported", "User-Agent", "Via", "Warning",
    "WWW-Authenticate",
]
CANONICAL: dict[str, str] = {name.lower(): name for name in _KNOWN}
CANONICAL.update(_COMPACT)

# Headers that may appear at most once in a request (RFC 3261 §20, §7.3.1).
SINGLE_VALUED = ("Call-ID", "From", "To", "CSeq", "Max-Forwards", "Content-Length",
                 "Content-Type", "Expires")

MAX_MESSAGE_SIZE = 65535
MAX_HEADER_BYTES = 32768


def canonical_name(name: str) -> str:
    return CANONICAL.get(name.lower(), name)


@functools.lru_cache(maxsize=512)
def lookup_key(name: str) -> str:
    """What a header name is compared by: its canonical name, lower-cased."""
    return canonical_name(name).lower()


class SipParseError(ValueError):
    """A message that cannot be accepted.

    ``status`` is the response a UAS should send (400, 505, ...) when enough
    of the message was understood to answer; ``message`` is that partial
    message, or ``None`` when nothing can be answered.
    """

    def __init__(self, reason: str, status: int = 400,
                 message: Request | Response | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.message = message


class Headers:
    """Ordered header fields with case-insensitive lookup and canonical names."""

    # Every message is asked for a dozen headers; the lower-cased names are
    # computed once per message (and again only after set/remove) so a lookup is
    # a C-level list search instead of lower-casing every field each time.
    __slots__ = ("_items", "_keys")

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        self._items: list[tuple[str, str]] = items if items is not None else []
        self._keys: list[str] | None = None

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and lookup_key(name) in self._lowered()

    def _lowered(self) -> list[str]:
        if self._keys is None or len(self._keys) != len(self._items):
            self._keys = [n.lower() for n, _ in self._items]
        return self._keys

    def get(self, name: str) -> str | None:
        try:
            return self._items[self._lowered().index(lookup_key(name))][1]
        except ValueError:
            return None

    def get_all(self, name: str) -> list[str]:
        key = lookup_key(name)
        keys = self._lowered()
        if key not in keys:
            return []
        return [item[1] for k, item in zip(keys, self._items, strict=True) if k == key]

    def count(self, name: str) -> int:
        return self._lowered().count(lookup_key(name))

    def values(self, name: str) -> list[str]:
        """All comma-separated elements of a list-valued header, in order."""
        out: list[str] = []
        for raw in self.get_all(name):
            if raw.strip():
                out.extend(split_header_values(raw))
        return out

    def tokens(self, name: str) -> list[str]:
        return [v.lower() for v in self.values(name)]

    def add(self, name: str, value: str) -> None:
        canon = canonical_name(name)
        keys = self._lowered()
        self._items.append((canon, value))
        keys.append(canon.lower())

    def prepend(self, name: str, value: str) -> None:
        canon = canonical_name(name)
        keys = self._lowered()
        self._items.insert(0, (canon, value))
        keys.insert(0, canon.lower())

    def set(self, name: str, value: str) -> None:
        canon = canonical_name(name)
        key = canon.lower()
        for i, (n, _) in enumerate(self._items):
            if n.lower() == key:
                self._items[i] = (canon, value)
                self._items = [it for j, it in enumerate(self._items)
                               if j <= i or it[0].lower() != key]
                self._keys = None
                return
        self.add(canon, value)

    def remove(self, name: str) -> None:
        key = canonical_name(name).lower()
        self._items = [it for it in self._items if it[0].lower() != key]
        self._keys = None

    def copy(self) -> Headers:
        return Headers(list(self._items))


@dataclass(slots=True)
class CSeq:
    number: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        parts = text.split()
        if len(parts) != 2:
            raise SipSyntaxError(f"malformed CSeq {text[:40]!r}")
        if not is_token(parts[1]):
            raise SipSyntaxError("CSeq method is not a token")
        return cls(parse_uint(parts[0], "CSeq number"), parts[1])

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


@dataclass(slots=True, eq=False)
class _Message:
    headers: Headers
    body: bytes = b""
    version: str = "SIP/2.0"
    vias: list[Via] = field(default_factory=list, repr=False)
    from_: NameAddr | None = field(default=None, repr=False)
    to: NameAddr | None = field(default=None, repr=False)
    cseq: CSeq | None = field(default=None, repr=False)
    call_id: str = field(default="", repr=False)

    REQUIRED: ClassVar[tuple[str, ...]] = ("Via", "From", "To", "Call-ID", "CSeq")

    def _validate_common(self) -> None:
        missing = [h for h in self.REQUIRED if self.headers.get(h) is None]
        if missing:
            raise SipSyntaxError("missing " + ", ".join(missing))
        for name in SINGLE_VALUED:
            count = self.headers.count(name)
            if count > 1:
                raise SipSyntaxError(f"{name} appears {count} times")
        self.vias = [v for raw in self.headers.get_all("Via") for v in parse_vias(raw)]
        self.from_ = NameAddr.parse(self.headers.get("From") or "")
        self.to = NameAddr.parse(self.headers.get("To") or "")
        self.call_id = (self.headers.get("Call-ID") or "").strip()
        if not self.call_id or any(c in self.call_id for c in " \t"):
            raise SipSyntaxError("malformed Call-ID")
        self.cseq = CSeq.parse(self.headers.get("CSeq") or "")

    # convenience accessors valid after validate()
    @property
    def top_via(self) -> Via:
        return self.vias[0]

    @property
    def from_tag(self) -> str | None:
        return self.from_.tag if self.from_ else None

    @property
    def to_tag(self) -> str | None:
        return self.to.tag if self.to else None

    def contacts(self) -> list[NameAddr] | None:
        raw = ",".join(v for v in self.headers.get_all("Contact") if v.strip())
        return parse_contacts(raw) if raw else []

    def _serialize(self, start_line: str, allow_nul: bool = False) -> bytes:
        lines = [start_line]
        for name, value in self.headers:
            if name != "Content-Length":
                lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(self.body)}")
        head = "\r\n".join(lines) + "\r\n\r\n"
        # A value with a line break would start a header (or a body) of its own: an
        # injection, whoever put it there. Checked on the whole head at once (cheap):
        # it holds exactly the breaks we put between lines.
        breaks = len(lines) + 1
        if head.count("\n") != breaks or head.count("\r") != breaks \
                or (not allow_nul and "\0" in head):
            raise SipSyntaxError("a header value holds CR, LF or NUL: not sent")
        return head.encode("utf-8", "surrogateescape") + self.body


@dataclass(slots=True, eq=False)
class Request(_Message):
    method: str = ""
    uri: Uri | None = None
    uri_text: str = ""
    max_forwards: int | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, data: bytes) -> Request:
        msg = parse_message(data)
        if not isinstance(msg, Request):
            raise SipParseError("not a request", message=msg)
        return msg

    def validate(self) -> None:
        """Parse the headers every element needs; raise SipParseError(400/505)."""
        if self.version.upper() != "SIP/2.0":
            raise SipParseError(f"version {self.version} not supported", 505, self)
        try:
            if self.uri is None:
                raise SipSyntaxError(f"malformed Request-URI {self.uri_text[:60]!r}")
            if self.method != "REGISTER" and getattr(self.uri, "headers", None) is not None:
                raise SipSyntaxError("Request-URI carries headers")
            self._validate_common()
            mf = self.headers.get("Max-Forwards")
            self.max_forwards = None if mf is None else parse_uint(mf, "Max-Forwards", 255)
            expires = self.headers.get("Expires")
            if expires is not None:
                parse_uint(expires, "Expires")
            if self.method in ("REGISTER", "INVITE", "SUBSCRIBE", "REFER", "UPDATE") \
                    or self.headers.get("Contact") is not None:
                for contact in self.contacts() or []:
                    exp = contact.params.get("expires")
                    if exp is not None:
                        parse_uint(exp, "Contact expires")
        except SipSyntaxError as exc:
            raise SipParseError(str(exc), 400, self) from exc

    def __bytes__(self) -> bytes:
        return self._serialize(f"{self.method} {self.uri} {self.version}")


@dataclass(slots=True, eq=False)
class Response(_Message):
    status: int = 0
    reason: str = ""

    @classmethod
    def parse(cls, data: bytes) -> Response:
        msg = parse_message(data)
        if not isinstance(msg, Response):
            raise SipParseError("not a response")
        return msg

    def validate(self) -> None:
        try:
            self._validate_common()
            for name in ("Retry-After", "Expires", "Min-Expires"):
                raw = self.headers.get(name)
                if raw is not None:
                    parse_uint(raw.split(";")[0].split("(")[0], name)
            for raw in self.headers.values("Warning") if "Warning" in self.headers else []:
                code = raw.split(" ", 1)[0]
                if len(code) != 3 or not code.isdigit():
                    raise SipSyntaxError("bad Warning code")
        except SipSyntaxError as exc:
            raise SipParseError(str(exc), 400, self) from exc

    def __bytes__(self) -> bytes:
        # a response echoes the requester's own From and To, where RFC 3261 allows a
        # quoted NUL (RFC 4475 §3.1.1.3); a request of ours never carries one
        return self._serialize(f"{self.version} {self.status} {self.reason}", allow_nul=True)


Message = Request | Response

_METHOD_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
_VERSION_RE = re.compile(r"SIP/[0-9]+\.[0-9]+\Z", re.IGNORECASE)


def _split_head(data: bytes, stream: bool) -> tuple[bytes, bytes]:
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        return data[:end], data[end + 4 :]
    end = data.find(b"\n\n")
    if end >= 0:
        return data[:end], data[end + 2 :]
    if stream:
        raise SipParseError("incomplete header block", 400)
    # A datagram is a whole message even without the empty line.
    return data.rstrip(b"\r\n"), b""


def _unfold(head: str) -> list[str]:
    lines: list[str] = []
    for line in re.split(r"\r?\n", head):
        if line[:1] in (" ", "\t") and lines:
            lines[-1] = lines[-1].rstrip(" \t") + " " + line.strip(" \t")
        else:
            lines.append(line)
    return lines


def parse_message(data: bytes, *, stream: bool = False) -> Request | Response:
    """Parse one SIP message from a datagram (or a framed stream message)."""
    if len(data) > MAX_MESSAGE_SIZE:
        raise SipParseError("message too large", 513)
    data = data.lstrip(b"\r\n")
    if not data:
        raise SipParseError("empty message")
    head_bytes, rest = _split_head(data, stream)
    if len(head_bytes) > MAX_HEADER_BYTES:
        raise SipParseError("header block too large", 513)
    head = head_bytes.decode("utf-8", "surrogateescape")
    lines = _unfold(head)
    start = lines[0]
    headers = Headers()
    header_error: str | None = None
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not is_token(name) or "\r" in value:
            # (a CR alone inside a line is no line break: the value would carry it)
            header_error = f"malformed header line {line[:40]!r}"
            continue
        headers.add(name, value.strip(" \t"))

    msg: Request | Response
    if start.startswith("SIP/") or start[:4].upper() == "SIP/":
        version, _, rest_line = start.partition(" ")
        code, _, reason = rest_line.partition(" ")
        if len(code) != 3 or not code.isdigit() or not 100 <= int(code) <= 699:
            raise SipParseError(f"bad status code {code[:20]!r}")
        msg = Response(headers=headers, version=version, status=int(code), reason=reason)
    else:
        parts = start.split(" ")
        if len(parts) != 3 or not all(parts):
            raise SipParseError(f"malformed Request-Line {start[:80]!r}", 400,
                                _partial_request(headers, parts))
        method, uri_text, version = parts
        if not _METHOD_RE.match(method):
            raise SipParseError(f"bad method {method[:20]!r}")
        if not _VERSION_RE.match(version):
            raise SipParseError(f"bad SIP version {version[:20]!r}", 400,
                                _partial_request(headers, parts))
        uri: Uri | None
        try:
            uri = parse_uri(uri_text)
        except SipSyntaxError:
            uri = None
        msg = Request(headers=headers, version=version, method=method, uri=uri,
                      uri_text=uri_text)
    if header_error:
        raise SipParseError(header_error, 400, msg)
    msg.body = _frame_body(msg, rest, stream)
    return msg


def _partial_request(headers: Headers, parts: list[str]) -> Request:
    return Request(headers=headers, method=parts[0] if parts else "", uri=None)


def content_length(headers: Headers) -> int | None:
    values = headers.get_all("Content-Length")
    if not values:
        return None
    if len({v.strip() for v in values}) > 1:
        raise SipSyntaxError("conflicting Content-Length values")
    return parse_uint(values[0], "Content-Length", MAX_MESSAGE_SIZE)


def _frame_body(msg: Request | Response, rest: bytes, stream: bool) -> bytes:
    try:
        length = content_length(msg.headers)
    except SipSyntaxError as exc:
        raise SipParseError(str(exc), 400, msg) from exc
    if length is None:
        # RFC 2543 style over UDP: the body is the rest of the datagram.
        return b"" if stream else rest
    if length > len(rest):
        raise SipParseError("Content-Length exceeds the data received", 400, msg)
    return rest[:length]


class FramingError(ValueError):
    """The byte stream lost its message boundaries: close the connection."""


class StreamFramer:
    """Cuts a TCP/TLS byte stream into messages by Content-Length.

    Leading CRLFs (keep-alives, RFC 5626) are skipped. A message whose
    Content-Length is missing on a stream counts as having no body.
    """

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self._buffer = bytearray()
        self._max = max_size

    @property
    def pending(self) -> bool:
        """Part of a message has come (more than keep-alive line breaks)."""
        return bool(self._buffer.strip(b"\r\n"))

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        out: list[bytes] = []
        while True:
            while self._buffer[:2] == b"\r\n":
                del self._buffer[:2]
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEADER_BYTES:
                    raise FramingError("header block too large")
                return out
            head = bytes(self._buffer[:end])
            length = 0
            seen: set[str] = set()
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                lname = name.strip().lower()
                if lname in (b"content-length", b"l"):
                    seen.add(value.strip().decode("latin-1"))
            if len(seen) > 1:
                raise FramingError("conflicting Content-Length")
            if seen:
                text = seen.pop()
                if not text.isdigit():
                    raise FramingError(f"bad Content-Length {text[:20]!r}")
                length = int(text)
            total = end + 4 + length
            if total > self._max:
                raise FramingError("message too large")
            if len(self._buffer) < total:
                return out
            out.append(bytes(self._buffer[:total]))
            del self._buffer[:total]
