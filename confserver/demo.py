"""Demo data for ``make run``: users to register and call with, a dial-in access number
and an anonymous meeting with a passcode."""

from __future__ import annotations

import time
from typing import Any

from confserver.config import Config
from confserver.storage.access_numbers import AccessNumberDirectory
from confserver.storage.database import Database
from confserver.storage.meetings import MeetingDirectory, conference_uri
from confserver.storage.pins import PinStore
from confserver.storage.users import UserDirectory

DEMO_USERS = (
    ("alice", "Alice Demo", "+14255550101", "alice-demo-pw", "4001", "24680"),
    ("bob", "Bob Demo", "+14255550102", "bob-demo-pw", "4002", "35791"),
)
DEMO_ACCESS_NUMBER = "+14255550100"
DEMO_LANGUAGES = ("en-US", ("fr-FR", "de-DE", "ja-JP"))
DEMO_MEETING, DEMO_PASSCODE = "7654321", "13579"


def install_demo_data(db: Database, config: Config) -> dict[str, Any]:
    now = time.time()
    users = UserDirectory(db)
    pins = PinStore(db)
    created = []
    lines = [f"Demo data for domain {config.domain}:"]
    for name, display, phone, password, extension, pin in DEMO_USERS:
        uri = f"sip:{name}@{config.domain}"
        if users.get(uri) is None:
            users.add(uri, password, display, phone, now, extension)
            pins.set_pin(uri, pin, now)
            created.append(uri)
        lines.append(f"  user {uri}  password {password}  phone {phone}  "
                     f"extension {extension}  dial-in PIN {pin}")
    lines.append(f"  call sip:echo@{config.domain} (answers every call)")
    numbers = AccessNumberDirectory(db)
    number = numbers.get(DEMO_ACCESS_NUMBER)
    if number is None:
        number = numbers.add(DEMO_ACCESS_NUMBER, name="Redmond", language=DEMO_LANGUAGES[0],
                             secondary=DEMO_LANGUAGES[1], region="US West",
                             domain=config.domain, now=now)
        created.append(number.sip_uri)
    meetings = MeetingDirectory(db)
    meeting = meetings.get(DEMO_MEETING)
    if meeting is None:
        meeting = meetings.create(f"sip:alice@{config.domain}", "anonymous", now=now,
                                  passcode=DEMO_PASSCODE, conference_id=DEMO_MEETING,
                                  subject="Demo meeting")
        created.append(conference_uri(config.domain, DEMO_MEETING))
    lines.append(f"  dial-in access number {number.number} ({number.display_name}, "
                 f"{', '.join(number.languages)}): call {number.sip_uri}")
    lines.append(f"  meeting {DEMO_MEETING} (anyone with passcode {DEMO_PASSCODE}; "
                 f"organizer alice): SIP clients call "
                 f"{conference_uri(config.domain, DEMO_MEETING)}, phones key in "
                 f"{DEMO_MEETING}# then {DEMO_PASSCODE}# (leaders: * 4001# 24680#)")
    return {"created": created, "lines": lines,
            "users": [{"uri": f"sip:{n}@{config.domain}", "password": p, "phone": ph,
                       "extension": ext, "pin": pin}
                      for n, _d, ph, p, ext, pin in DEMO_USERS],
            "access_number": number.as_dict(),
            "meeting": {"conference_id": DEMO_MEETING, "passcode": DEMO_PASSCODE,
                        "conference_uri": conference_uri(config.domain, DEMO_MEETING)}}
