"""Real peers in a meeting: three baresip participants dial the conference URI,
each sending its own tone; each must hear the other two and not itself."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from ..ports import CONFERENCE_RTP, LOBBY_RTP, server_range
from .attacker import RawSip
from .media_helpers import read, share, tone_wav
from .peers import Baresip, baresip_codec, baresip_config, decoded_dump, run_baresip
from .server import RunningServer, cli

TONES = {"alice": 450.0, "bob": 830.0, "carol": 1370.0}
PASSWORDS = {name: f"{name}-secret" for name in TONES}
MEETING = "7654321"








def sipp_as(server: RunningServer, scenario: Path, user: str, workdir: Path,
            service: str = f"conf-{MEETING}", timeout: int = 40
            ) -> subprocess.CompletedProcess[str]:
    """Run one sipp scenario as ``user`` (answering digest challenges with its password)."""
    from .peers import require
    from .server import free_port

    return subprocess.run(
        [require("sipp"), "-sf", str(scenario), f"127.0.0.1:{server.port}", "-i", "127.0.0.1",
         "-p", str(free_port()), "-mi", "127.0.0.1", "-mp", str(free_port()), "-m", "1",
         "-s", service, "-au", user, "-ap", PASSWORDS[user],
         "-auth_uri", f"{service}@example.com",
         "-key", "domain", "example.com", "-key", "caller", user,
         "-timeout", f"{timeout}s", "-timeout_error", "-nostdin"],
        capture_output=True, text=True, timeout=timeout + 20, cwd=workdir)


@pytest.fixture
def server(tmp_path: Path) -> RunningServer:
    srv = RunningServer(tmp_path, rtp_ports=server_range(CONFERENCE_RTP),
                        media_extra=f'recordings = "{tmp_path / "recordings"}"')
    srv.write_config()
    for name, password in PASSWORDS.items():
        srv.add_user(name, password)
    created = cli("meeting", "create", "--organizer", "sip:alice@example.com", "--access", "open",
                  "--id", MEETING, db=srv.db)
    assert created.returncode == 0, created.stderr
    srv.start()
    return srv


def dial(server: RunningServer, workdir: Path, name: str, seconds: int, delay: float,
         results: dict[str, tuple[str, Path | None]], audio_level: bool = False,
         codec: str = "PCMU") -> None:
    workdir.mkdir()
    wav = tone_wav(workdir / "tone.wav", TONES[name], seconds + 5)
    account = (f"<sip:{name}@example.com>;auth_pass={PASSWORDS[name]};"
               f'outbound="sip:127.0.0.1:{server.port}";regint=0;audio_codecs={baresip_codec(codec)}')
    cfg = baresip_config(workdir, account, wav, audio_level)
    target = f"sip:conf-{MEETING}@example.com"
    commands = [f"/dial {target}"]
    threading.Event().wait(delay)
    output = run_baresip(cfg, commands, seconds=seconds)
    try:
        results[name] = (output, decoded_dump(cfg))
    except AssertionError:
        results[name] = (output, None)


def run_together(server: RunningServer, threads: list[threading.Thread]) -> None:
    """Start the peers' ``threads``, wait for them (each for at most 90 s), and stop
    the server, whatever happened."""
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=90)
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("audio_level,codecs", [
    (False, ("PCMU", "PCMU", "PCMU")), (True, ("PCMU", "PCMU", "PCMU")),
    (False, ("opus", "G722", "PCMU"))], ids=["plain", "audio-level", "opus-g722-pcmu"])
def test_three_participants_hear_each_other_and_not_themselves(server: RunningServer,
                                                               tmp_path: Path,
                                                               audio_level: bool,
                                                               codecs: tuple[str, ...]) -> None:
    # with audio_level, each baresip marks its packets with the RFC 6464 level of its
    # tone: the server must agree to it and still hear them (loud frames are decoded).
    # With three codecs, the Opus caller is decoded at the 16 kHz mixing rate.
    results: dict[str, tuple[str, Path | None]] = {}
    run_together(server, [threading.Thread(target=dial, args=(server, tmp_path / name, name, 9,
                                                              i * 0.5, results, audio_level, codec))
                          for i, (name, codec) in enumerate(zip(TONES, codecs, strict=True))])
    log = server.log()
    assert set(results) == set(TONES), log[-3000:]
    for name, (output, dump) in results.items():
        assert f"Call established: sip:conf-{MEETING}@example.com" in output, output[-2000:]
        assert dump is not None
        heard = read(dump)
        steady = heard[3 * 8000:7 * 8000]  # all three are in the meeting by then
        own = share(steady, TONES[name])
        others = {other: share(steady, f) for other, f in TONES.items() if other != name}
        assert all(s > 0.2 for s in others.values()), (name, others, own)
        assert own < 0.001, (name, others, own)
    assert f"conference {MEETING}: sip:alice@example.com joins as organizer" in log
    assert f"conference {MEETING}: sip:bob@example.com joins as attendee" in log
    assert f"conference {MEETING} empty: released" in log
    if "opus" in codecs:  # Opus decoded straight at the 16 kHz mixing rate
        # alice alone (or with bob) mixes at 48 kHz; the G.711 callers bring it to 16
        assert re.search(r"p\d+ audio decoded at 16000 Hz \(the mixing rate\)", log), log[-3000:]
    agreed = log.count("the sender's audio level was agreed")
    assert agreed == (3 if audio_level else 0), log[-3000:]


def test_strangers_learn_nothing_and_users_must_prove_who_they_are(
        server: RunningServer, tmp_path: Path) -> None:
    """A caller from another domain is answered by the attendant (which asks for a
    passcode) whether the meeting exists or is for members only, and is refused the
    roster either way; a caller claiming one of our users must answer a challenge."""
    import socket

    def invite(uri: str, from_uri: str) -> str:
        body = ("v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                "m=audio 40000 RTP/AVP 0\r\n")
        key = abs(hash(uri + from_uri))
        message = (f"INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{key}\r\n"
                   f"From: <{from_uri}>;tag=1\r\nTo: <{uri}>\r\nCall-ID: {key}\r\n"
                   f"CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContact: <sip:x@127.0.0.1:{port}>\r\n"
                   f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}")
        sock.sendto(message.encode(), ("127.0.0.1", server.port))
        while True:
            data = sock.recv(65535).decode()
            if not data.startswith("SIP/2.0 100"):
                return data.split("\r\n", 1)[0]

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(5)
            port = sock.getsockname()[1]
            for conference in ("1111111", MEETING):
                assert invite(f"sip:conf-{conference}@example.com", "sip:eve@contoso.com") \
                    == "SIP/2.0 200 OK"
            # claiming to be one of ours means proving it
            assert invite(f"sip:conf-{MEETING}@example.com", "sip:bob@example.com").startswith(
                "SIP/2.0 401")

            def subscribe(uri: str, event: str, expires: int = 600) -> str:
                key = abs(hash((uri, event, expires)))
                message = (f"SUBSCRIBE {uri} SIP/2.0\r\n"
                           f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKs{key}\r\n"
                           f"From: <sip:eve@contoso.com>;tag=2\r\nTo: <{uri}>\r\n"
                           f"Call-ID: sub-{key}\r\nCSeq: 1 SUBSCRIBE\r\n"
                           f"Max-Forwards: 70\r\nContact: <sip:eve@127.0.0.1:{port}>\r\n"
                           f"Event: {event}\r\nExpires: {expires}\r\nContent-Length: 0\r\n\r\n")
                sock.sendto(message.encode(), ("127.0.0.1", server.port))
                return sock.recv(65535).decode().split("\r\n", 1)[0]

            conf_uri = f"sip:conf-{MEETING}@example.com"
            assert subscribe(conf_uri, "presence") == "SIP/2.0 489 Bad Event"
            assert subscribe(conf_uri, "conference", 10).startswith("SIP/2.0 423")
            for uri in ("sip:conf-1111111@example.com", conf_uri):
                assert subscribe(uri, "conference") == \
                    "SIP/2.0 403 Forbidden (sign in, or join the meeting first)"
    finally:
        assert server.stop() == 0
    log = server.log()
    assert "dial-in conf-1111111: call from eve" in log
    assert f"dial-in conf-{MEETING}: call from eve" in log


def test_organizer_mutes_ejects_and_locks_over_sip_info(server: RunningServer,
                                                         tmp_path: Path) -> None:
    """bob and carol (baresip, tones) are in the meeting; the organizer (sipp) mutes
    bob, ejects carol and locks the meeting with C3P-style INFO requests."""

    from .peers import run_sipp, sipp_failures

    results: dict[str, tuple[str, Path | None]] = {}
    sipp_result: list[object] = []

    def organizer() -> None:
        threading.Event().wait(0.5)
        workdir = tmp_path / "sipp"
        workdir.mkdir()
        sipp_result.append((run_sipp("conference_control.xml", server.port, workdir,
                                     service=f"conf-{MEETING}", user="alice",
                                     password=PASSWORDS["alice"], timeout=40,
                                     extra=["-key", "caller", "alice"]), workdir))

    try:
        threads = [threading.Thread(target=dial, args=(server, tmp_path / name, name, 13, 0.0,
                                                        results)) for name in ("bob", "carol")]
        threads.append(threading.Thread(target=organizer))
        for thread in threads:
            thread.start()
        threading.Event().wait(9.5)  # after the lock
        carol = RawSip("127.0.0.1", ("127.0.0.1", server.port))  # ejected, she tries again
        try:
            invite = carol.request("INVITE", f"sip:conf-{MEETING}@example.com",
                                   from_user="carol", from_host="example.com")
            challenge = carol.final(invite)
            assert challenge is not None and challenge.status == 401
            refused = carol.final(carol.authorized(invite, challenge, "carol", PASSWORDS["carol"]))
            status = f"SIP/2.0 {refused.status} {refused.reason}" if refused else ""
        finally:
            carol.close()
        for thread in threads:
            thread.join(timeout=90)
    finally:
        assert server.stop() == 0
    log = server.log()
    assert status == "SIP/2.0 403 Forbidden (the meeting is locked)", log[-3000:]
    sipp_run, workdir = sipp_result[0]  # type: ignore[misc]
    assert sipp_run.returncode == 0, sipp_failures(sipp_run, workdir, "conference_control.xml")
    assert "asks mute sip:bob@example.com: done" in log
    assert "asks eject sip:carol@example.com: done" in log
    _, carol_dump = results["carol"]
    assert carol_dump is not None
    heard = read(carol_dump)
    # carol hears bob until the mute (about 4.5 s in), then not; her call ends early
    assert share(heard[int(1.5 * 8000):int(3.5 * 8000)], TONES["bob"]) > 0.2
    assert share(heard[int(5.5 * 8000):int(6.5 * 8000)], TONES["bob"]) < 0.01
    assert len(heard) < 11 * 8000, "carol was not hung up"
    # the organizer recorded the meeting: both tones are in the recording
    recordings = sorted((server.workdir / "recordings").glob(f"{MEETING}-*.wav"))
    assert len(recordings) == 1, log[-2000:]
    with wave.open(str(recordings[0])) as wav:
        assert wav.getframerate() == 16000
        program = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    assert len(program) > 8 * 16000
    spectrum = np.abs(np.fft.rfft(program[16000:4 * 16000].astype(np.float64))) ** 2
    hz = np.fft.rfftfreq(3 * 16000, 1 / 16000)
    for freq in (TONES["bob"], TONES["carol"]):
        assert spectrum[np.abs(hz - freq) <= 15].sum() / spectrum.sum() > 0.2


def test_audience_mute_silences_attendees_for_each_other(server: RunningServer,
                                                         tmp_path: Path) -> None:
    """bob and carol (baresip attendees, tones) hear each other until the organizer
    (sipp) sends C3P muteAudience; after it, neither hears the other."""
    from .peers import SCENARIOS

    results: dict[str, tuple[str, Path | None]] = {}
    scenario = tmp_path / "audience.xml"
    scenario.write_text((SCENARIOS / "control_once.xml.in").read_text()
                        .replace("{command}", "<muteAudience/>").replace("{stay}", "5000"))
    outcome: list[subprocess.CompletedProcess[str]] = []

    def organizer() -> None:
        threading.Event().wait(3.0)  # the INFO goes about 4.3 s in
        outcome.append(sipp_as(server, scenario, "alice", tmp_path, service=f"conf-{MEETING}",
                               timeout=40))

    run_together(server, [threading.Thread(target=dial, args=(server, tmp_path / name, name, 10,
                                                              0.0, results))
                          for name in ("bob", "carol")] + [threading.Thread(target=organizer)])
    log = server.log()
    assert outcome and outcome[0].returncode == 0, outcome[0].stdout[-1500:] if outcome else ""
    assert re.search(r"asks muteAudience .*: done", log), log[-3000:]
    for listener, talker in (("carol", "bob"), ("bob", "carol")):
        _, dump = results[listener]
        assert dump is not None, results[listener][0][-1500:]
        heard = read(dump)
        assert share(heard[int(1.5 * 8000):int(3.5 * 8000)], TONES[talker]) > 0.2, listener
        assert share(heard[int(6.0 * 8000):int(8.0 * 8000)], TONES[talker]) < 0.01, listener


def test_roster_subscription_sees_joins_and_departures(server: RunningServer,
                                                       tmp_path: Path) -> None:
    """sipp subscribes to the roster as alice; baresip bob joins and leaves; every
    NOTIFY body validates against the RFC 4575 schema, versions increase by one."""
    from confserver.focus.conference_info import NAMESPACE, ConferenceInfoSchema

    from .peers import run_sipp, sipp_failures

    results: dict[str, tuple[str, Path | None]] = {}
    workdir = tmp_path / "sipp"
    workdir.mkdir()
    outcome: list[object] = []

    def watcher() -> None:
        outcome.append(run_sipp("roster_subscribe.xml", server.port, workdir,
                                service=f"conf-{MEETING}", user="alice",
                                password=PASSWORDS["alice"], timeout=40,
                                extra=["-key", "caller", "alice", "-trace_msg",
                                       "-message_file", str(workdir / "messages.log")]))

    try:
        thread = threading.Thread(target=watcher)
        thread.start()
        threading.Event().wait(1.5)
        dial(server, tmp_path / "bob", "bob", 4, 0.0, results)
        thread.join(timeout=60)
    finally:
        assert server.stop() == 0
    run = outcome[0]
    assert run.returncode == 0, sipp_failures(run, workdir, "roster_subscribe.xml")  # type: ignore[attr-defined]
    log = (workdir / "messages.log").read_text(errors="replace")
    end = "</conference-info>"
    bodies = [chunk[chunk.index("<?xml"):chunk.index(end) + len(end)].encode()
              for chunk in log.split("NOTIFY sip:")[1:] if end in chunk]
    assert len(bodies) >= 4
    schema = ConferenceInfoSchema()
    from lxml import etree
    versions = []
    for body in bodies:
        assert schema.errors(body) == [], body
        versions.append(int(etree.fromstring(body).get("version")))
    assert versions == list(range(1, len(versions) + 1))
    first = etree.fromstring(bodies[0])
    assert first.get("state") == "full"
    assert first.findtext(f"{{{NAMESPACE}}}conference-state/{{{NAMESPACE}}}user-count") == "0"
    ns = {"ci": NAMESPACE}
    statuses = [status.text for body in bodies[1:]
                for user in etree.fromstring(body).findall("ci:users/ci:user", ns)
                if user.get("entity") == "sip:bob@example.com"
                for status in user.findall("ci:endpoint/ci:status", ns)]
    assert "connected" in statuses and statuses[-1] == "disconnected"
    last = etree.fromstring(bodies[-1])  # the terminating NOTIFY carries the full roster
    assert last.get("state") == "full"


def test_keypad_commands_from_rfc_4733_digits(server: RunningServer, tmp_path: Path) -> None:
    """The organizer (sipp, RFC 4733 pcaps) presses *7: the meeting locks. (sipp replays a
    pcap with its recorded timestamps, and a second * would repeat the first one's, which
    RFC 4733 makes the same event: one command per call here, the rest in unit tests.)"""

    from .peers import SCENARIOS

    sounds = "/usr/share/sip-tester/dtmf_2833_{}.pcap"
    plays = "\n".join(f'  <nop><action><exec play_pcap_audio="{sounds.format(key)}"/></action></nop>'
                      f'\n  <pause milliseconds="500"/>' for key in ("star", "7"))
    scenario = tmp_path / "keypad.xml"
    scenario.write_text((SCENARIOS / "keypad.xml.in").read_text().replace("{plays}", plays))
    try:
        result = sipp_as(server, scenario, "alice", tmp_path, service=f"conf-{MEETING}", timeout=60)
    finally:
        assert server.stop() == 0
    assert result.returncode == 0, result.stdout[-2000:]
    log = server.log()
    assert re.search(r"conference 7654321: p\d+ pressed \*7: locked", log), log[-3000:]


def _av_invite(port: int, audio_port: int, video_port: int, cseq: int, auth: str = "") -> bytes:
    sdp = (f"v=0\r\no=carol 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           f"m=audio {audio_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
           f"m=video {video_port} RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n")
    target = f"sip:conf-{MEETING}@example.com"
    extra = f"Authorization: {auth}\r\n" if auth else ""
    return (f"INVITE {target} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKav{cseq}\r\n"
            f"From: <sip:carol@example.com>;tag=c1\r\nTo: <{target}>\r\nCall-ID: av-carol\r\n"
            f"CSeq: {cseq} INVITE\r\nMax-Forwards: 70\r\nContact: <sip:carol@127.0.0.1:{port}>\r\n"
            f"{extra}Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}"
            ).encode()


def test_switched_video_follows_the_speaker(server: RunningServer, tmp_path: Path) -> None:
    """alice and bob (sipp) send PCMU and VP8 pcaps: alice talks first, then bob. carol
    receives video only through the switch: first alice's, then bob's, as one stream."""
    import socket

    from confserver.media.codecs.g711 import Pcmu
    from confserver.media.rtp import RtpPacket
    from confserver.sip.digest import DigestClient

    from .peers import SCENARIOS
    from .rtp_tools import write_rtp_pcap

    codec = Pcmu()

    def audio_file(path: Path, talk_from: float, talk_to: float) -> Path:
        """8 s of raw μ-law for sipp's rtp_stream (which can run beside a video pcap)."""
        t = np.arange(8 * 8000) / 8000
        loud = (t >= talk_from) & (t < talk_to)
        pcm = np.where(loud, 6000 * np.sin(2 * np.pi * 440 * t), 0).astype(np.int16)
        path.write_bytes(codec.encode(pcm))
        return path

    def video_pcap(path: Path, marker: bytes) -> Path:
        key = bytes([0x90, 0x80, 0x05, 0x10]) + b"\x9d\x01\x2a" + marker * 60
        delta = bytes([0x90, 0x80, 0x06, 0x11]) + marker * 60
        write_rtp_pcap(path, [(96, key if i % 15 == 0 else delta, i * 3000) for i in range(240)],
                       ptime=1 / 30)
        return path

    def sender(name: str, talk: tuple[float, float], marker: bytes) -> None:
        workdir = tmp_path / name
        workdir.mkdir()
        audio = audio_file(workdir / "audio.ulaw", *talk)
        video = video_pcap(workdir / "video.pcap", marker)
        plays = (f'  <nop><action><exec play_pcap_video="{video}"/>'
                 f'<exec rtp_stream="{audio},1,0"/></action></nop>\n'
                 f'  <pause milliseconds="8500"/>')
        scenario = workdir / "av.xml"
        scenario.write_text((SCENARIOS / "av_participant.xml.in").read_text()
                            .replace("{plays}", plays))
        runs[name] = sipp_as(server, scenario, name, workdir, service=f"conf-{MEETING}", timeout=60)

    runs: dict[str, subprocess.CompletedProcess[str]] = {}
    received: list[tuple[float, RtpPacket]] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sip, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as audio, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as video:
        for sock in (sip, audio, video):
            sock.bind(("127.0.0.1", 0))
        sip.settimeout(5)
        port = sip.getsockname()[1]
        try:
            sip.sendto(_av_invite(port, audio.getsockname()[1], video.getsockname()[1], 1),
                       ("127.0.0.1", server.port))
            challenge = ""
            while not challenge.startswith("SIP/2.0 401"):
                challenge = sip.recv(65535).decode()
            headers = [line.split(":", 1)[1].strip() for line in challenge.split("\r\n")
                       if line.lower().startswith("www-authenticate:")]
            to_header = next(line for line in challenge.split("\r\n") if line.startswith("To:"))
            sip.sendto((f"ACK sip:conf-{MEETING}@example.com SIP/2.0\r\nVia: SIP/2.0/UDP "
                        f"127.0.0.1:{port};branch=z9hG4bKav1\r\nFrom: <sip:carol@example.com>;tag=c1"
                        f"\r\n{to_header}\r\nCall-ID: av-carol\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\n"
                        f"Content-Length: 0\r\n\r\n").encode(), ("127.0.0.1", server.port))
            auth = DigestClient.create("carol", PASSWORDS["carol"]).authorization(
                headers, "INVITE", f"sip:conf-{MEETING}@example.com")
            sip.sendto(_av_invite(port, audio.getsockname()[1], video.getsockname()[1], 2, auth),
                       ("127.0.0.1", server.port))
            answer = ""
            while not answer.startswith("SIP/2.0 200"):
                answer = sip.recv(65535).decode()
            assert "m=video " in answer and "m=video 0 " not in answer, answer
            threads = [threading.Thread(target=sender, args=("alice", (0.3, 3.5), b"A")),
                       threading.Thread(target=sender, args=("bob", (4.0, 8.0), b"B"))]
            for thread in threads:
                thread.start()
            video.settimeout(0.5)
            start = time.monotonic()
            while time.monotonic() - start < 10:
                try:
                    data = video.recv(4096)
                except TimeoutError:
                    continue
                if 192 <= data[1] <= 223:
                    # RTCP meant for a sender's RTCP port, which the kernel may have given
                    # this socket's number too: a receiver demultiplexes it, so do we
                    continue
                received.append((time.monotonic() - start, RtpPacket.parse(data)))
            for thread in threads:
                thread.join(timeout=60)
        finally:
            assert server.stop() == 0
    assert all(run.returncode == 0 for run in runs.values()), \
        {name: run.stdout[-1500:] for name, run in runs.items()}
    odd = [(t, p.payload_type, p.sequence, len(p.payload), p.payload[:12].hex())
           for t, p in received if p.payload[-1:] not in (b"A", b"B")]
    assert not odd, odd
    markers = [packet.payload[-1:] for _, packet in received]
    # before anyone has spoken carol sees one of the senders; then alice, then bob
    assert b"A" in markers, server.log()[-3000:]
    first_a = markers.index(b"A")
    assert b"B" in markers[first_a:]
    to_b = markers.index(b"B", first_a)
    assert set(markers[first_a:to_b]) == {b"A"} and set(markers[to_b:]) == {b"B"}
    key = bytes([0x90, 0x80, 0x05, 0x10]) + b"\x9d\x01\x2a"
    assert received[first_a][1].payload[:7] == key and received[to_b][1].payload[:7] == key
    assert received[first_a][0] < 3.5 < 4.0 < received[to_b][0]  # the switches follow the talk
    packets = [packet for _, packet in received]
    assert len({p.ssrc for p in packets}) == 1
    assert all((b.sequence - a.sequence) & 0xFFFF == 1 for a, b in itertools.pairwise(packets))


