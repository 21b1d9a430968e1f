"""Client networks: what the limits count as one client, and the networks around it."""

from __future__ import annotations

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
