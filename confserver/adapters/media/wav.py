"""Reusable audio sources and sinks: WAV playback, WAV recording, tones."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from confserver.media.codecs.base import Pcm
from confserver.media.resample import Resampler


class MediaFileError(ValueError):
    """A WAV file that cannot be read or written."""


def read_wav(path: str | Path) -> tuple[int, Pcm]:
    """Sample rate and mono int16 samples of a 16-bit PCM WAV file."""
    try:
        with wave.open(str(path)) as w:
            if w.getsampwidth() != 2:
                raise MediaFileError(f"{path}: only 16-bit PCM WAV is supported")
            data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
            channels = w.getnchannels()
            rate = w.getframerate()
    except (OSError, EOFError, wave.Error) as exc:
        raise MediaFileError(f"{path}: {exc}") from exc
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1).astype(np.int16)
    return rate, data


class WavSource:
    """Plays a WAV file frame by frame at the stream's rate (optionally looping)."""

    def __init__(self, path: str | Path, rate: int, loop: bool = False) -> None:
        file_rate, samples = read_wav(path)
        self.samples = Resampler(file_rate, rate).process(samples) if file_rate != rate else samples
        self.loop = loop
        self._pos = 0

    @property
    def finished(self) -> bool:
        return not self.loop and self._pos >= len(self.samples)

    def read(self, count: int) -> Pcm | None:
        if self.finished or not len(self.samples):
            return None
        out = self.samples[self._pos:self._pos + count]
        self._pos += count
        if len(out) < count:
            if self.loop:
                self._pos = count - len(out)
                out = np.concatenate([out, self.samples[:self._pos]])
            else:
                out = np.concatenate([out, np.zeros(count - len(out), np.int16)])
        return out


class WavRecorder:
    """Writes received audio to a 16-bit mono WAV file."""

    def __init__(self, path: str | Path, rate: int) -> None:
        try:
            # stays open across frames until close(): a recording spans the call
            self._handle = open(path, "wb")  # noqa: SIM115
        except OSError as exc:
            raise MediaFileError(f"{path}: {exc.strerror}") from exc
        self._file = wave.open(self._handle, "wb")  # noqa: SIM115  (closed in close())
        self._file.setnchannels(1)
        self._file.setsampwidth(2)
        self._file.setframerate(rate)
        self.closed = False

    def write(self, pcm: Pcm) -> None:
        if not self.closed:
            self._file.writeframes(pcm.astype(np.int16).tobytes())

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._file.close()
            self._handle.close()
