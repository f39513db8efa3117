"""The mediation configuration in the database (SQLite and PostgreSQL) and its CLI as
an admin runs it: clear one-line errors, nothing half-stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from confserver.storage.database import Database
from mediation.dialplan import NormalizationRule
from mediation.profiles import from_profile
from mediation.rates import ALWAYS, Window
from mediation.routing import Refusal, Route, RoutePlan
from mediation.store import MediationError, MediationStore
from tests.cli_runner import run_cli


def test_configuration_round_trips_and_versions_move(db: Database) -> None:
    store = MediationStore(db)
    before = store.versions()
    store.add_gateway(from_profile("gw1", "generic-sip", {"host": "127.0.0.1", "port": 5070}))
    store.add_gateway(from_profile("gw2", "dialogic-dmg4000", {"host": "127.0.0.2"}))
    store.add_plan("global", "global")
    store.add_rule("global", NormalizationRule("ten", r"(\d{10})", "+1$1", 1))
    store.add_policy("local", ("local",), default=True)
    store.add_route(Route("na", r"\+1\d{10}", ("local",), ("gw1", "gw2")))
    count = store.import_rates("gw2", [("1", 0.01, ALWAYS),
                                       ("1425", 0.02, Window(frozenset({5, 6}), 0, 1440))])
    assert count == 2 and store.versions() != before
    config = store.snapshot()
    assert config.gateways["gw2"].dtmf == "info"
    plan = config.dial_plan_for_user("sip:alice@example.com")
    assert plan is not None and plan.normalize("4255550100") is not None
    policy = config.policy_for_user("sip:alice@example.com")
    assert config.policy_for_user(None) is None  # anonymous callers get no policy
    routed = config.table.plan("+14255550100", policy, weekday=0)
    assert isinstance(routed, RoutePlan) and routed.attempts[0].gateway == "gw2"
    weekend = config.table.plan("+14255550100", policy, weekday=6)
    assert isinstance(weekend, RoutePlan) and weekend.attempts[0].cost == 0.02
    with pytest.raises(MediationError, match="used by route"):
        store.remove_gateway("gw1")
    with pytest.raises(MediationError, match="already exists"):
        store.add_policy("local", ("x",))
    with pytest.raises(MediationError, match="no gateway"):
        store.add_route(Route("r2", ".*", ("local",), ("nope",)))
    with pytest.raises(MediationError, match="one is allowed"):
        store.add_plan("another", "global")
    store.assign("sip:bob@example.com", voice_policy="local")
    with pytest.raises(MediationError, match="no voice policy"):
        store.assign("sip:bob@example.com", voice_policy="nope")


def test_cli_builds_a_routing_setup_and_explains_it(tmp_path: Path) -> None:
    path = tmp_path / "sb.db"

    def ok(*args: str) -> str:
        result = run_cli(*args, db=path)
        assert result.returncode == 0, result.stderr
        return result.stdout

    ok("gateway", "add", "gw1", "--profile", "cisco-isr-4321", "--address", "127.0.0.1:5070")
    ok("gateway", "set", "gw1", "max_calls=10", "codecs=PCMA,PCMU")
    shown = json.loads(ok("gateway", "show", "gw1", "--json"))
    assert shown["max_calls"] == 10 and shown["codecs"] == ["PCMA", "PCMU"]
    assert shown["model"].startswith("Cisco")
    ok("dialplan", "add", "redmond", "--scope", "global")
    ok("dialplan", "rule", "redmond", "ten", "--pattern", r"^(\d{10})$", "--translation", "+1$1")
    tested = ok("dialplan", "test", "redmond", "(425) 555-0100")
    assert "ten" in tested and "+14255550100" in tested
    ok("voice-policy", "add", "local", "--usages", "local", "--default")
    ok("route", "add", "na", "--pattern", r"^\+1\d{10}$", "--usages", "local", "--gateways", "gw1")
    csv = tmp_path / "rates.csv"
    csv.write_text("prefix,cost\n1,0.01\n")
    ok("rates", "import", "gw1", str(csv))
    assert "0.0100" in ok("rates", "show", "gw1", "+14255550100")
    explained = json.loads(ok("route", "test", "4255550100", "--user", "sip:a@example.com",
                              "--json"))
    assert explained["number"] == "+14255550100" and explained["attempts"][0]["gateway"] == "gw1"


@pytest.mark.parametrize("args,message", [
    (("gateway", "add", "gw1", "--profile", "nope"), "--profile: no profile 'nope'"),
    (("gateway", "add", "gw1", "--set", "dtmf=smoke"), "dtmf: 'smoke' is not one of"),
    (("gateway", "add", "gw1", "--set", "colour"), "--set: 'colour' must be key=value"),
    (("gateway", "add", "bad name"), "gateway name 'bad name'"),
    (("dialplan", "rule", "nope", "r", "--pattern", "(", "--translation", "x"),
     "not a valid regular expression"),
    (("dialplan", "test", "nope", "123"), "no dial plan nope"),
    (("route", "add", "r", "--pattern", ".*", "--usages", "u", "--gateways", "gw9"),
     "--gateways: no gateway gw9"),
    (("rates", "import", "gw1", "/nonexistent.csv"), "cannot read /nonexistent.csv"),
    (("route", "test", "123", "--at", "Funday 10:00"), "--at 'Funday 10:00'"),
])
def test_cli_errors_name_the_argument(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = run_cli(*args, db=tmp_path / "sb.db")
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_rate_import_reports_bad_lines_and_stores_nothing(tmp_path: Path) -> None:
    path = tmp_path / "sb.db"
    assert run_cli("gateway", "add", "gw1", db=path).returncode == 0
    csv = tmp_path / "rates.csv"
    csv.write_text("prefix,cost\n1,0.01\n44,abc\nxx,1\n")
    result = run_cli("rates", "import", "gw1", str(csv), db=path)
    assert result.returncode != 0
    assert f"{csv}:3: cost 'abc' is not a number" in result.stderr
    assert f"{csv}:4: prefix 'xx'" in result.stderr and "nothing imported" in result.stderr
    assert run_cli("rates", "show", "gw1", "+14255550100", db=path).returncode == 1
    result = run_cli("rates", "import", "gw1", str(csv), "--skip-bad", db=path)
    assert result.returncode == 0 and "1 rates" in result.stdout
    assert run_cli("rates", "show", "gw1", "+14255550100", db=path).returncode == 0


def test_demo_routing_reaches_the_echo_line_and_installs_once(
        db: Database, tmp_path: Path) -> None:
    """`switchboard demo` (twice): a ten-digit number normalizes, is authorized by
    the default demo policy and routes to the demo line, which is the server's own
    UDP address with every number translated to echo."""
    from confserver.config import load_config
    from mediation.demo import DEMO_GATEWAY, DEMO_PLAN, install_demo_routing

    config_path = tmp_path / "sb.toml"
    config_path.write_text('[sip]\nlisten = ["udp:127.0.0.1:5080"]\ndomain = "example.com"\n')
    config = load_config(str(config_path))
    lines = install_demo_routing(db, config)
    assert install_demo_routing(db, config) == lines
    store = MediationStore(db)
    snapshot = store.snapshot()
    gateway = snapshot.gateways[DEMO_GATEWAY]
    assert (gateway.host, gateway.port) == ("127.0.0.1", 5080)
    normalized = store.plan(DEMO_PLAN).normalize("(425) 555-1234")
    assert normalized is not None and normalized.number == "+14255551234"
    policy = snapshot.policy_for_user("sip:alice@example.com")
    plan = snapshot.table.plan("+14255551234", policy)
    assert not isinstance(plan, Refusal) and plan.attempts[0].gateway == DEMO_GATEWAY
    assert len(store.routes()) == 1 and len(store.gateways()) == 1


def test_a_large_rate_import_piped_to_a_log_prints_no_progress_bar(tmp_path: Path) -> None:
    path = tmp_path / "sb.db"
    assert run_cli("gateway", "add", "gw1", db=path).returncode == 0
    csv = tmp_path / "rates.csv"
    csv.write_text("prefix,cost\n" + "".join(f"{1000000 + i},0.01\n" for i in range(12_000)))
    result = run_cli("rates", "import", "gw1", str(csv), db=path)  # stderr is a pipe here
    assert result.returncode == 0 and "12000 rates" in result.stdout, result.stdout
    assert result.stderr == "", result.stderr


def _cdr(key: str, disposition: str, ended_at: float, **extra: object) -> dict[str, object]:
    return {"call_id": f"call-{key}", "direction": "outbound", "disposition": disposition,
            "started_at": ended_at - 30, "answered_at": ended_at - 20, "ended_at": ended_at,
            "record_key": key, **extra}


def test_call_records_written_at_the_answer_are_replaced_touched_and_kept(
        db: Database) -> None:
    from mediation.models import IN_PROGRESS
    from mediation.store import REPLACE, SKIP, TOUCH

    store = MediationStore(db)
    store.add_cdrs([_cdr("a", IN_PROGRESS, 100.0), _cdr("b", IN_PROGRESS, 100.0)])
    store.add_cdrs([{TOUCH: True, "record_key": "a", "ended_at": 160.0},
                    {**_cdr("b", "completed", 130.0, sip_status=200), REPLACE: True},
                    {TOUCH: True, "record_key": "b", "ended_at": 190.0},  # ended: untouched
                    {**_cdr("c", "completed", 140.0), REPLACE: True},  # none to replace
                    {**_cdr("d", IN_PROGRESS, 150.0), SKIP: True}])
    rows = {r["record_key"]: r for r in store.recent_cdrs()}
    assert sorted(rows) == ["a", "b", "c"]
    assert (rows["a"]["disposition"], rows["a"]["ended_at"]) == (IN_PROGRESS, 160.0)
    assert (rows["b"]["disposition"], rows["b"]["ended_at"], rows["b"]["sip_status"]) == \
        ("completed", 130.0, 200)
    assert rows["c"]["disposition"] == "completed"


def test_the_records_list_calls_a_call_whose_process_stopped_interrupted(
        tmp_path: Path) -> None:
    import time

    from mediation.models import IN_PROGRESS, STALE_AFTER

    path = tmp_path / "sb.db"
    database = Database(f"sqlite:///{path}")
    database.upgrade()
    now = time.time()
    MediationStore(database).add_cdrs([_cdr("gone", IN_PROGRESS, now - STALE_AFTER - 60),
                                       _cdr("live", IN_PROGRESS, now - 10)])
    database.close()
    listed = run_cli("mediation", "cdrs", "--json", db=path)
    assert listed.returncode == 0, listed.stderr
    shown = {r["record_key"]: r["disposition"] for r in json.loads(listed.stdout)}
    assert shown == {"gone": "interrupted", "live": IN_PROGRESS}
    table = run_cli("mediation", "cdrs", db=path).stdout
    assert "interrupted" in table and "in progress" in table
