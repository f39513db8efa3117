"""SDES negotiation policies and SRTP protection."""

from __future__ import annotations

import pytest

from confserver.media.codecs.g711 import Pcmu
from confserver.media.sdes import CryptoAttribute, SdesError, choose_crypto, new_crypto
from confserver.media.srtp import SrtpContext, SrtpError
from confserver.media.stream import AudioStream
from confserver.sip.sdp import SdpError, SessionDescription, answer_offer

KEY = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"  # RFC 4568 §9.1 example
CRYPTO = f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:4"
BASE = ("v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=audio 4000 {proto} 0\r\n{crypto}")


def offer(proto: str, crypto: str | None) -> SessionDescription:
    line = f"a=crypto:{crypto}\r\n" if crypto else ""
    return SessionDescription.parse(BASE.format(proto=proto, crypto=line))


def test_crypto_attribute_parse_and_format() -> None:
    attr = CryptoAttribute.parse(CRYPTO)
    assert attr.tag == 1 and attr.suite == "AES_CM_128_HMAC_SHA1_80" and len(attr.key) == 30
    assert str(attr) == f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}"


@pytest.mark.parametrize("bad", ["", "x AES inline:abc", "1 AES_CM_128_HMAC_SHA1_80 uri:x",
                                 "1 AES_CM_128_HMAC_SHA1_80 inline:!!!",
                                 "1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ="])
def test_bad_crypto_attributes(bad: str) -> None:
    with pytest.raises(SdesError):
        CryptoAttribute.parse(bad)


def test_unknown_suite_skipped_for_a_known_one() -> None:
    chosen = choose_crypto([f"1 F8_128_HMAC_SHA1_80 inline:{KEY}", CRYPTO.replace("1 ", "2 ", 1)])
    assert chosen is not None and chosen[1].tag == 2 and chosen[1].key != chosen[0].key


@pytest.mark.parametrize("policy,proto,crypto,outcome", [
    ("optional", "RTP/SAVP", CRYPTO, "srtp"),
    ("optional", "RTP/AVP", CRYPTO, "srtp"),       # best-effort SRTP
    ("optional", "RTP/AVP", None, "rtp"),
    ("required", "RTP/SAVP", CRYPTO, "srtp"),
    ("required", "RTP/AVP", None, "reject"),
    ("off", "RTP/AVP", CRYPTO, "rtp"),
    ("off", "RTP/SAVP", CRYPTO, "reject"),
    ("optional", "RTP/SAVP", None, "reject"),
])
def test_policies(policy: str, proto: str, crypto: str | None, outcome: str) -> None:
    if outcome == "reject":
        with pytest.raises(SdpError):
            answer_offer(offer(proto, crypto), "127.0.0.1", [30000], srtp=policy)
        return
    answer, [stream] = answer_offer(offer(proto, crypto), "127.0.0.1", [30000], srtp=policy)
    crypto_lines = answer.media[0].attribute_values("crypto")
    assert answer.media[0].proto == proto
    if outcome == "srtp":
        assert len(crypto_lines) == 1 and stream.local_crypto == crypto_lines[0]
        assert stream.remote_crypto is not None
    else:
        assert crypto_lines == [] and stream.local_crypto is None


def test_protect_unprotect_and_tamper() -> None:
    a, b = new_crypto(), new_crypto()
    alice, bob = SrtpContext(a, b), SrtpContext(b, a)
    sender = AudioStream(Pcmu(), 0, None, srtp=alice)
    receiver = AudioStream(Pcmu(), 0, None, srtp=bob)
    import numpy as np

    data = sender.packetize(np.zeros(160, np.int16))
    assert data is not None and len(data) == 12 + 160 + 10  # 80-bit auth tag
    receiver.receive(data, 0.0)
    assert receiver.stats.packets_received == 1
    tampered = bytearray(sender.packetize(np.zeros(160, np.int16)) or b"")
    tampered[20] ^= 1
    receiver.receive(bytes(tampered), 0.02)
    assert receiver.stats.malformed == 1 and receiver.stats.packets_received == 1
    report = sender.report(0.1)
    receiver.receive(report, 0.1)
    assert receiver.stats.malformed == 1
    with pytest.raises(SrtpError):
        bob.unprotect(b"\x80" * 40)
