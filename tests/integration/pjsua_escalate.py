"""Two pjsua2 phones for escalating a two-party call into a meeting (RFC 4579 §5.5
with RFC 3891 Replaces), each its own process (pjsua2 allows one endpoint per process).

    python -m tests.integration.pjsua_escalate bob SERVER_PORT PASSWORD PLAY.wav RECORD.wav SECONDS
        signs in to the server as sip:bob@example.com, then prints "bob: listening on
        sip:bob@127.0.0.1:PORT", answers any call, lets an INVITE with Replaces take
        over a call, and records what it hears on whichever call it is in

    python -m tests.integration.pjsua_escalate alice SERVER_PORT PASSWORD BOB_URI PLAY.wav SECONDS
        calls BOB_URI directly (no server), then sip:adhoc@example.com through the
        server as sip:alice@example.com, then REFERs the focus to bob with Replaces
        naming her call with bob; prints each step
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import pjsua2 as pj

NULL_CALL_ID = -1


def start_endpoint() -> tuple[Any, int]:
    ep = pj.Endpoint()
    ep.libCreate()
    config = pj.EpConfig()
    config.uaConfig.threadCnt = 0
    config.uaConfig.mainThreadOnly = True
    config.logConfig.level = 1
    config.medConfig.clockRate = 8000
    config.medConfig.sndClockRate = 8000
    ep.libInit(config)
    transport = pj.TransportConfig()
    transport.port = 0
    transport.boundAddress = "127.0.0.1"
    transport_id = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
    ep.libStart()
    ep.audDevManager().setNullDev()
    for codec in ep.codecEnum2():
        ep.codecSetPriority(codec.codecId, 255 if codec.codecId.startswith("PCMU/") else 0)
    port = ep.transportGetInfo(transport_id).localName.rsplit(":", 1)[1]
    return ep, int(port)


def local_account(uri: str) -> Any:
    config = pj.AccountConfig()
    config.idUri = uri
    config.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    account = pj.Account()
    account.create(config)
    return account


def connect_audio(call: Any, player: Any, recorders: list[Any]) -> None:
    """Once the call's audio is up: play ``player`` into it, record it into ``recorders``."""
    info = call.getInfo()
    for index, media in enumerate(info.media):
        if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
            audio = call.getAudioMedia(index)
            player.startTransmit(audio)
            for recorder in recorders:
                audio.startTransmit(recorder)


class Phone(pj.Call):  # type: ignore[misc]
    """A call that plays ``player`` into the call and records what it hears into the
    recorders in ``sinks`` (one list shared by every call of the phone)."""

    def __init__(self, account: Any, name: str, player: Any, sinks: list[Any],
                 call_id: int = NULL_CALL_ID) -> None:
        super().__init__(account, call_id)
        self.account = account
        self.name = name
        self.player = player
        self.sinks = sinks
        self.confirmed = False
        self.disconnected = False
        self.transfer_final: int | None = None
        self.replaced_by: Phone | None = None

    def onCallState(self, prm: object) -> None:
        info = self.getInfo()
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED and not self.confirmed:
            self.confirmed = True
            print(f"{self.name}: confirmed with {info.remoteUri}", flush=True)
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED and not self.disconnected:
            self.disconnected = True
            print(f"{self.name}: disconnected ({info.lastStatusCode})", flush=True)

    def onCallMediaState(self, prm: object) -> None:
        connect_audio(self, self.player, self.sinks)

    def onCallTransferStatus(self, prm: Any) -> None:
        print(f"{self.name}: transfer status {prm.statusCode} final={prm.finalNotify}", flush=True)
        if prm.finalNotify:
            self.transfer_final = prm.statusCode

    def onCallReplaced(self, prm: Any) -> None:
        new = Phone(self.account, f"{self.name} (replacing)", self.player, self.sinks,
                    prm.newCallId)
        prm.newCall = new
        self.replaced_by = new
        print(f"{self.name}: replaced by a new call", flush=True)


