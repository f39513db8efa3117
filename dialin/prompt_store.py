"""Prompt audio at run time: built WAVs, an admin's recordings first, composed into what
a caller hears (prompt ids, digits read back, option keys, recorded names, the beep)."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from confserver.adapters.media.wav import MediaFileError, read_wav
from confserver.media.codecs.base import Pcm
from confserver.media.resample import resample_whole
from confserver.media.tones import tone_sequence

from .catalog import PLACEHOLDERS
from .flow import BEEP, Segment

log = logging.getLogger("switchboard.dialin.prompts")

BUILT_RATES = (8000, 16000)
ENCODED_CACHE = 256  # distinct Plays kept encoded
GAP = 0.25        # s between the prompts of one Play
DIGIT_GAP = 0.12  # s between digits read back


def silence(rate: int, seconds: float) -> Pcm:
    return np.zeros(int(rate * seconds), dtype=np.int16)


def beep(rate: int) -> Pcm:
    """The tone before the caller says their name: 1 kHz, 0.4 s, about -12 dBov."""
    return tone_sequence(rate, ((1000.0, 0.4),), amplitude=8000.0, ramp_seconds=0.01)


class PromptStore:
    """Loads prompt pieces once per (language, key, rate) and keeps them."""

    def __init__(self, built: Path, custom: Path | None = None) -> None:
        self.built = built
        self.custom = custom
        self._cache: dict[tuple[str, str, int], Pcm] = {}
        self._encoded: OrderedDict[tuple[object, ...], tuple[bytes, ...]] = OrderedDict()

    def encoded(self, segments: tuple[Segment, ...], codec: str, encode: Callable[[Pcm], bytes],
                rate: int, frame_samples: int) -> tuple[bytes, ...]:
        """A Play as ready-to-send payloads of one stateless codec (G.711), shared by
        every call that plays the same thing: most calls hear the same few prompts."""
        key = (segments, codec, rate, frame_samples)
        frames = self._encoded.get(key)
        if frames is not None:
            self._encoded.move_to_end(key)
            return frames
        audio = self.render(segments, rate)
        audio = np.concatenate([audio, np.zeros(-len(audio) % frame_samples, dtype=np.int16)])
        frames = tuple(encode(audio[i:i + frame_samples])
                       for i in range(0, len(audio), frame_samples))
        self._encoded[key] = frames
        if len(self._encoded) > ENCODED_CACHE:  # digits read back make rare keys
            self._encoded.popitem(last=False)
        return frames

    def piece(self, language: str, key: str, rate: int) -> Pcm:
        """One built piece (``enter_pin``, ``language_option@2``, ``has_joined.1``);
        an admin's ``<custom>/<language>/<key>.wav`` wins. Missing audio is logged and
        heard as a short silence, so a call never fails for want of a prompt."""
        cached = self._cache.get((language, key, rate))
        if cached is not None:
            return cached
        pcm = self._load(language, key, rate)
        self._cache[(language, key, rate)] = pcm
        return pcm

    def source_of(self, language: str, key: str, rate: int) -> Path | None:
        """The file ``piece`` reads for this rate (for tests and the admin guide)."""
        if self.custom is not None:
            custom = self.custom / language / f"{key}.wav"
            if custom.exists():
                return custom
        built_rate = rate if rate in BUILT_RATES else max(BUILT_RATES)
        built = self.built / language / str(built_rate) / f"{key}.wav"
        return built if built.exists() else None

    def _load(self, language: str, key: str, rate: int) -> Pcm:
        path = self.source_of(language, key, rate)
        if path is None:
            log.warning("prompt %s/%s has no audio: run 'switchboard prompts build'",
                        language, key)
            return silence(rate, 0.2)
        try:
            file_rate, pcm = read_wav(path)
        except MediaFileError as exc:
            log.error("prompt %s/%s cannot be read: %s", language, key, exc)
            return silence(rate, 0.2)
        return resample_whole(pcm, file_rate, rate)

    def missing(self, languages: Iterable[str], keys: Iterable[str]) -> list[str]:
        keys = list(keys)
        return [f"{lang}/{key}" for lang in languages for key in keys
                if self.source_of(lang, key, 16000) is None]

    # ------------------------------------------------------------ composition
    def render(self, segments: Iterable[Segment], rate: int, name: Pcm | None = None,
               name_rate: int = 16000) -> Pcm:
        """The audio of a Play: its segments in order with short gaps."""
        parts: list[Pcm] = []
        for segment in segments:
            if parts:
                parts.append(silence(rate, GAP))
            parts.extend(self._segment(segment, rate, name, name_rate))
        return np.concatenate(parts) if parts else silence(rate, 0.02)

    def _segment(self, segment: Segment, rate: int, name: Pcm | None,
                 name_rate: int) -> list[Pcm]:
        if segment.prompt == BEEP:
            return [beep(rate)]
        language, prompt = segment.language, segment.prompt
        holder = PLACEHOLDERS.get(prompt)
        if holder == "digit":
            return [self.piece(language, f"{prompt}@{segment.value}", rate)]
        if holder is None:
            return [self.piece(language, prompt, rate)]
        middle: list[Pcm] = []
        if holder == "digits":
            for i, digit in enumerate(segment.value):
                if i:
                    middle.append(silence(rate, DIGIT_GAP))
                middle.append(self.piece(language, f"digit_{digit}", rate))
        elif name is not None:
            middle.append(resample_whole(name, name_rate, rate))
        out = []
        for index in (0, 1):
            path = self.source_of(language, f"{prompt}.{index}", rate)
            if index == 1 and middle:
                out.extend(middle)
                out.append(silence(rate, 0.08))
            if path is not None:
                out.append(self.piece(language, f"{prompt}.{index}", rate))
                if index == 0:
                    out.append(silence(rate, 0.08))
        return out
