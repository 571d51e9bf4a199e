"""Console sign-in with the organisation's account (issue 12): OpenID Connect, authorization
code with PKCE, against a real OpenID Provider (panva's oidc-provider, OpenID Certified)
started by the tests; the gateway in process. The demo directory registers that provider
for every demo organisation (DIPGW_DEMO_OIDC_ISSUER) and each demo person's subject is
their person id."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.config import Settings
from gateway.console import oidc
from gateway.domain.model import IdentityProvider, SignIn
from gateway.http.services import SERVICES
from tests.backends import make_settings, query
from tests.conftest import person_bearer
from tests.console.oidc_support import CALLBACK, Provider, log_in_at_provider, provider_process
from tests.test_shared_keys import init_keys

GATEWAY = "http://127.0.0.1:18080"  # the redirect URI's base: the provider never calls it
SECRET = "a-client-secret-from-the-environment"
SPOC = "cjit-nfk.spoc"
ORGS = ("CJIT-NFK", "CJIT-SFK", "CJIT-CAM", "DIP-ASSURE")


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with provider_process(GATEWAY + CALLBACK, SECRET) as running:
        yield running


def _settings(tmp_path: Path, provider: Provider, **more: Any) -> Settings:
    return make_settings(
        data_dir=tmp_path, relay_interval_s=0.05, public_url=GATEWAY,
        demo_oidc_issuer=provider.issuer,
        oidc_client_secrets={code: SECRET for code in ORGS}, **more,
    )


@pytest.fixture
def oidc_settings(tmp_path: Path, provider: Provider) -> Settings:
    return _settings(tmp_path, provider)


class Browser:
    """A browser's cookies, kept by hand: the gateway's production cookies are Secure
    (__Host-), which aiohttp's jar would not send over the tests' plain http. Redirects
    are never followed (the tests look at each)."""

    def __init__(self, server: TestClient[Any, Any]) -> None:
        self.app = server.app
        self.base = f"http://{server.host}:{server.port}"
        self.cookies: dict[str, str] = {}
        self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())

    async def request(self, method: str, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        kwargs.pop("allow_redirects", None)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        response = await self._session.request(method, self.base + path, headers=headers,
                                               allow_redirects=False, **kwargs)
        await response.read()
        for name, morsel in response.cookies.items():
            if morsel.value and morsel["max-age"] != "0":
                self.cookies[name] = morsel.value
            else:
                self.cookies.pop(name, None)
        return response

    async def get(self, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        return await self.request("POST", path, **kwargs)

    async def close(self) -> None:
        await self._session.close()


@pytest.fixture
async def server(aiohttp_client: Any, oidc_settings: Settings) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await aiohttp_client(create_app(oidc_settings))
    return client


@pytest.fixture
async def browsers(server: TestClient[Any, Any]) -> AsyncIterator[Callable[[], Browser]]:
    """New browsers on the one gateway, each with its own cookies."""
    opened: list[Browser] = []

    def open_browser() -> Browser:
        opened.append(Browser(server))
        return opened[-1]

    yield open_browser
    for browser in opened:
        await browser.close()


@pytest.fixture
async def gw(browsers: Callable[[], Browser]) -> Browser:
    return browsers()


def _token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


async def begin(client: Browser, org: str = "CJIT-NFK") -> str:
    """Choose the organisation on the sign-in page; the authentication request's URL."""
    page = await client.get("/console/sign-in")
    assert page.status == 200
    text = await page.text()
    assert "Sign in with your organisation" in text
    response = await client.post("/console/sign-in/oidc", allow_redirects=False, data={
        "csrf_token": _token(text), "organisation": org})
    assert response.status == 303, await response.text()
    return response.headers["Location"]


async def sign_in_oidc(client: Browser, provider: Provider, login: str,
                       org: str = "CJIT-NFK", amr: str = "pwd,otp") -> Any:
    """The whole flow; the gateway's answer to the provider's redirect (not followed)."""
    authorization = await begin(client, org)
    back = await log_in_at_provider(authorization, GATEWAY + CALLBACK, login, amr)
    parts = urlsplit(back)
    return await client.get(f"{parts.path}?{parts.query}", allow_redirects=False)


