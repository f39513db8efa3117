"""The server's own secret: the key of digest nonces and of what one process vouches
for to another (``confserver/sip/assertion.py``).

Generated at random the first time a server starts on a database and kept there,
so every process of a pool uses the same one and a restart keeps it. An admin may
set ``[auth] secret`` instead (the key is then derived from it).
"""

from __future__ import annotations

import hashlib
import secrets
import time

from sqlalchemy.exc import IntegrityError

from .database import Database
from .models import Setting

SECRET_KEY = "server.secret"


def server_secret(db: Database, configured: str | None = None) -> bytes:
    """32 bytes: from ``configured`` when the admin set one, else the database's own
    (made on first use; processes starting together agree on the first one stored)."""
    if configured:
        return hashlib.sha256(f"switchboard:{configured}".encode()).digest()
    for _attempt in range(3):
        with db.session() as session:
            row = session.get(Setting, SECRET_KEY)
            if row is not None:
                return bytes.fromhex(row.value)
            value = secrets.token_hex(32)
            session.add(Setting(key=SECRET_KEY, value=value, updated_at=time.time()))
            try:
                session.commit()
            except IntegrityError:
                session.rollback()  # another process stored one first: read it
                continue
            return bytes.fromhex(value)
    raise RuntimeError("cannot store the server secret")
