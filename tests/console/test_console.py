"""The web console's foundation (issue 12): sessions, CSRF, security headers, the demo
sign-in, and a SPOC's inbox, message page and acknowledgement, on the real app."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.config import Settings
from gateway.console.sessions import PRODUCTION_COOKIE, SessionManager
from gateway.domain.model import Role
from tests.backends import make_settings, query
from tests.conftest import EXAMPLES, AgencyFactory, bearer, load
from tests.test_audit_log import audit_entries
from tests.test_messages_end_to_end import wait_for_inbox
from tests.test_shared_keys import init_keys

RA1 = EXAMPLES / "ra1_notice" / "valid-out-of-area-norfolk-resident.json"
ALERT = EXAMPLES / "disengagement_alert" / "valid-case-closed-persistent-non-engagement.json"
SPOC = "cjit-nfk.spoc"


def _token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)


async def sign_in(client: TestClient[Any, Any], person: str) -> str:
    """Sign in as a demo person; the session's CSRF token (from the home page's forms)."""
    page = await client.get("/console/sign-in")
    assert page.status == 200
    response = await client.post(
        "/console/sign-in", data={"csrf_token": _token(await page.text()), "person": person},
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == "/console/"
    home = await client.get("/console/")
    assert home.status == 200
    return _token(await home.text())


def session_rows(settings: Settings) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in query(settings, "SELECT id, person_id FROM console_sessions")]


async def test_root_sends_a_browser_to_the_console_and_the_api_is_unchanged(
    client: TestClient[Any, Any],
) -> None:
    response = await client.get("/", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "/console/"
    signed_out = await client.get("/console/", allow_redirects=False)
    assert signed_out.status == 303
    assert signed_out.headers["Location"] == "/console/sign-in"
    # A console cookie is no bearer token: the API still answers 401 without one.
    await sign_in(client, SPOC)
    api = await client.get("/v1/inbox")
    assert api.status == 401
    assert api.headers["Content-Type"].startswith("application/problem+json")


async def test_sign_in_lists_demo_people_and_sign_out_revokes_the_session(
    client: TestClient[Any, Any], settings: Settings,
) -> None:
    page = await (await client.get("/console/sign-in")).text()
    assert "Jack Turner" in page and "Norfolk CJIT" in page and SPOC in page
    assert "Single point of contact (SPOC)" in page
    csrf = await sign_in(client, SPOC)
    assert [person for _, person in session_rows(settings)] == [SPOC]
    home = await (await client.get("/console/")).text()
    assert "Jack Turner" in home and "Read and acknowledge the organisation" in home
    assert 'href="/console/sign-out-everywhere"' in home
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))["dipgw_session"]

    response = await client.post("/console/sign-out", data={"csrf_token": csrf},
                                 allow_redirects=False)
    assert response.status == 303
    assert session_rows(settings) == []
    assert (await client.get("/console/", allow_redirects=False)).status == 303
    # The old cookie, sent again, names no session.
    client.session.cookie_jar.update_cookies({"dipgw_session": cookie.value})
    again = await client.get("/console/", allow_redirects=False)
    assert again.status == 303 and again.headers["Location"] == "/console/sign-in"


async def test_session_cookie_flags(client: TestClient[Any, Any]) -> None:
    page = await client.get("/console/sign-in")
    response = await client.post(
        "/console/sign-in", data={"csrf_token": _token(await page.text()), "person": SPOC},
        allow_redirects=False,
    )
    cookie = next(c for c in response.headers.getall("Set-Cookie")
                  if c.startswith("dipgw_session="))
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "max-age", "samesite"} <= attributes
    assert "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "secure" not in attributes  # development serves plain HTTP


def test_production_cookie_is_secure_and_host_prefixed() -> None:
    manager = SessionManager(None, None, lambda: datetime.now(UTC), production=True)  # type: ignore[arg-type]
    response = web.Response()
    manager.set_cookie(response, "secret")
    cookie = response.cookies[PRODUCTION_COOKIE].OutputString()
    assert PRODUCTION_COOKIE.startswith("__Host-")
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


@pytest.mark.parametrize("path", ["/console/sign-in", "/console/nothing-here"])
async def test_security_headers(client: TestClient[Any, Any], path: str) -> None:
    response = await client.get(path)
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    page = await response.text()
    # No inline script: every <script> names a file.
    assert all("src=" in tag for tag in re.findall(r"<script[^>]*>", page))
    assert "govuk-template" in page and "Skip to main content" in page
    assert "govuk-phase-banner" in page and "DIP gateway" in page and "govuk-footer" in page


@pytest.mark.parametrize("token", [None, "", "wrong"])
async def test_sign_in_without_the_right_csrf_token_is_refused(
    client: TestClient[Any, Any], settings: Settings, token: str | None,
) -> None:
    await client.get("/console/sign-in")
    data = {"person": SPOC} | ({} if token is None else {"csrf_token": token})
    response = await client.post("/console/sign-in", data=data, allow_redirects=False)
    assert response.status == 400
    assert "Nothing was changed" in await response.text()
    assert session_rows(settings) == []


async def test_sign_out_and_acknowledge_need_the_session_csrf_token(
    client: TestClient[Any, Any], settings: Settings, agency: AgencyFactory,
) -> None:
    document = load(RA1)
    await agency("POL-SFK-IPS").send(document)
    assert await wait_for_inbox(agency("CJIT-NFK"), document["message_id"])
    await sign_in(client, SPOC)
    for data in ({}, {"csrf_token": "x" * 43}):
        ack = await client.post(f"/console/messages/{document['message_id']}/acknowledge",
                                data=data, allow_redirects=False)
        assert ack.status == 400
        out = await client.post("/console/sign-out", data=data, allow_redirects=False)
        assert out.status == 400
    # Nothing changed: still signed in, the message still waiting.
    assert len(session_rows(settings)) == 1
    assert await wait_for_inbox(agency("CJIT-NFK"), document["message_id"])


async def test_production_refuses_the_demo_sign_in(aiohttp_client: Any, tmp_path: Path) -> None:
    client = await aiohttp_client(create_app(make_settings(
        data_dir=tmp_path, environment="production", secrets_dir=init_keys(tmp_path / "keys"),
    )))
    # The sign-in page offers only the organisations' own accounts (gateway.console.oidc).
    page = await client.get("/console/sign-in")
    assert page.status == 200
    text = await page.text()
    assert "demo person" not in text and SPOC not in text
    assert page.headers["Content-Security-Policy"]
    response = await client.post("/console/sign-in", data={"person": SPOC, "csrf_token": "x"})
    assert response.status == 404


async def test_a_spoc_reads_and_acknowledges_a_message_sent_through_the_api(
    client: TestClient[Any, Any], settings: Settings, agency: AgencyFactory,
) -> None:
    document = load(RA1)
    message_id = document["message_id"]
    await agency("POL-SFK-IPS").send(document)
    assert await wait_for_inbox(agency("CJIT-NFK"), message_id)
    csrf = await sign_in(client, SPOC)

    inbox = await (await client.get("/console/inbox")).text()
    assert f"/console/messages/{message_id}" in inbox
    assert "RA1" in inbox or "Required assessment" in inbox
    assert "Suffolk Constabulary" in inbox  # the sender by name
    page = await client.get(f"/console/messages/{message_id}")
    assert page.status == 200
    text = await page.text()
    assert "Acknowledge" in text and "Legal basis" in text
    # Members by their schema titles, dates in words, organisations by name.
    assert "PNC ID" in text and "Pnc id" not in text
    assert "Norfolk CJIT (CJIT-NFK)" in text
    assert "Address lines:" not in text
    assert "_" not in re.sub(r"<[^>]+>|/console/[^\"]+|csrf_token|[a-z-]+_[a-z_]+=", "",
                             text.split('<h2 class="govuk-heading-m">Details</h2>')[1]
                             .split("</dl>")[0])

    response = await client.post(f"/console/messages/{message_id}/acknowledge",
                                 data={"csrf_token": csrf}, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == f"/console/inbox?acknowledged={message_id}"
    after = await (await client.get(response.headers["Location"])).text()
    assert "govuk-notification-banner--success" in after
    assert f"/console/messages/{message_id}" not in after
    status = await agency("POL-SFK-IPS").status(message_id)
    assert status["status"] == "acknowledged"
    history = [e for e in status["history"] if e["status"] == "acknowledged"]
    assert history
    shown = await (await client.get(f"/console/messages/{message_id}")).text()
    assert "Acknowledged" in shown and 'action="/console/messages/' not in shown


async def test_an_alert_shows_its_24_hour_clock(
    client: TestClient[Any, Any], agency: AgencyFactory,
) -> None:
    document = load(ALERT)
    await agency(document["from"]).send(document)
    recipient = document["to"][0]
    assert await wait_for_inbox(agency(recipient), document["message_id"])
    await sign_in(client, f"{recipient.lower()}.spoc")
    inbox = await (await client.get("/console/inbox")).text()
    assert "Disengagement alert" in inbox
    assert "left to act" in inbox and "govuk-tag--green" in inbox


async def test_without_the_spoc_role_the_inbox_and_messages_are_a_403_page(
    client: TestClient[Any, Any], agency: AgencyFactory,
) -> None:
    document = load(RA1)
    await agency("POL-SFK-IPS").send(document)
    assert await wait_for_inbox(agency("CJIT-NFK"), document["message_id"])
    await sign_in(client, "cjit-nfk.admin")
    home = await (await client.get("/console/")).text()
    assert 'href="/console/inbox"' not in home
    for path in ("/console/inbox", f"/console/messages/{document['message_id']}",
                 "/console/messages/00000000-0000-4000-8000-000000000000"):
        response = await client.get(path)
        assert response.status == 403
        page = await response.text()
        assert "You do not have permission to see this page" in page
        assert document["message_id"] not in page and "spoc" not in page.lower().replace(
            "cjit-nfk.admin", "")


async def test_a_revoked_grant_stops_working_in_the_console_at_once(
    client: TestClient[Any, Any], settings: Settings,
) -> None:
    await sign_in(client, SPOC)
    assert (await client.get("/console/inbox")).status == 200
    response = await client.post(
        f"/v1/grants/g-{SPOC}-spoc/revoke", json={"reason": "left the team"},
        headers=bearer(settings, "CJIT-NFK", Role.ORG_ADMIN),
    )
    assert response.status == 200, await response.text()
    assert (await client.get("/console/inbox")).status == 403


async def test_every_console_read_is_a_consultation_like_the_api(
    client: TestClient[Any, Any], settings: Settings, agency: AgencyFactory,
) -> None:
    document = load(RA1)
    message_id = document["message_id"]
    await agency("POL-SFK-IPS").send(document)
    assert await wait_for_inbox(agency("CJIT-NFK"), message_id)
    await sign_in(client, SPOC)
    assert (await client.get("/console/inbox")).status == 200
    assert (await client.get(f"/console/messages/{message_id}")).status == 200
    mine = [e for e in await audit_entries(client, settings)
            if e["action"] == "consulted" and e["actor"] == f"CJIT-NFK/{SPOC}"]
    assert [e["details"]["resource"] for e in mine] == ["inbox", "inbox_message"]
    assert all(e["details"]["channel"] == "console" for e in mine)
    assert mine[1]["message_id"] == message_id
    assert mine[0]["details"]["roles"] == ["spoc"]


@pytest.fixture
def now() -> list[datetime]:
    return [datetime(2026, 3, 2, 9, 0, tzinfo=UTC)]


@pytest.fixture
async def clocked(aiohttp_client: Any, settings: Settings, now: list[datetime]) -> Any:
    return await aiohttp_client(create_app(settings, clock=lambda: now[0]))


async def test_a_session_ends_after_30_idle_minutes(clocked: Any, now: list[datetime]) -> None:
    await sign_in(clocked, SPOC)
    now[0] += timedelta(minutes=29)
    assert (await clocked.get("/console/", allow_redirects=False)).status == 200
    now[0] += timedelta(minutes=29)  # activity moved the idle clock on
    assert (await clocked.get("/console/", allow_redirects=False)).status == 200
    now[0] += timedelta(minutes=30)
    response = await clocked.get("/console/", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/console/sign-in"


async def test_a_session_ends_12_hours_after_sign_in_however_active(
    clocked: Any, now: list[datetime],
) -> None:
    await sign_in(clocked, SPOC)
    for _ in range(12 * 60 // 20 - 1):
        now[0] += timedelta(minutes=20)
        assert (await clocked.get("/console/", allow_redirects=False)).status == 200
    now[0] += timedelta(minutes=20)
    response = await clocked.get("/console/", allow_redirects=False)
    assert response.status == 303


async def test_another_agencys_spoc_can_neither_read_nor_acknowledge_its_message(
    client: TestClient[Any, Any], agency: AgencyFactory,
) -> None:
    """A hostile member agency, signed in as its own SPOC, tries CJIT-NFK's message by id."""
    document = load(RA1)
    message_id = document["message_id"]
    await agency("POL-SFK-IPS").send(document)
    assert await wait_for_inbox(agency("CJIT-NFK"), message_id)
    csrf = await sign_in(client, "cjit-sfk.spoc")

    page = await client.get(f"/console/messages/{message_id}")
    assert page.status == 404 and message_id not in await page.text()
    ack = await client.post(f"/console/messages/{message_id}/acknowledge",
                            data={"csrf_token": csrf}, allow_redirects=False)
    assert ack.status == 404
    assert message_id not in await (await client.get("/console/inbox")).text()
    assert await wait_for_inbox(agency("CJIT-NFK"), message_id)  # still waiting there


