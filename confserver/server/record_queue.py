"""Call records on their way to the database, written in batches off the call path.

A call's end must not wait for a database commit, nor be lost because the database
refused one (a full disk, a PostgreSQL server restarting, a lock held too long).
Records wait here and are written together a moment after the first arrives; when a
write fails they stay queued and are tried again later, the oldest dropped only
beyond a bound on memory. The server writes what is left when it stops.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from twisted.internet.interfaces import IDelayedCall

log = logging.getLogger("switchboard.records")
Row = TypeVar("Row")


class RecordQueue(Generic[Row]):
    """Rows for ``write`` (one transaction for a list of rows), named ``what`` in the
    log, written ``delay`` seconds after the first is queued; after a refused write,
    again every ``retry`` seconds; at most ``limit`` kept meanwhile."""

    def __init__(self, reactor: Any, write: Callable[[list[Row]], None], what: str, *,
                 delay: float, retry: float, limit: int) -> None:
        self._reactor = reactor
        self._write = write
        self._what = what
        self.delay = delay
        self.retry = retry
        self.limit = limit
        self._rows: list[Row] = []
        self._pending: IDelayedCall | None = None

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, row: Row) -> None:
        self._rows.append(row)
        if self._pending is None or not self._pending.active():
            self._pending = self._reactor.callLater(self.delay, self.flush)

    def flush(self) -> None:
        """Write every queued row now (also what the server does as it stops)."""
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        self._pending = None
        rows, self._rows = self._rows, []
        if not rows:
            return
        try:
            self._write(rows)
        except SQLAlchemyError as exc:
            log.error("%d %s not written yet: %s", len(rows), self._what, exc)
            self._rows = rows + self._rows
            if len(self._rows) > self.limit:
                dropped = len(self._rows) - self.limit
                log.error("%d %s dropped: the database has refused writes too long",
                          dropped, self._what)
                del self._rows[:dropped]
            self._pending = self._reactor.callLater(self.retry, self.flush)
