"""Real peers at the dial-in attendant: baresip and pjsua2 call the access number's SIP
URI, key in the meeting ID and passcode (RFC 4733 events, or in-band tones), say
their name and join a meeting where another participant plays a known tone."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from confserver.adapters.media.wav import read_wav
from confserver.media.dtmf import tone_for

from ..ports import DIALIN_RTP, server_range
from .media_helpers import read, share, tone_wav
from .mediation_setup import mediation_records
from .peers import Baresip, decoded_dump, require
from .server import RunningServer, cli, free_port

MEETING, PASSCODE = "7654321", "13579"
NUMBER = "+14255550100"
ACCESS_URI = f"sip:{NUMBER}@example.com"
ALICE_PW = "alice-secret"
ALICE_TONE, GUEST_TONE = 450.0, 1370.0

pytestmark = pytest.mark.integration


@pytest.fixture
def server(tmp_path: Path, prompt_audio: Path) -> Iterator[RunningServer]:
    srv = RunningServer(tmp_path, rtp_ports=server_range(DIALIN_RTP),
                        extra_config=f'[dialin]\nprompts = "{prompt_audio}"\n'
                                     f'custom_prompts = "{tmp_path / "custom"}"\n')
    srv.write_config()
    assert cli("user", "add", "sip:alice@example.com", "--password", ALICE_PW,
               "--extension", "4001", "--phone", "+14255550101", db=srv.db).returncode == 0
    assert cli("user", "set-pin", "sip:alice@example.com", "--pin", "24680",
               db=srv.db).returncode == 0
    for args in (("meeting", "create", "--organizer", "sip:alice@example.com", "--access",
                  "anonymous", "--passcode", PASSCODE, "--id", MEETING),
                 ("access-number", "add", NUMBER, "--name", "Redmond", "--language", "en-US",
                  "--also", "fr-FR"),
                 ("pin-policy", "set", "--max-failures", "3")):
        result = cli(*args, db=srv.db)
        assert result.returncode == 0, result.stderr
    srv.start()
    yield srv
    srv.stop()


def guest(server: RunningServer, tmp_path: Path, name: str, tone: float,
          seconds: int = 40) -> Baresip:
    """An anonymous caller (not one of the domain's users) sending a steady tone."""
    wav = tone_wav(tmp_path / f"{name}.wav", tone, seconds)
    return Baresip(tmp_path / name, f"<sip:{name}@guest.invalid>;regint=0;"
                   f'outbound="sip:127.0.0.1:{server.port}";audio_codecs=PCMU', wav)


def alice_in_meeting(server: RunningServer, tmp_path: Path, seconds: int) -> Baresip:
    wav = tone_wav(tmp_path / "alice.wav", ALICE_TONE, seconds + 5)
    alice = Baresip(tmp_path / "alice",
                    f"<sip:alice@example.com>;auth_pass={ALICE_PW};"
                    f'outbound="sip:127.0.0.1:{server.port}";regint=0;audio_codecs=PCMU', wav)
    alice.dial(f"sip:conf-{MEETING}@example.com", seconds)
    return alice


def cdrs(server: RunningServer) -> list[dict[str, object]]:
    result = cli("dialin", "cdrs", "--json", db=server.db)
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, object]] = json.loads(result.stdout)
    return rows


def test_baresip_joins_by_rfc4733_and_hears_and_is_heard(server: RunningServer,
                                                         tmp_path: Path) -> None:
    alice = alice_in_meeting(server, tmp_path, 38)
    alice.wait_for("Call established")
    caller = guest(server, tmp_path, "guest", GUEST_TONE)
    caller.dial(ACCESS_URI, 33)
    caller.wait_for("Call established")
    time.sleep(1.0)
    caller.keys(MEETING + "#")      # barges in on the welcome
    time.sleep(1.0)
    caller.keys(PASSCODE + "#")
    caller.finish(45)
    alice.finish(45)
    log = server.log()
    assert f"dial-in {NUMBER}: caller joined meeting {MEETING} in en-US" in log, log[-4000:]
    heard_by_guest = read(decoded_dump(caller.cfg))
    heard_by_alice = read(decoded_dump(alice.cfg))
    joined = seconds_between(log, "call from guest", "caller joined meeting")
    # after the announcement of the guest's recorded name (their own tone)
    start = int((joined + 6) * 8000)
    meeting = heard_by_guest[start:start + 3 * 8000]
    assert len(meeting) == 3 * 8000
    assert share(meeting, ALICE_TONE) > 0.2 and share(meeting, GUEST_TONE) < 0.001
    assert share(heard_by_alice[-5 * 8000:-1 * 8000], GUEST_TONE) > 0.2
    rows = cdrs(server)
    assert rows[0]["outcome"] == "joined" and rows[0]["conference_id"] == MEETING
    assert rows[0]["language"] == "en-US" and rows[0]["access_number"] == NUMBER
    assert 5 < float(rows[0]["joined_after"]) < 25  # type: ignore[arg-type]


