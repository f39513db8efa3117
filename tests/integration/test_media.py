"""Media with real peers: baresip against sip:echo and sip:tone (PESQ, loss, G.722,
Opus), sipp playing RFC 2833 and in-band DTMF to sip:dtmf."""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pesq import pesq

from confserver.media.codecs.g711 import Pcmu

from ..ports import LOSSY_RTP, SERVER_RTP, SHARED_RTP, server_range
from .media_helpers import DTMF_SCENARIO, call, read_wav
from .peers import require
from .rtp_tools import LossyRelay, inband_dtmf_pcap
from .server import RunningServer, free_port

pytestmark = pytest.mark.integration








def start(workdir: Path, media_extra: str = "", rtp_ports: str = server_range(SERVER_RTP)) -> RunningServer:
    srv = RunningServer(workdir, rtp_ports=rtp_ports, media_extra=media_extra)
    srv.write_config()
    srv.add_user("alice", "alice-secret")
    srv.start()
    return srv


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start(tmp_path_factory.mktemp("media-server"))
    yield srv
    assert srv.stop() == 0




def echo_pesq(reference: np.ndarray, dump: Path) -> float:
    rate, received = read_wav(dump)
    assert rate == 8000
    n = min(len(reference), len(received))
    return float(pesq(8000, reference[:n], received[:n], "nb"))


def direct_g711(reference: np.ndarray) -> float:
    codec = Pcmu()
    return float(pesq(8000, reference, codec.decode(codec.encode(reference)), "nb"))


def test_echo_quality_matches_a_direct_g711_round_trip(server: RunningServer, tmp_path: Path,
                                                       speech_8k: np.ndarray) -> None:
    _, dump = call(server, tmp_path, "sip:echo@example.com", speech_8k)
    through_echo = echo_pesq(speech_8k, dump)
    direct = direct_g711(speech_8k)
    assert through_echo >= direct - 0.15, (through_echo, direct)


def test_echo_of_a_caller_sending_30ms_packets_matches_a_direct_g711_round_trip(
        server: RunningServer, tmp_path: Path, speech_8k: np.ndarray) -> None:
    """baresip packs 30 ms per packet (a=ptime:30): the echo takes its packets as they
    are, cuts them into the media clock's 20 ms frames and sends those back."""
    output, dump = call(server, tmp_path, "sip:echo@example.com", speech_8k, extra=";ptime=30")
    assert "a=ptime:30" in output, output[-3000:]
    through_echo = echo_pesq(speech_8k, dump)
    assert through_echo >= direct_g711(speech_8k) - 0.15, through_echo


def test_echo_over_srtp_matches_a_direct_g711_round_trip(server: RunningServer, tmp_path: Path,
                                                         speech_8k: np.ndarray) -> None:
    output, dump = call(server, tmp_path, "sip:echo@example.com", speech_8k,
                        extra=";mediaenc=srtp-mand")
    assert "RTP/SAVP" in output and "a=crypto:" in output
    through_echo = echo_pesq(speech_8k, dump)
    assert through_echo >= direct_g711(speech_8k) - 0.15


def test_echo_with_5_percent_loss_keeps_pesq_above_3(tmp_path: Path, speech_8k: np.ndarray) -> None:
    # the SDP names 127.0.0.2, where the relay drops 5% of the caller's packets on
    # their way to the server's jitter buffer and concealment
    srv = start(tmp_path, 'advertised_address = "127.0.0.2"', rtp_ports=server_range(LOSSY_RTP))
    relay = LossyRelay("127.0.0.2", "127.0.0.1", LOSSY_RTP, loss=0.05, seconds=60)
    try:
        _, dump = call(srv, tmp_path, "sip:echo@example.com", speech_8k)
    finally:
        relay.close()
        assert srv.stop() == 0
    assert relay.dropped > 0 and 0.02 < relay.dropped / (relay.dropped + relay.forwarded) < 0.09
    assert echo_pesq(speech_8k, dump) >= 3.0


