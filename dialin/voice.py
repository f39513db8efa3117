"""A phone participant's voice in a meeting: their recorded name and the prompts of
their language (the focus's ParticipantVoice)."""

from __future__ import annotations

import numpy as np

from confserver.media.codecs.base import Pcm
from confserver.media.resample import resample_whole

from .catalog import PROMPT_IDS
from .flow import Segment
from .prompt_store import PromptStore, silence

NAME_RATE = 16000


class PhoneVoice:
    def __init__(self, prompts: PromptStore, language: str, name: Pcm | None) -> None:
        self.prompts = prompts
        self.language = language
        self.name = name

    def _say(self, prompt_id: str, rate: int, name: Pcm | None = None) -> Pcm:
        return self.prompts.render([Segment(prompt_id, self.language)], rate, name, NAME_RATE)

    def joined(self, rate: int) -> Pcm | None:
        return self._say("has_joined", rate, self.name) if self.name is not None else None

    def left(self, rate: int) -> Pcm | None:
        return self._say("has_left", rate, self.name) if self.name is not None else None

    def help(self, rate: int) -> Pcm | None:
        return self._say("help", rate)

    def roll_call(self, names: list[Pcm | None], rate: int) -> Pcm | None:
        if not names:
            return self._say("roll_call_alone", rate)
        parts = [self._say("roll_call_intro", rate)]
        for name in names:
            parts.append(silence(rate, 0.3))
            if name is None:
                parts.append(self._say("roll_call_unnamed", rate))
            else:
                parts.append(resample_whole(name, NAME_RATE, rate))
        out: Pcm = np.concatenate(parts)
        return out

    def feedback(self, prompt_id: str, rate: int) -> Pcm | None:
        return self._say(prompt_id, rate) if prompt_id in PROMPT_IDS else None
