"""Storage against both backends: SQLite (WAL file) and a real PostgreSQL server."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
from sqlalchemy import select, text

from confserver.storage.bindings import BindingRecord, BindingStore
from confserver.storage.database import Database, StorageError, open_database
from confserver.storage.nonces import DatabaseNonceUses
from confserver.storage.server_secret import server_secret
from confserver.storage.users import UserDirectory, UserError

from .pg import empty_database


def test_migrations_reach_head_and_are_idempotent(db: Database) -> None:
    assert db.current_revision() == Database.head_revision()
    db.upgrade()
    assert db.current_revision() == Database.head_revision()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_processes_starting_together_migrate_once(request: pytest.FixtureRequest,
                                                  tmp_path: Path, backend: str) -> None:
    """The processes of a pool start together on a fresh database: each opens it (and
    so migrates it) at the same moment; all succeed and the schema is at head. Threads
    stand in for the processes: each has its own engine and connections."""
    url = empty_database(request, tmp_path, backend)
    start = threading.Barrier(4)
    failures: list[BaseException] = []

    def open_and_close() -> None:
        start.wait(timeout=30)
        try:
            open_database(url).close()
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=open_and_close, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a migration hung"
    assert not failures, failures
    database = open_database(url, migrate=False)
    assert database.current_revision() == Database.head_revision()
    database.close()


def test_a_database_whose_lock_file_cannot_be_made_still_opens(tmp_path: Path) -> None:
    """Reading a database in a directory we may not write in (the lock file beside it
    cannot be created; a directory in its place stands in for that, as root may
    write anywhere) works when the schema is current."""
    url = f"sqlite:///{tmp_path}/sb.db"
    open_database(url).close()
    lock = tmp_path / "sb.db.migrate-lock"
    lock.unlink()
    lock.mkdir()
    database = open_database(url)
    assert database.current_revision() == Database.head_revision()
    assert UserDirectory(database).get("sip:nobody@example.com") is None
    database.close()


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    database = open_database(f"sqlite:///{tmp_path}/x.db")
    with database.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    database.close()


def test_user_crud_and_no_plaintext_password(db: Database) -> None:
    users = UserDirectory(db)
    record = users.add("sip:Alice@Example.com", "correct horse", "Alice", "+14255550101")
    assert record.sip_uri == "sip:Alice@example.com"
    assert users.get("sip:Alice@example.com") is not None
    assert users.by_phone("+14255550101") == record
    assert users.ha1("Alice", "example.com", "MD5") is not None
    assert len(users.ha1("Alice", "example.com", "SHA-256") or "") == 64
    with db.engine.connect() as conn:
        dump = " ".join(str(r) for r in conn.execute(text("SELECT * FROM users")))
    assert "correct horse" not in dump
    users.set_password("sip:Alice@example.com", "battery staple")
    assert users.ha1("Alice", "example.com", "MD5") != record
    users.remove("sip:Alice@example.com")
    assert users.list() == []


@pytest.mark.parametrize("uri,password,phone,message", [
    ("alice", "longenough", None, "not valid"),
    ("sip:example.com", "longenough", None, "no user part"),
    ("sip:a@example.com:5070", "longenough", None, "plain address"),
    ("sip:a@example.com", "short", None, "at least 8"),
    ("sip:a@example.com", "longenough", "4255550101", "E.164"),
])
def test_user_add_rejects_bad_input(db: Database, uri: str, password: str, phone: str | None,
                                    message: str) -> None:
    with pytest.raises(UserError, match=message):
        UserDirectory(db).add(uri, password, "", phone)


def test_duplicates_refused_without_damage(db: Database) -> None:
    users = UserDirectory(db)
    users.add("sip:a@example.com", "longenough", phone="+15550001")
    with pytest.raises(UserError, match="already exists"):
        users.add("sip:a@example.com", "longenough")
    with pytest.raises(UserError, match="phone"):
        users.add("sip:b@example.com", "longenough", phone="+15550001")
    with pytest.raises(UserError, match="no user"):
        users.remove("sip:zz@example.com")
    assert [u.sip_uri for u in users.list()] == ["sip:a@example.com"]


def test_bindings_apply_atomically(db: Database) -> None:
    store = BindingStore(db)
    rec = BindingRecord("sip:a@e", "sip:a@10.0.0.1", 100.0, "c", 1, None, "udp", "10.0.0.1:5060")
    store.apply("sip:a@e", [rec], [], 0.0)
    second = BindingRecord("sip:a@e", "sip:a@10.0.0.2", 200.0, "d", 1, 0.5, "tcp", "10.0.0.2:1")
    store.apply("sip:a@e", [second], [], 0.0)
    assert [b.contact for b in store.current("sip:a@e", 50.0)] == ["sip:a@10.0.0.1", "sip:a@10.0.0.2"]
    assert [b.contact for b in store.current("sip:a@e", 150.0)] == ["sip:a@10.0.0.2"]
    assert store.purge_expired(150.0) == 1
    store.apply("sip:a@e", [], ["sip:a@10.0.0.2"], 150.0)
    assert store.current("sip:a@e", 0.0) == []


def test_bad_database_url_is_a_clear_error() -> None:
    with pytest.raises(StorageError, match="bad database url"):
        Database("not a url")


def test_server_purges_expired_registrations(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from twisted.internet.task import Clock

    from confserver.process import _purge_bindings

    database = open_database(f"sqlite:///{tmp_path}/p.db")
    store = BindingStore(database)
    store.apply("sip:a@e", [BindingRecord("sip:a@e", "sip:a@10.0.0.1", 100.0, "c", 1, None,
                                          "udp", "10.0.0.1:5060")], [], 0.0)
    clock = Clock()
    clock.advance(101)
    _purge_bindings(SimpleNamespace(db=database, reactor=clock))  # type: ignore[arg-type]
    with database.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM bindings")).scalar() == 0
    database.close()
    _purge_bindings(SimpleNamespace(db=database, reactor=clock))  # closed engine: no crash


def test_nonce_counts_are_shared_through_the_database(db: Database) -> None:
    """Two processes of a pool (two stores on one database): a nonce-count the first
    took is a replay to the second; a higher one is taken; expired rows are purged."""
    one, two = DatabaseNonceUses(db), DatabaseNonceUses(db)
    assert one.use("n1", "c1", 1, 100.0)
    assert not two.use("n1", "c1", 1, 100.0)
    assert two.use("n1", "c1", 2, 100.0)
    assert not one.use("n1", "c1", 2, 100.0)
    assert one.use("n1", "c2", 1, 100.0)  # another cnonce counts on its own
    assert not one.use("n1", "x" * 200, 1, 100.0)  # no room for a stranger's long cnonce
    assert one.purge(101.0) == 2
    assert one.use("n1", "c1", 1, 200.0)


def test_the_server_secret_is_made_once_and_kept(db: Database) -> None:
    first = server_secret(db)
    assert len(first) == 32 and server_secret(db) == first
    assert server_secret(db, "admin's own") != first


def test_storage_errors_say_whether_trying_again_can_help(db: Database, tmp_path: Path) -> None:
    """Callers see the storage layer's exceptions, never SQLAlchemy's: a write the
    database refuses for what it holds, and a database that cannot be reached."""
    from confserver.storage.errors import StorageRefused, StorageUnavailable
    from confserver.storage.models import User

    UserDirectory(db).add("sip:carol@example.com", "pw-carol-1")
    with pytest.raises(StorageRefused), db.session() as session:
        session.add(User(sip_uri="sip:carol@example.com", auth_username="carol",
                         realm="example.com", display_name="", ha1_md5="x", ha1_sha256="y"))
        session.commit()
    assert UserDirectory(db).get("sip:carol@example.com") is not None
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gone = Database(f"postgresql+psycopg://nobody@127.0.0.1:{port}/none")
    with pytest.raises(StorageUnavailable):
        gone.first(select(1))
    with pytest.raises(StorageUnavailable), gone.transaction() as connection:
        connection.execute(text("SELECT 1"))