def seconds_between(log: str, first: str, second: str) -> float:
    """Seconds between the server's log lines containing ``first`` and ``second``."""
    def stamp(text: str) -> float:
        line = next(line for line in log.splitlines() if text in line)
        clock = re.match(r"\S+ (\d+):(\d+):(\d+),(\d+)", line)
        assert clock is not None, line
        h, m, s, ms = (int(x) for x in clock.groups())
        return h * 3600 + m * 60 + s + ms / 1000
    return stamp(second) - stamp(first)


def run_pjsua(server: RunningServer, workdir: Path, tone: float, seconds: int,
              schedule: list[str]) -> tuple[str, Path]:
    workdir.mkdir(exist_ok=True)
    wav = tone_wav(workdir / "pjsua-tone.wav", tone, seconds + 5)
    record = workdir / "pjsua-heard.wav"
    result = subprocess.run(
        [sys.executable, "-m", "tests.integration.pjsua_peer", str(server.port), ACCESS_URI,
         str(wav), str(record), str(seconds), *schedule],
        capture_output=True, text=True, timeout=seconds + 30, cwd=Path(__file__).parents[2])
    return result.stdout + result.stderr, record


def test_pjsua2_joins_by_rfc4733_and_hears_and_is_heard(server: RunningServer,
                                                        tmp_path: Path) -> None:
    alice = alice_in_meeting(server, tmp_path, 38)
    alice.wait_for("Call established")
    output, record = run_pjsua(server, tmp_path / "pjsua", GUEST_TONE, 31,
                               [f"1.0:{MEETING}#", f"3.5:{PASSCODE}#"])
    alice.finish(45)
    log = server.log()
    assert "pjsua: call confirmed" in output, output[-2000:]
    assert f"dial-in {NUMBER}: caller joined meeting {MEETING} in en-US" in log, log[-4000:]
    rate, heard = read_wav(record)
    joined = seconds_between(log, "call from pjsua", "caller joined meeting")
    start = int((joined + 6) * rate)
    meeting = heard[start:start + 3 * rate]
    assert len(meeting) == 3 * rate
    assert share(meeting, ALICE_TONE, rate) > 0.2
    assert share(meeting, GUEST_TONE, rate) < 0.001
    assert share(read(decoded_dump(alice.cfg))[-5 * 8000:-1 * 8000], GUEST_TONE) > 0.2
    assert any(row["outcome"] == "joined" for row in cdrs(server))



def write_pcm(path: Path, pcm: np.ndarray) -> Path:
    import wave

    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(pcm.astype(np.int16).tobytes())
    return path


def test_inband_digits_from_a_wav_join_the_meeting(server: RunningServer,
                                                   tmp_path: Path) -> None:
    """The guest's audio is the keypad: DTMF tones in the stream, then its own tone."""
    alice = alice_in_meeting(server, tmp_path, 36)
    alice.wait_for("Call established")

    def keyed(keys: str) -> list[np.ndarray]:
        return [part for key in keys for part in (tone_for(key, 100), np.zeros(800))]
    t = np.arange(8000 * 30) / 8000
    audio = np.concatenate([np.zeros(16000), *keyed(MEETING + "#"), np.zeros(12000),
                            *keyed(PASSCODE + "#"), np.zeros(4000),
                            (8000 * np.sin(2 * np.pi * GUEST_TONE * t))])
    wav = write_pcm(tmp_path / "keypad.wav", audio)
    caller = Baresip(tmp_path / "guest", "<sip:guest@guest.invalid>;regint=0;"
                     f'outbound="sip:127.0.0.1:{server.port}";audio_codecs=PCMU', wav)
    caller.dial(ACCESS_URI, 30)
    caller.finish(45)
    alice.finish(45)
    log = server.log()
    digits = re.findall(r"dial-in \S+: digit (\S) \(inband\)", log)
    assert "".join(digits).startswith(MEETING + "#" + PASSCODE + "#"), (digits, log[-3000:])
    assert f"caller joined meeting {MEETING}" in log
    assert share(read(decoded_dump(alice.cfg))[-5 * 8000:-1 * 8000], GUEST_TONE) > 0.2


