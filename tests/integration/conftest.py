"""Fixtures the real-peer tests share."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialin.catalog import load_catalogs
from dialin.prompt_build import build_prompts

from .peers import require


@pytest.fixture(scope="session")
def prompt_audio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """en-US and fr-FR prompts, built once for the run with espeak-ng."""
    require("espeak-ng")
    out = tmp_path_factory.mktemp("prompts")
    build_prompts(load_catalogs(("en-US", "fr-FR")).values(), out)
    return out