def sessions_of(settings: Settings) -> list[str]:
    return [r[0] for r in query(settings, "SELECT person_id FROM console_sessions")]


def audit_of(settings: Settings, prefix: str = "console.") -> list[dict[str, Any]]:
    entries = [json.loads(bytes(r[0])) for r in query(
        settings, "SELECT entry FROM audit_entries ORDER BY idx")]
    return [e for e in entries if e["action"].startswith(prefix)]


async def test_a_person_signs_in_with_their_organisations_account(
    gw: Browser, oidc_settings: Settings, provider: Provider,
) -> None:
    authorization = await begin(gw)
    query = parse_qs(urlsplit(authorization).query)
    assert authorization.startswith(provider.issuer + "/auth?")
    # RFC 7636: only the S256 challenge goes to the provider, never the verifier.
    assert query["code_challenge_method"] == ["S256"]
    assert query["response_type"] == ["code"] and query["scope"] == ["openid"]
    assert query["client_id"] == ["dipgw-console"]
    assert query["redirect_uri"] == [GATEWAY + CALLBACK]
    assert query["state"][0] and query["nonce"][0] and len(query["code_challenge"][0]) == 43
    back = await log_in_at_provider(authorization, GATEWAY + CALLBACK, SPOC)
    parts = urlsplit(back)
    answer = await gw.get(f"{parts.path}?{parts.query}", allow_redirects=False)
    assert answer.status == 303, await answer.text()
    assert answer.headers["Location"] == "/console/"
    home = await (await gw.get("/console/")).text()
    assert "Jack Turner" in home
    assert sessions_of(oidc_settings) == [SPOC]
    # Exactly their grants: a SPOC's inbox opens, the audit pages do not.
    assert (await gw.get("/console/inbox")).status == 200
    assert (await gw.get("/console/audit")).status in (403, 404)
    [signed_in] = audit_of(oidc_settings)
    assert signed_in["action"] == "console.signed_in"
    assert signed_in["actor"] == f"CJIT-NFK/{SPOC}"
    assert signed_in["details"]["method"] == "oidc"
    assert signed_in["details"]["issuer"] == provider.issuer
    assert signed_in["details"]["amr"] == ["pwd", "otp"]
    # The provider's answer is used once: sent again, it opens nothing.
    again = await gw.get(f"{parts.path}?{parts.query}", allow_redirects=False)
    assert again.status == 400
    assert "expired" in await again.text()


async def test_a_wrong_state_is_refused_and_nothing_is_asked_of_the_provider(
    gw: Browser, oidc_settings: Settings,
) -> None:
    authorization = await begin(gw)
    back = await log_in_at_provider(authorization, GATEWAY + CALLBACK, SPOC)
    parts = urlsplit(back)
    forged = re.sub(r"state=[^&]+", "state=forged", parts.query)
    answer = await gw.get(f"{parts.path}?{forged}", allow_redirects=False)
    assert answer.status == 400
    assert "Your sign-in has expired or was not started here" in await answer.text()
    assert sessions_of(oidc_settings) == []
    # The attempt was taken: the genuine answer cannot be used after a forged one.
    genuine = await gw.get(f"{parts.path}?{parts.query}", allow_redirects=False)
    assert genuine.status == 400
    assert sessions_of(oidc_settings) == []


async def test_a_callback_without_the_browsers_attempt_is_refused(
    gw: Browser, browsers: Callable[[], Browser], oidc_settings: Settings,
) -> None:
    """Login CSRF: an answer begun in one browser does not sign in another."""
    authorization = await begin(gw)
    back = await log_in_at_provider(authorization, GATEWAY + CALLBACK, SPOC)
    parts = urlsplit(back)
    other = browsers()
    answer = await other.get(f"{parts.path}?{parts.query}", allow_redirects=False)
    assert answer.status == 400
    assert sessions_of(oidc_settings) == []