def test_anonymous_caller_waits_in_the_lobby_until_a_leader_arrives(tmp_path: Path) -> None:
    """An anonymous meeting: a guest (baresip, no credentials) keys the passcode, then
    hears lobby music, not bob (an attendee, who cannot admit anyone); when the
    organizer joins (sipp), the guest is let in and hears bob."""

    from .peers import SCENARIOS

    srv = RunningServer(tmp_path, rtp_ports=server_range(LOBBY_RTP))
    srv.write_config()
    for name, password in PASSWORDS.items():
        srv.add_user(name, password)
    assert cli("meeting", "create", "--organizer", "sip:alice@example.com", "--access",
               "anonymous", "--passcode", "13579", "--id", MEETING, db=srv.db).returncode == 0
    srv.start()
    results: dict[str, tuple[str, Path | None]] = {}

    def guest() -> None:
        workdir = tmp_path / "guest"
        wav = tone_wav(tmp_path / "quiet.wav", 0.0, 16)  # silence
        caller = Baresip(workdir, f'<sip:guest@contoso.com>;outbound="sip:127.0.0.1:{srv.port}";'
                                  "regint=0;audio_codecs=PCMU", wav)
        caller.dial(f"sip:conf-{MEETING}@example.com", 12)
        caller.wait_for("Call established")
        caller.keys("13579#", gap=0.1)  # the attendant asks for the passcode first
        output = caller.finish()
        results["guest"] = (output, decoded_dump(caller.cfg))

    def organizer() -> None:
        threading.Event().wait(6.0)
        workdir = tmp_path / "alice"
        workdir.mkdir()
        scenario = workdir / "alice.xml"
        scenario.write_text((SCENARIOS / "keypad.xml.in").read_text()
                            .replace("{plays}", '  <pause milliseconds="5000"/>'))
        sipp_as(srv, scenario, "alice", workdir, service=f"conf-{MEETING}", timeout=40)

    run_together(srv, [threading.Thread(target=guest), threading.Thread(target=organizer),
                       threading.Thread(target=dial, args=(srv, tmp_path / "bob", "bob", 11, 1.0,
                                                           results))])
    log = srv.log()
    assert "anonymous:1 joins through the attendant as attendee (lobby)" in log, log[-3000:]
    assert re.search(r"conference 7654321: p\d+ admitted from the lobby", log)
    _, dump = results["guest"]
    assert dump is not None
    heard = read(dump)
    waiting = heard[3 * 8000:5 * 8000]         # bob talks, the guest is still in the lobby
    admitted = heard[8 * 8000:10 * 8000]       # the organizer arrived at about 6.5 s
    assert share(waiting, 261.6) > 0.05 and share(waiting, TONES["bob"]) < 0.01
    assert share(admitted, TONES["bob"]) > 0.2


