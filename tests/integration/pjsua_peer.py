"""A pjsua2 caller, run as its own process: dials a URI through an outbound proxy, plays
a WAV into the call, records what it hears, and sends DTMF (RFC 4733) on a schedule.

usage: python -m tests.integration.pjsua_peer PROXY_PORT URI PLAY.wav RECORD.wav SECONDS \
       [AT:DIGITS ...]
"""

from __future__ import annotations

import sys
import time

import pjsua2 as pj

from tests.integration.pjsua_escalate import connect_audio, start_endpoint


class Call(pj.Call):  # type: ignore[misc]
    def __init__(self, account: pj.Account, player: pj.AudioMediaPlayer,
                 recorder: pj.AudioMediaRecorder) -> None:
        super().__init__(account)
        self.player = player
        self.recorder = recorder
        self.confirmed_at: float | None = None
        self.disconnected = False

    def onCallState(self, prm: object) -> None:
        info = self.getInfo()
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED and self.confirmed_at is None:
            self.confirmed_at = time.monotonic()
            print("pjsua: call confirmed", flush=True)
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.disconnected = True
            print(f"pjsua: call disconnected ({info.lastStatusCode})", flush=True)

    def onCallMediaState(self, prm: object) -> None:
        connect_audio(self, self.player, [self.recorder])


def main(argv: list[str]) -> int:
    proxy_port, uri, play, record, seconds = argv[:5]
    schedule = [(float(at), digits) for at, digits in (x.split(":", 1) for x in argv[5:])]
    ep, _port = start_endpoint()
    account_config = pj.AccountConfig()
    account_config.idUri = "sip:pjsua@guest.invalid"
    account_config.sipConfig.proxies.append(f"sip:127.0.0.1:{proxy_port};lr")
    account_config.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    account = pj.Account()
    account.create(account_config)
    player = pj.AudioMediaPlayer()
    player.createPlayer(play, pj.PJMEDIA_FILE_NO_LOOP)
    recorder = pj.AudioMediaRecorder()
    recorder.createRecorder(record)
    call = Call(account, player, recorder)
    call.makeCall(uri, pj.CallOpParam(True))
    deadline = time.monotonic() + float(seconds)
    sent = 0
    while time.monotonic() < deadline and not call.disconnected:
        ep.libHandleEvents(20)
        if call.confirmed_at is not None and sent < len(schedule):
            at, digits = schedule[sent]
            if time.monotonic() - call.confirmed_at >= at:
                call.dialDtmf(digits)
                print(f"pjsua: sent {digits}", flush=True)
                sent += 1
    if not call.disconnected:
        call.hangup(pj.CallOpParam(True))
        end = time.monotonic() + 2
        while time.monotonic() < end and not call.disconnected:
            ep.libHandleEvents(20)
    del recorder, player
    ep.libDestroy()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
