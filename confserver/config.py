"""Server configuration from TOML. Every error names the key and what is wrong."""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confserver.media.sdes import POLICIES as SRTP_POLICIES

LOG_LEVELS = ("debug", "info", "warning", "error")
TRANSPORTS = ("udp", "tcp", "tls")


class ConfigError(ValueError):
    """A setting is missing, unknown or invalid."""


@dataclass(frozen=True, slots=True)
class ListenAddress:
    transport: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.transport}:{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Config:
    listen: tuple[ListenAddress, ...] = (ListenAddress("udp", "127.0.0.1", 5060),
                                         ListenAddress("tcp", "127.0.0.1", 5060))
    domain: str = "example.com"
    advertised_address: str | None = None
    tls_certificate: str | None = None
    tls_private_key: str | None = None
    tls_ca_file: str | None = None  # whom outgoing TLS trusts (None: the system's store)
    user_agent: str = "Switchboard"
    t1: float = 0.5
    media_address: str = "127.0.0.1"
    rtp_ports: tuple[int, int] = (20000, 29999)
    media_timeout: float = 30.0
    media_advertised_address: str | None = None
    shared_rtp_port: int = 0  # 0: a port pair per call
    relay_offload: bool = True  # relayed pairs on the shared port moved in C when built
    recording_directory: str = "var/recordings"
    roles: tuple[str, ...] | None = None  # None: every installed role
    prompt_directory: str = "var/prompts"
    custom_prompt_directory: str = "var/prompts/custom"
    mediation_site: str = ""        # picks the site dial plan
    mediation_next_hop: str = ""    # host:port of the front end for internal legs ("": this server)
    srtp: str = "optional"
    codecs: tuple[str, ...] = ("opus", "G722", "PCMU", "PCMA")
    database_url: str = "sqlite:///var/switchboard.db"
    log_level: str = "info"
    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    nonce_lifetime: int = 300
    # MD5 by default: baresip 1.0 (libre) rejects a challenge set naming SHA-256.
    auth_algorithms: tuple[str, ...] = ("MD5",)
    auth_secret: str | None = None
    session_expires: int = 1800
    min_se: int = 90
    ring_timeout: int = 120
    federated_domains: tuple[str, ...] = ()  # SIP domains calls may be placed to
    dialin_sip_language: str = "en-US"  # the attendant's language for SIP callers
    # wrong meeting passcodes / PINs a caller (address, caller ID) may key in a window
    failed_guesses: int = 10
    failed_guesses_window: float = 600.0
    relearn_after: float = 5.0  # s a peer's learned RTP source is silent before another
    rtp_port_reserve: float = 0.2  # of the RTP range, kept for signed-in users and gateways
    public_services: tuple[str, ...] = ()  # networks whose callers need not sign in for echo...
    unknown_calls_per_source: int = 10  # calls at once from one address nobody vouched for
    unknown_calls: int = 200            # ... and from all such callers together
    user_calls: int = 10                # calls at once for one signed-in user
    trusted_networks: tuple[str, ...] = ()  # exempt from per-source rates and call limits
    messages_per_second: float = 50.0   # SIP messages from one address, on average
    message_burst: int = 200            # ... and at once
    invites_per_second: float = 10.0    # new calls from one address
    invite_burst: int = 30
    strangers_per_second: float = 2000.0  # messages from every address nobody signed in from
    strangers_burst: int = 4000
    connections_per_source: int = 32    # TCP/TLS connections from one address
    connections: int = 4096             # ... and from everyone
    message_timeout: float = 10.0       # s for a connection's next message to arrive whole
    idle_timeout: float = 3900.0        # s a connection may say nothing
    max_message_size: int = 65535       # bytes of one SIP message on a stream
    source: str = field(default="(defaults)", compare=False)


# key -> (attribute, parser); parsers raise ValueError with the reason
def _str(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ValueError("must be a non-empty string")
    return v


def _int_range(lo: int, hi: int):  # type: ignore[no-untyped-def]
    def parse(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError("must be an integer")
        if not lo <= v <= hi:
            raise ValueError(f"must be between {lo} and {hi}")
        return v
    return parse


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("must be true or false")
    return v


def _positive_float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
        raise ValueError("must be a positive number")
    return float(v)


def _networks(v: Any) -> tuple[str, ...]:
    """true (everyone), false (nobody) or a list of networks like "127.0.0.0/8"."""
    if v is True:
        return ("0.0.0.0/0", "::/0")
    if v is False:
        return ()
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ValueError('must be true, false or a list of networks like ["127.0.0.0/8"]')
    for network in v:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError as exc:
            raise ValueError(f"{network!r} is not a network: {exc}") from exc
    return tuple(v)


def _fraction(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < 1:
        raise ValueError("must be a number from 0 up to (not including) 1")
    return float(v)


def _ip(v: Any) -> str:
    text = _str(v)
    try:
        ipaddress.ip_address(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an IP address") from exc
    return text


def parse_listen_entry(text: str) -> ListenAddress:
    parts = text.rsplit(":", 1)
    head = parts[0]
    transport, _, host = head.partition(":")
    if len(parts) != 2 or not host:
        raise ValueError(f"{text!r} is not 'transport:address:port'")
    if transport not in TRANSPORTS:
        raise ValueError(f"{text!r}: transport must be one of {', '.join(TRANSPORTS)}")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError as exc:
        raise ValueError(f"{text!r}: {host!r} is not an IP address") from exc
    if not parts[1].isdigit() or not 1 <= int(parts[1]) <= 65535:
        raise ValueError(f"{text!r}: port must be 1-65535")
    return ListenAddress(transport, host, int(parts[1]))


def _listen(v: Any) -> tuple[ListenAddress, ...]:
    if not isinstance(v, list) or not v:
        raise ValueError('must be a non-empty list like ["udp:127.0.0.1:5060"]')
    out = []
    for item in v:
        if not isinstance(item, str):
            raise ValueError("entries must be strings")
        out.append(parse_listen_entry(item))
    if len({(a.transport, a.host, a.port) for a in out}) != len(out):
        raise ValueError("an address is listed twice")
    return tuple(out)


def _port_range(v: Any) -> tuple[int, int]:
    text = _str(v)
    lo, dash, hi = text.partition("-")
    if not dash or not lo.isdigit() or not hi.isdigit():
        raise ValueError(f"{text!r} is not a range like '20000-29999'")
    first, last = int(lo), int(hi)
    if not 1024 <= first < last <= 65535 or last - first < 3:
        raise ValueError(f"{text!r} must lie within 1024-65535 with at least 4 ports")
    return first, last


def _shared_port(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not (v == 0 or 1024 <= v <= 65534):
        raise ValueError("must be 0 (a port pair per call) or a port in 1024-65534 "
                         "(RTP there, RTCP on the port above)")
    return v


KNOWN_CODECS = {"opus": "opus", "g722": "G722", "pcmu": "PCMU", "pcma": "PCMA"}


def _codec_list(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
        raise ValueError('must be a non-empty list like ["opus", "G722", "PCMU", "PCMA"]')
    out = []
    for name in v:
        canonical = KNOWN_CODECS.get(name.lower())
        if canonical is None:
            raise ValueError(f"{name!r} is not one of {', '.join(KNOWN_CODECS.values())}")
        if canonical in out:
            raise ValueError(f"{name!r} is listed twice")
        out.append(canonical)
    return tuple(out)


def _srtp_policy(v: Any) -> str:
    text = _str(v).lower()
    if text not in SRTP_POLICIES:
        raise ValueError("must be " + ", ".join(SRTP_POLICIES[:-1]) + " or " + SRTP_POLICIES[-1])
    return text


def _level(v: Any) -> str:
    text = _str(v).lower()
    if text not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
    return text


def _algorithms(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list) or not v:
        raise ValueError('must be a non-empty list like ["SHA-256", "MD5"]')
    out = []
    for item in v:
        if item not in ("SHA-256", "MD5"):
            raise ValueError(f"{item!r} is not SHA-256 or MD5")
        out.append(item)
    return tuple(out)


def _language(v: Any) -> str:
    from confserver.storage.access_numbers import LANGUAGES

    text = _str(v)
    if text not in LANGUAGES:
        raise ValueError(f"{text!r} is not one of the attendant's languages "
                         f"({', '.join(LANGUAGES)})")
    return text


def _roles(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ValueError("must be a list of role names, e.g. [\"dialin\"]")
    unknown = [x for x in v if x not in ROLE_NAMES]
    if unknown:
        raise ValueError(f"unknown role {unknown[0]!r} (known: {', '.join(ROLE_NAMES)})")
    return tuple(v)


ROLE_NAMES = ("dialin", "mediation")
_DOMAIN = re.compile(r"([A-Za-z0-9]([A-Za-z0-9\-]*[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9\-]*"
                     r"[A-Za-z0-9])?\Z")


def _domains(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ValueError('must be a list of domain names, e.g. ["partner.example"]')
    for name in v:
        if not _DOMAIN.match(name):
            raise ValueError(f"{name!r} is not a domain name")
    return tuple(x.lower() for x in v)


SCHEMA: dict[str, dict[str, tuple[str, Any]]] = {
    "sip": {
        "listen": ("listen", _listen),
        "domain": ("domain", _str),
        "advertised_address": ("advertised_address", _ip),
        "tls_certificate": ("tls_certificate", _str),
        "tls_private_key": ("tls_private_key", _str),
        "user_agent": ("user_agent", _str),
        "t1": ("t1", _positive_float),
        "session_expires": ("session_expires", _int_range(90, 86400)),
        "min_se": ("min_se", _int_range(90, 86400)),
        "ring_timeout": ("ring_timeout", _int_range(1, 3600)),
    },
    "media": {
        "address": ("media_address", _ip),
        "rtp_ports": ("rtp_ports", _port_range),
        "inactivity_timeout": ("media_timeout", _positive_float),
        "advertised_address": ("media_advertised_address", _ip),
        "shared_port": ("shared_rtp_port", _shared_port),
        "relay_offload": ("relay_offload", _bool),
        "recordings": ("recording_directory", _str),
        "srtp": ("srtp", _srtp_policy),
        "codecs": ("codecs", _codec_list),
        "relearn_after": ("relearn_after", _positive_float),
    },
    "database": {"url": ("database_url", _str)},
    "server": {"roles": ("roles", _roles)},
    "dialin": {
        "prompts": ("prompt_directory", _str),
        "custom_prompts": ("custom_prompt_directory", _str),
        "sip_language": ("dialin_sip_language", _language),
    },
    "limits": {
        "failed_guesses": ("failed_guesses", _int_range(1, 10_000)),
        "failed_guesses_window": ("failed_guesses_window", _positive_float),
        "rtp_port_reserve": ("rtp_port_reserve", _fraction),
        "unknown_calls_per_source": ("unknown_calls_per_source", _int_range(1, 100_000)),
        "unknown_calls": ("unknown_calls", _int_range(1, 1_000_000)),
        "user_calls": ("user_calls", _int_range(1, 100_000)),
        "trusted_networks": ("trusted_networks", _networks),
        "messages_per_second": ("messages_per_second", _positive_float),
        "message_burst": ("message_burst", _int_range(1, 1_000_000)),
        "invites_per_second": ("invites_per_second", _positive_float),
        "invite_burst": ("invite_burst", _int_range(1, 1_000_000)),
        "strangers_per_second": ("strangers_per_second", _positive_float),
        "strangers_burst": ("strangers_burst", _int_range(1, 10_000_000)),
        "connections_per_source": ("connections_per_source", _int_range(1, 1_000_000)),
        "connections": ("connections", _int_range(1, 1_000_000)),
        "message_timeout": ("message_timeout", _positive_float),
        "idle_timeout": ("idle_timeout", _positive_float),
        "max_message_size": ("max_message_size", _int_range(1024, 65535)),
    },
    "services": {"public": ("public_services", _networks)},
    "mediation": {
        "site": ("mediation_site", _str),
        "next_hop": ("mediation_next_hop", _str),
    },
    "log": {"level": ("log_level", _level)},
    "federation": {"allowed_domains": ("federated_domains", _domains)},
    "tls": {"ca_file": ("tls_ca_file", _str)},
    "registrar": {
        "min_expires": ("min_expires", _int_range(1, 86400)),
        "max_expires": ("max_expires", _int_range(1, 604800)),
        "default_expires": ("default_expires", _int_range(1, 604800)),
    },
    "auth": {
        "nonce_lifetime": ("nonce_lifetime", _int_range(10, 86400)),
        "algorithms": ("auth_algorithms", _algorithms),
        "secret": ("auth_secret", _str),
    },
}


def load_config(path: str | Path | None) -> Config:
    if path is None:
        return Config()
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {p} does not exist") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from exc
    return config_from_dict(data, str(p))


def config_from_dict(data: dict[str, Any], source: str = "(dict)") -> Config:
    values: dict[str, Any] = {}
    for section, body in data.items():
        if section not in SCHEMA:
            raise ConfigError(f"{source}: unknown section [{section}] "
                              f"(known: {', '.join(SCHEMA)})")
        if not isinstance(body, dict):
            raise ConfigError(f"{source}: [{section}] must be a table")
        for key, raw in body.items():
            spec = SCHEMA[section].get(key)
            if spec is None:
                raise ConfigError(f"{source}: unknown key {section}.{key} "
                                  f"(known: {', '.join(SCHEMA[section])})")
            attr, parser = spec
            try:
                values[attr] = parser(raw)
            except ValueError as exc:
                raise ConfigError(f"{source}: {section}.{key} {exc}") from exc
    config = Config(source=source, **values)
    if config.min_se > config.session_expires:
        raise ConfigError(f"{source}: sip.min_se must not exceed sip.session_expires")
    if config.min_expires > config.max_expires:
        raise ConfigError(f"{source}: registrar.min_expires must not exceed registrar.max_expires")
    if any(a.transport == "tls" for a in config.listen) and not (
            config.tls_certificate and config.tls_private_key):
        raise ConfigError(f"{source}: sip.listen has a tls address but sip.tls_certificate "
                          "and sip.tls_private_key are not both set")
    return config
