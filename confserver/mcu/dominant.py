"""Dominant speaker identification after Volfin & Cohen (2013), as Jitsi uses it.

Each participant's audio level per 20 ms frame is turned into speech activity
on three time scales: immediate (frames), medium (a few hundred ms) and long
(about a second). A score per scale is the log-likelihood ratio of the
observed activity under "speaking" against "background" (binomial models).
Every decision interval the dominant speaker changes only when a challenger
beats it on all three scales by a margin, which keeps short sounds (a cough,
a "yes") from taking the floor, while a real turn changes it within about a
second.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field

IMMEDIATE_FRAMES = 5      # 100 ms of frames per immediate window
MEDIUM_WINDOWS = 7        # immediate windows per medium window
LONG_WINDOWS = 20         # medium windows (one per 100 ms) in the long horizon
THRESHOLDS = (3.0, 2.0, 0.0)  # challenger margins on the three scales (log-likelihood)
P_SPEECH = 0.5
P_BACKGROUND = 0.1


def _llr(active: int, total: int, p1: float = P_SPEECH, p0: float = P_BACKGROUND) -> float:
    """log P(active of total | speech) - log P(active of total | background)."""
    if total == 0:
        return 0.0
    return active * math.log(p1 / p0) + (total - active) * math.log((1 - p1) / (1 - p0))


@dataclass
class _Speaker:
    noise_floor: float = 127.0            # quietest level seen lately (-dBov, 127 = silence)
    frames: deque[bool] = field(default_factory=lambda: deque(maxlen=IMMEDIATE_FRAMES))
    immediates: deque[int] = field(default_factory=lambda: deque(maxlen=MEDIUM_WINDOWS))
    mediums: deque[int] = field(default_factory=lambda: deque(maxlen=LONG_WINDOWS))
    frame_count: int = 0

    def add_level(self, level_dbov: float) -> None:
        """Level in -dBov (0 loudest, 127 silence), RFC 6464 style."""
        # a slowly rising noise floor, jumping down to quieter levels at once
        self.noise_floor = min(level_dbov, self.noise_floor + 0.05)
        self.frames.append(level_dbov < min(self.noise_floor, 70.0) - 10 or level_dbov < 40)
        self.frame_count += 1
        if self.frame_count % IMMEDIATE_FRAMES == 0:
            # every 100 ms: close an immediate window and slide the medium one
            self.immediates.append(sum(self.frames))
            active = sum(1 for n in self.immediates if n >= IMMEDIATE_FRAMES // 2 + 1)
            self.mediums.append(active)

    def settled_silent(self) -> bool:
        """Every window is full and silent: further silent frames change nothing but
        the frame count and the noise floor (see DominantSpeaker's dormancy)."""
        return self.frame_count % IMMEDIATE_FRAMES == 0 \
            and len(self.mediums) == LONG_WINDOWS and not any(self.mediums) \
            and len(self.immediates) == MEDIUM_WINDOWS and not any(self.immediates) \
            and len(self.frames) == IMMEDIATE_FRAMES and not any(self.frames)

    def skip_silent(self, frames: int) -> None:
        """What ``frames`` silent frames would have done to a settled speaker."""
        self.noise_floor = min(127.0, self.noise_floor + 0.05 * frames)
        self.frame_count += frames

    def scores(self) -> tuple[float, float, float]:
        immediate = _llr(sum(self.frames), len(self.frames))
        medium = _llr(sum(1 for n in self.immediates if n >= IMMEDIATE_FRAMES // 2 + 1),
                      len(self.immediates))
        long_ = _llr(sum(1 for n in self.mediums if n >= MEDIUM_WINDOWS // 2 + 1), len(self.mediums))
        return immediate, medium, long_


class DominantSpeaker:
    """Feed levels every frame; ``decide`` every interval returns the dominant speaker."""

    def __init__(self, decision_frames: int = 15) -> None:  # 300 ms
        self._speakers: dict[Hashable, _Speaker] = {}
        # speakers silent so long that every window is empty: a silent frame changes
        # nothing in them, so they are left alone (with the frame they were left at)
        # until they have a level again. Most of a large meeting is here.
        self._dormant: dict[Hashable, tuple[_Speaker, int]] = {}
        self._joined: dict[Hashable, int] = {}  # order of arrival: ties go to the earliest
        self._arrivals = 0
        self.dominant: Hashable | None = None
        self.decision_frames = decision_frames
        self._frames = 0

    def add(self, participant: Hashable) -> None:
        if participant not in self._dormant and participant not in self._speakers:
            self._speakers[participant] = _Speaker()
            self._joined[participant] = self._arrivals
            self._arrivals += 1

    def remove(self, participant: Hashable) -> None:
        self._speakers.pop(participant, None)
        self._dormant.pop(participant, None)
        self._joined.pop(participant, None)
        if self.dominant == participant:
            self.dominant = None

    def frame(self, levels: dict[Hashable, float]) -> Hashable | None:
        """One 20 ms frame of levels (-dBov; missing means silence). Returns the
        dominant speaker, re-decided every ``decision_frames`` frames."""
        done = self._frames
        for participant in levels:
            resting = self._dormant.pop(participant, None)
            if resting is not None:
                speaker, since = resting
                speaker.skip_silent(done - since)
                self._speakers[participant] = speaker
        settled = []
        for participant, speaker in self._speakers.items():
            level = levels.get(participant)
            speaker.add_level(127.0 if level is None else level)
            if level is None and speaker.settled_silent():
                settled.append(participant)
        for participant in settled:
            self._dormant[participant] = (self._speakers.pop(participant), done + 1)
        self._frames += 1
        if self._frames % self.decision_frames == 0:
            self._decide()
        return self.dominant

    def _decide(self) -> None:
        if not self._speakers and not self._dormant:
            self.dominant = None
            return
        # a dormant speaker scores the least there is: it can neither take the floor
        # nor challenge, so only the awake ones and the holder of the floor are scored
        scored = list(self._speakers.items())
        if self.dominant in self._dormant:
            scored.append((self.dominant, self._dormant[self.dominant][0]))
        if not scored:
            return
        scored.sort(key=lambda item: self._joined[item[0]])  # waking reorders the dict
        scores = {p: s.scores() for p, s in scored}
        if self.dominant not in scores:
            # nobody holds the floor: the best long-then-medium score takes it when positive
            best = max(scores, key=lambda p: (scores[p][2], scores[p][1], scores[p][0]))
            if scores[best][1] > 0:
                self.dominant = best
            return
        current = scores[self.dominant]
        # the long scale protects a speaker who is still talking; once the
        # incumbent has gone quiet on the medium scale it no longer counts
        scales = range(3) if current[1] > 0 else range(2)
        challengers = [p for p in scores if p != self.dominant and all(
            scores[p][i] - current[i] > THRESHOLDS[i] for i in scales)]
        if challengers:
            self.dominant = max(challengers, key=lambda p: scores[p][1])