async def test_an_id_token_for_another_nonce_is_refused(
    gw: Browser, provider: Provider, oidc_settings: Settings,
) -> None:
    """A real ID token of the provider, replayed into a sign-in with another nonce
    (OIDC Core 1.0 section 3.1.3.7 step 11), is refused; with its own nonce it passes."""
    services = gw.app[SERVICES]
    identity = IdentityProvider(provider.issuer, "dipgw-console")
    metadata = await oidc.CLIENT.metadata(provider.issuer)
    now = services.clock()
    _, attempt = oidc.new_attempt("CJIT-NFK", now)
    redirect = GATEWAY + CALLBACK
    authorization = oidc.authorization_url(metadata, identity, attempt, redirect)
    back = await log_in_at_provider(authorization, redirect, SPOC)
    code = parse_qs(urlsplit(back).query)["code"][0]
    id_token = await oidc.CLIENT.exchange(metadata, identity, SECRET, code, redirect,
                                          attempt.code_verifier)
    _, other = oidc.new_attempt("CJIT-NFK", now)
    with pytest.raises(oidc.SignInRefused) as refused:
        await oidc.CLIENT.verify(metadata, identity, id_token, other.nonce, now)
    assert refused.value.reason == "token_invalid"
    # Another client's audience is refused too.
    with pytest.raises(oidc.SignInRefused):
        await oidc.CLIENT.verify(metadata, IdentityProvider(provider.issuer, "another"),
                                 id_token, attempt.nonce, now)
    verified = await oidc.CLIENT.verify(metadata, identity, id_token, attempt.nonce, now)
    assert verified.sign_in.subject == SPOC
    assert verified.sign_in.issuer == provider.issuer


async def test_the_code_is_bound_to_its_own_pkce_verifier(
    gw: Browser, provider: Provider,
) -> None:
    """RFC 7636 section 4.6: a code exchanged with another verifier gets no token."""
    identity = IdentityProvider(provider.issuer, "dipgw-console")
    metadata = await oidc.CLIENT.metadata(provider.issuer)
    now = gw.app[SERVICES].clock()
    _, attempt = oidc.new_attempt("CJIT-NFK", now)
    _, other = oidc.new_attempt("CJIT-NFK", now)
    redirect = GATEWAY + CALLBACK
    back = await log_in_at_provider(
        oidc.authorization_url(metadata, identity, attempt, redirect), redirect, SPOC)
    code = parse_qs(urlsplit(back).query)["code"][0]
    with pytest.raises(oidc.SignInRefused) as refused:
        await oidc.CLIENT.exchange(metadata, identity, SECRET, code, redirect,
                                   other.code_verifier)
    assert refused.value.reason == "code_refused"


async def test_an_unknown_person_is_told_they_are_not_registered_and_nothing_leaks(
    gw: Browser, oidc_settings: Settings, provider: Provider,
) -> None:
    answer = await sign_in_oidc(gw, provider, "someone.unknown")
    assert answer.status == 403
    text = await answer.text()
    assert "You are not registered to use this service" in text
    assert "someone.unknown" not in text and provider.issuer not in text
    assert sessions_of(oidc_settings) == []
    [refused] = audit_of(oidc_settings)
    assert refused["action"] == "console.sign_in_refused"
    assert refused["details"] == {"organisation": "CJIT-NFK", "method": "oidc",
                                  "reason": "not_registered"}
    assert "someone.unknown" not in json.dumps(refused)


async def test_an_identity_at_another_organisations_provider_is_refused(
    gw: Browser, oidc_settings: Settings, provider: Provider,
) -> None:
    """Suffolk CJIT registers its own provider: its SPOC's identity at Norfolk's provider
    (the test provider) opens nothing, whichever organisation is chosen."""
    services = gw.app[SERVICES]
    await services.directory.change(services.directory.repository.set_identity_provider(
        "CJIT-SFK", IdentityProvider("https://login.suffolk-cjit.example", "dipgw"),
        "DIPGW-OPS/dipgw-ops.operator", services.clock(), services.audit,
    ))
    answer = await sign_in_oidc(gw, provider, "cjit-sfk.spoc", org="CJIT-NFK")
    assert answer.status == 403
    assert "You are not registered" in await answer.text()
    assert sessions_of(oidc_settings) == []
    # Norfolk's own SPOC still signs in there.
    ok = await sign_in_oidc(gw, provider, SPOC, org="CJIT-NFK")
    assert ok.status == 303


