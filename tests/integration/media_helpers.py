"""What the real-peer media tests share: WAV files in and out, a baresip call with
recorded audio, test tones and how much of a tone a recording holds, and the sipp
scenario that sends in-band DTMF."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from .peers import baresip_codec, baresip_config, decoded_dump, run_baresip
from .server import RunningServer


def read_wav(path: Path) -> tuple[int, np.ndarray]:
    """Rate and the first channel (baresip dumps Opus as 48 kHz stereo)."""
    with wave.open(str(path)) as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        return w.getframerate(), data.reshape(-1, w.getnchannels())[:, 0].copy()


def write_wav(path: Path, rate: int, pcm: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype(np.int16).tobytes())
    return path


def call(server: RunningServer, workdir: Path, target: str, source: np.ndarray,
         codec: str = "PCMU", seconds: int | None = None, extra: str = "",
         config_extra: str = "") -> tuple[str, Path]:
    wav = write_wav(workdir / "source.wav", 8000, source)
    account = (f"<sip:alice@example.com>;auth_pass=alice-secret;"
               f'outbound="sip:127.0.0.1:{server.port}";regint=0;'
               f'audio_codecs={baresip_codec(codec)}{extra}')
    cfg = baresip_config(workdir, account, wav)
    if config_extra:
        with (cfg / "config").open("a") as config:
            config.write(config_extra + "\n")
    duration = seconds or int(len(source) / 8000) + 2
    output = run_baresip(cfg, [f"/dial {target}"], seconds=duration)
    assert f"Call established: {target}" in output, output[-3000:]
    return output, decoded_dump(cfg)


DTMF_SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="DTMF to sip:dtmf">
  <send retrans="500"><![CDATA[
INVITE sip:dtmf@[domain] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:sipp@[domain]>;tag=[pid]SIPpTag[call_number]
To: <sip:dtmf@[domain]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=sipp 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15

]]></send>
  <recv response="100" optional="true"/>
  <recv response="200" rrs="true"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:sipp@[domain]>;tag=[pid]SIPpTag[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
{plays}
  <pause milliseconds="1000"/>
  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:sipp@[domain]>;tag=[pid]SIPpTag[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
"""


def tone_wav(path: Path, freq: float, seconds: float) -> Path:
    t = np.arange(int(8000 * seconds)) / 8000
    pcm = (8000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(pcm.tobytes())
    return path


def read(path: Path, rate: int = 8000) -> np.ndarray:
    """The WAV's samples, brought to ``rate`` (baresip dumps at its decoder's rate)."""
    with wave.open(str(path)) as wav:
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
        channels, found = wav.getnchannels(), wav.getframerate()
    if channels > 1:
        pcm = pcm[::channels]
    if found != rate:
        from confserver.media.resample import resample_whole

        pcm = resample_whole(np.ascontiguousarray(pcm), found, rate)
    return pcm


def share(pcm: np.ndarray, freq: float, rate: int = 8000) -> float:
    """The fraction of the signal's power within 15 Hz of ``freq``."""
    power = np.abs(np.fft.rfft(pcm.astype(np.float64))) ** 2
    hz = np.fft.rfftfreq(len(pcm), 1 / rate)
    return float(power[np.abs(hz - freq) <= 15].sum() / (power.sum() + 1e-9))
