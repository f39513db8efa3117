"""Real peers at the mediation server: sipp plays PSTN gateways and SIP trunks
(answering, refusing with 503 or 404, never answering, challenging INVITE and
REGISTER with digest), and an internal user who calls numbers through them."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from pesq import pesq

from confserver.media.codecs import default_registry
from confserver.media.codecs.base import try_pcm_rate
from confserver.media.codecs.g711 import Pcma, Pcmu
from confserver.media.resample import Resampler
from confserver.media.rtp import RtpPacket
from confserver.storage.database import open_database
from mediation.profiles import from_profile
from mediation.routing import Route
from mediation.store import MediationStore

from ..ports import MEDIATION_MEDIA_RTP, MEDIATION_RTP, MEDIATION_SHARED, server_range
from .media_helpers import call as media_call
from .media_helpers import read_wav
from .mediation_setup import (
    ALICE_PW,
    configure_routing,
    mediation_records,
    pstn_call_scenario,
)
from .peers import SCENARIOS, require
from .rtp_tools import RtpRecorder
from .server import RunningServer, cli, free_port

pytestmark = pytest.mark.integration


class Gateway:
    """A sipp UAS playing one gateway on its own port."""

    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.workdir = workdir / name
        self.workdir.mkdir()
        self.proc: subprocess.Popen[str] | None = None

    def play(self, scenario: str, calls: int = 1, keys: dict[str, str] | None = None,
             timeout: int = 40, status: int | None = None,
             fill: dict[str, str] | None = None, extra: tuple[str, ...] = ()) -> None:
        path = SCENARIOS / scenario
        fill = dict(fill or {})
        if status is not None:  # sipp checks status codes before substituting keywords
            fill["status"] = str(status)
        if fill:
            text = (SCENARIOS / scenario).read_text()
            for name, value in fill.items():
                text = text.replace("{" + name + "}", value)
            path = self.workdir / scenario.removesuffix(".in")
            path.write_text(text)
        cmd = [require("sipp"), "-sf", str(path), "-i", "127.0.0.1",
               "-p", str(self.port), "-mp", str(free_port()), "-m", str(calls),
               "-nostdin", "-timeout", f"{timeout}s", "-timeout_error", "-trace_msg",
               "-message_file", str(self.workdir / "messages.log"), "-trace_err",
               "-error_file", str(self.workdir / "errors.log")]
        for key, value in (keys or {}).items():
            cmd += ["-key", key, value]
        cmd += extra
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, cwd=self.workdir)
        time.sleep(0.3)  # let it bind

    def finish(self, timeout: float = 45) -> int:
        assert self.proc is not None
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        return self.proc.returncode

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def messages(self) -> str:
        path = self.workdir / "messages.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def detail(self) -> str:
        out = self.proc.stdout.read() if self.proc and self.proc.stdout else ""
        errors = self.workdir / "errors.log"
        return out[-1500:] + (errors.read_text(errors="replace")[-1500:] if errors.exists() else "")


def ok(*args: str, db: str) -> subprocess.CompletedProcess[str]:
    result = cli(*args, db=db)
    assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"
    return result


@pytest.fixture
def gateways(tmp_path: Path) -> Iterator[dict[str, Gateway]]:
    found = {name: Gateway(name, tmp_path) for name in ("cheap", "dear")}
    yield found
    for gateway in found.values():
        gateway.stop()


@pytest.fixture
def server(tmp_path: Path, gateways: dict[str, Gateway]) -> Iterator[RunningServer]:
    srv = RunningServer(tmp_path, rtp_ports=server_range(MEDIATION_RTP))
    srv.write_config()
    db = srv.db
    configure_routing(db, {name: gateway.port for name, gateway in gateways.items()})
    srv.start()
    yield srv
    srv.stop()


def call(server: RunningServer, workdir: Path, number: str, expect: int,
         hold_ms: int = 1500, hold: bool = False, refer_to: str | None = None,
         notifies: tuple[str, ...] = (), far_end_leaves: bool = False
         ) -> subprocess.CompletedProcess[str]:
    """alice (digest-authenticated) calls ``number``; sipp checks the final status
    (and with ``hold``, the answers to her hold and resume)."""
    scenario = pstn_call_scenario(workdir, expect, hold_ms, hold, refer_to, notifies,
                                  far_end_leaves)
    cmd = [require("sipp"), "-sf", str(scenario), f"127.0.0.1:{server.port}", "-i", "127.0.0.1",
           "-p", str(free_port()), "-mp", str(free_port()), "-m", "1", "-s", number,
           "-key", "domain", "example.com", "-au", "alice", "-ap", ALICE_PW,
           "-auth_uri", f"{number}@example.com", "-timeout", "25s", "-timeout_error",
           "-nostdin", "-trace_msg", "-message_file",
           str(workdir / f"call-{expect}-messages.log")]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=workdir)


def cdrs(server: RunningServer) -> list[dict[str, object]]:
    return mediation_records(server.db)


def check(result: subprocess.CompletedProcess[str], server: RunningServer,
          *gateways: Gateway) -> None:
    assert result.returncode == 0, (result.stdout[-2000:] + result.stderr[-1000:]
                                    + server.log()[-3000:]
                                    + "".join(g.detail() for g in gateways))


def test_cheapest_gateway_carries_the_call_with_translated_numbers(
        server: RunningServer, gateways: dict[str, Gateway], tmp_path: Path) -> None:
    cheap, dear = gateways["cheap"], gateways["dear"]
    cheap.play("gw_answer.xml")
    result = call(server, tmp_path, "(425)555-0123", 200)
    check(result, server, cheap)
    assert cheap.finish() == 0, cheap.detail()
    invite = cheap.messages()
    # the profile strips '+'; the route shows the site's main number as caller ID
    assert "INVITE sip:14255550123@127.0.0.1" in invite, invite[:1500]
    assert "From: <sip:14255550000@example.com>" in invite, invite[:1500]
    assert "P-Asserted-Identity: <sip:14255550000@example.com;user=phone>" in invite
    assert dear.proc is None
    record = cdrs(server)[0]
    assert record["gateway"] == "cheap" and record["route"] == "north-america"
    assert record["normalized"] == "+14255550123" and record["rule"] == "ten-digits"
    assert record["dial_plan"] == "redmond" and record["voice_policy"] == "local-only"
    assert record["usage"] == "local" and record["cost_per_minute"] == pytest.approx(0.008)
    assert record["disposition"] == "completed" and record["sip_status"] == 200
    assert record["internal_codec"] == "PCMU" and record["gateway_codec"] == "PCMU"


def test_fails_over_on_503_to_the_next_gateway(
        server: RunningServer, gateways: dict[str, Gateway], tmp_path: Path) -> None:
    cheap, dear = gateways["cheap"], gateways["dear"]
    cheap.play("gw_reject.xml.in", status=503)
    dear.play("gw_answer.xml")
    result = call(server, tmp_path, "4255550123", 200)
    check(result, server, cheap, dear)
    assert cheap.finish() == 0 and dear.finish() == 0, cheap.detail() + dear.detail()
    record = cdrs(server)[0]
    assert record["gateway"] == "dear" and record["attempts"] == "cheap:503,dear:200"


def alaw_payloads(pcap: Path) -> list[bytes]:
    """The RTP payloads of the packets in ``pcap`` (Ethernet, IPv4, UDP, RTP)."""
    data = pcap.read_bytes()
    payloads, offset = [], 24
    while offset + 16 <= len(data):
        length = int.from_bytes(data[offset + 8:offset + 12], "little")
        frame = data[offset + 16:offset + 16 + length]
        payloads.append(RtpPacket.parse(frame[14 + 20 + 8:]).payload)
        offset += 16 + length
    return payloads


def alaw_pcap() -> Path:
    """sipp's A-law audio capture (a gateway's ring-back or talk in the scenarios)."""
    pcap = Path(require("sipp")).parents[1] / "share" / "sip-tester" / "g711a.pcap"
    return pcap if pcap.exists() else Path("/usr/share/sip-tester/g711a.pcap")


def test_early_media_from_a_gateway_reaches_the_caller_before_the_answer(
        server: RunningServer, gateways: dict[str, Gateway], tmp_path: Path) -> None:
    """The gateway answers 183 with SDP and plays its ring-back (A-law) before the 200:
    alice gets a 183 with the server's answer, then a 200 repeating it, and the gateway
    leg's media session was already receiving during the early phase."""
    cheap = gateways["cheap"]
    cheap.play("gw_early.xml.in", fill={"pcap": str(alaw_pcap())})
    result = call(server, tmp_path, "4255550123", 200)
    check(result, server, cheap)
    assert cheap.finish() == 0, cheap.detail()
    log = (tmp_path / "call-200-messages.log").read_text(errors="replace")
    early = log.index("SIP/2.0 183 Session Progress")
    answer = log.index("SIP/2.0 200 OK", early)
    early_sdp = log[log.index("v=0", early):log.index("\n\n", log.index("v=0", early))]
    # she offered μ-law and A-law: the early answer takes the gateway's A-law (no transcoding)
    assert "m=audio" in early_sdp and "RTP/AVP 8 " in early_sdp
    final_sdp = log[log.index("v=0", answer):log.index("\n\n", log.index("v=0", answer))]
    assert final_sdp == early_sdp
    record = cdrs(server)[0]
    assert record["gateway_codec"] == "PCMA" and record["internal_codec"] == "PCMA"
    assert record["gateway_loss"] is not None  # RTP arrived on the gateway leg


