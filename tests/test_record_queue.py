"""Call records queued for the database: batched, kept while it refuses, bounded."""

from __future__ import annotations

from twisted.internet.task import Clock

from confserver.adapters.storage.record_queue import RecordQueue
from confserver.storage.errors import StorageUnavailable


class Table:
    def __init__(self) -> None:
        self.rows: list[int] = []
        self.commits = 0
        self.full = False

    def write(self, rows: list[int]) -> None:
        if self.full:
            raise StorageUnavailable("database or disk is full")
        self.commits += 1
        self.rows += rows


def queue(clock: Clock, table: Table, limit: int = 100) -> RecordQueue[int]:
    return RecordQueue(clock, table.write, "test records", delay=0.25, retry=5.0, limit=limit)


def test_rows_arriving_together_are_written_in_one_commit() -> None:
    clock, table = Clock(), Table()
    records = queue(clock, table)
    for n in range(3):
        records.add(n)
    assert table.rows == []
    clock.advance(0.25)
    assert (table.rows, table.commits, len(records)) == ([0, 1, 2], 1, 0)
    assert clock.getDelayedCalls() == []


def test_rows_wait_while_the_database_refuses_and_are_written_after() -> None:
    clock, table = Clock(), Table()
    records = queue(clock, table)
    table.full = True
    records.add(1)
    clock.advance(0.25)
    records.add(2)  # queued behind the refused one; the retry is already set
    clock.advance(4.0)
    assert table.rows == [] and len(records) == 2
    table.full = False
    clock.advance(1.0)
    assert table.rows == [1, 2] and len(records) == 0


def test_beyond_the_limit_the_oldest_unwritten_rows_go() -> None:
    clock, table = Clock(), Table()
    records = queue(clock, table, limit=3)
    table.full = True
    for n in range(5):
        records.add(n)
    clock.advance(0.25)
    assert len(records) == 3
    table.full = False
    clock.advance(5.0)
    assert table.rows == [2, 3, 4]


def test_flush_writes_at_once_and_cancels_the_timer() -> None:
    clock, table = Clock(), Table()
    records = queue(clock, table)
    records.add(7)
    records.flush()
    assert table.rows == [7] and clock.getDelayedCalls() == []
    records.flush()  # nothing queued: no empty commit
    assert table.commits == 1


def test_a_row_the_database_refuses_is_set_aside_and_its_batch_written() -> None:
    """A row that cannot be stored (a value the column refuses, a bug) must not take
    the calls recorded with it down: the batch is written row by row, the bad one set
    aside with a log line."""
    from sqlalchemy.exc import DataError

    clock = Clock()
    written: list[str] = []

    def write(rows: list[str]) -> None:
        if any("\udcff" in row for row in rows):
            raise DataError("INSERT", {}, Exception("invalid byte sequence for UTF8"))
        if any(row == "crash" for row in rows):
            raise ValueError("a bug in building the row")
        written.extend(rows)

    records: RecordQueue[str] = RecordQueue(clock, write, "test records", delay=0.25,
                                            retry=5.0, limit=100)
    for row in ("a", "bad\udcff", "b", "crash", "c"):
        records.add(row)
    clock.advance(0.25)
    assert written == ["a", "b", "c"] and len(records) == 0
    assert records.set_aside == ["bad\udcff", "crash"]
    assert clock.getDelayedCalls() == []
