"""Opening the database and bringing its schema to the newest migration."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, Row, Select, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from .errors import StorageError, translate, translated

__all__ = ["Database", "StorageError", "open_database"]


# any fixed number: the PostgreSQL advisory lock that one migration at a time holds
MIGRATION_LOCK = 0x5B0A_2D01


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location",
                        str(resources.files("confserver.storage") / "migrations"))
    return cfg


class Database:
    """One engine and session factory; every role in a process shares it."""

    def __init__(self, url: str) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise StorageError(f"bad database url {url!r}: {exc}") from exc
        self.url = url
        kwargs: dict[str, Any] = {"future": True}
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 10, "check_same_thread": False}
        else:
            kwargs["pool_pre_ping"] = True
        try:
            self.engine: Engine = create_engine(url, **kwargs)
        except (ArgumentError, ImportError) as exc:
            raise StorageError(f"cannot use database url {url!r}: {exc}") from exc
        if parsed.get_backend_name() == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def backend(self) -> str:
        return self.engine.url.get_backend_name()

    # Every way into the database goes through these three, which raise the
    # storage errors (confserver/storage/errors.py) rather than SQLAlchemy's.

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """An ORM session for a ``with`` block (closed at its end)."""
        with translated(), self.sessions() as session:
            yield session

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A Core connection in a transaction, committed at the end of the block."""
        with translated(), self.engine.begin() as connection:
            yield connection

    def first(self, statement: Select[Any], **params: Any) -> Row[Any] | None:
        """The first row of a read-only query through SQLAlchemy Core: a fraction of an
        ORM session's cost, for the lookups every call makes. A statement built once
        with ``bindparam``s (and given ``params``) also skips rebuilding its cache key."""
        try:  # not translated(): this is on every call's path
            with self.engine.connect() as connection:
                return connection.execute(statement, params).first()
        except SQLAlchemyError as exc:
            raise translate(exc) from exc

    def upgrade(self) -> None:
        """Apply every pending Alembic migration (idempotent).

        The processes of a pool often start together on a fresh database; unguarded,
        each would create the same tables at once (on PostgreSQL they locked each other
        up). One migrates at a time: the others wait, then find the schema at head."""
        try:
            with self._migration_file_lock(), self.engine.begin() as connection:
                if connection.dialect.name == "postgresql":  # released at commit
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                       {"key": MIGRATION_LOCK})
                cfg = _alembic_config()
                cfg.attributes["connection"] = connection
                command.upgrade(cfg, "head")
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot migrate {self.engine.url!r}: {exc}") from exc

    @contextlib.contextmanager
    def _migration_file_lock(self) -> Iterator[None]:
        """For an SQLite file, an exclusive lock on a file beside it (pysqlite runs
        each DDL statement in its own transaction, so SQLite's locks cannot keep two
        migrations apart); other backends lock in the database."""
        database = self.engine.url.database
        if self.backend != "sqlite" or not database or database == ":memory:":
            yield
            return
        try:
            lock = open(f"{database}.migrate-lock", "a")  # noqa: SIM115 (closed below)
        except OSError:
            # a directory we may not write in (an admin reading another user's
            # database): nothing can be migrated there either, so nothing to guard
            yield
            return
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
            yield

    def current_revision(self) -> str | None:
        with translated(), self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    @staticmethod
    def head_revision() -> str | None:
        return ScriptDirectory.from_config(_alembic_config()).get_current_head()

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def open_database(url: str, migrate: bool = True) -> Database:
    db = Database(url)
    if migrate:
        db.upgrade()
    return db