def test_reliable_early_media_from_a_gateway_is_pracked_once(
        server: RunningServer, gateways: dict[str, Gateway], tmp_path: Path) -> None:
    """RFC 3262 with a real peer: the gateway's 183 requires 100rel; the server PRACKs
    it once (RAck naming the INVITE's CSeq), ignores the late resend, takes the early
    media and the answer, and the BYE's CSeq goes above the PRACK's."""
    cheap = gateways["cheap"]
    cheap.play("gw_early_reliable.xml.in", fill={"pcap": str(alaw_pcap())})
    result = call(server, tmp_path, "4255550123", 200)
    check(result, server, cheap)
    assert cheap.finish() == 0, cheap.detail()
    seen = cheap.messages()
    cseqs = {method: int(number) for number, method in
             re.findall(r"^CSeq: (\d+) (INVITE|PRACK|BYE)\s*$", seen, re.M)}
    assert seen.count("PRACK sip:") == 1, seen
    assert re.search(rf"^RAck: 1 {cseqs['INVITE']} INVITE\s*$", seen, re.M), seen
    assert cseqs["INVITE"] < cseqs["PRACK"] < cseqs["BYE"], cseqs
    record = cdrs(server)[0]
    assert record["gateway_codec"] == "PCMA" and record["gateway_loss"] is not None


