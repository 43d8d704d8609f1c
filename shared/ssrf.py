"""Guard against server-side request forgery for URLs that callers give us (webhook receivers).

A target must resolve only to public (globally routable, unicast) addresses unless an address lies in an
allow-listed network; `https` is required outside demo and test. The same check runs twice: when the URL is
registered (a clear 422) and inside the HTTP client's resolver at every delivery (`GuardedResolver`), so a
name that later resolves to a private address (DNS rebinding) is never connected to: the connection uses
exactly the addresses that passed.
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from shared.errors import Invalid

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(ValueError):
    """A target the guard does not let us call."""


def networks(allow: Iterable[str]) -> list[Network]:
    """Parse allow-list entries (CIDRs or single addresses)."""
    return [ipaddress.ip_network(entry.strip(), strict=False) for entry in allow if entry.strip()]


def permitted(address: str, allow: list[Network]) -> bool:
    """Whether we may connect to this address: public unicast, or inside an allow-listed network."""
    ip: Address = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in net for net in allow):
        return True
    return ip.is_global and not ip.is_multicast


async def resolve(host: str, port: int) -> list[str]:
    """Every address a host name resolves to (an IP literal: itself)."""
    try:
        ipaddress.ip_address(host)
        return [host]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


async def check_url(url: str, *, require_https: bool, allow: list[Network]) -> None:
    """Invalid (422) unless `url` is a target we may deliver to."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise Invalid(f"not a valid URL: {exc}") from exc
    allowed_schemes = ("https",) if require_https else ("https", "http")
    if parts.scheme not in allowed_schemes:
        raise Invalid(f"the URL must use {' or '.join(allowed_schemes)}")
    if not parts.hostname or parts.username or parts.password:
        raise Invalid("the URL needs a host and may not carry credentials")
    try:
        addresses = await asyncio.wait_for(resolve(parts.hostname, port), 5)
    except (OSError, TimeoutError) as exc:
        raise Invalid(f"cannot resolve {parts.hostname}") from exc
    refused = [a for a in addresses if not permitted(a, allow)]
    if refused or not addresses:
        raise Invalid(f"{parts.hostname} resolves to an address webhooks may not reach (loopback, private, "
                      "link-local or reserved) and it is not allow-listed")


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that returns only permitted addresses (and fails when none is)."""

    def __init__(self, allow: list[Network]) -> None:
        self.allow = allow
        self._inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: Any = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        kept = [r for r in results if permitted(r["host"], self.allow)]
        if not kept or len(kept) != len(results):
            raise OSError(f"{host} resolves to an address webhooks may not reach")
        return kept

    async def close(self) -> None:
        await self._inner.close()