def test_a_promoted_attendee_rejoins_as_presenter(server: RunningServer, tmp_path: Path) -> None:
    """bob (baresip) joins as an attendee; the organizer (sipp) promotes him with C3P
    setRole; bob hangs up, dials again and is a presenter: the roles a meeting gives
    survive a rejoin with the same identity."""

    from .peers import SCENARIOS

    results: dict[str, tuple[str, Path | None]] = {}
    scenario = tmp_path / "promote.xml"
    scenario.write_text((SCENARIOS / "control_once.xml.in").read_text()
                        .replace("{command}", '<setRole user="sip:bob@example.com" role="presenter"/>')
                        .replace("{stay}", "6000"))

    def organizer() -> None:
        threading.Event().wait(1.5)
        outcome.append(sipp_as(server, scenario, "alice", tmp_path, service=f"conf-{MEETING}", timeout=40))

    outcome: list[subprocess.CompletedProcess[str]] = []
    try:
        thread = threading.Thread(target=organizer)
        thread.start()
        dial(server, tmp_path / "bob-1", "bob", 4, 0.0, results)
        dial(server, tmp_path / "bob-2", "bob", 3, 0.0, results)
        thread.join(timeout=60)
    finally:
        assert server.stop() == 0
    log = server.log()
    assert outcome and outcome[0].returncode == 0, outcome[0].stdout[-1500:] if outcome else ""
    joins = re.findall(r"sip:bob@example\.com joins as (\w+)", log)
    assert joins == ["attendee", "presenter"], log[-3000:]
    assert "asks setRole sip:bob@example.com: done" in log


