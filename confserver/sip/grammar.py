"""Lexical helpers shared by the SIP header parsers (RFC 3261 §25).

Everything here works on already-unfolded header values (str) and raises
:class:`SipSyntaxError` with a human-readable reason on malformed input.
"""

from __future__ import annotations

import re

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
_LWS = " \t"


class SipSyntaxError(ValueError):
    """A header or URI does not follow the SIP grammar."""


def is_token(text: str) -> bool:
    return bool(_TOKEN_RE.match(text))


def split_top_level(value: str, separator: str) -> list[str]:
    """Split on ``separator`` outside quoted strings and ``<...>``.

    Raises on an unterminated quoted string or angle bracket, because every
    caller would otherwise mis-split the remainder.
    """
    parts: list[str] = []
    start = 0
    in_quotes = False
    in_angle = False
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if in_quotes:
            if ch == "\\":
                i += 2
                continue
            if ch == '"':
                in_quotes = False
        elif ch == '"':
            in_quotes = True
        elif in_angle:
            if ch == ">":
                in_angle = False
        elif ch == "<":
            in_angle = True
        elif ch == separator:
            parts.append(value[start:i])
            start = i + 1
        i += 1
    if in_quotes:
        raise SipSyntaxError("unterminated quoted string")
    if in_angle:
        raise SipSyntaxError("unterminated '<'")
    parts.append(value[start:])
    return parts


def split_header_values(value: str) -> list[str]:
    """Split a comma-joined header (Via, Contact, Route, ...) into elements."""
    items = [part.strip(_LWS) for part in split_top_level(value, ",")]
    if any(not item for item in items):
        raise SipSyntaxError("empty element in comma-separated list")
    return items


def parse_params(text: str, *, allow_empty: bool = False) -> dict[str, str | None]:
    """Parse ``;name=value;flag`` into an ordered dict with lower-case names.

    LWS around ``;`` and ``=`` is allowed (RFC 3261 SEMI/EQUAL). Quoted values
    keep their quotes so they serialize back unchanged.
    """
    params: dict[str, str | None] = {}
    text = text.strip(_LWS)
    if not text:
        return params
    if not text.startswith(";"):
        raise SipSyntaxError(f"expected ';' before parameters, got {text[:20]!r}")
    for raw in split_top_level(text[1:], ";"):
        item = raw.strip(_LWS)
        if not item:
            if allow_empty:
                continue
            raise SipSyntaxError("empty parameter")
        name, eq, val = item.partition("=")
        name = name.strip(_LWS)
        if not is_token(name):
            raise SipSyntaxError(f"bad parameter name {name!r}")
        if eq:
            val = val.strip(_LWS)
            if not val:
                raise SipSyntaxError(f"parameter {name!r} has '=' but no value")
            if val.startswith('"'):
                if len(val) < 2 or not val.endswith('"'):
                    raise SipSyntaxError(f"bad quoted value for {name!r}")
            elif not _is_param_value(val):
                raise SipSyntaxError(f"bad value for parameter {name!r}")
            params[name.lower()] = val
        else:
            params[name.lower()] = None
    return params


_PARAM_VALUE_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~\[\]:]+\Z")


def _is_param_value(val: str) -> bool:
    # token, host (with IPv6 brackets) or a quoted string (handled by caller)
    return bool(_PARAM_VALUE_RE.match(val))


def format_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def unquote(text: str) -> str:
    """Decode a quoted-string (with surrounding quotes) into its content."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise SipSyntaxError("not a quoted string")
    out: list[str] = []
    i = 1
    end = len(text) - 1
    while i < end:
        ch = text[i]
        if ch == "\\":
            if i + 1 >= end:
                raise SipSyntaxError("dangling backslash in quoted string")
            out.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            raise SipSyntaxError("unescaped quote inside quoted string")
        out.append(ch)
        i += 1
    return "".join(out)


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def find_quoted_end(text: str, start: int) -> int:
    """Index just after the quoted string that opens at ``text[start]``."""
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"':
            return i + 1
        i += 1
    raise SipSyntaxError("unterminated quoted string")


def parse_uint(text: str, what: str, limit: int = 2**32 - 1) -> int:
    text = text.strip(_LWS)
    if not text.isdigit() or not text.isascii():
        raise SipSyntaxError(f"{what} is not a non-negative integer: {text[:20]!r}")
    value = int(text)
    if value > limit:
        raise SipSyntaxError(f"{what} {text[:20]} exceeds {limit}")
    return value
