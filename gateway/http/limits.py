"""Rate limits per client address and per organisation, answered with 429 and Retry-After.

Two middlewares around ``authentication_middleware``:

* ``AddressLimits`` runs before authentication, so a flood is refused before a token is
  even parsed. Every request spends from the address's bucket; a failed authentication
  also spends from a much smaller bucket of its own, and while that one is empty every
  request from the address is refused, so 500 bad tokens a second from one address meet
  429 after the first few dozen instead of 401 for ever.
* ``OrganisationLimits`` runs after it and spends from the authenticated organisation's
  bucket, wherever its requests come from.

The public paths (health, readiness, the API description) spend nothing. A refusal is
``errors.RateLimited``, which ``gateway.http.problems`` answers ``429 Too Many Requests``
(RFC 6585 section 4) with a ``Retry-After`` in whole seconds (RFC 9110 section 10.2.3).

The client address is the TCP peer (``request.remote``). ``X-Forwarded-For`` is believed
only from a peer in ``DIPGW_RATE_TRUSTED_PROXIES``, and then only as far back as the
chain stays within those proxies (the rightmost address not one of them is the client),
since anyone else can write anything there. Behind an undeclared reverse proxy every
client shares the proxy's address, and its buckets. IPv6 clients are counted per /64,
the block one subscriber is normally given, so an attacker cannot get a fresh bucket by
changing the low bits of its address.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable

from aiohttp import web

from gateway.config import Network, Settings
from gateway.domain.errors import AuthenticationFailed, ConfigurationError, RateLimited
from gateway.http.context import PUBLIC_PATHS, needs_token, principal_of
from gateway.http.problems import Handler
from gateway.ratelimit import BucketTable, Rate, retry_after_s

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Clock = Callable[[], float]

_IPV6_SUBSCRIBER_PREFIX = 64


def _table(per_second: float, burst: int, max_keys: int, setting: str) -> BucketTable:
    try:
        return BucketTable(Rate(per_second, burst), max_keys)
    except ValueError as exc:
        raise ConfigurationError(f"DIPGW_RATE_{setting}: {exc}") from None


def _address(raw: str | None) -> Address | None:
    if not raw:
        return None
    try:
        address = ipaddress.ip_address(raw.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _within(address: Address, networks: tuple[Network, ...]) -> bool:
    return any(address in network for network in networks)


def client_ip(request: web.BaseRequest, trusted_proxies: tuple[Network, ...]) -> Address | None:
    """The caller's address: the TCP peer, or behind trusted proxies the client they
    forwarded for (see the module docstring); None when the peer is not an IP address."""
    address = _address(request.remote)
    if address is None:
        return None
    if _within(address, trusted_proxies):
        hops = ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")
        for hop in reversed(hops):
            forwarded = _address(hop)
            if forwarded is None:
                break
            address = forwarded
            if not _within(address, trusted_proxies):
                break
    return address


def client_address(request: web.BaseRequest, trusted_proxies: tuple[Network, ...]) -> str:
    """The key the caller's address is counted under (see the module docstring)."""
    address = client_ip(request, trusted_proxies)
    if address is None:
        return request.remote or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        network = ipaddress.IPv6Network((address, _IPV6_SUBSCRIBER_PREFIX), strict=False)
        return str(network)
    return str(address)


class AddressLimits:
    """Middleware placed before authentication: per-address and failed-authentication."""

    __middleware_version__ = 1  # what ``web.middleware`` marks; this one is a callable

    def __init__(self, settings: Settings, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self.trusted_proxies = settings.rate_trusted_proxies
        self.requests = _table(
            settings.rate_address_per_s, settings.rate_address_burst,
            settings.rate_max_tracked, "ADDRESS_*",
        )
        self.failures = _table(
            settings.rate_auth_failures_per_s, settings.rate_auth_failures_burst,
            settings.rate_max_tracked, "AUTH_FAILURES_*",
        )

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in PUBLIC_PATHS:
            return await handler(request)
        key = client_address(request, self.trusted_proxies)
        now = self.clock()
        wait = self.failures.wait(key, now)
        if wait > 0:
            raise RateLimited(
                "Too many failed authentications from this address.", retry_after_s(wait)
            )
        wait = self.requests.take(key, now)
        if wait > 0:
            raise RateLimited("Too many requests from this address.", retry_after_s(wait))
        try:
            return await handler(request)
        except AuthenticationFailed:
            self.failures.take(key, self.clock())
            raise


class OrganisationLimits:
    """Middleware placed after authentication: per authenticated organisation."""

    __middleware_version__ = 1

    def __init__(self, settings: Settings, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self.requests = _table(
            settings.rate_org_per_s, settings.rate_org_burst,
            settings.rate_max_tracked, "ORG_*",
        )

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if needs_token(request.path):
            org = principal_of(request).org.code
            wait = self.requests.take(org, self.clock())
            if wait > 0:
                raise RateLimited(
                    f"Too many requests from {org}.", retry_after_s(wait)
                )
        return await handler(request)