def signed_in_callee(server: RunningServer, workdir: Path, seconds: float) -> Path:
    """dave: a baresip signed in to the server that answers by itself and plays a
    tone (the outbound gate calls users of our domain on the device they registered)."""
    workdir.mkdir()
    server.add_user("dave", "dave-secret")
    wav = tone_wav(workdir / "tone.wav", 1370.0, seconds)
    return baresip_config(workdir, f'<sip:dave@example.com>;auth_pass=dave-secret;'
                                   f'outbound="sip:127.0.0.1:{server.port}";regint=60;'
                                   "answermode=auto;audio_codecs=PCMU", wav)


def test_the_meeting_dials_out_to_a_user(server: RunningServer, tmp_path: Path) -> None:
    """The organizer (sipp) sends C3P dialOut for sip:dave@example.com, a baresip signed
    in elsewhere that answers by itself and plays a tone; bob (baresip) in the
    meeting hears dave."""

    from .peers import SCENARIOS

    results: dict[str, tuple[str, Path | None]] = {}
    cfg = signed_in_callee(server, tmp_path / "dave", 16)
    scenario = tmp_path / "dial.xml"
    scenario.write_text((SCENARIOS / "control_once.xml.in").read_text()
                        .replace("{command}", '<dialOut uri="sip:dave@example.com"/>')
                        .replace("{stay}", "7000"))

    def dave() -> None:
        results["dave"] = (run_baresip(cfg, [], seconds=14), None)

    def organizer() -> None:
        threading.Event().wait(1.5)
        outcome.append(sipp_as(server, scenario, "alice", tmp_path, service=f"conf-{MEETING}", timeout=40))

    outcome: list[subprocess.CompletedProcess[str]] = []
    try:
        threads = [threading.Thread(target=dave), threading.Thread(target=organizer)]
        for thread in threads:
            thread.start()
        dial(server, tmp_path / "bob", "bob", 10, 0.0, results)
        for thread in threads:
            thread.join(timeout=60)
    finally:
        assert server.stop() == 0
    log = server.log()
    assert outcome and outcome[0].returncode == 0, outcome[0].stdout[-1500:] if outcome else ""
    assert "calling sip:dave@example.com's device as attendee" in log, log[-3000:]
    assert "answered" in log
    _, dump = results["bob"]
    assert dump is not None
    heard = read(dump)
    assert share(heard[5 * 8000:8 * 8000], 1370.0) > 0.2


