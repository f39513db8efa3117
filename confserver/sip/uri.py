"""SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966) and opaque absolute URIs.

URIs keep their user part escaped exactly as received, so a URI serializes
back byte for byte; :meth:`SipUri.user_unescaped` decodes it for comparison.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import unquote as pct_unquote

from .grammar import SipSyntaxError, format_params, parse_params

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*\Z")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9\-]*[A-Za-z0-9])?"
_HOSTNAME_RE = re.compile(rf"({_LABEL}\.)*{_LABEL}\.?\Z")
# user = 1*( unreserved / escaped / user-unreserved ); kept liberal but no LWS,
# no '<', '>', '"', '@'
_USER_RE = re.compile(r"[A-Za-z0-9\-_.!~*'()%&=+$,;?/]+\Z")
_PASSWORD_RE = re.compile(r"[A-Za-z0-9\-_.!~*'()%&=+$,]*\Z")
_HEADERS_RE = re.compile(r"[A-Za-z0-9\-_.!~*'()%\[\]/?:+$=&]*\Z")
_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _check_host(host: str) -> None:
    if host.startswith("["):
        if not host.endswith("]"):
            raise SipSyntaxError(f"bad IPv6 reference {host!r}")
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError as exc:
            raise SipSyntaxError(f"bad IPv6 address {host!r}") from exc
        return
    if not _HOSTNAME_RE.match(host):
        raise SipSyntaxError(f"bad host {host!r}")


def split_hostport(text: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` (IPv6 in brackets) and validate both parts."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipSyntaxError(f"bad IPv6 reference {text!r}")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise SipSyntaxError(f"junk after IPv6 reference in {text!r}")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_raw = text.partition(":")
        port_text = port_text_raw if colon else None
    _check_host(host)
    port: int | None = None
    if port_text is not None:
        if not port_text.isdigit() or not port_text.isascii() or int(port_text) > 65535:
            raise SipSyntaxError(f"bad port {port_text!r}")
        port = int(port_text)
    return host, port


@dataclass(slots=True)
class SipUri:
    """``sip:`` or ``sips:`` URI."""

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    scheme: str = "sip"
    params: dict[str, str | None] = field(default_factory=dict)
    headers: str | None = None

    @classmethod
    def parse(cls, text: str) -> SipUri:
        scheme, colon, rest = text.partition(":")
        lowered = scheme.lower()
        if not colon or lowered not in ("sip", "sips"):
            raise SipSyntaxError(f"not a SIP URI: {text[:40]!r}")
        if any(ch in rest for ch in " \t\r\n<>\""):
            raise SipSyntaxError(f"whitespace or delimiter inside URI {text[:60]!r}")
        if _ESCAPE_RE.search(rest):
            raise SipSyntaxError(f"bad %-escape in URI {text[:60]!r}")
        user: str | None = None
        password: str | None = None
        at = rest.find("@")
        if at >= 0:
            userinfo, rest = rest[:at], rest[at + 1 :]
            user, pcolon, pw = userinfo.partition(":")
            if pcolon:
                if not _PASSWORD_RE.match(pw):
                    raise SipSyntaxError("bad password in URI")
                password = pw
            if not user or not _USER_RE.match(user):
                raise SipSyntaxError(f"bad user part in URI {text[:60]!r}")
        headers: str | None = None
        qmark = rest.find("?")
        if qmark >= 0:
            rest, headers = rest[:qmark], rest[qmark + 1 :]
            if not _HEADERS_RE.match(headers):
                raise SipSyntaxError("bad header part in URI")
        semi = rest.find(";")
        hostport, param_text = (rest, "") if semi < 0 else (rest[:semi], rest[semi:])
        host, port = split_hostport(hostport)
        params = parse_params(param_text)
        return cls(host=host, user=user, password=password, port=port,
                   scheme=lowered, params=params, headers=headers)

    def __str__(self) -> str:
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(self.user)
            if self.password is not None:
                parts.append(":" + self.password)
            parts.append("@")
        parts.append(self.host)
        if self.port is not None:
            parts.append(f":{self.port}")
        if self.params:
            parts.append(format_params(self.params))
        if self.headers is not None:
            parts.append("?" + self.headers)
        return "".join(parts)

    @property
    def user_unescaped(self) -> str | None:
        return None if self.user is None else pct_unquote(self.user)

    @property
    def transport(self) -> str | None:
        value = self.params.get("transport")
        return value.lower() if value else None

    def aor(self) -> str:
        """Address-of-record form: scheme, user and host only, lower-cased host."""
        user = f"{self.user_unescaped}@" if self.user is not None else ""
        return f"{self.scheme}:{user}{self.host.lower()}"

@dataclass(slots=True)
class TelUri:
    """``tel:`` URI (RFC 3966): a global (+E.164) or local number."""

    number: str
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> TelUri:
        scheme, colon, rest = text.partition(":")
        if not colon or scheme.lower() != "tel":
            raise SipSyntaxError(f"not a tel URI: {text[:40]!r}")
        semi = rest.find(";")
        number, param_text = (rest, "") if semi < 0 else (rest[:semi], rest[semi:])
        if not re.fullmatch(r"\+?[0-9A-Fa-f*#\-.()]+", number):
            raise SipSyntaxError(f"bad telephone number {number!r}")
        return cls(number=number, params=parse_params(param_text))

    def __str__(self) -> str:
        return f"tel:{self.number}{format_params(self.params)}"

    @property
    def digits(self) -> str:
        """The number without visual separators."""
        return re.sub(r"[\-.()]", "", self.number)

    @property
    def scheme(self) -> str:
        return "tel"


@dataclass(slots=True)
class AbsoluteUri:
    """Any other URI scheme: kept opaque (RFC 3261 allows absoluteURI)."""

    scheme: str
    rest: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"


Uri = SipUri | TelUri | AbsoluteUri


def parse_uri(text: str) -> Uri:
    scheme, colon, rest = text.partition(":")
    if not colon or not _SCHEME_RE.match(scheme):
        raise SipSyntaxError(f"not a URI: {text[:40]!r}")
    lowered = scheme.lower()
    if lowered in ("sip", "sips"):
        return SipUri.parse(text)
    if lowered == "tel":
        return TelUri.parse(text)
    if not rest or any(ch in rest for ch in " \t\r\n<>\""):
        raise SipSyntaxError(f"bad URI {text[:40]!r}")
    return AbsoluteUri(scheme=lowered, rest=rest)
