"""Client networks: what the limits count as one client, and the networks around it."""

from __future__ import annotations

import ipaddress

import pytest

from viihde.networks import client_of, networks_of


@pytest.mark.parametrize(
    ("ip", "client", "narrow", "wide"),
    [
        ("192.0.2.77", "192.0.2.77/32", "192.0.2.0/24", "192.0.0.0/16"),
        ("::ffff:192.0.2.77", "192.0.2.77/32", "192.0.2.0/24", "192.0.0.0/16"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64", "2001:db8:1::/48", "2001:db8::/32"),
    ],
)
def test_a_client_and_its_networks(ip, client, narrow, wide):
    found = networks_of(ip)
    assert (found.client, found.narrow, found.wide) == (client, narrow, wide)
    assert client_of(ip) == client


@pytest.mark.parametrize("ip", [None, "", "not an address", "192.0.2.300", "unix:socket"])
def test_no_address_is_no_client(ip):
    assert networks_of(ip) is None
    assert client_of(ip) == "-"


def test_a_requests_address_is_worked_out_once(client, outbox, monkeypatch):
    """Submitting a number asks for the client's networks three times (the per-client
    limit, the sign-up breaker, the code's row); ``ipaddress`` parses the address once."""
    networks_of.cache_clear()
    parsed = []
    real = ipaddress.ip_address
    monkeypatch.setattr(ipaddress, "ip_address", lambda text: parsed.append(text) or real(text))
    data = {"phone": "040 123 4567", "consent": "y"}
    response = client.post("/", data=data, environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert response.status_code == 302
    assert parsed == ["198.51.100.7"]
