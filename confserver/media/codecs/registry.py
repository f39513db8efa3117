"""Codec factories by SDP name; each call creates a fresh (stateful) instance."""

from __future__ import annotations

from collections.abc import Callable

from .base import AudioCodec, CodecError
from .g711 import Pcma, Pcmu


def _g722() -> AudioCodec:
    from . import spandsp

    if spandsp.available():
        return spandsp.SpanDspG722()
    from .av_codecs import G722  # FFmpeg's: 16 kHz only, and dearer per frame

    return G722()


def _opus() -> AudioCodec:
    from . import libopus

    if libopus.available():
        return libopus.LibOpus()
    from .av_codecs import Opus  # FFmpeg's libopus: 48 kHz only, no rate change

    return Opus()


class CodecRegistry:
    def __init__(self) -> None:
        self._factories: dict[str, Callable[[], AudioCodec]] = {}

    def register(self, name: str, factory: Callable[[], AudioCodec]) -> None:
        self._factories[name.lower()] = factory

    def create(self, name: str) -> AudioCodec:
        factory = self._factories.get(name.lower())
        if factory is None:
            raise CodecError(f"no codec named {name!r}")
        return factory()

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._factories


def default_registry() -> CodecRegistry:
    registry = CodecRegistry()
    registry.register("PCMU", Pcmu)
    registry.register("PCMA", Pcma)
    registry.register("G722", _g722)
    registry.register("opus", _opus)
    return registry
