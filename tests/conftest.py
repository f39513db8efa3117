from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from confserver import native
from confserver.storage.database import Database, open_database

from .pg import empty_database, postgres_server


def pytest_configure(config: pytest.Config) -> None:
    # an extension older than its source would test old code (confserver/native.py)
    old = native.stale()
    if old:
        raise pytest.UsageError(
            "compiled media modules are older than their sources (" + ", ".join(old)
            + "): run `make native` (or `python -m confserver.native`)")


def pytest_report_header(config: pytest.Config) -> str:
    built = len(native.built_modules())
    return (f"media cores: {built} of {len(native.COMPILED)} modules compiled by mypyc"
            if built else "media cores: interpreted (`make native` compiles them)")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


# the two-backend database: each test that takes ``db`` runs on SQLite and on PostgreSQL
@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    database = open_database(empty_database(request, tmp_path, request.param))
    request.addfinalizer(database.close)
    return database