def best_match(heard: np.ndarray, prompt: np.ndarray) -> float:
    """The highest normalized correlation of ``prompt`` anywhere in ``heard``."""
    a = heard.astype(np.float64)
    b = prompt.astype(np.float64)
    b = b - b.mean()
    n = len(a) + len(b)
    size = 1 << (n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)[:len(a)]
    energy = np.convolve(a * a, np.ones(len(b)), "full")[len(b) - 1:len(b) - 1 + len(a)]
    return float(np.max(corr / (np.sqrt(energy * (b * b).sum()) + 1e-9)))


def test_no_input_offers_languages_and_continues_in_french(server: RunningServer,
                                                           prompt_audio: Path,
                                                           tmp_path: Path) -> None:
    caller = guest(server, tmp_path, "guest", GUEST_TONE)
    caller.dial(ACCESS_URI, 26)
    caller.wait_for("Call established")
    time.sleep(18.5)          # silence: after the first-digit timeout the language menu plays
    caller.keys("2")
    caller.finish(40)
    heard = read(decoded_dump(caller.cfg))
    built = prompt_audio / "{}" / "8000" / "{}.wav"

    def played(language: str, key: str) -> float:
        return best_match(heard, read_wav(str(built).format(language, key))[1])
    assert played("en-US", "welcome") > 0.8
    assert played("en-US", "language_option@1") > 0.8
    assert played("fr-FR", "language_option@2") > 0.8
    assert played("fr-FR", "enter_meeting_id") > 0.8
    assert played("en-US", "no_input") < 0.5   # the menu came instead of a retry
    rows = cdrs(server)
    assert rows[0]["language"] == "fr-FR" and rows[0]["outcome"] == "hung-up"


def test_an_unknown_meeting_id_is_asked_its_passcode_then_the_call_ends(
        server: RunningServer, tmp_path: Path) -> None:
    """A caller sweeping IDs learns nothing: an unknown meeting ID is asked for its
    passcode like a real one, and after three wrong ones the call ends."""
    caller = guest(server, tmp_path, "guest", GUEST_TONE)
    caller.dial(ACCESS_URI, 30)
    caller.wait_for("Call established")
    for keys in ("1111111#", "22222#", "33333#", "44444#"):
        time.sleep(0.8)
        caller.keys(keys)
    output = caller.finish(45)
    log = server.log()
    assert "goodbye (wrong-passcode)" in log, log[-3000:]
    assert re.search(r"attendant: wrong-passcode", log)
    assert re.search(r"session closed|Call terminated|terminated", output), output[-1500:]
    assert cdrs(server)[0]["outcome"] == "wrong-passcode"


def test_wrong_leader_pins_lock_the_pin(server: RunningServer, tmp_path: Path) -> None:
    caller = guest(server, tmp_path, "guest", GUEST_TONE)
    caller.dial(ACCESS_URI, 35)
    caller.wait_for("Call established")
    time.sleep(0.8)
    caller.keys(MEETING + "#")
    time.sleep(0.8)
    caller.keys("*")
    for wrong in ("11357", "22468", "33579"):
        time.sleep(0.8)
        caller.keys("4001#")
        time.sleep(0.5)
        caller.keys(wrong + "#")
        time.sleep(0.8)
    caller.finish(45)
    log = server.log()
    assert "PIN sign-in for sip:alice@example.com: locked" in log, log[-3000:]
    assert cdrs(server)[0]["outcome"] == "pin-locked"  # told as wrong PINs, recorded as locked
    # the lockout outlives the call: the right PIN is refused now
    from confserver.storage.database import open_database
    from confserver.storage.pins import PinStore

    db = open_database(server.db)
    try:  # for this caller, the guest's address
        assert PinStore(db).verify("4001", "24680", time.time(),
                                   "source:127.0.0.1").outcome == "locked"
    finally:
        db.close()


