"""Reliable provisional responses as the caller sees them (RFC 3262, UAC side).

A UAS that sends a 1xx with ``Require: 100rel`` and an ``RSeq`` resends it until a
PRACK arrives. The caller acknowledges each one exactly once and in order: per
early dialog (the To tag) it keeps the last RSeq it took, PRACKs the next one, and
drops retransmissions and responses that overtook a missing one (§4: they must not
be acknowledged nor processed). Pure bookkeeping: the call sends the PRACK.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .message import Response

RSEQ_MAX = 2**31 - 1


class Provisional(enum.Enum):
    UNRELIABLE = "unreliable"  # an ordinary 1xx: process it, no PRACK
    NEW = "new"  # the next reliable one: process it and PRACK it
    DUPLICATE = "duplicate"  # a retransmission of one already taken: drop it
    OUT_OF_ORDER = "out of order"  # one before it is missing: drop it, the UAS resends


@dataclass(frozen=True)
class Verdict:
    kind: Provisional
    rack: str = ""  # the RAck value of the PRACK (RFC 3262 §7.2), for NEW


def reliable_rseq(response: Response) -> int | None:
    """The RSeq of a reliable provisional response; None if it is not one (a 100, no
    ``Require: 100rel``, or an RSeq that is missing or malformed: not PRACK-able)."""
    if not 100 < response.status < 200 or "100rel" not in response.headers.tokens("Require"):
        return None
    raw = (response.headers.get("RSeq") or "").strip()
    if not raw.isdigit() or len(raw) > 10:
        return None
    value = int(raw)
    return value if 1 <= value <= RSEQ_MAX else None


@dataclass
class ProvisionalTracker:
    """The last RSeq taken per early dialog of one INVITE."""

    last_rseq: dict[str, int] = field(default_factory=dict)

    def classify(self, response: Response) -> Verdict:
        rseq = reliable_rseq(response)
        tag = response.to.tag if response.to is not None else None
        if rseq is None or not tag or response.cseq is None:
            return Verdict(Provisional.UNRELIABLE)
        last = self.last_rseq.get(tag)
        if last is not None and rseq <= last:
            return Verdict(Provisional.DUPLICATE)
        if last is not None and rseq != last + 1:
            return Verdict(Provisional.OUT_OF_ORDER)
        self.last_rseq[tag] = rseq
        return Verdict(Provisional.NEW,
                       f"{rseq} {response.cseq.number} {response.cseq.method}")