def test_fails_over_when_a_gateway_never_answers(
        server: RunningServer, gateways: dict[str, Gateway], tmp_path: Path) -> None:
    cheap, dear = gateways["cheap"], gateways["dear"]
    cheap.play("gw_silent.xml")
    dear.play("gw_answer.xml")
    result = call(server, tmp_path, "4255550123", 200)
    check(result, server, cheap, dear)
    assert cheap.finish() == 0, cheap.detail()  # it saw the CANCEL
    assert dear.finish() == 0, dear.detail()
    assert cdrs(server)[0]["attempts"] == "cheap:timeout,dear:200"


def test_404_ends_the_attempt_without_failover(
        server: RunningServer, gateways: dict[str, Gateway], tmp_path: Path) -> None:
    cheap, dear = gateways["cheap"], gateways["dear"]
    cheap.play("gw_reject.xml.in", status=404)
    result = call(server, tmp_path, "4255550123", 404)
    check(result, server, cheap)
    assert cheap.finish() == 0, cheap.detail()
    assert dear.proc is None
    assert cdrs(server)[0]["attempts"] == "cheap:404"


def test_international_number_refused_without_the_usage(
        server: RunningServer, tmp_path: Path) -> None:
    result = call(server, tmp_path, "011442079460000", 403)
    check(result, server)
    log = (tmp_path / "call-403-messages.log").read_text(errors="replace")
    assert "SIP/2.0 403 Forbidden (no usage)" in log
    assert 'Warning: 399 example.com "voice policy local-only has no PSTN usage' in log
    record = cdrs(server)[0]
    assert record["disposition"] == "refused" and record["normalized"] == "+442079460000"
    # with the usage the same number is routed (and reaches the gateway)
    ok("voice-policy", "assign", "sip:alice@example.com", "worldwide", db=server.db)
    route = ok("route", "test", "011442079460000", "--user", "sip:alice@example.com",
               "--json", db=server.db)
    assert json.loads(route.stdout)["attempts"][0]["gateway"] == "cheap"


