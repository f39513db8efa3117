"""An estimated MOS for a call leg after ITU-T G.107 (the E-model), from what RTCP
and the jitter buffer measured. Pure code.

Only the terms a media server can know are used: codec impairment ``Ie`` and its
packet-loss robustness ``Bpl`` (G.113 Appendix I; Opus and G.722 have no G.113
narrowband entry, so they are scored like G.711 with concealment, which is
conservative for both), random loss, and the delay impairment ``Id`` from the
one-way delay. The other parameters keep G.107's defaults (R0 = 93.2 after
the default Is).
"""

from __future__ import annotations

R_DEFAULT = 93.2
# codec name -> (Ie, Bpl)
CODEC_IMPAIRMENT = {
    "PCMU": (0.0, 25.1),   # with G.711 Appendix I concealment
    "PCMA": (0.0, 25.1),
    "G722": (0.0, 25.1),
    "opus": (0.0, 25.1),
}


def delay_impairment(one_way_ms: float) -> float:
    """Id for an echo-free connection (G.107's simplified Idd)."""
    delay = max(0.0, one_way_ms)
    impairment = 0.024 * delay
    if delay > 177.3:
        impairment += 0.11 * (delay - 177.3)
    return impairment


def r_factor(codec: str, loss_percent: float, one_way_ms: float, burst_ratio: float = 1.0
             ) -> float:
    ie, bpl = CODEC_IMPAIRMENT.get(codec, (0.0, 25.1))
    loss = min(max(loss_percent, 0.0), 100.0)
    ie_eff = ie + (95.0 - ie) * loss / (loss / burst_ratio + bpl)
    return R_DEFAULT - delay_impairment(one_way_ms) - ie_eff


def mos_from_r(r: float) -> float:
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6


def estimate_mos(codec: str, loss_percent: float, jitter_ms: float, rtt_ms: float | None,
                 buffer_ms: float = 40.0, packet_ms: float = 20.0) -> float:
    """MOS for one leg: delay is half the round trip (or 20 ms when RTCP gave none),
    plus packetization, the jitter buffer and twice the jitter."""
    network = rtt_ms / 2 if rtt_ms is not None else 20.0
    one_way = network + packet_ms + buffer_ms + 2 * jitter_ms
    return round(mos_from_r(r_factor(codec, loss_percent, one_way)), 2)
