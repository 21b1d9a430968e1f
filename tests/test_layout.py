"""The README's layout section names every module of the tree, and nothing that is gone."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def only_a_docstring(path: Path) -> bool:
    """A package's __init__ that holds no code (nothing to list)."""
    body = ast.parse(path.read_text()).body
    return all(isinstance(node, ast.Expr) for node in body)


def test_the_readme_layout_lists_every_module():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Layout", 1)[1].split("```", 2)[1]
    listed = set(re.findall(r"^(viihde/\S+\.py)", section, re.M))
    modules = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "viihde").rglob("*.py")
        if not (path.name == "__init__.py" and only_a_docstring(path))
    }
    assert sorted(modules - listed) == [], "modules missing from the README's layout"
    assert sorted(listed - modules) == [], "the README's layout names modules that are gone"


@pytest.mark.parametrize(
    "name",
    [".env", ".env.production", "tls/key.pem", "register.sqlite3-wal", "dump.sql",
     "erasures.csv", "withdrawals.csv", "audience.csv", "sms-outbox.jsonl", "instance/x.db"],
)  # fmt: skip
def test_secrets_registers_and_exports_are_never_committed(name):
    """What an operator makes in the checkout (the restore's files, an export, a key) is
    ignored by git."""
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    result = subprocess.run(  # noqa: S603
        [git, "check-ignore", "--no-index", "-q", name], cwd=ROOT, check=False
    )
    assert result.returncode == 0, f"{name} could be committed"
