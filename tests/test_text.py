"""Untrusted strings on their way into XML, records and log lines."""

from __future__ import annotations

import logging

from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from confserver.process import OneLineFormatter
from confserver.text import clean_text, for_log


@given(st.text(max_size=60), st.binary(max_size=20))
def test_cleaned_text_is_always_accepted_by_xml(text: str, raw: bytes) -> None:
    value = clean_text(text + raw.decode("utf-8", "surrogateescape"))
    element = etree.Element("name")
    element.text = value
    element.set("entity", value)
    assert etree.fromstring(etree.tostring(element)).text == (value or None)
    value.encode("utf-8")  # and by a database column in UTF-8


def test_clean_text_keeps_names_and_replaces_what_was_not_utf8() -> None:
    assert clean_text("Zoë Ørsted 王") == "Zoë Ørsted 王"
    assert clean_text(b"\x01\xffBob".decode("utf-8", "surrogateescape")) == "\ufffdBob"
    assert clean_text("evil\u202eexe.txt") == "evilexe.txt"
    assert clean_text("x" * 300) == "x" * 255


def test_a_log_line_cannot_be_forged_from_a_user_part() -> None:
    record = logging.LogRecord("switchboard.app", logging.INFO, __file__, 1,
                               "call from %s", ("bob\n2026-12-07 INFO switchboard: admin ok",),
                               None)
    line = OneLineFormatter("%(levelname)s %(message)s").format(record)
    assert line == "INFO call from bob\\n2026-12-07 INFO switchboard: admin ok"
    assert for_log(b"\xff".decode("utf-8", "surrogateescape")) == "\\xff"
