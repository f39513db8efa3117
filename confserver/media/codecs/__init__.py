"""Audio codecs behind one interface (:class:`AudioCodec`) and a registry."""

from .base import AudioCodec, CodecError
from .registry import CodecRegistry, default_registry

__all__ = ["AudioCodec", "CodecError", "CodecRegistry", "default_registry"]