def test_an_adhoc_meeting_grows_by_refer(server: RunningServer, tmp_path: Path) -> None:
    """alice (sipp) calls sip:adhoc@example.com, gets a meeting of her own, and REFERs
    dave (a baresip that answers by itself) into it; the NOTIFYs report his answer and
    the meeting ends in the database when everyone has left."""

    from .peers import SCENARIOS

    cfg = signed_in_callee(server, tmp_path / "dave", 12)
    scenario = tmp_path / "adhoc.xml"
    scenario.write_text((SCENARIOS / "adhoc_refer.xml.in").read_text()
                        .replace("{target}", "sip:dave@example.com"))
    outputs: list[str] = []
    try:
        thread = threading.Thread(target=lambda: outputs.append(run_baresip(cfg, [], seconds=10)))
        thread.start()
        threading.Event().wait(1.0)  # dave signs in
        result = sipp_as(server, scenario, "alice", tmp_path, service="adhoc", timeout=40)
        thread.join(timeout=30)
    finally:
        assert server.stop() == 0
    log = server.log()
    assert result.returncode == 0, result.stdout[-2000:]
    started = re.search(r"conference (\d+): ad-hoc meeting started by sip:alice@example.com", log)
    assert started, log[-3000:]
    assert "calling sip:dave@example.com's device as attendee" in log and "answered" in log
    listed = json.loads(cli("meeting", "list", "--all", "--json", db=server.db).stdout)
    adhoc = [m for m in listed if m["conference_id"] == started.group(1)]
    assert adhoc and adhoc[0]["kind"] == "adhoc" and adhoc[0]["state"] == "ended"


