"""name-addr / addr-spec header values (From, To, Contact, Route) and Via."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .grammar import (
    SipSyntaxError,
    find_quoted_end,
    format_params,
    is_token,
    parse_params,
    quote,
    split_header_values,
    unquote,
)
from .uri import SipUri, Uri, parse_uri, split_hostport


@dataclass(slots=True)
class NameAddr:
    """``"Display" <uri>;params`` or a bare ``uri;params``.

    ``params`` are header parameters (``tag``, ``expires``, ``q``); URI
    parameters stay inside :attr:`uri`.
    """

    uri: Uri
    display_name: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        text = text.strip(" \t")
        if not text:
            raise SipSyntaxError("empty address")
        display: str | None = None
        if text[0] == '"':
            end = find_quoted_end(text, 0)
            display = unquote(text[:end])
            text = text[end:].lstrip(" \t")
            if not text.startswith("<"):
                raise SipSyntaxError("quoted display name not followed by '<'")
        lt = text.find("<")
        if lt >= 0:
            if display is None:
                raw_display = text[:lt].strip(" \t")
                if raw_display:
                    words = raw_display.split()
                    if not all(is_token(w) for w in words):
                        raise SipSyntaxError(f"display name {raw_display!r} must be quoted")
                    display = " ".join(words)
            gt = text.find(">", lt)
            if gt < 0:
                raise SipSyntaxError("'<' without '>'")
            inner = text[lt + 1 : gt]
            if inner != inner.strip(" \t"):
                raise SipSyntaxError("whitespace inside <addr-spec>")
            uri = parse_uri(inner)
            params = parse_params(text[gt + 1 :])
            return cls(uri=uri, display_name=display, params=params)
        # addr-spec without brackets: parameters belong to the header, and the
        # URI may not contain ',', ';' or '?' (RFC 3261 §20.10).
        semi = text.find(";")
        spec, param_text = (text, "") if semi < 0 else (text[:semi], text[semi:])
        spec = spec.strip(" \t")
        if "?" in spec or "," in spec or " " in spec:
            raise SipSyntaxError("URI with headers or spaces must be enclosed in <>")
        return cls(uri=parse_uri(spec), params=parse_params(param_text))

    def __str__(self) -> str:
        name = ""
        if self.display_name:
            name = quote(self.display_name) + " "
        return f"{name}<{self.uri}>{format_params(self.params)}"

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    @property
    def sip_uri(self) -> SipUri:
        if not isinstance(self.uri, SipUri):
            raise SipSyntaxError(f"{self.uri.scheme}: URI where a SIP URI is required")
        return self.uri


def parse_contacts(value: str) -> list[NameAddr] | None:
    """Contact header value: a list of addresses, or ``None`` for ``*``."""
    if value.strip(" \t") == "*":
        return None
    return [NameAddr.parse(item) for item in split_header_values(value)]


_VIA_RE = re.compile(
    r"SIP[ \t]*/[ \t]*(?P<version>[0-9.]+)[ \t]*/[ \t]*(?P<transport>[A-Za-z0-9\-.!%*_+`'~]+)"
    r"[ \t]+(?P<sentby>[^;]+?)[ \t]*(?P<params>;.*)?\Z",
    re.DOTALL | re.IGNORECASE,
)


@dataclass(slots=True)
class Via:
    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    version: str = "2.0"

    @classmethod
    def parse(cls, text: str) -> Via:
        m = _VIA_RE.match(text.strip(" \t"))
        if not m:
            raise SipSyntaxError(f"malformed Via {text[:60]!r}")
        sentby = re.sub(r"[ \t]*:[ \t]*", ":", m.group("sentby"))
        host, port = split_hostport(sentby)
        params = parse_params(m.group("params") or "")
        for name in ("ttl", "rport"):
            val = params.get(name)
            if val is not None and (not val.isdigit() or int(val) > 65535):
                raise SipSyntaxError(f"bad Via {name}")
        return cls(transport=m.group("transport").upper(), host=host, port=port,
                   params=params, version=m.group("version"))

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/{self.version}/{self.transport} {self.host}{port}{format_params(self.params)}"

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return self.host.lower(), self.port


def parse_vias(value: str) -> list[Via]:
    return [Via.parse(item) for item in split_header_values(value)]