def test_two_callers_on_one_shared_rtp_port_each_hear_only_themselves(
        tmp_path: Path, speech_8k: np.ndarray) -> None:
    # [media] shared_port: both calls' SDP names one port; the server tells the
    # callers apart by their source addresses, which must be what their SDP names
    # (baresip would otherwise name the machine's default interface)
    shared = SHARED_RTP.start
    srv = start(tmp_path, f"shared_port = {shared}", rtp_ports=server_range(SHARED_RTP))
    voices = {"a": speech_8k, "b": -speech_8k[::-1].copy()}
    results: dict[str, tuple[str, Path]] = {}

    def dial(name: str) -> None:
        workdir = tmp_path / name
        workdir.mkdir()
        results[name] = call(srv, workdir, "sip:echo@example.com", voices[name],
                             config_extra="net_interface 127.0.0.1")

    try:
        threads = [threading.Thread(target=dial, args=(name,)) for name in voices]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        assert srv.stop() == 0
    assert set(results) == {"a", "b"}
    for name, (output, dump) in results.items():
        assert f"m=audio {shared} RTP/AVP" in output
        assert len(read_wav(dump)[1]) > 8000, (name, srv.log()[-3000:])
        own = echo_pesq(voices[name], dump)
        other = echo_pesq(voices["b" if name == "a" else "a"], dump)
        assert own >= direct_g711(voices[name]) - 0.15 and other < 2.0, (name, own, other)


def test_tone_service_plays_1khz(server: RunningServer, tmp_path: Path) -> None:
    _, dump = call(server, tmp_path, "sip:tone@example.com", np.zeros(8000 * 3, np.int16))
    rate, received = read_wav(dump)
    spectrum = np.abs(np.fft.rfft(received[rate // 2:]))
    assert abs(np.argmax(spectrum) * rate / len(received[rate // 2:]) - 1000) < 10


@pytest.mark.parametrize("codec", ["G722", "opus"])
def test_wideband_echo_end_to_end(server: RunningServer, tmp_path: Path, speech_8k: np.ndarray,
                                  codec: str) -> None:
    from confserver.media.resample import Resampler

    output, dump = call(server, tmp_path, "sip:echo@example.com", speech_8k, codec=codec)
    rate, received = read_wav(dump)
    # what baresip decoded tells which codec the call really used
    assert rate == {"G722": 16000, "opus": 48000}[codec], (rate, output[-2000:])
    ref16 = Resampler(8000, 16000).process(speech_8k)
    got16 = Resampler(rate, 16000).process(received)
    n = min(len(ref16), len(got16))
    score = float(pesq(16000, ref16[:n], got16[:n], "wb"))
    if codec == "G722":
        # narrowband speech scores low in wideband PESQ through G.722 itself: judge
        # the echo against the same speech through one G.722 encode and decode here
        from confserver.media.codecs import default_registry

        g722 = default_registry().create("G722")
        frames = ref16[:len(ref16) // 320 * 320].reshape(-1, 320)
        direct = np.concatenate([g722.decode(g722.encode(f)) for f in frames])
        k = min(len(ref16), len(direct))
        floor = float(pesq(16000, ref16[:k], direct[:k], "wb")) - 0.2
    else:
        floor = 3.0
    assert score >= floor, (score, floor)




def play_to_dtmf(server: RunningServer, workdir: Path, pcaps: list[Path]) -> str:
    plays = "\n".join(
        f'  <nop><action><exec play_pcap_audio="{p}"/></action></nop>\n  <pause milliseconds="600"/>'
        for p in pcaps)
    scenario = workdir / "dtmf.xml"
    scenario.write_text(DTMF_SCENARIO.replace("{plays}", plays))
    result = subprocess.run(
        [require("sipp"), "-sf", str(scenario), f"127.0.0.1:{server.port}", "-i", "127.0.0.1",
         "-p", str(free_port()), "-mi", "127.0.0.1", "-mp", str(free_port()), "-m", "1",
         "-key", "domain", "example.com", "-timeout", "60s", "-timeout_error", "-nostdin"],
        capture_output=True, text=True, timeout=90, cwd=workdir)
    assert result.returncode == 0, result.stdout[-2000:]
    return result.stdout


def digits_logged(server: RunningServer, method: str) -> list[str]:
    return re.findall(rf"dtmf digit (\S) via {method} on call", server.log())


def test_rfc2833_pcaps_each_digit_once(server: RunningServer, tmp_path: Path) -> None:
    before = len(digits_logged(server, "rfc4733"))
    pcaps = [Path(f"/usr/share/sip-tester/dtmf_2833_{d}.pcap") for d in "0123456789"]
    play_to_dtmf(server, tmp_path, pcaps)
    assert digits_logged(server, "rfc4733")[before:] == list("0123456789")


def test_inband_tones_each_digit_once(server: RunningServer, tmp_path: Path) -> None:
    before = len(digits_logged(server, "inband"))
    pcap = tmp_path / "inband.pcap"
    inband_dtmf_pcap(pcap, "159*0#3D")
    play_to_dtmf(server, tmp_path, [pcap])
    assert digits_logged(server, "inband")[before:] == list("159*0#3D")
