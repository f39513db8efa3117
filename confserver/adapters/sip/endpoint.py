"""The SIP endpoint: glues the pure transaction machines to Twisted.

It parses what the transports receive, matches transactions, runs their
timers on the injected reactor, and hands requests to a
:class:`RequestHandler`. Nothing here knows about registrars or calls.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from confserver.limits.requests import RequestLimits
from confserver.sip.grammar import SipSyntaxError
from confserver.sip.message import Headers, Request, Response, SipParseError, parse_message
from confserver.sip.transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    Deliver,
    Effect,
    Failed,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    StartTimer,
    StopTimer,
    Terminated,
    TimerSettings,
    Transmit,
    client_key,
    make_response,
    server_key,
)

log = logging.getLogger("switchboard.sip")

RELIABLE = frozenset({"tcp", "tls", "ws", "wss"})


@dataclass(frozen=True, slots=True)
class Target:
    """Where to send: transport name, host, port (and for streams, maybe a connection)."""

    transport: str
    host: str
    port: int

    @property
    def reliable(self) -> bool:
        return self.transport in RELIABLE

    def __str__(self) -> str:
        return f"{self.transport}:{self.host}:{self.port}"


class Transport(Protocol):
    name: str

    def send(self, data: bytes, target: Target) -> bool:
        """Send bytes; False when it cannot (no connection, closed socket)."""
        ...

    def local_address(self) -> tuple[str, int]:
        ...


class RequestHandler(Protocol):
    def handle_request(self, request: Request, tx: ServerTxHandle) -> None: ...

    def handle_ack(self, request: Request, source: Target) -> None: ...

    def handle_cancel(self, tx: ServerTxHandle) -> None: ...

    def handle_stray_response(self, response: Response) -> None: ...


class ServerTxHandle:
    """What the TU holds for a request it must answer."""

    __slots__ = ("_endpoint", "_timers", "_tx", "cancelled", "request", "source", "stranger",
                 "to_tag")

    def __init__(self, endpoint: SipEndpoint, request: Request, source: Target,
                 tx: ServerInviteTransaction | ServerNonInviteTransaction) -> None:
        self.request = request
        self.source = source
        self._endpoint = endpoint
        self._tx = tx
        self._timers: dict[str, IDelayedCall] = {}
        self.to_tag: str | None = None
        self.cancelled = False
        # a request from an address nobody signed in from lately: a refusal (3xx-6xx)
        # is sent once and forgotten, as Kamailio's sl_send_reply does: a flood keeps
        # no transactions here, and a forged source gets one answer, not eleven
        self.stranger = False

    def respond(self, response: Response) -> None:
        if self.stranger and response.status >= 300 and not self.answered:
            self._endpoint.refuse_statelessly(self, response)
            return
        self._endpoint._run(self, self._tx.send(response))

    def reply(self, status: int, reason: str, headers: list[tuple[str, str]] | None = None,
              body: bytes = b"", to_tag: str | None = None) -> Response:
        response = make_response(self.request, status, reason, to_tag or self.to_tag)
        for name, value in headers or []:
            response.headers.add(name, value)
        response.body = body
        self.respond(response)
        return response

    @property
    def answered(self) -> bool:
        return self._tx.last_response is not None and self._tx.last_response.status >= 200

    @property
    def target(self) -> Target:
        return self._endpoint.response_target(self.request, self.source)

    def on_deliver(self, message: Request | Response) -> None:
        pass

    def on_failure(self, reason: str) -> None:
        self._endpoint.handler_failure(self.request, reason)


class ClientTxHandle:
    __slots__ = (
        "_endpoint",
        "_on_failure",
        "_on_response",
        "_timers",
        "_tx",
        "request",
        "target",
    )

    def __init__(self, endpoint: SipEndpoint, request: Request, target: Target,
                 tx: ClientInviteTransaction | ClientNonInviteTransaction,
                 on_response: Callable[[Response], None],
                 on_failure: Callable[[str], None]) -> None:
        self.request = request
        self.target = target
        self._endpoint = endpoint
        self._tx = tx
        self._timers: dict[str, IDelayedCall] = {}
        self._on_response = on_response
        self._on_failure = on_failure

    def on_deliver(self, message: Request | Response) -> None:
        if isinstance(message, Response):
            self._on_response(message)

    def on_failure(self, reason: str) -> None:
        self._on_failure(reason)

    def cancel(self) -> None:
        """Send CANCEL once the INVITE got a provisional response (§9.1)."""
        self._endpoint.cancel(self)


Handle = ServerTxHandle | ClientTxHandle


class SipEndpoint:
    def __init__(self, reactor: IReactorTime, handler: RequestHandler | None = None,
                 timers: TimerSettings | None = None,
                 limits: RequestLimits | None = None) -> None:
        """``limits``: per-source request rates; a flood is dropped before it is parsed."""
        self.reactor = reactor
        self.handler = handler
        self.timers = timers or TimerSettings()
        self.limits = limits
        self.transports: dict[str, Transport] = {}
        self._server: dict[tuple[str, ...], ServerTxHandle] = {}
        self._client: dict[tuple[str, str], ClientTxHandle] = {}
        # (Call-ID, CSeq number) -> INVITE server transaction awaiting its 2xx ACK
        self._awaiting_ack: dict[tuple[str, int], ServerTxHandle] = {}
        self.stats = {"received": 0, "malformed": 0, "sent": 0, "send_errors": 0,
                      "stateless": 0}

    # ------------------------------------------------------------ transports
    def add_transport(self, transport: Transport) -> None:
        self.transports[transport.name] = transport

    def local_address(self, transport: str) -> tuple[str, int]:
        return self.transports[transport].local_address()

    def peer_fingerprint(self, source: Target) -> str | None:
        """The SHA-256 fingerprint of the certificate a TLS peer presented on the
        connection ``source`` names (None: no TLS, no connection, no certificate)."""
        transport = self.transports.get(source.transport)
        fingerprint = getattr(transport, "peer_fingerprint", None)
        return fingerprint(source.host, source.port) if fingerprint is not None else None

    def send_message(self, message: Request | Response, target: Target) -> bool:
        transport = self.transports.get(target.transport)
        if transport is None:
            log.warning("no %s transport to reach %s", target.transport, target)
            return False
        try:
            data = bytes(message)
        except SipSyntaxError as exc:  # a value would inject headers: never sent
            log.error("not sending a message to %s: %s", target, exc)
            self.stats["send_errors"] += 1
            return False
        ok = transport.send(data, target)
        if ok:
            self.stats["sent"] += 1
        else:
            self.stats["send_errors"] += 1
        return ok

    # ------------------------------------------------------------ receiving
    def receive(self, data: bytes, source: Target) -> None:
        """Entry point for every datagram or framed stream message."""
        self.stats["received"] += 1
        limits = self.limits
        if limits is not None and not limits.message(source.host, self.reactor.seconds()):
            if limits.dropped & (limits.dropped - 1) == 0:  # 1st, 2nd, 4th ...: no log flood
                log.warning("SIP flood: %d messages dropped so far (now from %s)",
                            limits.dropped, source.host)
            return
        try:
            message = parse_message(data, stream=source.reliable)
            message.validate()
        except SipParseError as exc:
            self.stats["malformed"] += 1
            partial = exc.message
            if isinstance(partial, Request) and partial.method != "ACK" \
                    and partial.headers.get("Via") is not None:
                log.info("rejecting malformed request from %s with %d: %s",
                         source, exc.status, exc.reason)
                self._stateless_error(partial, source, exc.status, exc.reason)
            else:
                log.info("dropping malformed message from %s: %s", source, exc.reason)
            return
        except Exception:  # a parser bug must not take the process down
            self.stats["malformed"] += 1
            log.exception("parser failure on a message from %s; dropped", source)
            return
        try:
            if isinstance(message, Request):
                self._receive_request(message, source)
            else:
                self._receive_response(message, source)
        except Exception:
            log.exception("error handling a message from %s", source)

    def _stateless_error(self, request: Request, source: Target, status: int,
                         reason: str) -> None:
        headers: list[tuple[str, str]] = []
        for name, value in request.headers:
            if name in ("Via", "From", "Call-ID", "CSeq"):
                headers.append((name, value))
            elif name == "To":
                headers.append((name, value if "tag=" in value else f"{value};tag=sb400"))
        phrase = {400: "Bad Request", 505: "Version Not Supported",
                  513: "Message Too Large"}.get(status, "Bad Request")
        response = Response(headers=Headers(headers), status=status,
                            reason=f"{phrase} ({reason})"[:200])
        self.send_message(response, source)

    def _receive_request(self, request: Request, source: Target) -> None:
        via = request.top_via
        if via.host != source.host or "rport" in via.params:
            via.params["received"] = source.host
            if "rport" in via.params:
                via.params["rport"] = str(source.port)
            others = request.vias[1:]
            request.headers.remove("Via")
            request.headers.prepend("Via", ", ".join(str(v) for v in [via, *others]))
        key = server_key(request)
        if request.method == "ACK":
            handle = self._server.get(key)
            if handle is not None and isinstance(handle._tx, ServerInviteTransaction) \
                    and handle._tx.last_response is not None \
                    and handle._tx.last_response.status >= 300:
                self._run(handle, handle._tx.on_request(request))
                return
            assert request.cseq is not None
            waiting = self._awaiting_ack.pop((request.call_id, request.cseq.number), None)
            if waiting is not None and isinstance(waiting._tx, ServerInviteTransaction):
                self._run(waiting, waiting._tx.ack_for_2xx())
            if self.handler is not None:
                self.handler.handle_ack(request, source)
            return
        existing = self._server.get(key)
        if existing is not None:
            self._run(existing, existing._tx.on_request(request))
            return
        tx: ServerInviteTransaction | ServerNonInviteTransaction
        if request.method == "INVITE":
            tx = ServerInviteTransaction(request, source.reliable, self.timers)
        else:
            tx = ServerNonInviteTransaction(request, source.reliable, self.timers)
        handle = ServerTxHandle(self, request, source, tx)
        limits = self.limits
        if limits is not None and not request.to_tag:
            handle.stranger = limits.stranger(source.host)
        self._server[key] = handle
        self._run(handle, tx.start())
        if request.method == "CANCEL":
            self._receive_cancel(handle, key)
            return
        if self.handler is None:
            handle.reply(503, "Service Unavailable")
            return
        if request.method == "INVITE" and self.limits is not None and not request.to_tag:
            wait = self.limits.invite(source.host, self.reactor.seconds())
            if wait:
                handle.reply(503, "Service Unavailable (too many calls from your address)",
                             [("Retry-After", str(int(wait + 0.999)))])
                return
        try:
            self.handler.handle_request(request, handle)
        except Exception:
            log.exception("handler failed on %s %s", request.method, request.uri)
            if not handle.answered:
                handle.reply(500, "Server Internal Error")

    def _receive_cancel(self, handle: ServerTxHandle, key: tuple[str, ...]) -> None:
        invite_key = (*key[:-1], "INVITE")
        if key[0] == "2543":
            # CANCEL and INVITE share everything but the method and To tag
            invite_key = (*key[:3], "", *key[4:-1], "INVITE")
        invite = self._server.get(invite_key)
        if invite is None or not isinstance(invite._tx, ServerInviteTransaction):
            handle.reply(481, "Call/Transaction Does Not Exist")
            return
        handle.reply(200, "OK", to_tag=invite.to_tag)
        if not invite.answered and not invite.cancelled:
            invite.cancelled = True
            if self.handler is not None:
                self.handler.handle_cancel(invite)
            if not invite.answered:
                invite.reply(487, "Request Terminated")

    def _receive_response(self, response: Response, source: Target) -> None:
        if len(response.vias) != 1:
            log.info("dropping response from %s with %d Via values", source, len(response.vias))
            return
        handle = self._client.get(client_key(response))
        if handle is None:
            if self.handler is not None:
                self.handler.handle_stray_response(response)
            return
        self._run(handle, handle._tx.on_response(response))

    def response_target(self, request: Request, source: Target) -> Target:
        """Where responses go (§18.2.2 with RFC 3581)."""
        if source.reliable:
            return source
        via = request.top_via
        host = via.params.get("received") or via.host
        rport = via.params.get("rport")
        port = int(rport) if rport else (via.port or 5060)
        return Target(source.transport, host, port)

    def refuse_statelessly(self, handle: ServerTxHandle, response: Response) -> None:
        """Send a final refusal once and forget the transaction: no retransmissions,
        no waiting for an ACK (a retransmitted request is simply answered again)."""
        self.send_message(response, handle.target)
        self._forget(handle)
        self.stats["stateless"] += 1

    # ------------------------------------------------------------ sending requests
    def send_request(self, request: Request, target: Target,
                     on_response: Callable[[Response], None],
                     on_failure: Callable[[str], None]) -> ClientTxHandle:
        tx: ClientInviteTransaction | ClientNonInviteTransaction
        if request.method == "INVITE":
            tx = ClientInviteTransaction(request, target.reliable, self.timers)
        else:
            tx = ClientNonInviteTransaction(request, target.reliable, self.timers)
        handle = ClientTxHandle(self, request, target, tx, on_response, on_failure)
        self._client[client_key(request)] = handle
        self._run(handle, tx.start())
        return handle

    def send_ack(self, ack: Request, target: Target) -> None:
        """ACK for a 2xx is its own message, sent without a transaction."""
        self.send_message(ack, target)

    def cancel(self, handle: ClientTxHandle) -> None:
        from confserver.sip.transaction import build_cancel

        if isinstance(handle._tx, ClientInviteTransaction) and handle._tx.cancellable():
            self.send_request(build_cancel(handle.request), handle.target,
                              lambda _r: None, lambda _f: None)

    # ------------------------------------------------------------ effects
    def _run(self, handle: Handle, effects: list[Effect]) -> None:
        for effect in effects:
            kind = type(effect)
            if kind is Transmit:
                assert isinstance(effect, Transmit)
                target = handle.target
                if not self.send_message(effect.message, target):
                    self._run(handle, handle._tx.on_transport_error())
                    return
            elif kind is StartTimer:
                assert isinstance(effect, StartTimer)
                old = handle._timers.pop(effect.name, None)
                if old is not None and old.active():
                    old.cancel()
                handle._timers[effect.name] = self.reactor.callLater(
                    effect.delay, self._fire, handle, effect.name)
            elif kind is StopTimer:
                assert isinstance(effect, StopTimer)
                call = handle._timers.pop(effect.name, None)
                if call is not None and call.active():
                    call.cancel()
            elif kind is Deliver:
                assert isinstance(effect, Deliver)
                handle.on_deliver(effect.message)
            elif kind is Failed:
                assert isinstance(effect, Failed)
                handle.on_failure(effect.reason)
            elif kind is Terminated:
                self._forget(handle)
        if isinstance(handle, ServerTxHandle) and isinstance(handle._tx, ServerInviteTransaction):
            last = handle._tx.last_response
            if last is not None and 200 <= last.status < 300 and handle._tx.state.value == "accepted":
                assert handle.request.cseq is not None
                key = (handle.request.call_id, handle.request.cseq.number)
                self._awaiting_ack.setdefault(key, handle)

    def _fire(self, handle: Handle, name: str) -> None:
        handle._timers.pop(name, None)
        try:
            self._run(handle, handle._tx.on_timer(name))
        except Exception:
            log.exception("timer %s failed", name)

    def _forget(self, handle: Handle) -> None:
        for call in handle._timers.values():
            if call.active():
                call.cancel()
        handle._timers.clear()
        if isinstance(handle, ServerTxHandle):
            self._server.pop(server_key(handle.request), None)
            if handle.request.method == "INVITE":
                assert handle.request.cseq is not None
                key = (handle.request.call_id, handle.request.cseq.number)
                if self._awaiting_ack.get(key) is handle:
                    del self._awaiting_ack[key]
        else:
            self._client.pop(client_key(handle.request), None)

    def handler_failure(self, request: Request, reason: str) -> None:
        """A server transaction timed out or its transport failed."""
        if request.method == "INVITE" and self.handler is not None:
            fail = getattr(self.handler, "handle_invite_failure", None)
            if fail is not None:
                fail(request, reason)

    @property
    def transaction_counts(self) -> dict[str, int]:
        return {"server": len(self._server), "client": len(self._client),
                "awaiting_ack": len(self._awaiting_ack)}

