"""Digest nonce-counts in the database (``confserver.sip.digest.NonceUses``).

One statement per authenticated request: insert the pair, or raise its count only
when the new one is higher. No row changed means the count was used already (a
replay), whichever process of the pool saw it first. Rows live until their nonce
expires; the server's purge removes them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .database import Database
from .models import DigestNonceUse

MAX_CNONCE = 128  # a client's cnonce is a few dozen characters; longer is refused


class DatabaseNonceUses:
    def __init__(self, db: Database) -> None:
        self._db = db
        insert: Any = pg_insert if db.backend == "postgresql" else sqlite_insert
        table = DigestNonceUse.__table__
        statement = insert(table)
        self._upsert = statement.on_conflict_do_update(
            index_elements=[table.c.nonce, table.c.cnonce],
            set_={"nc": statement.excluded.nc, "expires_at": statement.excluded.expires_at},
            where=table.c.nc < statement.excluded.nc).returning(table.c.nc)
        self._postgres = db.backend == "postgresql"

    def use(self, nonce: str, cnonce: str, count: int, expires_at: float) -> bool:
        if len(cnonce) > MAX_CNONCE or len(nonce) > 96 or not 0 < count < 2**31:
            return False
        with self._db.transaction() as connection:
            if self._postgres:
                # losing the last few counts in a crash costs less than a disk flush
                # on every authenticated request
                connection.execute(text("SET LOCAL synchronous_commit = off"))
            result = connection.execute(self._upsert, {"nonce": nonce, "cnonce": cnonce,
                                                       "nc": count, "expires_at": expires_at})
            # a row comes back when one was inserted or raised (rowcount is not
            # reliable for an upsert on every driver)
            return result.first() is not None

    def purge(self, now: float) -> int:
        with self._db.transaction() as connection:
            result = connection.execute(delete(DigestNonceUse).where(
                DigestNonceUse.expires_at < now))
            return int(result.rowcount or 0)
