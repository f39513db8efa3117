"""bench/media_pipeline drives the real engine: every session hears back each frame."""

from __future__ import annotations

import pytest

from bench.media_pipeline import run


@pytest.mark.parametrize("app", ["echo", "meeting"])
def test_every_session_sends_a_packet_a_frame(app: str) -> None:
    per_frame, sent = run(app, sessions=12, frames=40, warm=10)
    assert per_frame > 0
    # the jitter buffer holds the first two frames (its 40 ms start); after that
    # each session sends one packet a frame (its echo, or the meeting's mix)
    assert 12 * 46 <= sent <= 12 * 50
