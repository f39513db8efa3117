"""Gateway and trunk settings, and the hardware profiles they start from. Pure code
(the profiles, TOML files in ``hardware/``, are read by ``mediation/profiles.py``).

A profile describes one gateway or trunk model: transport, codecs in order, DTMF
method, whether it wants the leading ``+``, header quirks. ``gateway add
--profile`` copies a profile and applies the admin's overrides; every setting is
validated here, so a bad profile or override is refused with the key and why.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from confserver.media.tones import RINGBACK_PLANS

from .routing import RoutingError, check_name

TRANSPORTS = ("udp", "tcp", "tls")
DTMF_METHODS = ("rfc4733", "info", "inband")
CODECS = ("PCMU", "PCMA", "G722", "opus")
SRTP_MODES = ("required", "optional", "off")
MODES = ("static", "register")
REFER_MODES = ("handle", "pass")
INBOUND_AUTH = ("", "digest")
_FINGERPRINT = re.compile(r"([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}")
RINGBACK = (*RINGBACK_PLANS, "off")


class GatewayError(ValueError):
    """A gateway setting is malformed; the message names the setting."""


@dataclass(frozen=True, slots=True)
class Translation:
    """An outbound translation rule: a regex on the whole number and a ``$1`` result."""

    pattern: str
    translation: str

    def apply(self, number: str) -> str | None:
        match = re.fullmatch(self.pattern, number)
        if match is None:
            return None
        return re.sub(r"\$(\d)", lambda m: match.group(int(m.group(1))) or "", self.translation)


def translate(rules: tuple[Translation, ...], number: str) -> str:
    """The first rule that matches rewrites ``number``; none leaves it as it is."""
    for rule in rules:
        result = rule.apply(number)
        if result is not None:
            return result
    return number


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    name: str
    host: str = "127.0.0.1"
    port: int = 5060
    transport: str = "udp"
    profile: str = ""
    model: str = ""
    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    dtmf: str = "rfc4733"
    strip_plus: bool = False
    user_phone: bool = True          # ;user=phone on the Request-URI
    max_calls: int = 0               # 0: no limit
    srtp: str = "off"
    mode: str = "static"             # static (IP-authenticated) or register
    registrar: str = ""              # host:port, register mode
    alternate_registrar: str = ""
    username: str = ""
    password: str = ""
    register_expires: int = 600
    inbound_dial_plan: str = ""      # normalizes numbers arriving from this gateway
    called_translations: tuple[Translation, ...] = ()
    calling_translations: tuple[Translation, ...] = ()
    response_translations: tuple[tuple[int, int], ...] = ()  # e.g. 404 -> 503
    failover_timer: float = 10.0
    probe_interval: float = 30.0
    session_expires: int = 1800
    refer: str = "handle"
    ringback: str = "us"             # tone our callers hear while it rings without media
    send_pai: bool = True
    extra_headers: tuple[tuple[str, str], ...] = ()
    notes: str = ""
    # what proves a request comes from this gateway, beyond its address and port:
    # "digest" challenges its INVITEs for inbound_username / inbound_password
    inbound_auth: str = ""
    inbound_username: str = ""
    inbound_password: str = ""
    # mutual TLS: the SHA-256 fingerprint of the certificate it must present (pinned)
    tls_fingerprint: str = ""
    tls_verify: bool = True          # check its server certificate when we connect (TLS)
    srtp_keys_in_clear: bool = False  # SDES keys over UDP/TCP: only when set

    def __post_init__(self) -> None:
        try:
            check_name("gateway", self.name)
        except RoutingError as exc:
            raise GatewayError(str(exc)) from exc
        _choice("transport", self.transport, TRANSPORTS)
        _choice("dtmf", self.dtmf, DTMF_METHODS)
        _choice("srtp", self.srtp, SRTP_MODES)
        _choice("mode", self.mode, MODES)
        _choice("refer", self.refer, REFER_MODES)
        _choice("ringback", self.ringback, RINGBACK)
        if not self.codecs:
            raise GatewayError("codecs: at least one codec")
        for codec in self.codecs:
            _choice("codecs", codec, CODECS)
        if not 0 < self.port < 65536:
            raise GatewayError(f"port: {self.port} is not a port number")
        if not self.host or " " in self.host:
            raise GatewayError(f"address: {self.host!r} is not a host")
        if self.max_calls < 0:
            raise GatewayError("max_calls: must be zero (no limit) or more")
        if not 1.0 <= self.failover_timer <= 300.0:
            raise GatewayError("failover_timer: between 1 and 300 seconds")
        if self.session_expires != 0 and not 90 <= self.session_expires <= 86400:
            raise GatewayError("session_expires: 0 (no session timer) or 90 to 86400 seconds")
        if not 0 <= self.probe_interval <= 3600:
            raise GatewayError("probe_interval: between 0 (no probes) and 3600 seconds")
        if self.mode == "register" and not (self.registrar and self.username):
            raise GatewayError("mode register needs registrar and username")
        _choice("inbound_auth", self.inbound_auth, INBOUND_AUTH)
        if self.inbound_auth == "digest" and not (self.inbound_username
                                                  and self.inbound_password):
            raise GatewayError("inbound_auth digest needs inbound_username and "
                               "inbound_password")
        if self.tls_fingerprint and not _FINGERPRINT.fullmatch(self.tls_fingerprint):
            raise GatewayError("tls_fingerprint: the certificate's SHA-256 fingerprint, 32 "
                               "hexadecimal bytes separated by colons (openssl x509 "
                               "-fingerprint -sha256)")
        if self.tls_fingerprint and self.transport != "tls":
            raise GatewayError("tls_fingerprint: only for transport tls")
        for rule in (*self.called_translations, *self.calling_translations):
            try:
                re.compile(rule.pattern)
            except re.error as exc:
                raise GatewayError(f"translation pattern {rule.pattern!r}: {exc}") from exc
        for before, after in self.response_translations:
            if not (400 <= before < 700 and 300 <= after < 700):
                raise GatewayError(f"response_translations: {before} -> {after} is not a "
                                   "pair of SIP status codes")

    @property
    def translations(self) -> dict[int, int]:
        return dict(self.response_translations)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["called_translations"] = [[r.pattern, r.translation]
                                       for r in self.called_translations]
        data["calling_translations"] = [[r.pattern, r.translation]
                                        for r in self.calling_translations]
        data["response_translations"] = [list(p) for p in self.response_translations]
        data["extra_headers"] = [list(p) for p in self.extra_headers]
        data["codecs"] = list(self.codecs)
        return data

    def public_dict(self) -> dict[str, Any]:
        data = self.as_dict()
        for secret in ("password", "inbound_password"):
            if data[secret]:
                data[secret] = "********"
        return data

    @property
    def sends_keys_in_clear(self) -> bool:
        """SRTP over a transport that is not TLS: the SDES keys would travel readable."""
        return self.srtp != "off" and self.transport != "tls"

    @property
    def offered_srtp(self) -> str:
        """Our offer's SRTP policy toward it: SDES keys go only over TLS, unless the
        admin said they may go in the clear (``srtp_keys_in_clear``)."""
        if self.sends_keys_in_clear and not self.srtp_keys_in_clear:
            return "off"
        return self.srtp


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise GatewayError(f"{key}: {value!r} is not one of {', '.join(allowed)}")


_FIELDS = {f.name: f for f in fields(GatewaySettings) if not f.name.startswith("_")}


def coerce(key: str, value: Any) -> Any:
    """One setting from TOML, JSON or the command line, checked for its type."""
    key = key.replace("-", "_")
    if key not in _FIELDS or key == "name":
        raise GatewayError(f"{key}: not a gateway setting (known: "
                           f"{', '.join(k for k in _FIELDS if k != 'name')})")
    default = _FIELDS[key].default
    try:
        if key in ("called_translations", "calling_translations"):
            return tuple(Translation(str(p), str(t)) for p, t in value)
        if key == "response_translations":
            if isinstance(value, Mapping):
                value = list(value.items())
            return tuple((int(a), int(b)) for a, b in value)
        if key == "extra_headers":
            if isinstance(value, Mapping):
                value = list(value.items())
            return tuple((str(a), str(b)) for a, b in value)
        if key == "codecs":
            items = value.split(",") if isinstance(value, str) else value
            return tuple(_codec_name(str(x)) for x in items if str(x).strip())
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError("expected true or false")
            return bool(value)
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise GatewayError(f"{key}: {value!r} is not valid ({exc})") from exc


def _codec_name(text: str) -> str:
    wanted = text.strip()
    for codec in CODECS:
        if codec.lower() == wanted.lower():
            return codec
    raise ValueError(f"codec {wanted!r} is not one of {', '.join(CODECS)}")


def parse_address(text: str) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    if not sep:
        return text.strip(), 5060
    try:
        return host.strip("[]"), int(port)
    except ValueError as exc:
        raise GatewayError(f"--address {text!r} must be host or host:port") from exc


def build(name: str, base: Mapping[str, Any], overrides: Mapping[str, Any]) -> GatewaySettings:
    """Settings from a profile's values, then the admin's overrides, each checked."""
    values: dict[str, Any] = {}
    for source in (base, overrides):
        for key, value in source.items():
            key = key.replace("-", "_")
            values[key] = str(value) if key in ("profile", "model", "notes") \
                else coerce(key, value)
    try:
        return GatewaySettings(name=name, **values)
    except TypeError as exc:
        raise GatewayError(str(exc)) from exc


def with_overrides(settings: GatewaySettings, overrides: Mapping[str, Any]) -> GatewaySettings:
    values = {k.replace("-", "_"): coerce(k, v) for k, v in overrides.items()}
    return replace(settings, **values)


def from_stored(name: str, data: Mapping[str, Any]) -> GatewaySettings:
    return build(name, {k: v for k, v in data.items() if k != "name"}, {})