class Answering(pj.Account):  # type: ignore[misc]
    def __init__(self, player: Any, sinks: list[Any]) -> None:
        super().__init__()
        self.player = player
        self.sinks = sinks
        self.calls: list[Phone] = []
        self.registered: int | None = None  # the REGISTER's final status

    def onRegState(self, prm: Any) -> None:
        self.registered = prm.code

    def onIncomingCall(self, prm: Any) -> None:
        call = Phone(self, f"bob call {len(self.calls) + 1}", self.player, self.sinks,
                     prm.callId)
        self.calls.append(call)
        answer = pj.CallOpParam()
        answer.statusCode = 200
        call.answer(answer)


def run_bob(server_port: str, password: str, play: str, record: str, seconds: float) -> int:
    ep, port = start_endpoint()
    player = pj.AudioMediaPlayer()
    player.createPlayer(play, 0)  # loops
    recorder = pj.AudioMediaRecorder()
    recorder.createRecorder(record)
    sinks = [recorder]
    config = pj.AccountConfig()
    config.idUri = "sip:bob@example.com"
    config.regConfig.registrarUri = "sip:example.com"
    config.sipConfig.proxies.append(f"sip:127.0.0.1:{server_port};lr")
    config.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", "bob", 0, password))
    config.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    account = Answering(player, sinks)
    account.create(config)
    signing_in = time.monotonic() + 10
    while account.registered is None and time.monotonic() < signing_in:
        ep.libHandleEvents(20)
    print(f"bob: signed in ({account.registered})", flush=True)
    print(f"bob: listening on sip:bob@127.0.0.1:{port}", flush=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ep.libHandleEvents(20)
    return finish(0)


def finish(code: int) -> int:
    """Leave at once: pjsua2 asserts on call objects outliving the library, replaced
    calls among them. The recording's WAV header keeps its sizes at 0 then, so its
    reader takes the data chunk to the end of the file."""
    sys.stdout.flush()
    os._exit(code)


def run_alice(server_port: str, password: str, bob_uri: str, play: str, seconds: float) -> int:
    ep, _port = start_endpoint()
    player = pj.AudioMediaPlayer()
    player.createPlayer(play, 0)
    direct = local_account("sip:alice@127.0.0.1")
    config = pj.AccountConfig()
    config.idUri = "sip:alice@example.com"
    config.sipConfig.proxies.append(f"sip:127.0.0.1:{server_port};lr")
    config.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", "alice", 0, password))
    config.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    signed_in = pj.Account()
    signed_in.create(config)
    deadline = time.monotonic() + seconds

    def wait(until: Any, what: str) -> bool:
        while time.monotonic() < deadline and not until():
            ep.libHandleEvents(20)
        if not until():
            print(f"alice: gave up waiting for {what}", flush=True)
            return False
        return True

    with_bob = Phone(direct, "alice-bob", player, [])
    with_bob.makeCall(bob_uri, pj.CallOpParam(True))
    ok = wait(lambda: with_bob.confirmed, "bob to answer")
    meeting = Phone(signed_in, "alice-meeting", player, [])
    if ok:
        settle = time.monotonic() + 1.0  # a moment of the two-party call
        wait(lambda: time.monotonic() > settle, "the call to settle")
        meeting.makeCall("sip:adhoc@example.com", pj.CallOpParam(True))
        ok = wait(lambda: meeting.confirmed, "the ad-hoc meeting")
    if ok:
        meeting.xferReplaces(with_bob, pj.CallOpParam(True))
        print("alice: referred the focus to bob with Replaces", flush=True)
        ok = wait(lambda: meeting.transfer_final is not None and with_bob.disconnected,
                  "the escalation")
    if ok:
        print("alice: escalated", flush=True)
        while time.monotonic() < deadline and not meeting.disconnected:
            ep.libHandleEvents(20)  # stay in the meeting, talking
    for call in (meeting, with_bob):
        if call.confirmed and not call.disconnected:
            call.hangup(pj.CallOpParam(True))
    end = time.monotonic() + 2
    while time.monotonic() < end and not (meeting.disconnected and with_bob.disconnected):
        ep.libHandleEvents(20)
    return finish(0 if ok else 1)


def main(argv: list[str]) -> int:
    if argv[:1] == ["bob"] and len(argv) == 6:
        return run_bob(argv[1], argv[2], argv[3], argv[4], float(argv[5]))
    if argv[:1] == ["alice"] and len(argv) == 6:
        return run_alice(argv[1], argv[2], argv[3], argv[4], float(argv[5]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