async def test_production_requires_a_second_factor(
    aiohttp_client: Any, tmp_path: Path, provider: Provider,
) -> None:
    settings = _settings(tmp_path, provider, environment="production",
                         secrets_dir=init_keys(tmp_path / "keys"))
    client = Browser(await aiohttp_client(create_app(settings)))
    page = await (await client.get("/console/sign-in")).text()
    assert "demo person" not in page and "Sign in with your organisation" in page
    refused = await sign_in_oidc(client, provider, SPOC, amr="pwd")
    assert refused.status == 403
    assert "You need to sign in with a second factor" in await refused.text()
    assert sessions_of(settings) == []
    assert audit_of(settings)[-1]["details"]["reason"] == "no_mfa"
    signed_in = await sign_in_oidc(client, provider, SPOC, amr="pwd,hwk")
    assert signed_in.status == 303, await signed_in.text()
    assert "__Host-dipgw_session" in client.cookies
    assert sessions_of(settings) == [SPOC]
    await client.close()


async def test_sign_out_of_every_device_ends_every_session_of_the_person(
    gw: Browser, browsers: Callable[[], Browser], oidc_settings: Settings,
    provider: Provider,
) -> None:
    laptop = browsers()
    assert (await sign_in_oidc(gw, provider, SPOC)).status == 303
    assert (await sign_in_oidc(laptop, provider, SPOC)).status == 303
    other_person = browsers()
    assert (await sign_in_oidc(other_person, provider, "cjit-nfk.admin")).status == 303
    assert sorted(sessions_of(oidc_settings)) == ["cjit-nfk.admin", SPOC, SPOC]
    page = await gw.get("/console/sign-out-everywhere")
    assert page.status == 200
    text = await page.text()
    assert "Sign out of every device" in text
    out = await gw.post("/console/sign-out-everywhere", allow_redirects=False,
                        data={"csrf_token": _token(text)})
    assert out.status == 303
    assert out.headers["Location"] == "/console/signed-out?everywhere=1"
    assert sessions_of(oidc_settings) == ["cjit-nfk.admin"]
    # The laptop's session is gone too; the other person's is not.
    gone = await laptop.get("/console/", allow_redirects=False)
    assert gone.status == 303 and gone.headers["Location"] == "/console/sign-in"
    assert (await other_person.get("/console/")).status == 200
    signed_out = await (await gw.get("/console/signed-out?everywhere=1")).text()
    assert "You have signed out of every device" in signed_out
    everywhere = [e for e in audit_of(oidc_settings)
                  if e["action"] == "console.signed_out_everywhere"]
    assert everywhere == [{**everywhere[0], "actor": f"CJIT-NFK/{SPOC}",
                           "details": {"person": SPOC, "sessions_ended": 2}}]


async def test_sign_out_everywhere_needs_the_sessions_csrf_token(
    gw: Browser, oidc_settings: Settings, provider: Provider,
) -> None:
    assert (await sign_in_oidc(gw, provider, SPOC)).status == 303
    refused = await gw.post("/console/sign-out-everywhere", data={"csrf_token": "forged"})
    assert refused.status == 400
    assert sessions_of(oidc_settings) == [SPOC]


async def test_sign_out_and_demo_sign_in_are_audited(
    gw: Browser, oidc_settings: Settings,
) -> None:
    page = await (await gw.get("/console/sign-in")).text()
    # Development: both ways of signing in on one page.
    assert "Sign in with your organisation" in page and "Sign in as a demo person" in page
    response = await gw.post("/console/sign-in", allow_redirects=False,
                             data={"csrf_token": _token(page), "person": SPOC})
    assert response.status == 303
    home = await (await gw.get("/console/")).text()
    out = await gw.post("/console/sign-out", allow_redirects=False,
                        data={"csrf_token": _token(home)})
    assert out.status == 303
    actions = [(e["action"], e["details"].get("method")) for e in audit_of(oidc_settings)]
    assert actions == [("console.signed_in", "demo"), ("console.signed_out", None)]


async def test_an_organisation_without_a_provider_cannot_be_chosen(
    gw: Browser, oidc_settings: Settings,
) -> None:
    page = await (await gw.get("/console/sign-in")).text()
    answer = await gw.post("/console/sign-in/oidc", allow_redirects=False, data={
        "csrf_token": _token(page), "organisation": "NO-SUCH-ORG"})
    assert answer.status == 400
    assert "Select your organisation" in await answer.text()
    forged = await gw.post("/console/sign-in/oidc", allow_redirects=False, data={
        "csrf_token": "forged", "organisation": "CJIT-NFK"})
    assert forged.status == 400