def test_leader_dialing_in_releases_the_lobby(server: RunningServer, tmp_path: Path) -> None:
    waiting = guest(server, tmp_path, "guest", GUEST_TONE, seconds=60)
    waiting.dial(ACCESS_URI, 50)
    waiting.wait_for("Call established")
    time.sleep(0.8)
    waiting.keys(MEETING + "#")
    time.sleep(0.8)
    waiting.keys(PASSCODE + "#")
    time.sleep(6)  # the leader arrives well after the guest reaches the lobby (PIN takes longer)
    leader = guest(server, tmp_path, "leader", ALICE_TONE)
    leader.dial(ACCESS_URI, 32)
    leader.wait_for("Call established")
    time.sleep(0.8)
    leader.keys(MEETING + "#")
    time.sleep(0.8)
    leader.keys("*4001#")
    time.sleep(0.5)
    leader.keys("24680#")
    leader.finish(50)
    waiting.finish(50)
    log = server.log()
    assert log.index("joins through the attendant as attendee (lobby)") < \
        log.index("sip:alice@example.com joins through the attendant as organizer"), log[-3000:]
    assert re.search(r"conference 7654321: p\d+ admitted from the lobby", log)
    heard = read(decoded_dump(waiting.cfg))
    joined = seconds_between(log, "call from guest", "joins through the attendant as organizer")
    start = int((joined + 7) * 8000)
    meeting = heard[start:start + 3 * 8000]
    assert len(meeting) == 3 * 8000 and share(meeting, ALICE_TONE) > 0.2
    rows = cdrs(server)
    assert {r["outcome"] for r in rows} == {"lobby", "joined"}
    assert any(r["identity"] == "sip:alice@example.com" for r in rows)


def test_pstn_call_through_a_gateway_reaches_the_attendant_and_joins(
        server: RunningServer, tmp_path: Path) -> None:
    """A phone behind a PSTN gateway (baresip plays both: the gateway's address is its
    own) dials the access number in national format; mediation normalizes it with the
    gateway's dial plan, hands the call to the attendant through the front end, and
    the caller keys in the meeting ID and passcode and joins alice's meeting."""
    alice = alice_in_meeting(server, tmp_path, 45)
    alice.wait_for("Call established")
    wav = tone_wav(tmp_path / "phone.wav", GUEST_TONE, 45)
    phone = Baresip(tmp_path / "phone", "<sip:+14255550199@pstn.invalid>;regint=0;"
                    f'outbound="sip:127.0.0.1:{server.port}";audio_codecs=PCMU', wav)
    phone_port = re.search(r"sip_listen 127\.0\.0\.1:(\d+)",
                           (phone.cfg / "config").read_text())
    assert phone_port is not None
    with server.reconfigured():
        for args in (("dialplan", "add", "pstn-in", "--scope", "gateway"),
                     ("dialplan", "rule", "pstn-in", "national", "--pattern", r"^(\d{10})$",
                      "--translation", "+1$1"),
                     ("gateway", "add", "pstn-gw", "--address", f"127.0.0.1:{phone_port.group(1)}",
                      "--set", "inbound_dial_plan=pstn-in", "--set", "probe_interval=0")):
            result = cli(*args, db=server.db)
            assert result.returncode == 0, result.stderr
    phone.dial("sip:4255550100@example.com", 38)
    phone.wait_for("Call established")
    time.sleep(1.0)
    phone.keys(MEETING + "#")
    time.sleep(1.0)
    phone.keys(PASSCODE + "#")
    phone.finish(50)
    alice.finish(50)
    log = server.log()
    assert f"dial-in {NUMBER}: caller joined meeting {MEETING} in en-US" in log, log[-4000:]
    heard_by_phone = read(decoded_dump(phone.cfg))
    assert share(heard_by_phone[-6 * 8000:-2 * 8000], ALICE_TONE) > 0.2
    assert share(read(decoded_dump(alice.cfg))[-6 * 8000:-2 * 8000], GUEST_TONE) > 0.2
    rows = cdrs(server)
    assert rows[0]["outcome"] == "joined" and rows[0]["caller_id"] == "+14255550199"
    record = mediation_records(server.db)[0]
    assert record["direction"] == "inbound" and record["gateway"] == "pstn-gw"
    assert record["normalized"] == NUMBER and record["rule"] == "national"
    assert record["target"] == ACCESS_URI and record["disposition"] == "completed"
    assert record["gateway_codec"] == "PCMU" and record["internal_codec"] == "opus"


