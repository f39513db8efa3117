"""Every language's catalog has every prompt, with the right placeholders; prompt audio
is built, skipped when built, and an admin's recording takes precedence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from confserver.adapters.media.wav import read_wav
from confserver.storage.access_numbers import LANGUAGES
from dialin.catalog import (
    CATALOG_DIRECTORY,
    PROMPT_IDS,
    Catalog,
    CatalogError,
    check_catalog,
    load_catalog,
)
from dialin.flow import BEEP, Segment
from dialin.prompt_build import build_prompts, write_wav
from dialin.prompt_store import PromptStore


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalog_is_complete(language: str) -> None:
    catalog = load_catalog(CATALOG_DIRECTORY / f"{language}.toml")
    assert catalog.language == language
    assert set(catalog.texts) == set(PROMPT_IDS)
    assert check_catalog(catalog) == []


def test_one_catalog_file_per_language_and_no_more() -> None:
    assert sorted(p.stem for p in CATALOG_DIRECTORY.glob("*.toml")) == sorted(LANGUAGES)


def test_missing_and_malformed_catalogs_are_reported(tmp_path: Path) -> None:
    text = (CATALOG_DIRECTORY / "en-US.toml").read_text()
    broken = tmp_path / "xx.toml"
    broken.write_text(text.replace('goodbye = "Thank you for calling. Goodbye."\n', "")
                      .replace("{digits}", "{digit}"))
    with pytest.raises(CatalogError, match="missing prompt ids: goodbye") as info:
        load_catalog(broken)
    assert "meeting_not_found" in str(info.value)
    broken.write_text("language = ")
    with pytest.raises(CatalogError, match="not valid TOML"):
        load_catalog(broken)


def test_pieces_split_names_and_expand_option_keys() -> None:
    catalog = load_catalog(CATALOG_DIRECTORY / "fr-FR.toml")
    pieces = catalog.pieces()
    assert pieces["language_option@2"] == "Pour le français, appuyez sur le deux."
    assert "has_joined" not in pieces and pieces["has_joined.1"] == "a rejoint la réunion."
    ja = load_catalog(CATALOG_DIRECTORY / "ja-JP.toml").pieces()
    assert ja["meeting_not_found.0"].startswith("もうしわけございません")  # read from kana


def _tiny_catalog() -> Catalog:
    texts = {p: "one" for p in PROMPT_IDS}
    texts.update(language_option="press {digit}", meeting_not_found="no {digits} here",
                 has_joined="{name} joined", has_left="{name} left")
    return Catalog("en-US", "English", "en-us", texts, {})


def test_build_skips_what_is_built_and_store_prefers_admin_recordings(tmp_path: Path) -> None:
    catalog = _tiny_catalog()
    out = tmp_path / "built"
    seen: list[tuple[int, int]] = []
    first = build_prompts([catalog], out, progress=lambda d, t: seen.append((d, t)))
    assert first.built == len(catalog.pieces()) and first.skipped == 0
    assert seen[-1] == (first.built, first.built)
    rate, pcm = read_wav(out / "en-US" / "8000" / "welcome.wav")
    assert rate == 8000 and 0.1 < len(pcm) / rate < 2.0
    assert build_prompts([catalog], out).built == 0  # nothing changed
    catalog.texts["goodbye"] = "bye now"
    assert build_prompts([catalog], out).built == 1  # only what changed

    custom = tmp_path / "custom"
    write_wav(custom / "en-US" / "welcome.wav", 16000, np.full(1600, 1234, dtype=np.int16))
    store = PromptStore(out, custom)
    assert np.all(store.piece("en-US", "welcome", 16000) == 1234)
    assert store.source_of("en-US", "goodbye", 8000) == out / "en-US" / "8000" / "goodbye.wav"
    audio = store.render([Segment("meeting_not_found", "en-US", "42"), Segment(BEEP, "en-US")],
                         8000)
    pieces = [store.piece("en-US", k, 8000) for k in ("meeting_not_found.0", "digit_4",
                                                      "digit_2", "meeting_not_found.1")]
    assert len(audio) > sum(len(p) for p in pieces) + 8000 * 0.4
    missing = store.piece("de-DE", "welcome", 8000)  # never built: a short silence
    assert not np.any(missing)


def test_encoded_plays_are_shared_and_bounded(tmp_path: Path) -> None:
    from confserver.media.codecs.g711 import Pcmu
    from dialin import prompt_store

    custom = tmp_path / "custom"
    write_wav(custom / "en-US" / "welcome.wav", 8000, np.full(1000, 500, dtype=np.int16))
    store = PromptStore(tmp_path / "built", custom)
    play = (Segment("welcome", "en-US"),)
    codec = Pcmu()
    frames = store.encoded(play, "PCMU", codec.encode, 8000, 160)
    assert store.encoded(play, "PCMU", codec.encode, 8000, 160) is frames  # one copy for all
    assert len(frames) == 7 and all(len(f) == 160 for f in frames)  # 1000 samples, padded
    assert frames[0] == codec.encode(np.full(160, 500, dtype=np.int16))
    for n in range(prompt_store.ENCODED_CACHE + 5):  # digits read back: rare keys
        store.encoded((Segment("meeting_not_found", "en-US", str(n)),), "PCMU", codec.encode,
                      8000, 160)
    assert len(store._encoded) == prompt_store.ENCODED_CACHE
