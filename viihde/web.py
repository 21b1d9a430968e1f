"""What the edge knows about the visitor, for the consent record."""

from __future__ import annotations

from flask import request

USER_AGENT_LENGTH = 255


def client_ip() -> str | None:
    """The visitor's address (behind a proxy, ProxyFix makes this the real one)."""
    return request.remote_addr


def client_user_agent() -> str | None:
    """The browser's user agent, cut to the column size."""
    return (request.user_agent.string or "")[:USER_AGENT_LENGTH] or None
