"""The stack `make prod-up` stood up: its settings, certificate, database and processes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent.parent
RUN = ROOT / ".prod"
OWNER_DATABASE = "postgresql://viihde@127.0.0.1:5432/viihde"
SUPERVISOR = ["supervisorctl", "-c", str(RUN / "supervisor" / "supervisord.conf")]
INSTANCE = str(ROOT / "deploy" / "instance")


def environment() -> dict[str, str]:
    lines = (RUN / "env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


ENV = environment()
BASE = ENV["PUBLIC_BASE_URL"]
CERT = str(RUN / "tls" / "cert.pem")
OUTBOX = Path(ENV["SMS_OUTBOX_PATH"])


def query(sql: str, *params) -> list[tuple]:
    with psycopg.connect(OWNER_DATABASE) as connection:
        return connection.execute(sql, params).fetchall()


def supervisor(*args: str) -> str:
    return subprocess.run(
        [*SUPERVISOR, *args], capture_output=True, text=True, check=False
    ).stdout.strip()


def instance(action: str, name: str) -> None:
    """Stop or start one process as an operator does (deploy/instance drains web ones)."""
    subprocess.run([INSTANCE, action, name], capture_output=True, check=True)
