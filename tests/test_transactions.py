"""The view or the command owns the transaction: the rules stage changes and never commit."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parent.parent / "viihde" / "register"


def commits(path: Path) -> list[int]:
    """The lines of a module that call ``.commit()`` on anything."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "commit"
    ]


@pytest.mark.parametrize("path", sorted(RULES.rglob("*.py")), ids=lambda p: p.name)
def test_the_rules_never_commit(path):
    """One commit per request or command, the caller's, with its audit entry in it."""
    assert commits(path) == []
