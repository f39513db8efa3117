"""SDES key exchange in SDP (RFC 4568): a=crypto attributes, pure parsing and choice."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass

# suite name -> master key + salt length in bytes
SUITE_KEY_LENGTHS = {"AES_CM_128_HMAC_SHA1_80": 30, "AES_CM_128_HMAC_SHA1_32": 30}
POLICIES = ("required", "optional", "off")


class SdesError(ValueError):
    """A crypto attribute we cannot use."""


@dataclass(frozen=True, slots=True)
class CryptoAttribute:
    tag: int
    suite: str
    key: bytes  # master key || master salt

    @classmethod
    def parse(cls, value: str) -> CryptoAttribute:
        """``1 AES_CM_128_HMAC_SHA1_80 inline:<base64>[|lifetime][|MKI:len]``."""
        parts = value.split()
        if len(parts) < 3 or not parts[0].isdigit():
            raise SdesError(f"malformed crypto attribute {value[:60]!r}")
        suite = parts[1]
        method, _, params = parts[2].partition(":")
        if method != "inline":
            raise SdesError(f"key method {method!r} is not inline")
        key_text = params.split("|")[0]
        try:
            key = base64.b64decode(key_text + "=" * (-len(key_text) % 4), validate=True)
        except ValueError as exc:
            raise SdesError("crypto key is not base64") from exc
        if suite in SUITE_KEY_LENGTHS and len(key) != SUITE_KEY_LENGTHS[suite]:
            raise SdesError(f"{suite} needs a {SUITE_KEY_LENGTHS[suite]}-byte key and salt")
        return cls(int(parts[0]), suite, key)

    def __str__(self) -> str:
        return f"{self.tag} {self.suite} inline:{base64.b64encode(self.key).decode()}"


def choose_crypto(offered: list[str]) -> tuple[CryptoAttribute, CryptoAttribute] | None:
    """(their attribute, ours with a fresh key) for the first offered suite we support."""
    for value in offered:
        try:
            theirs = CryptoAttribute.parse(value)
        except SdesError:
            continue
        if theirs.suite in SUITE_KEY_LENGTHS:
            ours = CryptoAttribute(theirs.tag, theirs.suite,
                                   secrets.token_bytes(SUITE_KEY_LENGTHS[theirs.suite]))
            return theirs, ours
    return None


def new_crypto(tag: int = 1, suite: str = "AES_CM_128_HMAC_SHA1_80") -> CryptoAttribute:
    return CryptoAttribute(tag, suite, secrets.token_bytes(SUITE_KEY_LENGTHS[suite]))
