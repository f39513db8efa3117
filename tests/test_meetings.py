"""Meetings in storage (SQLite and PostgreSQL), passcode hashing and the meeting CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from confserver.storage.database import Database
from confserver.storage.meetings import (
    EXPIRY_AFTER_END,
    MeetingDirectory,
    MeetingError,
    conference_id_of,
    conference_uri,
)
from confserver.storage.secrets import hash_secret, verify_secret
from confserver.storage.users import UserDirectory

from .cli_runner import run_cli


@pytest.fixture
def meetings(db: Database) -> MeetingDirectory:
    UserDirectory(db).add("sip:alice@example.com", "alice-secret", now=1.0)
    return MeetingDirectory(db)


def test_passcodes_are_salted_slow_hashes() -> None:
    first, second = hash_secret("13579"), hash_secret("13579")
    assert first != second and "13579" not in first and first.startswith("scrypt$")
    assert verify_secret("13579", first) and not verify_secret("13578", first)
    assert not verify_secret("13579", "garbage") and not verify_secret("1", "scrypt$x$y$z$00$00")


def test_create_show_list_end(meetings: MeetingDirectory) -> None:
    record = meetings.create("sip:alice@example.com", "anonymous-allowed", now=10.0,
                             passcode="13579", conference_id="7654321", subject="Weekly",
                             presenters=["sip:bob@example.com"],
                             attendees=["sip:carol@fabrikam.com", "sip:carol@fabrikam.com"],
                             starts_at=100.0, ends_at=200.0)
    assert record.access == "anonymous" and record.has_passcode
    assert record.expires_at == 200.0 + EXPIRY_AFTER_END
    assert record.organizer == "sip:alice@example.com"
    assert record.presenters == ("sip:bob@example.com",)
    assert record.attendees == ("sip:carol@fabrikam.com",)  # listed once
    assert meetings.get("7654321") == record
    assert meetings.check_passcode("7654321", "13579")
    assert not meetings.check_passcode("7654321", "97531")
    generated = meetings.create("sip:alice@example.com", "open", now=11.0, kind="adhoc")
    assert len(generated.conference_id) == 7 and generated.conference_id.isdigit()
    assert not meetings.check_passcode(generated.conference_id, "13579")
    assert [m.conference_id for m in meetings.list()] == ["7654321", generated.conference_id]
    ended = meetings.end("7654321", now=300.0)
    assert ended.state == "ended"
    assert [m.conference_id for m in meetings.list()] == [generated.conference_id]
    assert len(meetings.list(include_ended=True)) == 2
    with pytest.raises(MeetingError, match="already ended"):
        meetings.end("7654321", now=301.0)
    assert meetings.purge_expired(200.0 + EXPIRY_AFTER_END + 1) == 1
    assert meetings.get("7654321") is None and meetings.get(generated.conference_id) is not None


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"access": "public"}, "access 'public' is not one of"),
    ({"access": "anonymous"}, "needs a passcode"),
    ({"passcode": "12a45"}, "passcode must be 4 to 24 digits"),
    ({"passcode": "123"}, "passcode must be 4 to 24 digits"),
    ({"conference_id": "12"}, "must be 4 to 16 digits"),
    ({"organizer": "sip:zed@example.com"}, "is not a Switchboard user"),
    ({"organizer": "alice"}, "organizer: SIP URI"),
    ({"presenters": ["not a uri"]}, "presenter: SIP URI"),
    ({"presenters": ["sip:b@x.com"], "attendees": ["sip:b@x.com"]}, "both presenter and attendee"),
    ({"starts_at": 10.0, "ends_at": 5.0}, "must end after it starts"),
    ({"kind": "recurring"}, "kind 'recurring'"),
])
def test_bad_input_names_the_field(meetings: MeetingDirectory, kwargs: dict[str, object],
                                   message: str) -> None:
    args: dict[str, object] = {"organizer": "sip:alice@example.com", "access": "closed",
                               "now": 1.0, **kwargs}
    organizer, access = str(args.pop("organizer")), str(args.pop("access"))
    with pytest.raises(MeetingError, match=message):
        meetings.create(organizer, access, **args)  # type: ignore[arg-type]
    assert meetings.list() == []


def test_a_taken_conference_id_is_refused(meetings: MeetingDirectory) -> None:
    meetings.create("sip:alice@example.com", "closed", now=1.0, conference_id="5555")
    with pytest.raises(MeetingError, match="already in use"):
        meetings.create("sip:alice@example.com", "open", now=2.0, conference_id="5555")


def test_conference_uri_round_trip() -> None:
    assert conference_uri("example.com", "7654321") == "sip:conf-7654321@example.com"
    assert conference_id_of("conf-7654321") == "7654321"
    assert conference_id_of("conf-12") is None and conference_id_of("alice") is None


def test_cli_meeting_lifecycle(tmp_path: Path) -> None:
    db_file = tmp_path / "cli.db"
    assert run_cli("user", "add", "sip:alice@example.com", "--password", "alice-secret",
                   db=db_file).returncode == 0
    created = run_cli("meeting", "create", "--organizer", "sip:alice@example.com", "--access",
                      "anonymous", "--passcode", "13579", "--id", "7654321", "--presenters",
                      "sip:bob@example.com", "--start", "2026-12-01T10:00",
                      "--end", "2026-12-01T11:00", "--json", db=db_file)
    assert created.returncode == 0, created.stderr
    data = json.loads(created.stdout)
    assert data["conference_id"] == "7654321"
    assert data["conference_uri"] == "sip:conf-7654321@example.com"
    assert data["presenters"] == ["sip:bob@example.com"] and data["passcode"] is True
    assert "13579" not in created.stdout
    text = run_cli("meeting", "show", "7654321", db=db_file)
    assert "conference URI: sip:conf-7654321@example.com" in text.stdout
    listed = json.loads(run_cli("meeting", "list", "--json", db=db_file).stdout)
    assert [m["conference_id"] for m in listed] == ["7654321"]
    assert run_cli("meeting", "end", "7654321", db=db_file).returncode == 0
    assert run_cli("meeting", "list", db=db_file).stdout.strip() == "no meetings"


@pytest.mark.parametrize(("args", "message"), [
    (["create", "--organizer", "sip:alice@example.com", "--access", "anonymous"],
     "an anonymous meeting needs a passcode"),
    (["create", "--organizer", "sip:alice@example.com", "--access", "open", "--start", "soon"],
     "--start 'soon' is not a date and time"),
    (["create", "--access", "open"], "the following arguments are required: --organizer"),
    (["show", "1234567"], "no meeting 1234567"),
    (["end", "abc"], "conference ID 'abc' must be 4 to 16 digits"),
])
def test_cli_meeting_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    db_file = tmp_path / "cli.db"
    run_cli("user", "add", "sip:alice@example.com", "--password", "alice-secret", db=db_file)
    result = run_cli("meeting", *args, db=db_file)
    assert result.returncode in (1, 2)
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cli_lists_recordings(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys
    import wave

    recordings = tmp_path / "recordings"
    recordings.mkdir()
    with wave.open(str(recordings / "7654321-20261122T101500Z.wav"), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(b"\x00\x00" * 32000)
    (recordings / "1111-20261122T101600Z.wav").write_bytes(b"RIFF")  # cut short
    cfg = tmp_path / "sb.toml"
    cfg.write_text(f'[media]\nrecordings = "{recordings}"\n'
                   f'[database]\nurl = "sqlite:///{tmp_path}/x.db"\n')
    env = dict(os.environ, SWITCHBOARD_CONFIG="")
    result = subprocess.run([sys.executable, "-m", "confserver", "recording", "list", "--json",
                             "--config", str(cfg)], capture_output=True, text=True, timeout=60,
                            env=env)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["conference_id"], r["seconds"]) for r in rows] == [("1111", -1.0), ("7654321", 2.0)]
