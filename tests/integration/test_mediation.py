"""Real peers at the mediation server: sipp plays PSTN gateways and SIP trunks
(answering, refusing with 503 or 404, never answering, challenging INVITE and
REGISTER with digest), and an internal user who calls numbers through them."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pesq import pesq

from confserver.media.resample import Resampler
from confserver.storage.database import open_database
from mediation.dialplan import NormalizationRule
from mediation.gateways import from_profile
from mediation.rates import ALWAYS
from mediation.routing import Route
from mediation.store import MediationStore

from .peers import SCENARIOS, require
from .server import RunningServer, cli, free_port
from .test_media import call as media_call
from .test_media import read_wav, speech_8k  # noqa: F401  (a module-scoped fixture)

pytestmark = pytest.mark.integration
ALICE_PW = "alice-secret"


class Gateway:
    """A sipp UAS playing one gateway on its own port."""

    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.workdir = workdir / name
        self.workdir.mkdir()
        self.proc: subprocess.Popen[str] | None = None

    def play(self, scenario: str, calls: int = 1, keys: dict[str, str] | None = None,
             timeout: int = 40, status: int | None = None) -> None:
        path = SCENARIOS / scenario
        if status is not None:  # sipp checks status codes before substituting keywords
            path = self.workdir / scenario.removesuffix(".in")
            path.write_text((SCENARIOS / scenario).read_text().replace("{status}", str(status)))
        cmd = [require("sipp"), "-sf", str(path), "-i", "127.0.0.1",
               "-p", str(self.port), "-mp", str(free_port()), "-m", str(calls),
               "-nostdin", "-timeout", f"{timeout}s", "-timeout_error", "-trace_msg",
               "-message_file", str(self.workdir / "messages.log"), "-trace_err",
               "-error_file", str(self.workdir / "errors.log")]
        for key, value in (keys or {}).items():
            cmd += ["-key", key, value]
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
    srv = RunningServer(tmp_path, rtp_ports="44000-44199")
    srv.write_config()
    db = srv.db
    ok("user", "add", "sip:alice@example.com", "--password", ALICE_PW, "--name", "Alice Smith",
       "--extension", "4001", "--phone", "+14255550101", db=db)
    # the routing set-up goes straight to the store (the CLI has its own tests)
    database = open_database(db)
    store = MediationStore(database)
    for name, gateway in gateways.items():
        # a real gateway model's profile, pointed at sipp (which speaks UDP here)
        store.add_gateway(from_profile(name, "audiocodes-mediant-1000", {
            "host": "127.0.0.1", "port": gateway.port, "transport": "udp",
            "failover_timer": 3, "probe_interval": 0}))
    store.add_plan("redmond", "global")
    for rule in (NormalizationRule("ten-digits", r"^(\d{10})$", "+1$1", 0),
                 NormalizationRule("international", r"^011(\d{7,15})$", "+$1", 0),
                 NormalizationRule("extensions", r"^(4\d{3})$", "$1", 0, True)):
        store.add_rule("redmond", rule)
    store.add_policy("local-only", ("local",), default=True)
    store.add_policy("worldwide", ("local", "international"))
    store.add_route(Route("north-america", r"^\+1\d{10}$", ("local",), ("dear", "cheap"),
                          alternate_caller_id="+14255550000"))
    store.add_route(Route("world", r"^\+[2-9]\d{6,14}$", ("international",), ("cheap",)))
    store.import_rates("cheap", [("1", 0.010, ALWAYS), ("1425", 0.008, ALWAYS),
                                 ("44", 0.020, ALWAYS)])
    store.import_rates("dear", [("1", 0.050, ALWAYS)])
    database.close()
    srv.start()
    yield srv
    srv.stop()


def call(server: RunningServer, workdir: Path, number: str, expect: int,
         hold_ms: int = 1500) -> subprocess.CompletedProcess[str]:
    """alice (digest-authenticated) calls ``number``; sipp checks the final status."""
    if expect == 200:
        block = f"""  <recv response="200" rrs="true"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:alice@[domain]>;tag=[pid]SIPpTag[call_number]
[routes]
[last_To:]
Call-ID: [call_id]
CSeq: 2 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  <pause milliseconds="{hold_ms}"/>
  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:alice@[domain]>;tag=[pid]SIPpTag[call_number]
[routes]
[last_To:]
Call-ID: [call_id]
CSeq: 3 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>"""
    else:
        block = f"""  <recv response="{expect}"/>
  <send><![CDATA[
ACK sip:[service]@[domain];user=phone SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:alice@[domain]>;tag=[pid]SIPpTag[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 2 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>"""
    scenario = workdir / f"call-{expect}.xml"
    scenario.write_text((SCENARIOS / "pstn_call.xml.in").read_text().replace(
        "{expect}", str(expect)).replace("{expect_block}", block))
    cmd = [require("sipp"), "-sf", str(scenario), f"127.0.0.1:{server.port}", "-i", "127.0.0.1",
           "-p", str(free_port()), "-mp", str(free_port()), "-m", "1", "-s", number,
           "-key", "domain", "example.com", "-au", "alice", "-ap", ALICE_PW,
           "-timeout", "25s", "-timeout_error", "-nostdin", "-trace_msg", "-message_file",
           str(workdir / f"call-{expect}-messages.log")]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=workdir)


def cdrs(server: RunningServer) -> list[dict[str, object]]:
    result = ok("mediation", "cdrs", "--json", db=server.db)
    rows: list[dict[str, object]] = json.loads(result.stdout)
    return rows


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
    from .test_conference import tone_wav
    from .test_dialin import Baresip

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
        server: RunningServer, tmp_path: Path, speech_8k: np.ndarray) -> None:  # noqa: F811
    """alice (baresip, Opus) calls a number whose 'gateway' is the server's own
    sip:echo over G.711: her speech crosses mediation to G.711 and comes back through
    it to Opus. PESQ of the round trip (both directions in series, so harsher than
    either) against what she said stays above 3.5."""
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
