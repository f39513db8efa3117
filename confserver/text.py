"""Strings from the network, made safe for where they go: XML, logs, the database.

A display name, a user part or a caller ID is whatever a peer sent: control
characters, bidirectional overrides, and (decoded with ``surrogateescape``,
as the SIP parser does) lone surrogates standing for bytes that were not
UTF-8. lxml refuses such text, a log line with a newline in it forges the
next line, and some databases refuse what is not valid UTF-8. These
functions turn any ``str`` into one each destination takes.
"""

from __future__ import annotations

import re

# what XML 1.0 and our logs and records never want: C0 and C1 controls and DEL,
# lone surrogates (bytes that were not UTF-8), the bidirectional overrides and
# isolates (they make a name read as something else), and the noncharacters
_UNWANTED = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069\ufffe\uffff]")
_SURROGATE = re.compile("[\ud800-\udfff]+")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean_text(text: str, limit: int = 255) -> str:
    """``text`` fit for a roster document, a record or a prompt: bytes that were not
    UTF-8 become U+FFFD, control and direction-override characters go, and the
    result is at most ``limit`` characters."""
    if _UNWANTED.search(text) is None:
        return text[:limit]
    text = _SURROGATE.sub("\ufffd", text)
    return _UNWANTED.sub("", text)[:limit]


def for_log(text: str) -> str:
    """``text`` as one log line shows it: control characters written as escapes
    (``\\n``, ``\\x01``), so a value cannot start a forged line of its own."""
    if _CONTROL.search(text) is None and _SURROGATE.search(text) is None:
        return text
    text = _SURROGATE.sub(lambda m: "".join(f"\\x{ord(c) - 0xDC00:02x}"
                                            if 0xDC80 <= ord(c) <= 0xDCFF else "\ufffd"
                                            for c in m.group()), text)
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def log_quoted(text: str, limit: int = 64) -> str:
    """``text`` as a quoted log field (``user="..."``): escaped as ``for_log`` does,
    with its own quotes and backslashes escaped, so a parser of the line (fail2ban)
    cannot be fooled by what a peer chose to send."""
    return '"' + for_log(text.replace("\\", "\\\\"))[:limit].replace('"', '\\"') + '"'