def test_tones_from_an_inband_gateway_reach_the_attendant_as_rfc4733_events(
        server: RunningServer, tmp_path: Path) -> None:
    """A phone behind an analog gateway that passes DTMF only as tones (sipp plays
    the tones as G.711 RTP from the gateway's address) dials the access number:
    mediation hears the tones on the gateway leg and the attendant receives each
    digit once, as an RFC 4733 event."""
    from .media_helpers import DTMF_SCENARIO
    from .rtp_tools import inband_dtmf_pcap

    gateway_port = free_port()
    with server.reconfigured():
        result = cli("gateway", "add", "fxo", "--profile", "analog-ata-inband", "--address",
                     f"127.0.0.1:{gateway_port}", "--set", "probe_interval=0", db=server.db)
        assert result.returncode == 0, result.stderr
    pcap = tmp_path / "keys.pcap"
    inband_dtmf_pcap(pcap, MEETING + "#")
    plays = (f'  <pause milliseconds="1500"/>\n'
             f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'
             f'  <pause milliseconds="2500"/>')
    scenario = tmp_path / "fxo.xml"
    scenario.write_text(DTMF_SCENARIO.replace("sip:dtmf@[domain]", f"sip:{NUMBER}@[domain]")
                        .replace("{plays}", plays))
    run = subprocess.run(
        [require("sipp"), "-sf", str(scenario), f"127.0.0.1:{server.port}", "-i", "127.0.0.1",
         "-p", str(gateway_port), "-mi", "127.0.0.1", "-mp", str(free_port()), "-m", "1",
         "-key", "domain", "example.com", "-timeout", "40s", "-timeout_error", "-nostdin"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path)
    log = server.log()
    assert run.returncode == 0, run.stdout[-2000:] + log[-3000:]
    heard = re.findall(rf"dial-in {re.escape(NUMBER)}: digit (\S) \((\S+)\)", log)
    assert heard == [(digit, "rfc4733") for digit in MEETING + "#"], log[-3000:]
    record = mediation_records(server.db)[0]
    assert record["gateway"] == "fxo" and record["direction"] == "inbound"


# ------------------------------------------------------------------ the meeting's own address
CONFERENCE_URI = f"sip:conf-{MEETING}@example.com"


def test_a_guest_dialing_the_meetings_address_keys_the_passcode_then_joins(
        server: RunningServer, tmp_path: Path) -> None:
    """baresip, not one of the domain's users, calls sip:conf-ID: the attendant asks
    for the passcode (RFC 4733), then the guest is in the meeting and hears alice; a
    second guest who keys nothing never hears her (test_security sends one away
    after three wrong passcodes)."""
    alice = alice_in_meeting(server, tmp_path, 40)
    alice.wait_for("Call established")
    keyed = guest(server, tmp_path, "guest", GUEST_TONE)
    silent = guest(server, tmp_path, "silent", 700.0)
    keyed.dial(CONFERENCE_URI, 30)
    silent.dial(CONFERENCE_URI, 36)
    keyed.wait_for("Call established")
    silent.wait_for("Call established")
    time.sleep(1.0)
    keyed.keys(PASSCODE + "#")
    keyed.finish(45)
    silent.finish(50)
    alice.finish(50)
    log = server.log()
    assert f"dial-in conf-{MEETING}: caller joined meeting {MEETING}" in log, log[-4000:]
    assert "call from silent" in log
    heard = read(decoded_dump(keyed.cfg))
    joined = seconds_between(log, "call from guest", "caller joined meeting")
    start = int((joined + 4) * 8000)
    assert share(heard[start:start + 3 * 8000], ALICE_TONE) > 0.2
    never = read(decoded_dump(silent.cfg))
    # what the silent guest heard was prompts, never alice's steady tone: no second of
    # it is mostly 450 Hz (in the meeting, most seconds would be)
    seconds = [share(never[i:i + 8000], ALICE_TONE) for i in range(0, len(never) - 8000, 8000)]
    assert len(seconds) > 20 and max(seconds) < 0.2, max(seconds)


def test_pjsua2_dialing_the_meetings_address_keys_the_passcode_then_joins(
        server: RunningServer, tmp_path: Path) -> None:
    alice = alice_in_meeting(server, tmp_path, 34)
    alice.wait_for("Call established")
    wav = tone_wav(tmp_path / "pjsua-tone.wav", GUEST_TONE, 30)
    record = tmp_path / "pjsua-heard.wav"
    result = subprocess.run(
        [sys.executable, "-m", "tests.integration.pjsua_peer", str(server.port), CONFERENCE_URI,
         str(wav), str(record), "24", f"1.5:{PASSCODE}#"],
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[2])
    alice.finish(45)
    log = server.log()
    assert "pjsua: call confirmed" in result.stdout, result.stdout[-2000:]
    assert f"dial-in conf-{MEETING}: caller joined meeting {MEETING}" in log, log[-4000:]
    rate, heard = read_wav(record)
    joined = seconds_between(log, "call from pjsua", "caller joined meeting")
    start = int((joined + 4) * rate)
    assert share(heard[start:start + 3 * rate], ALICE_TONE, rate) > 0.2
    assert share(read(decoded_dump(alice.cfg)), GUEST_TONE) > 0.1  # she hears the guest
