"""Dependency rules.

Pure X is ``confserver/X``, its I/O is ``confserver/adapters/X``; only the adapters,
``confserver/process.py`` (which composes them) and the roles (``dialin/``,
``mediation/``) import Twisted. Pure cores import no I/O at all (no sockets, no
files, no clock, no database), whether by absolute or relative import, and call no
``open``. dialin and mediation stay apart, and the core imports neither.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PURE = [ROOT / "confserver" / name
        for name in ("sip", "media", "mcu", "focus", "limits", "gate", "calls")]
PURE_FILES = [ROOT / "dialin" / "flow.py", ROOT / "confserver" / "text.py",
              *(ROOT / "mediation" / f"{name}.py" for name in (
                  "dialplan", "rates", "routing", "failover", "health", "registration",
                  "callerid", "emodel", "gateways"))]
FORBIDDEN_IN_PURE = ("twisted", "zope", "sqlalchemy", "alembic", "confserver.adapters",
                     "confserver.process", "confserver.storage", "socket", "select", "asyncio",
                     "time", "wave", "pathlib", "subprocess", "shutil", "tempfile")
# where Twisted may be imported
TWISTED_HOMES = (ROOT / "confserver" / "adapters", ROOT / "confserver" / "process.py",
                 ROOT / "dialin", ROOT / "mediation")


def module_of(path: Path) -> list[str]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, relative imports resolved to absolute names;
    a call of the builtin ``open`` counts as importing ``open()``."""
    tree = ast.parse(path.read_text())
    package = module_of(path) if path.name == "__init__.py" else module_of(path)[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
                names.add(module)
                if not node.module:  # from . import x: x may be a module
                    names.update(f"{module}.{alias.name}" for alias in node.names)
            elif node.module:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id == "open":
            names.add("open()")
    return names


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_relative_imports_are_resolved() -> None:
    """The checker itself: ``from ..storage import x`` inside a core is caught."""
    found = imports(ROOT / "confserver" / "adapters" / "media" / "session.py")
    assert "confserver.adapters.media.relay_offload" in found


@pytest.mark.parametrize("path", [p for d in PURE for p in sorted(d.rglob("*.py"))] + PURE_FILES,
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_core_has_no_io(path: Path) -> None:
    bad = {name for name in imports(path)
           if name == "open()" or _within(name, FORBIDDEN_IN_PURE)}
    assert not bad, f"{path.name} imports {bad}"


def test_only_adapters_process_and_roles_import_twisted() -> None:
    offenders = []
    for path in sorted([*(ROOT / "confserver").rglob("*.py"), *(ROOT / "dialin").rglob("*.py"),
                        *(ROOT / "mediation").rglob("*.py")]):
        if any(path == home or home in path.parents for home in TWISTED_HOMES):
            continue
        if any(_within(name, ("twisted",)) for name in imports(path)):
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"Twisted imported outside the adapters and roles: {offenders}"


@pytest.mark.parametrize("package,other", [("dialin", "mediation"), ("mediation", "dialin")])
def test_roles_do_not_import_each_other(package: str, other: str) -> None:
    for path in (ROOT / package).rglob("*.py"):
        assert not any(_within(n, (other,)) for n in imports(path)), path


# the repositories: the only modules that see SQLAlchemy (the rest catch the storage
# errors of confserver/storage/errors.py)
REPOSITORIES = (ROOT / "confserver" / "storage", ROOT / "mediation" / "store.py",
                ROOT / "mediation" / "models.py", ROOT / "dialin" / "cdr.py")


def test_only_repositories_import_sqlalchemy() -> None:
    offenders = []
    for path in sorted([*(ROOT / "confserver").rglob("*.py"), *(ROOT / "dialin").rglob("*.py"),
                        *(ROOT / "mediation").rglob("*.py")]):
        if any(path == home or home in path.parents for home in REPOSITORIES):
            continue
        if any(_within(name, ("sqlalchemy", "alembic")) for name in imports(path)):
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"SQLAlchemy imported outside the repositories: {offenders}"


def test_core_does_not_import_roles() -> None:
    for path in (ROOT / "confserver").rglob("*.py"):
        names = imports(path)
        assert not any(n.split(".")[0] in ("dialin", "mediation") for n in names), path


def test_tests_share_helpers_through_helper_modules_not_other_tests() -> None:
    """A helper or fixture two test modules use lives in a helper module or a
    conftest.py, never in a ``test_*`` module another one imports."""
    offenders = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for name in imports(path):
            if name.split(".")[-1].startswith("test_") and name.startswith("tests."):
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders, offenders
