"""``switchboard prompts build``: speak every catalog with espeak-ng into 8 and 16 kHz WAVs.

Each piece of each catalog (see :meth:`Catalog.pieces`) becomes
``<output>/<language>/<rate>/<key>.wav``. A manifest beside them remembers
the text and voice each file was built from, so a second run skips what is
already built and rebuilds only what changed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import wave
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from confserver.media.codecs.base import Pcm
from confserver.media.resample import resample_whole

from .catalog import Catalog

RATES = (8000, 16000)
MANIFEST = "manifest.json"
SPEED_WPM = 150            # a little slower than espeak-ng's default 175: telephone listeners
TARGET_PEAK = 0.5          # about -6 dBFS peak
EDGE_SILENCE = 0.06        # s kept before and after the speech


class PromptBuildError(RuntimeError):
    """espeak-ng is missing or failed; the message says which piece."""


@dataclass(frozen=True, slots=True)
class BuildReport:
    built: int
    skipped: int
    bytes_on_disk: int


def _fingerprint(catalog: Catalog, text: str) -> str:
    return hashlib.sha256(f"{catalog.voice}\0{SPEED_WPM}\0{text}".encode()).hexdigest()[:16]


def speak(text: str, voice: str) -> tuple[int, Pcm]:
    """espeak-ng's rendering of ``text`` as (rate, samples)."""
    if shutil.which("espeak-ng") is None:
        raise PromptBuildError("espeak-ng is not installed (Debian package espeak-ng)")
    try:
        result = subprocess.run(["espeak-ng", "-v", voice, "-s", str(SPEED_WPM), "--stdout",
                                 "-b", "1", text], capture_output=True, timeout=60, check=True)
    except subprocess.CalledProcessError as exc:
        raise PromptBuildError(f"espeak-ng failed for voice {voice}: "
                               f"{exc.stderr.decode(errors='replace').strip()}") from exc
    except subprocess.TimeoutExpired as exc:
        raise PromptBuildError(f"espeak-ng took too long for voice {voice}") from exc
    import io
    with wave.open(io.BytesIO(result.stdout)) as w:
        rate = w.getframerate()
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    return rate, samples


def tidy(samples: Pcm, rate: int) -> Pcm:
    """Trim silence to a short margin, bring the peak to a common level, fade the edges."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > 300)
    if len(loud):
        margin = int(EDGE_SILENCE * rate)
        samples = samples[max(0, loud[0] - margin): loud[-1] + margin]
    peak = float(np.max(np.abs(samples.astype(np.float64)))) if len(samples) else 0.0
    out = samples.astype(np.float64)
    if peak > 0:
        out *= TARGET_PEAK * 32767 / peak
    fade = min(len(out) // 2, int(0.005 * rate))
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        out[:fade] *= ramp
        out[-fade:] *= ramp[::-1]
    result: Pcm = np.clip(out, -32768, 32767).astype(np.int16)
    return result


def write_wav(path: Path, rate: int, samples: Pcm) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    with wave.open(str(partial), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    partial.replace(path)  # never leave a half-written prompt behind


def _build_piece(catalog: Catalog, key: str, text: str, output: Path) -> int:
    rate, samples = speak(text, catalog.voice)
    samples = tidy(samples, rate)
    size = 0
    for target in RATES:
        path = output / catalog.language / str(target) / f"{key}.wav"
        write_wav(path, target, resample_whole(samples, rate, target))
        size += path.stat().st_size
    return size


def build_prompts(catalogs: Iterable[Catalog], output: Path, *, force: bool = False,
                  jobs: int = 4, progress: Callable[[int, int], None] | None = None
                  ) -> BuildReport:
    """Build every missing or changed piece; ``progress(done, total)`` after each."""
    work: list[tuple[Catalog, str, str]] = []
    manifests: dict[str, dict[str, str]] = {}
    skipped = 0
    for catalog in catalogs:
        manifest_path = output / catalog.language / MANIFEST
        try:
            manifest = {} if force else dict(json.loads(manifest_path.read_text()))
        except (OSError, ValueError):
            manifest = {}
        manifests[catalog.language] = manifest
        for key, text in catalog.pieces().items():
            built = all((output / catalog.language / str(r) / f"{key}.wav").exists()
                        for r in RATES)
            if built and manifest.get(key) == _fingerprint(catalog, text):
                skipped += 1
            else:
                work.append((catalog, key, text))
    total = len(work)
    if progress is not None:
        progress(0, total)
    done = 0
    size = 0
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [(c, k, t, pool.submit(_build_piece, c, k, t, output)) for c, k, t in work]
        for catalog, key, text, future in futures:
            try:
                size += future.result()
            except PromptBuildError as exc:
                for _c, _k, _t, other in futures:
                    other.cancel()
                _save_manifests(output, manifests)
                raise PromptBuildError(f"{catalog.language} {key}: {exc}") from exc
            manifests[catalog.language][key] = _fingerprint(catalog, text)
            done += 1
            if progress is not None:
                progress(done, total)
    _save_manifests(output, manifests)
    return BuildReport(done, skipped, disk_usage(output))


def _save_manifests(output: Path, manifests: dict[str, dict[str, str]]) -> None:
    for language, manifest in manifests.items():
        path = output / language / MANIFEST
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(manifest, indent=1, sort_keys=True))


def disk_usage(output: Path) -> int:
    return sum(p.stat().st_size for p in output.rglob("*.wav")) if output.exists() else 0
