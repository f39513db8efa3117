"""bench/mix_pesq: one talker heard through the mix by a G.711 listener, scored with PESQ.

    .venv/bin/python -m bench.mix_pesq

Speech (espeak-ng, English and French) goes through the MCU's audio path
in-process: G.711 encode and decode at the talker, the bridge (VAD and noise
gate, 16 kHz mixing, resampling, the shared encode), and G.711 decode at a
listener. Its narrowband PESQ is compared with the same speech through a
direct G.711 encode/decode; the issue's bound is a difference of at most 0.2.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from pesq import pesq

from confserver.mcu.bridge import AudioBridge
from confserver.media.codecs import default_registry
from confserver.media.codecs.g711 import Pcmu
from tests.media.speech import speech


class Collect:
    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    def send_payload(self, payload: bytes, csrc: tuple[int, ...] = ()) -> None:
        self.payloads.append(payload)

    def source_id(self) -> int | None:
        return None

    def set_pcm_rate(self, rate: int) -> bool:
        return False  # G.711 listeners: one rate


def scores(reference: np.ndarray) -> tuple[float, float]:
    """(PESQ of a direct G.711 round trip, PESQ through the mix) of 8 kHz speech."""
    reference = reference[: len(reference) // 160 * 160]
    bridge = AudioBridge(default_registry())
    talker, listener = Collect(), Collect()
    bridge.add("talker", talker, "PCMU", 8000)
    bridge.add("listener", listener, "PCMU", 8000)
    sender, receiver = Pcmu(), Pcmu()
    for i in range(0, len(reference), 160):
        bridge.put("talker", sender.decode(sender.encode(reference[i:i + 160])))
        bridge.put("listener", np.zeros(160, dtype=np.int16))
        bridge.tick()
    heard = np.concatenate([receiver.decode(p) for p in listener.payloads])
    direct_codec = Pcmu()
    direct = direct_codec.decode(direct_codec.encode(reference))
    return (float(pesq(8000, reference, direct, "nb")),
            float(pesq(8000, reference, heard[: len(reference)], "nb")))


def main() -> None:
    directory = Path(tempfile.mkdtemp(prefix="sb-pesq-"))
    pad = np.zeros(4000, np.int16)
    reference = np.concatenate([pad, speech(directory, "en-us"), speech(directory, "fr"), pad])
    plain, through_mix = scores(reference)
    print(f"PESQ (narrowband): direct G.711 {plain:.2f}, through the mix {through_mix:.2f}, "
          f"difference {plain - through_mix:.2f} (bound 0.2)")


if __name__ == "__main__":
    main()
