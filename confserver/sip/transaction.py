"""The four RFC 3261 §17 transaction state machines, sans-I/O.

Each transaction reacts to an input (a message, a timer firing, a transport
error, a response from its transaction user) by returning a list of effects:
messages to transmit, timers to start or stop, messages to hand to the TU,
and whether it failed or terminated. The caller owns the clock and the
sockets. INVITE transactions follow RFC 6026 (the Accepted state).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from confserver.text import for_log

from .address import NameAddr
from .message import Headers, Request, Response


@dataclass(frozen=True, slots=True)
class TimerSettings:
    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    trying_delay: float = 0.2  # send 100 Trying if the TU is slower than this


@dataclass(frozen=True, slots=True)
class Transmit:
    message: Request | Response


@dataclass(frozen=True, slots=True)
class StartTimer:
    name: str
    delay: float


@dataclass(frozen=True, slots=True)
class StopTimer:
    name: str


@dataclass(frozen=True, slots=True)
class Deliver:
    """Hand a message (response or ACK) up to the transaction user."""

    message: Request | Response


@dataclass(frozen=True, slots=True)
class Failed:
    reason: str  # "timeout" or "transport"


@dataclass(frozen=True, slots=True)
class Terminated:
    pass


Effect = Transmit | StartTimer | StopTimer | Deliver | Failed | Terminated


class State(enum.Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


MAGIC_COOKIE = "z9hG4bK"


def server_key(request: Request) -> tuple[str, ...]:
    """Key matching a request (or its retransmission, ACK or CANCEL) to a server transaction."""
    method = "INVITE" if request.method == "ACK" else request.method
    via = request.top_via
    branch = via.branch or ""
    if branch.startswith(MAGIC_COOKIE) and len(branch) > len(MAGIC_COOKIE):
        host, port = via.sent_by
        return (branch, host, str(port), method)
    # RFC 2543 fallback (§17.2.3): no usable branch.
    assert request.cseq is not None
    to_tag = "" if request.method == "ACK" else (request.to_tag or "")
    return ("2543", str(request.uri), request.from_tag or "", to_tag, request.call_id,
            str(request.cseq.number), str(via), method)


def client_key(message: Request | Response) -> tuple[str, str]:
    """Key matching a response to the client transaction that sent the request."""
    assert message.cseq is not None
    method = message.cseq.method
    if method == "ACK":
        method = "INVITE"
    return (message.top_via.branch or "", method)


class _Transaction:
    __slots__ = ("_interval", "reliable", "request", "state", "timers")

    def __init__(self, request: Request, reliable: bool, timers: TimerSettings) -> None:
        self.request = request
        self.reliable = reliable
        self.timers = timers
        self.state = State.TERMINATED
        self._interval = timers.t1

    def _wait(self, unreliable_delay: float) -> float:
        return 0.0 if self.reliable else unreliable_delay

    def _terminate(self, effects: list[Effect]) -> list[Effect]:
        self.state = State.TERMINATED
        effects.append(Terminated())
        return effects

    def on_transport_error(self) -> list[Effect]:
        if self.state is State.TERMINATED:
            return []
        return self._terminate([Failed("transport")])


class ClientInviteTransaction(_Transaction):
    __slots__ = ("ack",)

    def __init__(self, request: Request, reliable: bool, timers: TimerSettings) -> None:
        super().__init__(request, reliable, timers)
        self.ack: Request | None = None

    def start(self) -> list[Effect]:
        self.state = State.CALLING
        effects: list[Effect] = [Transmit(self.request), StartTimer("B", 64 * self.timers.t1)]
        if not self.reliable:
            effects.append(StartTimer("A", self._interval))
        return effects

    def on_response(self, response: Response) -> list[Effect]:
        status = response.status
        if self.state in (State.CALLING, State.PROCEEDING):
            effects: list[Effect] = [StopTimer("A")]
            if status < 200:
                if self.state is State.CALLING:
                    effects.append(StopTimer("B"))
                self.state = State.PROCEEDING
                effects.append(Deliver(response))
                return effects
            effects.append(StopTimer("B"))
            if status < 300:
                self.state = State.ACCEPTED
                effects += [Deliver(response), StartTimer("M", 64 * self.timers.t1)]
                return effects
            self.state = State.COMPLETED
            self.ack = build_ack_for_failure(self.request, response)
            effects += [Transmit(self.ack), Deliver(response),
                        StartTimer("D", self._wait(32.0))]
            return effects
        if self.state is State.ACCEPTED and 200 <= status < 300:
            return [Deliver(response)]  # TU re-sends its ACK
        if self.state is State.COMPLETED and status >= 300 and self.ack is not None:
            return [Transmit(self.ack)]
        return []

    def on_timer(self, name: str) -> list[Effect]:
        if name == "A" and self.state is State.CALLING:
            self._interval *= 2
            return [Transmit(self.request), StartTimer("A", self._interval)]
        if name == "B" and self.state is State.CALLING:
            return self._terminate([StopTimer("A"), Failed("timeout")])
        if name == "D" and self.state is State.COMPLETED:
            return self._terminate([])
        if name == "M" and self.state is State.ACCEPTED:
            return self._terminate([])
        return []

    def cancellable(self) -> bool:
        return self.state is State.PROCEEDING


class ClientNonInviteTransaction(_Transaction):
    __slots__ = ()

    def start(self) -> list[Effect]:
        self.state = State.TRYING
        effects: list[Effect] = [Transmit(self.request), StartTimer("F", 64 * self.timers.t1)]
        if not self.reliable:
            effects.append(StartTimer("E", self._interval))
        return effects

    def on_response(self, response: Response) -> list[Effect]:
        if self.state not in (State.TRYING, State.PROCEEDING):
            return []
        if response.status < 200:
            self.state = State.PROCEEDING
            return [Deliver(response)]
        self.state = State.COMPLETED
        return [StopTimer("E"), StopTimer("F"), Deliver(response),
                StartTimer("K", self._wait(self.timers.t4))]

    def on_timer(self, name: str) -> list[Effect]:
        if name == "E" and self.state in (State.TRYING, State.PROCEEDING):
            if self.state is State.TRYING:
                self._interval = min(2 * self._interval, self.timers.t2)
            else:
                self._interval = self.timers.t2
            return [Transmit(self.request), StartTimer("E", self._interval)]
        if name == "F" and self.state in (State.TRYING, State.PROCEEDING):
            return self._terminate([StopTimer("E"), Failed("timeout")])
        if name == "K" and self.state is State.COMPLETED:
            return self._terminate([])
        return []


class ServerInviteTransaction(_Transaction):
    """Server INVITE transaction. It also retransmits 2xx until the ACK
    arrives (RFC 3261 §13.3.1.4 puts that in the UAS core; keeping it here
    means one timer table for everything)."""

    __slots__ = ("acked", "last_response")

    def __init__(self, request: Request, reliable: bool, timers: TimerSettings) -> None:
        super().__init__(request, reliable, timers)
        self.last_response: Response | None = None
        self.acked = False

    def start(self) -> list[Effect]:
        self.state = State.PROCEEDING
        return [StartTimer("trying", self.timers.trying_delay)]

    def send(self, response: Response) -> list[Effect]:
        if self.state is not State.PROCEEDING:
            return []
        self.last_response = response
        effects: list[Effect] = [StopTimer("trying"), Transmit(response)]
        if response.status < 200:
            return effects
        self._interval = self.timers.t1
        if response.status < 300:
            self.state = State.ACCEPTED
            effects.append(StartTimer("L", 64 * self.timers.t1))
            if not self.reliable:
                effects.append(StartTimer("G2xx", self._interval))
            return effects
        self.state = State.COMPLETED
        effects.append(StartTimer("H", 64 * self.timers.t1))
        if not self.reliable:
            effects.append(StartTimer("G", self._interval))
        return effects

    def on_request(self, request: Request) -> list[Effect]:
        if request.method == "ACK":
            if self.state is State.COMPLETED:
                self.state = State.CONFIRMED
                return [StopTimer("G"), StopTimer("H"),
                        StartTimer("I", self._wait(self.timers.t4))]
            return []
        # retransmitted INVITE
        if self.state in (State.PROCEEDING, State.COMPLETED) and self.last_response:
            return [Transmit(self.last_response)]
        return []

    def ack_for_2xx(self) -> list[Effect]:
        """The TU saw the ACK for our 2xx: stop retransmitting it."""
        if self.state is State.ACCEPTED and not self.acked:
            self.acked = True
            return [StopTimer("G2xx")]
        return []

    def on_timer(self, name: str) -> list[Effect]:
        if name == "trying" and self.state is State.PROCEEDING and self.last_response is None:
            trying = make_response(self.request, 100, "Trying")
            self.last_response = trying
            return [Transmit(trying)]
        if name in ("G", "G2xx") and self.state in (State.COMPLETED, State.ACCEPTED) \
                and self.last_response is not None:
            self._interval = min(2 * self._interval, self.timers.t2)
            return [Transmit(self.last_response), StartTimer(name, self._interval)]
        if name == "H" and self.state is State.COMPLETED:
            return self._terminate([StopTimer("G"), Failed("timeout")])
        if name == "I" and self.state is State.CONFIRMED:
            return self._terminate([])
        if name == "L" and self.state is State.ACCEPTED:
            effects: list[Effect] = [StopTimer("G2xx")]
            if not self.acked:
                effects.append(Failed("no-ack"))  # §13.3.1.4: the TU should end the dialog
            return self._terminate(effects)
        return []


class ServerNonInviteTransaction(_Transaction):
    __slots__ = ("last_response",)

    def __init__(self, request: Request, reliable: bool, timers: TimerSettings) -> None:
        super().__init__(request, reliable, timers)
        self.last_response: Response | None = None

    def start(self) -> list[Effect]:
        self.state = State.TRYING
        return []

    def send(self, response: Response) -> list[Effect]:
        if self.state not in (State.TRYING, State.PROCEEDING):
            return []
        self.last_response = response
        if response.status < 200:
            self.state = State.PROCEEDING
            return [Transmit(response)]
        self.state = State.COMPLETED
        return [Transmit(response), StartTimer("J", self._wait(64 * self.timers.t1))]

    def on_request(self, request: Request) -> list[Effect]:
        if self.last_response is not None and self.state in (State.PROCEEDING, State.COMPLETED):
            return [Transmit(self.last_response)]
        return []

    def on_timer(self, name: str) -> list[Effect]:
        if name == "J" and self.state is State.COMPLETED:
            return self._terminate([])
        return []


_COPIED = ("Via", "From", "To", "Call-ID", "CSeq")


def make_response(request: Request, status: int, reason: str,
                  to_tag: str | None = None) -> Response:
    """A response with Via/From/To/Call-ID/CSeq copied from the request (§8.2.6)."""
    items: list[tuple[str, str]] = []
    for name, value in request.headers:
        if name in _COPIED:
            if name == "To" and to_tag and request.to is not None and request.to.tag is None:
                value = f"{value};tag={to_tag}"
            items.append((name, value))
    if status == 100 and request.headers.get("Timestamp"):
        items.append(("Timestamp", request.headers.get("Timestamp") or ""))
    # a reason often quotes what the request got wrong: never a line break of its own
    resp = Response(headers=Headers(items), status=status, reason=for_log(reason))
    resp.vias = request.vias
    resp.from_ = request.from_
    resp.call_id = request.call_id
    resp.cseq = request.cseq
    return resp


def _sibling_request(invite: Request, method: str, to_value: str,
                     to: NameAddr | None) -> Request:
    """ACK or CANCEL sharing the INVITE's branch, Request-URI, Route and CSeq number."""
    from .message import CSeq

    assert invite.cseq is not None
    items: list[tuple[str, str]] = [("Via", str(invite.top_via))]
    items += [("Route", value) for value in invite.headers.get_all("Route")]
    items += [
        ("Max-Forwards", "70"),
        ("From", invite.headers.get("From") or ""),
        ("To", to_value),
        ("Call-ID", invite.call_id),
        ("CSeq", f"{invite.cseq.number} {method}"),
    ]
    request = Request(headers=Headers(items), method=method, uri=invite.uri)
    request.vias = [invite.top_via]
    request.from_ = invite.from_
    request.to = to
    request.call_id = invite.call_id
    request.cseq = CSeq(invite.cseq.number, method)
    return request


def build_ack_for_failure(invite: Request, response: Response) -> Request:
    """ACK for a non-2xx final response: same branch, To from the response (§17.1.1.3)."""
    return _sibling_request(invite, "ACK", response.headers.get("To") or "", response.to)


def build_cancel(invite: Request) -> Request:
    """CANCEL for a pending INVITE: same Request-URI, top Via and CSeq number (§9.1)."""
    return _sibling_request(invite, "CANCEL", invite.headers.get("To") or "", invite.to)