async def test_a_signed_message_says_so_and_its_signed_copy_verifies_offline(
    client: TestClient[Any, Any], settings: Settings, agency: AgencyFactory,
    tmp_path: Path,
) -> None:
    """The SPOC sees that the sender signed, and downloads a copy that
    ``dipgw verify-message`` accepts; an unsigned message says it is not signed, and
    another agency's SPOC cannot download the copy."""
    from gateway import keys
    from gateway.cli import main
    from gateway.client import GatewayClient
    from gateway.services.directory import dev_key_path
    from tests.conftest import credentials

    signed, unsigned = load(RA1), load(EXAMPLES / "ra1_notice" /
                                       "valid-inspector-authority-nfa-rob-in-custody.json")
    await GatewayClient(str(client.make_url("")), credentials(settings, "POL-SFK-IPS"),
                        session=client.session, sign_messages=True).send(signed)
    await agency("POL-NFK-NOR").send(unsigned)
    for document in (signed, unsigned):
        assert await wait_for_inbox(agency("CJIT-NFK"), document["message_id"])
    await sign_in(client, SPOC)

    page = await (await client.get(f"/console/messages/{signed['message_id']}")).text()
    assert "Signed" in page and "Download the signed message" in page
    other = await (await client.get(f"/console/messages/{unsigned['message_id']}")).text()
    assert "Not signed" in other and "signed.json" not in other
    assert (await client.get(
        f"/console/messages/{unsigned['message_id']}/signed.json")).status == 404

    download = await client.get(f"/console/messages/{signed['message_id']}/signed.json")
    assert download.status == 200
    assert "attachment" in download.headers["Content-Disposition"]
    (tmp_path / "copy.json").write_text(await download.text())
    public = keys.public_jwk(keys.read_private(dev_key_path(settings.dev_keys_dir,
                                                           "POL-SFK-IPS")))
    (tmp_path / "police.jwk").write_text(json.dumps(public))
    assert main(["verify-message", str(tmp_path / "copy.json"),
                 "--public-key", str(tmp_path / "police.jwk")], {}) == 0

    client.session.cookie_jar.clear()
    await sign_in(client, "cjit-sfk.spoc")
    assert (await client.get(
        f"/console/messages/{signed['message_id']}/signed.json")).status == 404
