"""Configuration validation and the CLI as a user runs it (real subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from confserver.config import Config, ConfigError, config_from_dict, load_config

from .cli_runner import run_cli


def test_defaults_need_no_file() -> None:
    config = load_config(None)
    assert config == Config()
    assert config.database_url.startswith("sqlite:///")


def test_full_config(tmp_path: Path) -> None:
    path = tmp_path / "sb.toml"
    path.write_text("""
[sip]
listen = ["udp:127.0.0.1:5080", "tcp:127.0.0.1:5080"]
domain = "corp.example"
[media]
address = "127.0.0.2"
rtp_ports = "30000-30100"
[database]
url = "sqlite:///x.db"
[log]
level = "debug"
""")
    config = load_config(path)
    assert config.domain == "corp.example" and config.rtp_ports == (30000, 30100)
    assert [str(a) for a in config.listen] == ["udp:127.0.0.1:5080", "tcp:127.0.0.1:5080"]


@pytest.mark.parametrize("data,message", [
    ({"sip": {"listen": ["udp:127.0.0.1"]}}, "sip.listen"),
    ({"sip": {"listen": ["sctp:127.0.0.1:5060"]}}, "transport must be one of"),
    ({"sip": {"listen": ["udp:localhost:5060"]}}, "not an IP address"),
    ({"sip": {"listen": ["tls:127.0.0.1:5061"]}}, "tls_certificate"),
    ({"sip": {"domian": "x"}}, "unknown key sip.domian"),
    ({"sips": {}}, "unknown section [sips]"),
    ({"media": {"rtp_ports": "30000"}}, "media.rtp_ports"),
    ({"media": {"rtp_ports": "100-200"}}, "1024-65535"),
    ({"media": {"address": "nowhere"}}, "media.address"),
    ({"log": {"level": "loud"}}, "log.level must be one of"),
    ({"registrar": {"min_expires": 0}}, "registrar.min_expires must be between"),
    ({"sip": {"t1": "fast"}}, "sip.t1 must be a positive number"),
    ({"auth": {"algorithms": ["SHA-1"]}}, "auth.algorithms"),
    ({"media": {"codecs": ["G729"]}}, "media.codecs 'G729' is not one of"),
    ({"media": {"codecs": ["PCMU", "pcmu"]}}, "listed twice"),
    ({"media": {"srtp": "always"}}, "media.srtp must be required, optional or off"),
    ({"media": {"shared_port": 80}}, "media.shared_port must be 0"),
    ({"media": {"shared_port": "20000"}}, "media.shared_port must be 0"),
    ({"media": {"shared_port": True}}, "media.shared_port must be 0"),
])
def test_config_errors_name_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        config_from_dict(data)  # type: ignore[arg-type]


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[sip\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")




def test_cli_user_lifecycle_with_json(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    added = run_cli("user", "add", "sip:alice@example.com", "--name", "Alice", "--phone",
                    "+14255550101", "--password", "secret-pw", "--json", db=db)
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["sip_uri"] == "sip:alice@example.com"
    listed = run_cli("user", "list", "--json", db=db)
    assert [u["phone"] for u in json.loads(listed.stdout)] == ["+14255550101"]
    assert "Alice" in run_cli("user", "list", db=db).stdout
    assert run_cli("user", "remove", "sip:alice@example.com", db=db).returncode == 0
    assert json.loads(run_cli("user", "list", "--json", db=db).stdout) == []


@pytest.mark.parametrize("args,message", [
    (("user", "add", "alice", "--password", "secret-pw"), "SIP URI 'alice' is not valid"),
    (("user", "add", "sip:a@example.com", "--password", "x"), "at least 8 characters"),
    (("user", "add", "sip:a@example.com"), "--password is required"),
    (("user", "remove", "sip:ghost@example.com"), "no user sip:ghost@example.com"),
    (("user", "frobnicate"), "invalid choice"),
])
def test_cli_errors_are_one_line_and_nonzero(tmp_path: Path, args: tuple[str, ...],
                                             message: str) -> None:
    result = run_cli(*args, db=tmp_path / "e.db", stdin="")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("switchboard: error:"), result.stderr
    assert message in lines[0]


def test_cli_config_error_names_key(tmp_path: Path) -> None:
    cfg = tmp_path / "sb.toml"
    cfg.write_text('[media]\nrtp_ports = "1-2"\n')
    result = subprocess.run([sys.executable, "-m", "confserver", "config", "check", "--config",
                             str(cfg)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "media.rtp_ports" in result.stderr


def test_cli_tls_generate(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    ok = run_cli("tls", "generate", "--cert", str(cert), "--key", str(key), db=tmp_path / "t.db")
    assert ok.returncode == 0 and cert.read_text().startswith("-----BEGIN CERTIFICATE")
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    again = run_cli("tls", "generate", "--cert", str(cert), "--key", str(key), db=tmp_path / "t.db")
    assert again.returncode == 1 and "use --force" in again.stderr
