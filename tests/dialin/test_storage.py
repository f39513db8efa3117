"""Access numbers, dial-in PINs and the PIN policy: storage and CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from confserver.storage.access_numbers import AccessNumberDirectory, AccessNumberError
from confserver.storage.database import open_database
from confserver.storage.pins import PinError, PinPolicy, PinStore, check_pin, is_trivial
from confserver.storage.users import UserDirectory
from tests.cli_runner import run_cli


@pytest.fixture()
def db():  # type: ignore[no-untyped-def]
    database = open_database("sqlite://")
    yield database
    database.close()


def test_access_number_add_list_remove(db) -> None:  # type: ignore[no-untyped-def]
    numbers = AccessNumberDirectory(db)
    record = numbers.add("+14255550100", name="Redmond", language="en-us",
                         secondary=("fr-FR", "de-DE", "ja-JP"), domain="example.com")
    assert record.sip_uri == "sip:+14255550100@example.com"
    assert record.languages == ("en-US", "fr-FR", "de-DE", "ja-JP")
    assert numbers.by_uri("sip:+14255550100@example.com") == record
    assert numbers.list() == [record]
    numbers.remove("+14255550100")
    assert numbers.list() == []


@pytest.mark.parametrize("kwargs,message", [
    ({"number": "4255550100"}, "E.164"),
    ({"language": "xx-XX"}, "not one of the attendant's languages"),
    ({"secondary": ("fr-FR", "de-DE", "ja-JP", "it-IT", "ko-KR")}, "at most 4"),
    ({"secondary": ("en-US",)}, "not repeat the primary"),
    ({"name": " "}, "--name"),
    ({"sip_uri": "sip:dial@example.com:5070"}, "plain"),
])
def test_access_number_bad_input(db, kwargs, message) -> None:  # type: ignore[no-untyped-def]
    args = {"number": "+14255550100", "name": "Redmond", "language": "en-US",
            "domain": "example.com", **kwargs}
    number = args.pop("number")
    with pytest.raises(AccessNumberError, match=message):
        AccessNumberDirectory(db).add(number, **args)


def test_duplicate_access_number_is_refused(db) -> None:  # type: ignore[no-untyped-def]
    numbers = AccessNumberDirectory(db)
    numbers.add("+14255550100", name="A", language="en-US", domain="example.com")
    with pytest.raises(AccessNumberError, match="already exists"):
        numbers.add("+14255550100", name="B", language="en-US", domain="example.com")


@pytest.mark.parametrize("pin,reason", [("11111", "repeats"), ("12345", "ascending"),
                                         ("98765", "descending"), ("40917", None), ("4001", "own extension"),
                                         ("550101", "own extension or phone number")])
def test_trivial_pins(pin: str, reason: str | None) -> None:
    found = is_trivial(pin, ("4001", "+14255550101"))
    assert (found is None) if reason is None else (reason in (found or ""))


def test_pin_policy_checks() -> None:
    policy = PinPolicy()
    check_pin("24680", policy)
    for pin, message in [("2468", "at least 5"), ("24a80", "digits"), ("1" * 25, "at most"),
                         ("13579" * 5, "at most")]:
        with pytest.raises(PinError, match=message):
            check_pin(pin, policy)
    with pytest.raises(PinError, match="between 4 and 24"):
        PinPolicy(min_length=3).validate()


def test_pin_lockout_and_time_based_unlock(db) -> None:  # type: ignore[no-untyped-def]
    users = UserDirectory(db)
    users.add("sip:alice@example.com", "password1", "Alice", "+14255550101", extension="4001")
    pins = PinStore(db)
    pins.set_policy(0, max_failures=3, lockout_minutes=10)
    with pytest.raises(PinError, match="own extension"):
        pins.set_pin("sip:alice@example.com", "14255550101", 0)
    pins.set_pin("sip:alice@example.com", "24680", 0)
    assert pins.verify("4001", "24680", 10).outcome == "ok"
    assert pins.verify("14255550101", "24680", 10).aor == "sip:alice@example.com"
    assert pins.verify("4255550101", "24680", 10).outcome == "ok"  # national number
    assert [pins.verify("4001", "99999", 20 + i).outcome for i in range(3)] == \
        ["wrong", "wrong", "locked"]
    assert pins.verify("4001", "24680", 30).outcome == "locked"  # even the right PIN
    assert pins.verify("4001", "24680", 23 + 600).outcome == "ok"  # ten minutes later
    assert pins.verify("9999", "24680", 700).outcome == "wrong"


def test_a_stranger_locks_a_pin_only_for_their_own_origin(db) -> None:  # type: ignore[no-untyped-def]
    """Wrong PINs from one caller lock alice's PIN for that caller only: alice, from
    her own phone, still signs in. Spread over many origins, guessing still locks
    the PIN everywhere, at ten times the bar."""
    UserDirectory(db).add("sip:alice@example.com", "password1", "Alice", "+14255550101",
                          extension="4001")
    pins = PinStore(db)
    pins.set_policy(0, max_failures=3, lockout_minutes=10)
    pins.set_pin("sip:alice@example.com", "24680", 0)
    stranger = [pins.verify("4001", f"1111{i}", 10 + i, "caller:+15550000001").outcome
                for i in range(5)]
    assert stranger == ["wrong", "wrong", "locked", "locked", "locked"]
    assert pins.verify("4001", "24680", 20, "caller:+15550000001").outcome == "locked"
    assert pins.verify("4001", "24680", 21, "caller:+14255550101").outcome == "ok"
    for origin in range(27):  # 3 already counted + 27 = 30: locked everywhere
        pins.verify("4001", "99999", 30, f"source:198.51.100.{origin}")
    assert pins.verify("4001", "24680", 31, "caller:+14255550101").outcome == "locked"
    pins.unlock("sip:alice@example.com")
    assert pins.verify("4001", "24680", 32, "caller:+15550000001").outcome == "ok"


def test_pin_expiry(db) -> None:  # type: ignore[no-untyped-def]
    UserDirectory(db).add("sip:bob@example.com", "password1", extension="4002")
    pins = PinStore(db)
    pins.set_policy(0, expiry_days=30)
    pins.set_pin("sip:bob@example.com", "27182", 0)
    assert pins.verify("4002", "27182", 29 * 86400).outcome == "ok"
    assert pins.verify("4002", "27182", 31 * 86400).outcome == "expired"


def test_pins_are_stored_as_slow_salted_hashes(db) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from confserver.storage.models import User

    UserDirectory(db).add("sip:carol@example.com", "password1")
    PinStore(db).set_pin("sip:carol@example.com", "27182", 0)
    with db.session() as session:
        stored = session.scalar(select(User.pin_hash))
    assert stored is not None and stored.startswith("scrypt$") and "27182" not in stored


def test_cli_access_numbers_pins_and_policy(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    added = run_cli("access-number", "add", "+14255550100", "--name", "Redmond",
                    "--language", "en-US", "--also", "fr-FR,de-DE,ja-JP", "--json", db=db)
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["sip_uri"] == "sip:+14255550100@example.com"
    text = run_cli("access-number", "list", db=db).stdout
    assert "Redmond" in text and "fr-FR,de-DE,ja-JP" in text
    bad = run_cli("access-number", "add", "14255550100", "--name", "X", "--language", "en-US", db=db)
    assert bad.returncode == 1 and "E.164" in bad.stderr
    bad = run_cli("access-number", "add", "+14255550111", "--name", "X", "--language", "xx",
                  db=db)
    assert bad.returncode == 1 and "--language" in bad.stderr
    assert run_cli("user", "add", "sip:alice@example.com", "--password", "secret-pw",
                   "--extension", "4001", db=db).returncode == 0
    weak = run_cli("user", "set-pin", "sip:alice@example.com", "--pin", "12345", db=db)
    assert weak.returncode == 1 and "ascending run" in weak.stderr
    assert run_cli("user", "set-pin", "sip:alice@example.com", "--pin", "24680",
                   db=db).returncode == 0
    shown = json.loads(run_cli("pin-policy", "set", "--min-length", "6", "--json",
                               db=db).stdout)
    assert shown["min_length"] == 6
    bad = run_cli("pin-policy", "set", "--min-length", "30", db=db)
    assert bad.returncode == 1 and "between 4 and 24" in bad.stderr
    bad = run_cli("pin-policy", "set", db=db)
    assert bad.returncode == 1 and "at least one setting" in bad.stderr
    assert json.loads(run_cli("pin-policy", "show", "--json", db=db).stdout)["min_length"] == 6
    assert run_cli("access-number", "remove", "+14255550100", db=db).returncode == 0
    gone = run_cli("access-number", "remove", "+14255550100", db=db)
    assert gone.returncode == 1 and "no access number" in gone.stderr


def test_call_records_are_written_together_and_read_back_newest_first(db) -> None:  # type: ignore[no-untyped-def]
    from dialin.cdr import DialInCdr, DialInCdrStore
    from dialin.flow import CallRecord

    store = DialInCdrStore(db)
    joined = CallRecord("en-US", 100.0, "7654321", None, "joined", 9.5)
    silent = CallRecord("fr-FR", 200.0)  # hung up before any outcome
    store.write_all([DialInCdr.of_call("a" * 300, "+14255550100", "+14255550199", joined, 160.0),
                     DialInCdr.of_call("b", "+14255550100", "", silent, 205.0)])
    newest, oldest = store.recent()
    assert (newest.call_id, newest.outcome, newest.language) == ("b", "hung-up", "fr-FR")
    assert len(oldest.call_id) == 255 and oldest.joined_after == 9.5
    assert oldest.conference_id == "7654321" and oldest.ended_at == 160.0


def test_a_joined_callers_record_is_written_at_the_join_and_completed_at_the_end(db) -> None:  # type: ignore[no-untyped-def]
    """Written when the caller joins (a process killed mid-meeting keeps it, ended at the
    join), completed when they leave; a caller ID of control characters and bytes
    that were not UTF-8 is stored cleaned, never refused."""
    from dialin.cdr import DialInCdr, DialInCdrStore, DialInEnd
    from dialin.flow import CallRecord

    store = DialInCdrStore(db)
    joined = CallRecord("en-US", 100.0, "7654321", None, "joined", 9.5)
    weird = b"\x01\xffEve".decode("utf-8", "surrogateescape")
    store.write_all([DialInCdr.of_call("c1", "+14255550100", weird, joined, 109.5, "key-1")])
    [row] = store.recent()
    assert row.ended_at == 109.5 and row.caller_id == "\ufffdEve"
    store.write_all([DialInEnd("key-1", 400.0)])
    [row] = store.recent()
    assert row.ended_at == 400.0 and row.outcome == "joined"
