"""Fixtures the real-peer tests share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dialin.catalog import load_catalogs
from dialin.prompt_build import build_prompts

from ..media.speech import speech
from .peers import require


@pytest.fixture(scope="session")
def prompt_audio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """en-US and fr-FR prompts, built once for the run with espeak-ng."""
    require("espeak-ng")
    out = tmp_path_factory.mktemp("prompts")
    build_prompts(load_catalogs(("en-US", "fr-FR")).values(), out)
    return out


# speech by two voices (English, French) at 8 kHz with a quarter second of silence
# around it: the source of the media tests' calls
@pytest.fixture(scope="module")
def speech_8k(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    directory = tmp_path_factory.mktemp("speech")
    parts = [speech(directory, v) for v in ("en-us", "fr")]
    pad = np.zeros(4000, np.int16)
    return np.concatenate([pad, *parts, pad])