def test_trunk_answers_the_invite_challenge(
        server: RunningServer, gateways: dict[str, Gateway], tmp_path: Path) -> None:
    trunk = gateways["cheap"]
    with server.reconfigured():
        ok("gateway", "set", "cheap", "username=enterprise", "password=trunk-secret",
           "strip_plus=false", db=server.db)
    trunk.play("trunk_challenge.xml")
    result = call(server, tmp_path, "4255550123", 200)
    check(result, server, trunk)
    assert trunk.finish() == 0, trunk.detail()
    messages = trunk.messages()
    assert "Authorization: Digest" in messages
    assert "INVITE sip:+14255550123@127.0.0.1" in messages
    assert cdrs(server)[0]["gateway_codec"] == "PCMA"


def test_registration_trunk_registers_and_refreshes(
        server: RunningServer, gateways: dict[str, Gateway], tmp_path: Path) -> None:
    registrar = gateways["dear"]
    registrar.play("trunk_registrar.xml", timeout=30)
    ok("gateway", "add", "itsp", "--profile", "itsp-registration-trunk", "--address",
       "127.0.0.1:5999", "--set", f"registrar=127.0.0.1:{registrar.port}",
       "--set", "username=enterprise", "--set", "password=trunk-secret",
       "--set", "probe_interval=0", db=server.db)
    # registered (4 s granted), then refreshed before expiry: the scenario ends after both
    assert registrar.finish(timeout=30) == 0, registrar.detail() + server.log()[-3000:]
    assert "registered at" in server.log()


def test_rfc4733_digits_cross_to_an_inband_gateway_and_opus_meets_g711(
        server: RunningServer, tmp_path: Path) -> None:
    """alice (baresip, Opus, RFC 4733 keypad) calls a number routed to a gateway whose
    profile wants in-band DTMF; the 'gateway' is the server's own sip:dtmf service
    (the called number translated to 'dtmf'), which logs the digits it hears in the
    G.711 audio."""
    from .media_helpers import tone_wav
    from .peers import Baresip

    with server.reconfigured():
        database = open_database(server.db)
        store = MediationStore(database)
        store.add_gateway(from_profile("fxo", "analog-ata-inband", {
            "host": "127.0.0.1", "port": server.port, "probe_interval": 0, "max_calls": 0,
            "called_translations": [[".*", "dtmf"]]}))
        store.add_route(Route("fxo-line", r"^\+8\d{9}$", ("local",), ("fxo",), priority=-1))
        database.close()
    wav = tone_wav(tmp_path / "alice.wav", 440.0, 20)
    alice = Baresip(tmp_path / "alice", f"<sip:alice@example.com>;auth_pass={ALICE_PW};"
                    f'outbound="sip:127.0.0.1:{server.port}";regint=0;audio_codecs=opus/48000/2', wav)
    alice.dial("sip:+8005550100@example.com", 14)
    alice.wait_for("Call established")
    time.sleep(1.0)
    alice.keys("159#", gap=0.4)
    alice.finish(30)
    log = server.log()
    heard = re.findall(r"dtmf digit (\S) via (\S+)", log)
    assert heard == [("1", "inband"), ("5", "inband"), ("9", "inband"), ("#", "inband")], \
        log[-3000:]
    record = cdrs(server)[0]
    assert record["gateway"] == "fxo" and record["internal_codec"] == "opus"
    assert record["gateway_codec"] == "PCMU" and record["disposition"] == "completed"


