"""Server roles that live outside the core (the dial-in attendant, mediation).

The core never imports them: each is a Python entry point in the group
``switchboard.roles`` (declared in ``pyproject.toml``) naming a factory that
returns a :class:`Role`. A role adds its CLI commands and, when the server
starts, installs itself on the assembled server. ``[server] roles`` picks
which run in a process, so roles can run as separate processes of a pool.
"""

from __future__ import annotations

import argparse
import logging
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from confserver.process import Server

log = logging.getLogger("switchboard.roles")
GROUP = "switchboard.roles"


class Role(Protocol):
    name: str

    def add_commands(self, commands: Any, common: argparse.ArgumentParser) -> None:
        """Add the role's sub-commands to the ``switchboard`` parser."""
        ...

    def install(self, server: Server) -> None:
        """Attach the role to a server that is about to run."""
        ...


def role_demo_data(role: Role, db: Any, config: Any) -> list[str]:
    """A role's part of ``switchboard demo`` (roles without demo data add nothing)."""
    install = getattr(role, "demo_data", None)
    return list(install(db, config)) if install is not None else []


def installed_roles() -> list[Role]:
    roles: list[Role] = []
    for entry in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            factory = entry.load()
        except ImportError as exc:  # a broken install must not stop the core
            log.error("role %s cannot be loaded: %s", entry.name, exc)
            continue
        roles.append(factory())
    return roles
