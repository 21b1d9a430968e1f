"""The layers the tree shows hold in the code: the rules never touch the request."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parent.parent / "viihde" / "register"
REQUEST_STATE = {"request", "g", "session", "Blueprint", "current_user"}


def imported_names(path: Path) -> set[str]:
    """Every name a module imports from flask or flask_login."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module in ("flask", "flask_login"):
            names |= {alias.name for alias in node.names}
    return names


@pytest.mark.parametrize("path", sorted(RULES.rglob("*.py")), ids=lambda p: p.name)
def test_the_rules_never_read_the_request(path):
    """Register modules take plain arguments: no request, g, session or blueprint."""
    assert imported_names(path) & REQUEST_STATE == set()