def test_opus_user_and_g711_line_hear_each_other_clearly(
        server: RunningServer, tmp_path: Path, speech_8k: np.ndarray) -> None:
    """alice (baresip, Opus) calls a number whose 'gateway' is the server's own
    sip:echo over G.711: her speech crosses mediation to G.711 and comes back through
    it to Opus. PESQ of the round trip (both directions in series, so harsher than
    either) against what she said stays above 3.5."""
    with server.reconfigured():
        database = open_database(server.db)
        store = MediationStore(database)
        store.add_gateway(from_profile("line", "generic-sip", {
            "host": "127.0.0.1", "port": server.port, "probe_interval": 0, "codecs": "PCMU",
            "called_translations": [[".*", "echo"]]}))
        store.add_route(Route("echo-line", r"^\+7\d{9}$", ("local",), ("line",), priority=-1))
        database.close()
    _output, dump = media_call(server, tmp_path, "sip:+7005550100@example.com", speech_8k,
                               codec="opus/48000/2")
    rate, received = read_wav(dump)
    heard = Resampler(rate, 8000).process(received) if rate != 8000 else received
    n = min(len(speech_8k), len(heard))
    score = float(pesq(8000, speech_8k[:n], heard[:n], "nb"))
    record = cdrs(server)[0]
    assert record["internal_codec"] == "opus" and record["gateway_codec"] == "PCMU"
    print(f"PESQ through mediation (Opus -> G.711 -> Opus): {score:.2f}")
    assert score >= 3.5, score


def g722_g711_round_trip_pesq(reference: np.ndarray) -> float:
    """PESQ of ``reference`` (8 kHz) through what a G.722 caller's speech meets on its way
    to an echoing G.711 line and back, computed here: G.722 encoded at 16 kHz,
    decoded as its lower sub-band, G.711, encoded as a lower sub-band and decoded
    at 16 kHz."""
    registry = default_registry()
    caller, caller_hears = registry.create("G722"), registry.create("G722")
    server = registry.create("G722")
    assert try_pcm_rate(server, 8000)
    wide = Resampler(8000, 16000).process(reference)
    line = np.concatenate([server.decode(caller.encode(wide[i:i + 320]))
                           for i in range(0, len(wide) - 319, 320)])
    line = Pcmu().decode(Pcmu().encode(line))
    back = np.concatenate([caller_hears.decode(server.encode(line[i:i + 160]))
                           for i in range(0, len(line) - 159, 160)])
    heard = Resampler(16000, 8000).process(back)
    n = min(len(reference), len(heard))
    return float(pesq(8000, reference[:n], heard[:n], "nb"))


@pytest.mark.parametrize("ports, codec", [("shared port", "PCMU"), ("ports of their own", "PCMU"),
                                         ("shared port", "G722"), ("ports of their own", "G722")])
def test_a_relayed_call_crosses_in_c_and_sounds_as_g711_does(
        gateways: dict[str, Gateway], tmp_path: Path, ports: str, codec: str,
        speech_8k: np.ndarray) -> None:
    """alice (baresip, PCMU or G.722) calls through a G.711 gateway that echoes her
    audio (sipp -rtp_echo), on a server with one shared RTP port or a port pair per
    call. Both legs PCMU: the pair is relayed untouched; alice on G.722: each packet
    is converted between G.722 and G.711 as it passes (packet_convert.py). Either
    way the pair is lent to the compiled relay (fastrelay.c), and her speech comes
    back as a direct G.711 round trip would."""
    shared = f"shared_port = {MEDIATION_SHARED.start}" if ports == "shared port" else ""
    srv = RunningServer(tmp_path / "srv", rtp_ports=server_range(MEDIATION_MEDIA_RTP),
                        media_extra=shared)
    srv.write_config()
    configure_routing(srv.db, {name: gateway.port for name, gateway in gateways.items()})
    srv.start()
    try:
        gateways["cheap"].play("gw_answer.xml", extra=("-rtp_echo",))
        # baresip's SDP names the loopback address it sends from: a shared port tells
        # calls apart by source and takes no address other than the SDP's host
        _output, dump = media_call(srv, tmp_path, "sip:+14255550123@example.com", speech_8k,
                                   codec=codec, config_extra="net_interface 127.0.0.1")
    finally:
        srv.stop()
    rate, received = read_wav(dump)
    assert rate == (16000 if codec == "G722" else 8000)  # what alice's codec decoded
    if rate != 8000:
        received = Resampler(rate, 8000).process(received)
    n = min(len(speech_8k), len(received))
    score = float(pesq(8000, speech_8k[:n], received[:n], "nb"))
    direct = float(pesq(8000, speech_8k, Pcmu().decode(Pcmu().encode(speech_8k)), "nb"))
    allowance = 0.3
    if codec == "G722":
        # her G.722 crosses the codecs four times: judge against that chain computed
        # here, allowing for baresip resampling her 8 kHz file to 16 kHz (about 0.35)
        direct, allowance = g722_g711_round_trip_pesq(speech_8k), 0.5
    print(f"PESQ {codec} relayed in C through mediation and back: {score:.2f} "
          f"(direct {direct:.2f})")
    found = re.findall(rf"compiled relay \({ports}\): (\d+) packets relayed", srv.log())
    assert found and int(found[-1]) > 200, srv.log()[-3000:]  # both ways, seconds of speech
    record = mediation_records(srv.db)[0]
    assert record["internal_codec"] == codec and record["gateway_codec"] == "PCMU"
    assert record["disposition"] == "completed"
    assert score >= direct - allowance, (score, direct)


