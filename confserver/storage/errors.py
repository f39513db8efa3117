"""What the storage layer raises: a few domain exceptions instead of SQLAlchemy's.

Roles and adapters catch these; only the repositories (``confserver/storage/`` and
each role's own store) see SQLAlchemy. The split that matters to a caller is
whether trying again later can help: the database unreachable or not writable now
(a restart, a full disk, a lock held too long) against a write refused for what it
holds (a constraint, a value the column cannot take).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy.exc import (
    DisconnectionError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout


class StorageError(RuntimeError):
    """The database cannot be opened, migrated, read or written."""


class StorageUnavailable(StorageError):
    """The database cannot be reached or written now; the same request may work later."""


class StorageRefused(StorageError):
    """The database refused this read or write for what it holds; retrying will not help."""


_UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)


def translate(exc: SQLAlchemyError) -> StorageError:
    """The storage error to raise (``from exc``) for one of SQLAlchemy's."""
    kind = StorageUnavailable if isinstance(exc, _UNAVAILABLE) else StorageRefused
    return kind(_first_line(exc))


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """SQLAlchemy's exceptions raised inside become ``StorageUnavailable`` or
    ``StorageRefused`` (the original kept as the cause)."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise translate(exc) from exc


def _first_line(exc: Exception) -> str:
    # SQLAlchemy appends the statement and a link on further lines
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
