"""What a mediation call detail record says, filled in as the call goes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from confserver.text import clean_text

from .emodel import estimate_mos
from .legs import LegMedia


@dataclass
class CallRecord:
    """What the call detail record will say; filled in as the call goes."""

    call_id: str
    direction: str
    caller: str = ""
    dialed: str = ""
    normalized: str = ""
    dial_plan: str = ""
    rule: str = ""
    voice_policy: str = ""
    usage: str = ""
    route: str = ""
    gateway: str = ""
    target: str = ""
    cost_per_minute: float | None = None
    attempts: list[str] = field(default_factory=list)
    disposition: str = "failed"
    sip_status: int = 0
    started_at: float = 0.0
    answered_at: float | None = None
    transferred_to: str = ""  # the number or address the phone party was transferred to
    # names the row from the answer on: written then, kept fresh, replaced at the end
    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    # the row queued at the answer (see Mediation.record_answered), once there is one
    provisional: dict[str, Any] | None = None

    def row(self, ended_at: float, internal: LegMedia | None, gateway: LegMedia | None
            ) -> dict[str, Any]:
        def mos(media: LegMedia | None) -> float | None:
            if media is None or media.loss_percent is None:
                return None
            return estimate_mos(media.codec, media.loss_percent, media.jitter_ms or 0.0,
                                media.rtt_ms)

        # what a caller sent (their number, what they dialed) is cleaned on its way in
        return {"call_id": clean_text(self.call_id), "direction": self.direction,
                "caller": clean_text(self.caller), "dialed": clean_text(self.dialed, 64),
                "normalized": clean_text(self.normalized, 64), "dial_plan": self.dial_plan,
                "rule": self.rule, "voice_policy": self.voice_policy, "usage": self.usage,
                "route": self.route, "gateway": self.gateway,
                "target": clean_text(self.target),
                "cost_per_minute": self.cost_per_minute,
                "attempts": ",".join(self.attempts)[:1024], "disposition": self.disposition,
                "sip_status": self.sip_status, "started_at": self.started_at,
                "answered_at": self.answered_at, "ended_at": ended_at,
                "transferred_to": self.transferred_to[:255],
                "internal_codec": internal.codec if internal else "",
                "gateway_codec": gateway.codec if gateway else "",
                "internal_loss": internal.loss_percent if internal else None,
                "internal_jitter": internal.jitter_ms if internal else None,
                "gateway_loss": gateway.loss_percent if gateway else None,
                "gateway_jitter": gateway.jitter_ms if gateway else None,
                "internal_mos": mos(internal), "gateway_mos": mos(gateway),
                "internal_srtp": bool(internal and internal.srtp),
                "gateway_srtp": bool(gateway and gateway.srtp),
                "record_key": self.key}


def warning_header(domain: str, text: str) -> tuple[str, str]:
    return "Warning", f'399 {domain} "{text.replace(chr(34), chr(39))}"'


__all__ = ["CallRecord", "warning_header"]
