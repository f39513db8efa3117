"""A long CLI command's progress bar: drawn at a terminal, silent in a log."""

from __future__ import annotations

import io

import pytest

from confserver.cli_support import ProgressBar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("stream", "hidden", "drawn"), [
    (Terminal, False, True), (Terminal, True, False), (io.StringIO, False, False)])
def test_the_bar_is_drawn_only_at_a_terminal_and_when_not_hidden(
        monkeypatch: pytest.MonkeyPatch, stream: type[io.StringIO], hidden: bool,
        drawn: bool) -> None:
    err = stream()
    monkeypatch.setattr("sys.stderr", err)
    bar = ProgressBar(100, "rate", "importing gw1", hidden=hidden)
    for done in (10, 50, 50, 100):
        bar.reached(done)
    bar.close()
    text = err.getvalue()
    assert ("importing gw1" in text and "100/100" in text) is drawn, text
    assert drawn or text == ""
