"""Demo data for ``make run``: a few users to register and call with."""

from __future__ import annotations

import time
from typing import Any

from confserver.config import Config
from confserver.storage.database import Database
from confserver.storage.users import UserDirectory

DEMO_USERS = (
    ("alice", "Alice Demo", "+14255550101", "alice-demo-pw"),
    ("bob", "Bob Demo", "+14255550102", "bob-demo-pw"),
)


def install_demo_data(db: Database, config: Config) -> dict[str, Any]:
    users = UserDirectory(db)
    created = []
    lines = [f"Demo data for domain {config.domain}:"]
    for name, display, phone, password in DEMO_USERS:
        uri = f"sip:{name}@{config.domain}"
        if users.get(uri) is None:
            users.add(uri, password, display, phone, time.time())
            created.append(uri)
        lines.append(f"  user {uri}  password {password}  phone {phone}")
    lines.append(f"  call sip:echo@{config.domain} (answers every call)")
    return {"created": created, "lines": lines,
            "users": [{"uri": f"sip:{n}@{config.domain}", "password": p, "phone": ph}
                      for n, _d, ph, p in DEMO_USERS]}
