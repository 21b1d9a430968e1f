"""Client networks: where requests come from, for rate limits and the sign-up breaker.

One IPv4 address is one client; in IPv6 a subscriber gets a whole /64, so a client is
its /64 (counting single IPv6 addresses would let one home line take 2^64 turns). The
sign-up breaker also looks at the networks around a client: a /24 and a /16 in IPv4,
a /48 (a site) and a /32 (a provider's block) in IPv6.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache

#: Prefix lengths of (client, narrow network, wide network) per IP version.
PREFIXES = {4: (32, 24, 16), 6: (64, 48, 32)}


@dataclass(frozen=True)
class ClientNetworks:
    """A client and the two networks around it, as ``ip/prefix`` strings."""

    client: str
    narrow: str
    wide: str


def _address(ip: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address((ip or "").strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@lru_cache(maxsize=4096)
def networks_of(ip: str | None) -> ClientNetworks | None:
    """The client (/32 or /64) and its narrow and wide networks; None for no valid address.

    Remembered for the last 4,096 addresses: a code's request asks three times (its
    limits, the sign-up breaker's scopes, the code's row), 20 µs of ``ipaddress`` each.
    Only in this process's memory, linked to no number: the same addresses are in the
    consent evidence and the rate limits' keys already."""
    address = _address(ip)
    if address is None:
        return None
    client, narrow, wide = (
        str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
        for prefix in PREFIXES[address.version]
    )
    return ClientNetworks(client, narrow, wide)


def client_of(ip: str | None) -> str:
    """The key one client's requests share: its IPv4 address or its IPv6 /64 ("-": none)."""
    found = networks_of(ip)
    return found.client if found else "-"
