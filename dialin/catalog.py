"""Prompt catalogs: one TOML file per language in ``prompts/`` with every prompt's text.

A catalog names the espeak-ng voice that reads it and, for each prompt id,
the text a caller hears. Where espeak-ng cannot read the written language
itself (Japanese kanji, Chinese characters) the ``[speech]`` table gives what
it reads instead (kana, pinyin with tone numbers).

Placeholders in a text:

- ``{digit}``  one key (the language menu's "press 2"): built once per key 1-5;
- ``{digits}`` digits read back one by one (the meeting ID that was not found);
- ``{name}``   a caller's recorded name ("… has joined").

``{digits}`` and ``{name}`` split a prompt into parts built separately and
played around the inserted audio, so each language keeps its own word order.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

CATALOG_DIRECTORY = Path(__file__).resolve().parents[1] / "prompts"

# every catalog must have every one of these
PROMPT_IDS = (
    "welcome", "enter_meeting_id", "language_option", "meeting_not_found", "try_again",
    "no_input", "too_many_attempts", "busy", "goodbye",
    "enter_passcode", "leader_hint", "wrong_passcode", "sign_in_required",
    "enter_extension", "enter_pin", "wrong_pin", "pin_locked", "pin_expired",
    "not_allowed", "meeting_locked", "say_name", "joining", "lobby",
    "has_joined", "has_left", "roll_call_intro", "roll_call_unnamed", "roll_call_alone",
    "help", "muted", "unmuted", "audience_muted", "audience_unmuted", "locked", "unlocked",
    "admitted", "announcements_on", "announcements_off", "refused",
    *(f"digit_{n}" for n in range(10)),
)
# which placeholder each templated prompt must carry
PLACEHOLDERS = {"language_option": "digit", "meeting_not_found": "digits",
                "has_joined": "name", "has_left": "name"}
OPTION_KEYS = "12345"  # the language menu offers at most five languages
SPLIT_PLACEHOLDERS = ("digits", "name")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


class CatalogError(ValueError):
    """A catalog file is missing, malformed or incomplete; the message says where."""


@dataclass(frozen=True, slots=True)
class Catalog:
    language: str
    name: str           # the language's name in itself
    voice: str          # espeak-ng voice
    texts: dict[str, str]
    speech: dict[str, str]

    def spoken(self, prompt_id: str) -> str:
        """What espeak-ng reads for ``prompt_id``."""
        return self.speech.get(prompt_id) or self.texts[prompt_id]

    def pieces(self) -> dict[str, str]:
        """Every audio file to build: its key (``id``, ``id@2``, ``id.0``) → text to speak.

        ``{digit}`` prompts are built whole for each menu key; ``{digits}`` and
        ``{name}`` prompts are built as the parts before and after the gap."""
        out: dict[str, str] = {}
        for prompt_id in self.texts:
            text = self.spoken(prompt_id)
            holder = PLACEHOLDERS.get(prompt_id)
            if holder == "digit":
                for key in OPTION_KEYS:
                    out[f"{prompt_id}@{key}"] = text.replace("{digit}",
                                                             self.spoken(f"digit_{key}"))
            elif holder in SPLIT_PLACEHOLDERS:
                before, _, after = text.partition("{" + holder + "}")
                for index, part in enumerate((before, after)):
                    if part.strip(" ,.\u3001\u3002\uff0c"):
                        out[f"{prompt_id}.{index}"] = part.strip()
            else:
                out[prompt_id] = text
        return out


def load_catalog(path: Path) -> Catalog:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path}: not valid TOML: {exc}") from exc
    try:
        language, name, voice = str(data["language"]), str(data["name"]), str(data["voice"])
        texts = {str(k): str(v) for k, v in dict(data["prompts"]).items()}
        speech = {str(k): str(v) for k, v in dict(data.get("speech", {})).items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise CatalogError(f"{path}: needs language, name, voice and [prompts] ({exc})") from exc
    catalog = Catalog(language, name, voice, texts, speech)
    problems = check_catalog(catalog)
    if problems:
        raise CatalogError(f"{path}: " + "; ".join(problems))
    return catalog


def check_catalog(catalog: Catalog) -> list[str]:
    """Everything wrong with a catalog: missing or unknown ids, wrong placeholders."""
    problems = []
    missing = [p for p in PROMPT_IDS if p not in catalog.texts]
    if missing:
        problems.append(f"missing prompt ids: {', '.join(missing)}")
    unknown = [p for p in catalog.texts if p not in PROMPT_IDS]
    unknown += [p for p in catalog.speech if p not in PROMPT_IDS]
    if unknown:
        problems.append(f"unknown prompt ids: {', '.join(sorted(set(unknown)))}")
    for prompt_id in catalog.texts:
        for table, text in (("prompts", catalog.texts[prompt_id]),
                            ("speech", catalog.speech.get(prompt_id))):
            if text is None:
                continue
            found = set(_PLACEHOLDER.findall(text))
            wanted = {PLACEHOLDERS[prompt_id]} if prompt_id in PLACEHOLDERS else set()
            if found != wanted:
                problems.append(f"[{table}] {prompt_id}: placeholders {sorted(found)} "
                                f"(expected {sorted(wanted)})")
            if not text.strip():
                problems.append(f"[{table}] {prompt_id} is empty")
    return problems


def catalog_path(language: str, directory: Path = CATALOG_DIRECTORY) -> Path:
    return directory / f"{language}.toml"


def load_catalogs(languages: tuple[str, ...], directory: Path = CATALOG_DIRECTORY
                  ) -> dict[str, Catalog]:
    return {lang: load_catalog(catalog_path(lang, directory)) for lang in languages}
