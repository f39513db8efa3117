"""SRTP (RFC 3711) protection for one stream, through libsrtp (pylibsrtp)."""

from __future__ import annotations

import pylibsrtp

from .sdes import CryptoAttribute

PROFILES = {
    "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
}


class SrtpError(ValueError):
    """A packet that fails SRTP authentication or replay checks."""


class SrtpContext:
    """Protects what we send with our key and checks what we receive with theirs."""

    def __init__(self, local: CryptoAttribute, remote: CryptoAttribute) -> None:
        tx = pylibsrtp.Policy(key=local.key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
                              srtp_profile=PROFILES[local.suite])
        rx = pylibsrtp.Policy(key=remote.key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
                              srtp_profile=PROFILES[remote.suite])
        self._tx = pylibsrtp.Session(tx)
        self._rx = pylibsrtp.Session(rx)

    def protect(self, rtp: bytes) -> bytes:
        return bytes(self._tx.protect(rtp))

    def protect_rtcp(self, rtcp: bytes) -> bytes:
        return bytes(self._tx.protect_rtcp(rtcp))

    def unprotect(self, srtp: bytes) -> bytes:
        try:
            return bytes(self._rx.unprotect(srtp))
        except pylibsrtp.Error as exc:
            raise SrtpError(f"SRTP: {exc}") from exc

    def unprotect_rtcp(self, srtcp: bytes) -> bytes:
        try:
            return bytes(self._rx.unprotect_rtcp(srtcp))
        except pylibsrtp.Error as exc:
            raise SrtpError(f"SRTCP: {exc}") from exc
