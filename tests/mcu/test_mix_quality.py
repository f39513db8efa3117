"""Speech through the mix keeps its quality: PESQ within 0.2 of a direct G.711 round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.mix_pesq import scores
from tests.media.speech import speech


def test_one_talker_through_the_mix_scores_close_to_plain_g711(tmp_path: Path) -> None:
    pad = np.zeros(4000, np.int16)
    reference = np.concatenate([pad, speech(tmp_path, "en-us"), speech(tmp_path, "de"), pad])
    plain, through_mix = scores(reference)
    assert plain - through_mix <= 0.2, (plain, through_mix)
