"""What the edge knows about the visitor, for the consent record and the limits."""

from __future__ import annotations

from flask import request

from .networks import client_of

USER_AGENT_LENGTH = 255


def client_ip() -> str | None:
    """The visitor's address (behind a proxy, ProxyFix makes this the real one)."""
    return request.remote_addr


def client_key() -> str:
    """The visitor as the per-client limits count them: the IPv4 address or IPv6 /64."""
    return client_of(request.remote_addr)


def client_user_agent() -> str | None:
    """The browser's user agent, cut to the column size."""
    return (request.user_agent.string or "")[:USER_AGENT_LENGTH] or None
