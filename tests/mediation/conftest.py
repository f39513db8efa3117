"""The in-memory mediation harness as a fixture (tests/mediation/b2bua_helpers.py)."""

from __future__ import annotations

import pytest

from tests.harness import Harness

from .b2bua_helpers import mediation_harness


@pytest.fixture
def h() -> Harness:
    return mediation_harness()
