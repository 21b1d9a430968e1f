"""The ``flask`` commands, one module per command group."""

from __future__ import annotations

from flask import Flask

from viihde.cli.audience import audience_cli
from viihde.cli.register import register_cli
from viihde.cli.sms import sms_cli, worker_command
from viihde.cli.staff import staff_cli
from viihde.cli.subject import subject_cli


def register(app: Flask) -> None:
    """Add the command groups to ``flask``."""
    for command in (subject_cli, staff_cli, sms_cli, worker_command, register_cli, audience_cli):
        app.cli.add_command(command)
