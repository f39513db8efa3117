"""The hardware profiles (``hardware/*.toml``) read from disk: the file half of
``mediation/gateways.py``."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .gateways import GatewayError, GatewaySettings, build

PROFILE_DIRECTORY = Path(__file__).resolve().parents[1] / "hardware"


def load_profiles(directory: Path = PROFILE_DIRECTORY) -> dict[str, dict[str, Any]]:
    """Every profile in ``directory`` by name (the file name without ``.toml``)."""
    profiles: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise GatewayError(f"profile {path.name}: {exc}") from exc
        profiles[path.stem] = data
    return profiles


def from_profile(name: str, profile: str, overrides: Mapping[str, Any],
                 directory: Path = PROFILE_DIRECTORY) -> GatewaySettings:
    profiles = load_profiles(directory)
    if profile not in profiles:
        raise GatewayError(f"--profile: no profile {profile!r} (known: "
                           f"{', '.join(profiles) or 'none'})")
    return build(name, {**profiles[profile], "profile": profile}, overrides)