def test_a_two_party_call_escalates_in_place_with_replaces(server: RunningServer,
                                                           tmp_path: Path) -> None:
    """alice and bob (two pjsua2 phones, both signed in to the server) talk directly,
    without the server. alice opens an ad-hoc meeting (sip:adhoc) and REFERs the focus
    to bob's phone with Replaces naming her call with bob (RFC 4579 §5.5, RFC 3891):
    the focus calls that phone (the outbound gate knows it as bob's registered
    device), bob's phone swaps the two-party call for the meeting without ringing
    and hangs up on alice's direct call, and from then on bob hears alice through
    the meeting."""
    import os
    import select
    import sys

    root = Path(__file__).parents[2]
    play_alice = tone_wav(tmp_path / "alice.wav", TONES["alice"], 2)
    play_bob = tone_wav(tmp_path / "bob.wav", TONES["bob"], 2)
    record = tmp_path / "bob-heard.wav"
    bob = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.pjsua_escalate", "bob", str(server.port),
         PASSWORDS["bob"], str(play_bob), str(record), "24"], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
        cwd=root)
    try:
        assert bob.stdout is not None
        # read the pipe's bytes as they come: a buffered readline() after select() can
        # pull the "listening" line into Python's buffer with the one before it, and
        # select() then waits for more output, which bob sends only when it exits
        fd = bob.stdout.fileno()
        first, found = "", None
        give_up = time.monotonic() + 20  # pjsua starts in about a second
        while found is None and time.monotonic() < give_up:
            if not select.select([fd], [], [], max(0.0, give_up - time.monotonic()))[0]:
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            first += chunk.decode(errors="replace")
            found = re.search(r"listening on (sip:bob@\S+)\n", first)  # the whole line
        assert found, first
        alice = subprocess.run(
            [sys.executable, "-m", "tests.integration.pjsua_escalate", "alice", str(server.port),
             PASSWORDS["alice"], found.group(1), str(play_alice), "16"],
            capture_output=True, text=True, timeout=60, cwd=root)
        bob_output = first + bob.communicate(timeout=40)[0]
    finally:
        if bob.poll() is None:
            bob.kill()
            bob.wait(timeout=10)
        assert server.stop() == 0
    said = alice.stdout + alice.stderr
    assert alice.returncode == 0, said + bob_output
    assert "alice-meeting: transfer status 200 final=True" in said
    assert "alice-bob: disconnected" in said  # bob hung up the replaced call
    assert "bob call 1: replaced by a new call" in bob_output, bob_output
    assert "bob call 1 (replacing): confirmed" in bob_output, bob_output
    log = server.log()
    assert re.search(r"conference \d+: ad-hoc meeting started by sip:alice@example.com", log)
    assert re.search(r"calling sip:bob@example.com's device at 127.0.0.1 as attendee", log), \
        log[-3000:]
    # seconds 7 to 12 (alice escalates after about 3 s and leaves after 16): the
    # direct call is gone, so alice's tone comes through the meeting
    raw = record.read_bytes()  # 8 kHz mono; pjsua2 left the header's sizes at 0
    data = raw[raw.index(b"data") + 8:]
    heard = np.frombuffer(data[:len(data) // 2 * 2], dtype=np.int16)
    assert len(heard) > 12 * 8000
    tail = heard[7 * 8000:12 * 8000]
    assert share(tail, TONES["alice"]) > 0.3, share(tail, TONES["alice"])
    assert share(tail, TONES["bob"]) < 0.05  # and not bob's own