async def test_an_organisation_registers_its_provider_through_the_api(
    server: TestClient[Any, Any], oidc_settings: Settings,
) -> None:
    """Its administrator registers issuer and client id (audited; no secret accepted);
    the directory lists them; another organisation's administrator may not."""
    url = "/v1/directory/CJIT-SFK/identity-provider"

    def admin() -> dict[str, str]:  # a token is used once (jti)
        return person_bearer(oidc_settings, "cjit-sfk.admin")

    body = {"issuer": "https://login.suffolk-cjit.example", "client_id": "dipgw"}
    answer = await server.put(url, json=body, headers=admin())
    assert answer.status == 200, await answer.text()
    assert (await answer.json())["identity_provider"] == body
    listed = await server.get("/v1/directory", headers=admin())
    [sfk] = [o for o in (await listed.json())["organisations"] if o["code"] == "CJIT-SFK"]
    assert sfk["identity_provider"] == body
    for wrong in ({**body, "issuer": "http://login.example"},
                  {**body, "client_secret": "never-here"}, {"issuer": body["issuer"]}):
        refused = await server.put(url, json=wrong, headers=admin())
        assert refused.status == 422, wrong
    other = await server.put(url, json=body, headers=person_bearer(oidc_settings,
                                                                   "cjit-nfk.admin"))
    assert other.status == 403
    removed = await server.delete(url, headers=admin())
    assert removed.status == 200 and "identity_provider" not in await removed.json()
    updates = [e["details"] for e in audit_of(oidc_settings, "directory.updated")
               if "identity_provider" in e["details"]]
    assert updates[-2:] == [{"identity_provider": {"CJIT-SFK": body}},
                            {"identity_provider": {"CJIT-SFK": None}}]


async def test_a_sign_in_cancelled_at_the_provider_opens_nothing(
    gw: Browser, oidc_settings: Settings,
) -> None:
    """The provider's error answer (OIDC Core 1.0 section 3.1.2.6), with the right state,
    is refused and audited by reason."""
    state = parse_qs(urlsplit(await begin(gw)).query)["state"][0]
    answer = await gw.get(f"{CALLBACK}?error=access_denied&state={state}")
    assert answer.status == 400
    assert "Sign-in was not completed" in await answer.text()
    assert sessions_of(oidc_settings) == []
    assert audit_of(oidc_settings)[-1]["details"]["reason"] == "provider_error"


def test_client_secrets_come_from_the_environment_only() -> None:
    settings = Settings.from_env({
        "DIPGW_OIDC_CLIENT_SECRET_CJIT_NFK": "s1", "DIPGW_OIDC_CLIENT_SECRET_POL_SFK_IPS": "s2",
        "DIPGW_OIDC_CLIENT_SECRET_CJIT_SFK": "", "DIPGW_OIDC_MFA_ACR": "urn:example:mfa",
    })
    assert settings.oidc_client_secrets == {"CJIT-NFK": "s1", "POL-SFK-IPS": "s2"}
    assert settings.oidc_mfa_acr == "urn:example:mfa"
    # The directory's view of a provider has no place for a secret.
    assert set(IdentityProvider("https://idp.example", "c").as_dict()) == {"issuer", "client_id"}


def test_a_configured_acr_counts_as_a_second_factor() -> None:
    verified = oidc.Verified(SignIn("https://idp.example", "s"), ("pwd",), "urn:example:mfa")
    assert verified.multi_factor("urn:example:mfa")
    assert not verified.multi_factor(None)
    assert not verified.multi_factor("urn:example:other")
    assert oidc.Verified(SignIn("https://idp.example", "s"), ("pwd", "otp"), None
                         ).multi_factor(None)


def test_production_talks_to_providers_over_https_only() -> None:
    assert oidc.transport_allowed("https://login.example", production=True)
    assert oidc.transport_allowed("http://127.0.0.1:9000", production=True)  # this host
    assert not oidc.transport_allowed("http://login.example", production=True)
    assert oidc.transport_allowed("http://login.example", production=False)
    assert not oidc.transport_allowed("ftp://login.example", production=False)
