"""Dependency rules: pure cores import no I/O; dialin and mediation stay apart."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PURE = [ROOT / "confserver" / name for name in ("sip", "media", "mcu", "focus", "limits", "gate")]
PURE_FILES = [ROOT / "dialin" / "flow.py", ROOT / "confserver" / "text.py",
              *(ROOT / "mediation" / f"{name}.py" for name in (
                  "dialplan", "rates", "routing", "failover", "health", "registration",
                  "callerid", "emodel", "gateways", "events"))]
FORBIDDEN_IN_PURE = ("twisted", "sqlalchemy", "alembic", "confserver.server", "confserver.storage",
                     "socket", "asyncio", "time")


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", [p for d in PURE for p in sorted(d.rglob("*.py"))] + PURE_FILES,
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_core_has_no_io_imports(path: Path) -> None:
    bad = {name for name in imports(path)
           if any(name == f or name.startswith(f + ".") for f in FORBIDDEN_IN_PURE)}
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("package,other", [("dialin", "mediation"), ("mediation", "dialin")])
def test_roles_do_not_import_each_other(package: str, other: str) -> None:
    for path in (ROOT / package).rglob("*.py"):
        assert not any(n == other or n.startswith(other + ".") for n in imports(path)), path


def test_core_does_not_import_roles() -> None:
    for path in (ROOT / "confserver").rglob("*.py"):
        names = imports(path)
        assert not any(n.split(".")[0] in ("dialin", "mediation") for n in names), path