def test_caller_hears_local_ring_back_while_the_gateway_rings_without_media(
        server: RunningServer, gateways: dict[str, Gateway], tmp_path: Path) -> None:
    """The gateway sends a plain 180 and answers 3 s later: alice (baresip) gets a 183
    and hears the US ring-back (440 + 480 Hz, 2 s on) from the server until then."""
    cheap = gateways["cheap"]
    cheap.play("gw_ring_late_answer.xml")
    silence = np.zeros(8000 * 6, dtype=np.int16)
    output, dump = media_call(server, tmp_path, "sip:+14255550123@example.com", silence)
    assert cheap.finish() == 0, cheap.detail()
    assert "183" in output or "Session Progress" in output, output[-3000:]
    rate, received = read_wav(dump)
    heard = Resampler(rate, 8000).process(received) if rate != 8000 else received
    level = np.sqrt((heard[: len(heard) // 80 * 80].reshape(-1, 80).astype(float) ** 2)
                    .mean(axis=1))  # per 10 ms
    loud = np.flatnonzero(level > 200)
    assert len(loud) > 120, "no ring-back heard"  # at least 1.2 of its 2 s
    start = loud[0]
    tone = heard[(start + 20) * 80:(start + 170) * 80].astype(float)
    spectrum = np.abs(np.fft.rfft(tone * np.hanning(len(tone))))
    freqs = np.fft.rfftfreq(len(tone), 1 / 8000)
    strongest = freqs[np.argmax(spectrum)]
    apart = np.abs(freqs - strongest) > 15  # the next peak, not the first one's skirt
    second = freqs[apart][np.argmax(spectrum[apart])]
    assert sorted([strongest, second]) == pytest.approx([440, 480], abs=5)
    # the cadence: 2 s on, then silence until the gateway answers (it sends nothing)
    assert level[start + 210:start + 280].max() < 100
    record = cdrs(server)[0]
    assert record["disposition"] == "completed" and record["gateway_codec"] == "PCMU"


def test_a_trunk_that_requires_srtp_carries_the_call_encrypted(
        server: RunningServer, tmp_path: Path, speech_8k: np.ndarray) -> None:
    """The 'trunk' is the server's own sip:echo with srtp=required: the trunk leg is
    keyed by SDES and encrypted, alice's leg is plain RTP, and her speech comes back
    through both legs (a wrong key would leave nothing to score). Both legs are PCMU,
    so mediation relays the packets rather than decoding them."""
    with server.reconfigured():
        database = open_database(server.db)
        store = MediationStore(database)
        store.add_gateway(from_profile("secure", "itsp-static-trunk", {
            "host": "127.0.0.1", "port": server.port, "probe_interval": 0, "codecs": "PCMU",
            "srtp": "required", "srtp_keys_in_clear": True,  # UDP: the admin allows it
            "called_translations": [[".*", "echo"]]}))
        store.add_route(Route("secure-line", r"^\+7\d{9}$", ("local",), ("secure",),
                              priority=-1))
        database.close()
    _output, dump = media_call(server, tmp_path, "sip:+7005550100@example.com", speech_8k)
    rate, received = read_wav(dump)
    assert rate == 8000
    n = min(len(speech_8k), len(received))
    score = float(pesq(8000, speech_8k[:n], received[:n], "nb"))
    record = cdrs(server)[0]
    assert record["gateway"] == "secure" and record["disposition"] == "completed"
    assert record["gateway_srtp"] is True and record["internal_srtp"] is False
    # both legs PCMU: packets were relayed untouched (decrypted, re-encrypted) on the way
    assert "relayed untouched (PCMU)" in server.log()
    assert score >= 3.5, score


def test_a_hold_and_a_resume_reach_the_gateway(
        server: RunningServer, gateways: dict[str, Gateway], tmp_path: Path) -> None:
    """alice holds (a=sendonly) and resumes: each time she gets the mirrored answer and
    the gateway gets a re-INVITE in its own dialog with the same direction (both sipp
    scenarios check the SDP)."""
    cheap = gateways["cheap"]
    cheap.play("gw_hold.xml")
    result = call(server, tmp_path, "4255550123", 200, 800, hold=True)
    check(result, server, cheap)
    assert cheap.finish() == 0, cheap.detail()
    assert cdrs(server)[0]["disposition"] == "completed"


def test_a_gateway_moving_the_call_to_another_codec_gets_an_answer_in_it(
        server: RunningServer, gateways: dict[str, Gateway], tmp_path: Path) -> None:
    """The gateway answers in mu-law, then re-INVITEs offering A-law only: the answer
    takes A-law on the same port (sipp checks the m-line), the gateway's A-law audio
    is received and the call record names the codec the call ended on."""
    cheap = gateways["cheap"]
    cheap.play("gw_codec_change.xml.in", fill={"pcap": str(alaw_pcap())})
    result = call(server, tmp_path, "4255550123", 200, 2500)
    check(result, server, cheap)
    assert cheap.finish() == 0, cheap.detail()
    seen = cheap.messages()
    ports = re.findall(r"^m=audio (\d+) RTP/AVP", seen, re.M)
    # our offer, the gateway's answer, its re-offer, our answer: ours keep one port
    assert len(ports) == 4 and ports[0] == ports[3], ports
    record = cdrs(server)[0]
    assert record["disposition"] == "completed" and record["gateway_codec"] == "PCMA", record
    assert record["gateway_loss"] is not None


def transfer_from_cheap_to_dear(server: RunningServer, gateways: dict[str, Gateway],
                                workdir: Path) -> None:
    """alice calls a number (the phone behind "cheap" answers) and transfers the call
    to another number, which "cheap" (playing one call) leaves to "dear" after its
    failover timer; every party's scenario must finish cleanly."""
    cheap, dear = gateways["cheap"], gateways["dear"]
    result = call(server, workdir, "4255550123", 200, 800,
                  refer_to="sip:4255550177@example.com",
                  notifies=("100 Trying", "180 Ringing", "200 OK"))
    check(result, server, cheap, dear)
    assert dear.finish() == 0, dear.detail()
    assert cheap.finish() == 0, cheap.detail()


def test_a_transfer_mediation_handles_connects_the_phone_to_the_new_number(
        server: RunningServer, gateways: dict[str, Gateway], tmp_path: Path) -> None:
    """alice, talking to a phone behind "cheap", transfers it (REFER) to another
    number: the gateway's refer setting is "handle", so mediation calls the number
    itself ("cheap" plays one call only, so the new call fails over to "dear" after
    its timer), NOTIFYs alice until the answer and swaps the new leg in; alice hangs
    up; when the new party hangs up, the phone behind "cheap" gets the BYE."""
    cheap, dear = gateways["cheap"], gateways["dear"]
    cheap.play("gw_answer.xml")
    dear.play("gw_answer_hangup.xml")
    transfer_from_cheap_to_dear(server, gateways, tmp_path)
    record = cdrs(server)[0]
    assert record["transferred_to"] == "+14255550177", record
    assert record["disposition"] == "completed" and record["gateway"] == "cheap"


def _sent_at(gateway: Gateway, first_line: str) -> float:
    """When sipp (playing ``gateway``) sent the message starting with ``first_line``:
    the wall-clock time its message log stamps on it."""
    for stamp, body in re.findall(r"^-+ (\d{4}-\d\d-\d\d [\d:.]+)\n(.*?)(?=^-+ \d{4}-|\Z)",
                                  gateway.messages(), re.M | re.S):
        if "message sent" in body and f"\n{first_line}" in body:
            return datetime.fromisoformat(stamp).timestamp()
    raise AssertionError(f"{gateway.name} never sent {first_line!r}")


def test_the_phone_party_hears_the_transfer_targets_early_media(
        server: RunningServer, gateways: dict[str, Gateway], tmp_path: Path) -> None:
    """alice transfers the phone behind "cheap" to a number whose gateway ("dear", after
    "cheap" fails over) answers 183 with A-law audio and only 3 s later 200: the phone
    hears our ring-back while the target is sought, then the target's own early media
    (transcoded to its μ-law) before the target answers."""
    cheap, dear = gateways["cheap"], gateways["dear"]
    phone = RtpRecorder(seconds=40)
    try:
        cheap.play("gw_answer_media_to.xml.in", fill={"rtp_port": str(phone.port)})
        dear.play("gw_early_hangup.xml.in", fill={"pcap": str(alaw_pcap()),
                                                  "early_ms": "3000"})
        transfer_from_cheap_to_dear(server, gateways, tmp_path)
    finally:
        phone.close()
    early_at = _sent_at(dear, "SIP/2.0 183 ")
    answered_at = _sent_at(dear, "SIP/2.0 200 OK")
    codec = Pcmu()
    arrivals = np.array([at for at, _ in phone.packets])
    assert {packet.payload_type for _, packet in phone.packets} == {0}
    heard = np.concatenate([codec.decode(packet.payload) for _, packet in phone.packets])
    starts = np.cumsum([0] + [len(packet.payload) for _, packet in phone.packets])[:-1]
    # before the target's 183: our US ring-back (440 + 480 Hz) reached the phone
    before = heard[:starts[np.searchsorted(arrivals, early_at)]].astype(float)
    level = np.sqrt((before[:len(before) // 80 * 80].reshape(-1, 80) ** 2).mean(axis=1))
    loud = np.flatnonzero(level > 500)
    assert len(loud) > 100, "no ring-back before the early media"  # 1 s of its 2 s on
    ringing = before[loud[0] * 80:][:8000]
    spectrum = np.abs(np.fft.rfft(ringing * np.hanning(len(ringing))))
    freqs = np.fft.rfftfreq(len(ringing), 1 / 8000)
    tone = spectrum[(np.abs(freqs - 440) < 8) | (np.abs(freqs - 480) < 8)].sum()
    assert tone > 0.5 * spectrum.sum(), "the phone heard something other than ring-back"
    # the target's early media: 2 s of the capture found in what the phone heard
    sent = Pcma().decode(b"".join(alaw_payloads(alaw_pcap())))[8 * 600:8 * 2600].astype(float)
    got = heard.astype(float)
    n = 1 << int(np.ceil(np.log2(len(got) + len(sent))))
    corr = np.fft.irfft(np.fft.rfft(got, n) * np.conj(np.fft.rfft(sent, n)), n)[:len(got)]
    start = int(np.argmax(corr))
    window = got[start:start + len(sent)]
    similarity = corr[start] / (np.linalg.norm(sent) * np.linalg.norm(window))
    assert similarity > 0.9, similarity
    found_at = arrivals[np.searchsorted(starts, start, side="right") - 1]
    assert early_at < found_at < answered_at, (early_at, found_at, answered_at)
    record = cdrs(server)[0]
    assert record["transferred_to"] == "+14255550177" and record["disposition"] == "completed"


def test_a_trunk_set_to_pass_refer_carries_out_the_transfer(
        server: RunningServer, gateways: dict[str, Gateway], tmp_path: Path) -> None:
    """With refer = "pass" the trunk gets the REFER (the number as it wants numbers:
    no '+', user=phone), its NOTIFY reaches alice, and its BYE ends her leg."""
    cheap = gateways["cheap"]
    with server.reconfigured():
        ok("gateway", "set", "cheap", "refer=pass", db=server.db)
    cheap.play("gw_refer.xml")
    result = call(server, tmp_path, "4255550123", 200, 800,
                  refer_to="sip:4255550177@example.com", notifies=("100 Trying", "200 OK"),
                  far_end_leaves=True)
    check(result, server, cheap)
    assert cheap.finish() == 0, cheap.detail()
    record = cdrs(server)[0]
    assert record["transferred_to"] == "+14255550177" and record["disposition"] == "completed"
