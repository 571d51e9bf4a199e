"""Rate limits: the token bucket's arithmetic (hypothesis), then each limit through the real
app, with a hand-driven clock so waiting costs no time: per address, per organisation,
failed authentications, the Retry-After value, recovery, and bounded memory."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request
from hypothesis import given
from hypothesis import strategies as st

from gateway.app import create_app
from gateway.config import Settings
from gateway.domain.errors import ConfigurationError
from gateway.http.limits import AddressLimits, OrganisationLimits, client_address
from gateway.http.services import SERVICES
from gateway.ratelimit import Bucket, BucketTable, Rate, retry_after_s
from tests.backends import database_for_module, make_settings
from tests.conftest import bearer

PROBLEM_TYPE = "urn:dipgw:problem:rate-limited"
INBOX = "/v1/inbox"

# --- the bucket's arithmetic ------------------------------------------------------------

rates = st.builds(
    Rate,
    per_second=st.floats(min_value=0.01, max_value=1000),
    burst=st.integers(min_value=1, max_value=1000),
)
steps = st.lists(
    st.tuples(st.floats(min_value=0, max_value=100), st.integers(min_value=1, max_value=5)),
    max_size=60,
)


@given(rate=rates, steps=steps)
def test_a_bucket_never_admits_more_than_its_burst_plus_what_has_dripped_in(
    rate: Rate, steps: list[tuple[float, int]]
) -> None:
    bucket, now, admitted = Bucket.full(rate, 0.0), 0.0, 0.0
    for gap, cost in steps:
        now += gap
        if bucket.take(rate, now, cost) == 0:
            admitted += cost
        assert 0 <= bucket.tokens <= rate.burst + 1e-9
    assert admitted <= rate.burst + rate.per_second * now + 1e-6 * max(1.0, admitted)


@given(rate=rates, spent=st.integers(min_value=0, max_value=1000),
       cost=st.integers(min_value=1, max_value=5))
def test_a_refusal_says_exactly_how_long_to_wait_and_spends_nothing(
    rate: Rate, spent: int, cost: int
) -> None:
    bucket = Bucket.full(rate, 0.0)
    for _ in range(min(spent, int(rate.burst))):
        bucket.take(rate, 0.0)
    before = bucket.tokens
    wait = bucket.take(rate, 0.0, cost)
    if cost > rate.burst:
        assert wait == math.inf
        return
    if wait == 0:
        return
    assert bucket.tokens == before
    assert bucket.take(rate, wait * 0.999, cost) > 0 or wait * 0.001 * rate.per_second < 1e-9
    assert bucket.take(rate, wait * (1 + 1e-9) + 1e-9, cost) == 0


@given(wait=st.floats(min_value=0, max_value=1e6))
def test_retry_after_is_whole_seconds_never_earlier_than_the_wait(wait: float) -> None:
    seconds = retry_after_s(wait)
    assert isinstance(seconds, int)
    assert seconds >= max(1.0, wait)
    assert seconds < max(1.0, wait) + 1


def test_a_clock_that_goes_backwards_adds_no_tokens() -> None:
    rate = Rate(per_second=1, burst=2)
    bucket = Bucket.full(rate, 100.0)
    assert bucket.take(rate, 100.0, 2) == 0
    assert bucket.take(rate, 50.0) == pytest.approx(1.0)


def test_a_table_holds_at_most_max_keys_and_drops_the_least_recently_used() -> None:
    table = BucketTable(Rate(per_second=1, burst=1), max_keys=100)
    for n in range(1000):
        table.take(f"10.0.{n // 256}.{n % 256}", now=0.0)
    assert len(table) == 100
    assert table.take("10.0.3.231", now=0.0) > 0  # the most recent are still counted


def test_idle_buckets_are_forgotten_once_they_would_be_full_again() -> None:
    table = BucketTable(Rate(per_second=1, burst=10), max_keys=1000)
    for n in range(50):
        table.take(f"key-{n}", now=0.0)
    for n in range(50):
        table.take("busy", now=10.0 + n)
    assert len(table) == 1


# --- through the app ---------------------------------------------------------------------


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limited_app(settings: Settings, clock: ManualClock) -> web.Application:
    app = create_app(settings)
    for middleware in app.middlewares:
        if isinstance(middleware, AddressLimits | OrganisationLimits):
            middleware.clock = clock
    return app


def limits_of(app: web.Application) -> AddressLimits:
    return next(m for m in app.middlewares if isinstance(m, AddressLimits))


async def limited(
    aiohttp_client: Any, tmp_path: Path, clock: ManualClock, **limits: Any
) -> TestClient[Any, Any]:
    settings = make_settings(data_dir=tmp_path, relay_interval_s=0.05, **limits)
    test_client: TestClient[Any, Any] = await aiohttp_client(limited_app(settings, clock))
    return test_client


async def inbox(client: TestClient[Any, Any], org: str = "CJIT-SFK", **headers: str) -> Any:
    settings = client.app[SERVICES].settings
    return await client.get(INBOX, headers={**bearer(settings, org), **headers})


async def assert_rate_limited(response: Any, retry_after: str) -> dict[str, Any]:
    assert response.status == 429
    assert response.headers["Retry-After"] == retry_after
    assert response.content_type == "application/problem+json"
    problem: dict[str, Any] = await response.json()
    assert problem["type"] == PROBLEM_TYPE
    assert problem["status"] == 429
    assert problem["retry_after_s"] == int(retry_after)
    return problem


async def test_an_address_over_its_limit_gets_429_until_it_has_waited(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    clock = ManualClock()
    client = await limited(aiohttp_client, tmp_path, clock,
                           rate_address_per_s=1.0, rate_address_burst=3)
    for _ in range(3):
        assert (await inbox(client)).status == 200
    problem = await assert_rate_limited(await inbox(client, "CJIT-NFK"), "1")
    assert "this address" in problem["detail"]
    clock.now += 1
    assert (await inbox(client)).status == 200
    await assert_rate_limited(await inbox(client), "1")


async def test_retry_after_counts_the_whole_seconds_left(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    clock = ManualClock()
    client = await limited(aiohttp_client, tmp_path, clock,
                           rate_address_per_s=0.25, rate_address_burst=1)
    assert (await inbox(client)).status == 200
    await assert_rate_limited(await inbox(client), "4")
    clock.now += 2.5
    await assert_rate_limited(await inbox(client), "2")
    clock.now += 1.5
    assert (await inbox(client)).status == 200


async def test_each_organisation_has_its_own_limit(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    clock = ManualClock()
    client = await limited(aiohttp_client, tmp_path, clock,
                           rate_org_per_s=0.5, rate_org_burst=2)
    for _ in range(2):
        assert (await inbox(client, "CJIT-SFK")).status == 200
    problem = await assert_rate_limited(await inbox(client, "CJIT-SFK"), "2")
    assert "CJIT-SFK" in problem["detail"]
    # Same address, another organisation: not affected.
    assert (await inbox(client, "CJIT-NFK")).status == 200
    clock.now += 2
    assert (await inbox(client, "CJIT-SFK")).status == 200


async def test_a_flood_of_bad_tokens_meets_429_after_the_default_allowance(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await limited(aiohttp_client, tmp_path, ManualClock())
    allowance = Settings().rate_auth_failures_burst
    statuses = [
        (await client.get(INBOX, headers={"Authorization": "Bearer not-a-token"})).status
        for _ in range(allowance + 20)
    ]
    assert statuses == [401] * allowance + [429] * 20
    # While the address is refused, a good token from it is refused too, before any check.
    await assert_rate_limited(await inbox(client), "1")


async def test_failed_authentications_cost_from_their_own_smaller_bucket(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    clock = ManualClock()
    client = await limited(aiohttp_client, tmp_path, clock,
                           rate_auth_failures_per_s=0.2, rate_auth_failures_burst=3)
    for _ in range(10):  # good requests do not spend the failure allowance
        assert (await inbox(client)).status == 200
    for _ in range(3):
        assert (await client.get(INBOX)).status == 401
    problem = await assert_rate_limited(await inbox(client), "5")
    assert "failed authentications" in problem["detail"]
    clock.now += 5
    assert (await client.get(INBOX)).status == 401  # one more try has dripped in
    await assert_rate_limited(await inbox(client), "5")
    clock.now += 5
    assert (await inbox(client)).status == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/openapi.json"])
async def test_public_paths_are_not_limited(
    path: str, aiohttp_client: Any, tmp_path: Path
) -> None:
    clock = ManualClock()
    client = await limited(aiohttp_client, tmp_path, clock,
                           rate_address_per_s=0.1, rate_address_burst=1)
    for _ in range(5):
        assert (await client.get(path)).status == 200


async def test_forwarded_for_is_believed_only_from_a_trusted_proxy(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    clock = ManualClock()
    plain = await limited(aiohttp_client, tmp_path / "plain", clock,
                          rate_address_per_s=0.1, rate_address_burst=1)
    assert (await inbox(plain, **{"X-Forwarded-For": "203.0.113.7"})).status == 200
    await assert_rate_limited(await inbox(plain, **{"X-Forwarded-For": "203.0.113.8"}), "10")

    # A second installation, with a database of its own as well as a data directory
    # (on PostgreSQL the test's database already holds the first one's demo directory,
    # whose keys are in the first data directory).
    with database_for_module() as own_database:
        proxied = await limited(aiohttp_client, tmp_path / "proxied", clock,
                                rate_address_per_s=0.1, rate_address_burst=1,
                                rate_trusted_proxies=Settings.from_env(
                                    {"DIPGW_RATE_TRUSTED_PROXIES": "127.0.0.1, ::1"}
                                ).rate_trusted_proxies,
                                database_url=own_database)
        try:
            assert (await inbox(proxied, **{"X-Forwarded-For": "203.0.113.7"})).status == 200
            assert (await inbox(proxied, **{"X-Forwarded-For": "203.0.113.8"})).status == 200
            await assert_rate_limited(
                await inbox(proxied, **{"X-Forwarded-For": "203.0.113.7"}), "10")
        finally:
            await proxied.close()


async def test_the_addresses_remembered_are_bounded(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    clock = ManualClock()
    client = await limited(aiohttp_client, tmp_path, clock, rate_max_tracked=10,
                           rate_trusted_proxies=Settings.from_env(
                               {"DIPGW_RATE_TRUSTED_PROXIES": "127.0.0.0/8,::1"}
                           ).rate_trusted_proxies)
    for n in range(40):
        response = await client.get(INBOX, headers={"X-Forwarded-For": f"198.51.100.{n}"})
        assert response.status == 401
    limits = limits_of(client.app)
    assert len(limits.requests) == 10
    assert len(limits.failures) == 10


@pytest.mark.parametrize(
    ("remote", "forwarded", "trusted", "key"),
    [
        ("192.0.2.1", "203.0.113.9", "", "192.0.2.1"),
        ("192.0.2.1", "203.0.113.9", "192.0.2.0/24", "203.0.113.9"),
        ("192.0.2.1", "198.51.100.1, 203.0.113.9, 192.0.2.2", "192.0.2.0/24", "203.0.113.9"),
        ("192.0.2.1", "not-an-address", "192.0.2.0/24", "192.0.2.1"),
        ("::ffff:192.0.2.1", "", "", "192.0.2.1"),
        ("2001:db8:1:2:aaaa::1", "", "", "2001:db8:1:2::/64"),
    ],
)
def test_the_client_address_key(remote: str, forwarded: str, trusted: str, key: str) -> None:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    request = make_mocked_request("GET", INBOX, headers=headers).clone(remote=remote)
    proxies = Settings.from_env({"DIPGW_RATE_TRUSTED_PROXIES": trusted}).rate_trusted_proxies
    assert client_address(request, proxies) == key


def test_limits_and_timeouts_are_read_from_the_environment() -> None:
    settings = Settings.from_env({
        "DIPGW_RATE_ADDRESS_PER_SECOND": "50",
        "DIPGW_RATE_ADDRESS_BURST": "100",
        "DIPGW_RATE_AUTH_FAILURES_PER_SECOND": "0.5",
        "DIPGW_RATE_AUTH_FAILURES_BURST": "5",
        "DIPGW_RATE_ORG_PER_SECOND": "0",
        "DIPGW_RATE_ORG_BURST": "10",
        "DIPGW_RATE_MAX_TRACKED": "1000",
        "DIPGW_RATE_TRUSTED_PROXIES": "10.0.0.0/8",
        "DIPGW_HEADER_TIMEOUT": "5",
        "DIPGW_BODY_TIMEOUT": "20.5",
    })
    assert (settings.rate_address_per_s, settings.rate_address_burst) == (50, 100)
    assert (settings.rate_auth_failures_per_s, settings.rate_auth_failures_burst) == (0.5, 5)
    assert settings.rate_org_per_s == 0
    assert settings.rate_max_tracked == 1000
    assert [str(n) for n in settings.rate_trusted_proxies] == ["10.0.0.0/8"]
    assert (settings.header_timeout_s, settings.body_timeout_s) == (5, 20.5)


@pytest.mark.parametrize(
    "env",
    [
        {"DIPGW_RATE_ORG_PER_SECOND": "fast"},
        {"DIPGW_RATE_ORG_PER_SECOND": "nan"},
        {"DIPGW_RATE_ADDRESS_PER_SECOND": "-1"},
        {"DIPGW_RATE_TRUSTED_PROXIES": "10.0.0.0/33"},
        {"DIPGW_HEADER_TIMEOUT": "0"},
        {"DIPGW_BODY_TIMEOUT": "inf"},
    ],
)
def test_bad_limit_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        Settings.from_env(env)


def test_a_limit_with_no_burst_is_refused_at_start(tmp_path: Path) -> None:
    settings = replace(make_settings(data_dir=tmp_path), rate_org_burst=0)
    with pytest.raises(ConfigurationError, match="DIPGW_RATE_ORG"):
        create_app(settings)
