"""Call records on their way to the database, written in batches off the call path.

A call's end must not wait for a database commit, nor be lost because the database
refused one (a full disk, a PostgreSQL server restarting, a lock held too long).
Records wait here and are written together a moment after the first arrives; when a
write fails they stay queued and are tried again later, the oldest dropped only
beyond a bound on memory. The server writes what is left when it stops.

A row the database refuses for what it holds (a value it cannot store, a constraint)
must not take its batch with it: when a batch fails for any reason but the database
being unreachable, its rows are written one by one, and a row refused on its own is
set aside with a log line naming it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from twisted.internet.interfaces import IDelayedCall

from confserver.storage.errors import StorageUnavailable

log = logging.getLogger("switchboard.records")
Row = TypeVar("Row")
# the database cannot be reached or written now (a full disk, a server restarting):
# every row waits; anything else is about the rows themselves
UNAVAILABLE = StorageUnavailable
MAX_SET_ASIDE = 1000  # refused rows kept for inspection (the log has every one)


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
        self.set_aside: list[Row] = []  # rows the database refused (the latest ones)

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
        except UNAVAILABLE as exc:
            self._wait(rows, exc)
        except Exception as exc:  # something in the rows: find it, write the rest
            log.warning("%d %s refused together (%s): writing them one by one",
                        len(rows), self._what, exc)
            self._one_by_one(rows)

    def _one_by_one(self, rows: list[Row]) -> None:
        for index, row in enumerate(rows):
            try:
                self._write([row])
            except UNAVAILABLE as exc:
                self._wait(rows[index:], exc)
                return
            except Exception as exc:
                log.error("a %s row refused by the database, set aside: %s (%r)",
                          self._what, exc, row)
                self.set_aside.append(row)
                del self.set_aside[:-MAX_SET_ASIDE]

    def _wait(self, rows: list[Row], exc: Exception) -> None:
        log.error("%d %s not written yet: %s", len(rows), self._what, exc)
        self._rows = rows + self._rows
        if len(self._rows) > self.limit:
            dropped = len(self._rows) - self.limit
            log.error("%d %s dropped: the database has refused writes too long",
                      dropped, self._what)
            del self._rows[:dropped]
        if self._pending is None or not self._pending.active():
            self._pending = self._reactor.callLater(self.retry, self.flush)
