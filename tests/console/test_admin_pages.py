"""The organisation administrator's console pages (issue 12): people and their grants, add a
person, grant and revoke with reasons, the refusals of ``access.check_grant`` shown in the
error summary, the delivery channel and the SPOC contact, on the real app and through the
API's own services (what the pages change, the API then reports)."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from gateway.config import Settings
from gateway.domain.model import DeliveryChannel, Role
from gateway.http.services import SERVICES
from tests.conftest import person_bearer
from tests.console.pages_support import register_key, remove_key, text
from tests.console.test_console import sign_in

ADMIN = "cjit-nfk.admin"  # Laura Reid, Norfolk CJIT's administrator
SPOC = "cjit-nfk.spoc"  # Jack Turner
IG_LEAD = "cjit-nfk.ig-lead"  # Kiran Shah
OTHER_ORG_PERSON = "cjit-sfk.spoc"  # Georgia Bell, Suffolk CJIT
OPERATOR = "dipgw-ops.operator"


async def test_the_people_page_lists_the_organisation_s_people_and_their_roles(
    client: TestClient[Any, Any],
) -> None:
    await sign_in(client, ADMIN)
    response = await client.get("/console/people")
    assert response.status == 200
    page = text(await response.text())
    for name in ("Jack Turner", "Kiran Shah", "Laura Reid"):
        assert name in page
    assert "Georgia Bell" not in page  # Suffolk CJIT's people are not Norfolk's
    assert "Single point of contact (SPOC)" in page
    assert 'href="/console/people/cjit-nfk.spoc"' in page
    assert 'href="/console/directory/CJIT-NFK/people/new"' in page
    # The organisation's settings, with links to change them.
    assert "Your systems collect messages" in page
    assert "Norfolk CJIT SPOC" in page
    assert 'href="/console/directory/CJIT-NFK/delivery"' in page
    assert 'href="/console/directory/CJIT-NFK/contact"' in page


async def test_a_person_s_page_shows_who_granted_each_role_when_and_why(
    client: TestClient[Any, Any],
) -> None:
    await sign_in(client, ADMIN)
    page = text(await (await client.get(f"/console/people/{SPOC}")).text())
    assert "Jack Turner" in page and "Single point of contact (SPOC)" in page
    assert "Set up with the gateway" in page and "demo directory" in page
    assert f'href="/console/people/{SPOC}/grant"' in page
    assert "/revoke" in page


async def test_a_spoc_gets_the_403_page_for_people(client: TestClient[Any, Any]) -> None:
    await sign_in(client, SPOC)
    response = await client.get("/console/people")
    assert response.status == 403
    page = await response.text()
    assert "You do not have permission to see this page" in page
    assert "Kiran Shah" not in page
    home = await (await client.get("/console/")).text()
    assert 'href="/console/people"' not in home


async def test_another_organisation_s_person_is_not_found_for_an_org_admin(
    client: TestClient[Any, Any],
) -> None:
    csrf = await sign_in(client, ADMIN)
    for path in (f"/console/people/{OTHER_ORG_PERSON}", "/console/people/no.such.person",
                 f"/console/people/{OTHER_ORG_PERSON}/grant"):
        response = await client.get(path)
        assert response.status == 404, path
        assert "Georgia Bell" not in await response.text()
    refused = await client.post(f"/console/people/{OTHER_ORG_PERSON}/grant", data={
        "csrf_token": csrf, "role": "ig_lead", "reason": "trying my luck"})
    assert refused.status == 404
    # Nor can the administrator reach another organisation's settings.
    assert (await client.get("/console/directory/CJIT-SFK/contact")).status == 403


async def test_an_ig_lead_sees_the_people_but_may_not_grant(
    client: TestClient[Any, Any],
) -> None:
    await sign_in(client, IG_LEAD)
    page = text(await (await client.get("/console/people")).text())
    assert "Jack Turner" in page
    assert "/people/new" not in page
    person = text(await (await client.get(f"/console/people/{SPOC}")).text())
    assert "/grant" not in person and "/revoke" not in person
    assert (await client.get(f"/console/people/{SPOC}/grant")).status == 403


async def test_granting_and_revoking_a_role_with_reasons(
    client: TestClient[Any, Any], settings: Settings,
) -> None:
    csrf = await sign_in(client, ADMIN)
    form = text(await (await client.get(f"/console/people/{SPOC}/grant")).text())
    assert 'value="ig_lead"' in form and 'value="org_admin"' in form
    assert 'value="spoc"' not in form  # already held
    assert 'value="auditor"' not in form  # not the administrator's to grant
    response = await client.post(f"/console/people/{SPOC}/grant", data={
        "csrf_token": csrf, "role": "ig_lead", "reason": "Covering the IG lead's leave"},
        allow_redirects=False)
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == f"/console/people/{SPOC}?granted=ig_lead"
    page = text(await (await client.get(response.headers["Location"])).text())
    assert "Jack Turner has been granted a role" in page
    assert "Information governance lead" in page
    assert "Covering the IG lead's leave" in page and "Laura Reid (CJIT-NFK)" in page
    # The API says the same: the grant is the API's own.
    api = await client.get(f"/v1/people/{SPOC}", headers=person_bearer(settings, ADMIN))
    granted = [g for g in (await api.json())["grants"] if g["role"] == "ig_lead"]
    assert granted[0]["reason"] == "Covering the IG lead's leave"
    assert granted[0]["granted_by"] == f"CJIT-NFK/{ADMIN}"

    grant_id = granted[0]["id"]
    confirm = await client.get(f"/console/people/{SPOC}/grants/{grant_id}/revoke")
    assert confirm.status == 200
    assert "Covering the IG lead's leave" in text(await confirm.text())
    blank = await client.post(f"/console/people/{SPOC}/grants/{grant_id}/revoke",
                              data={"csrf_token": csrf, "reason": "  "})
    assert blank.status == 200
    assert "Enter why you are revoking this role" in text(await blank.text())
    revoked = await client.post(f"/console/people/{SPOC}/grants/{grant_id}/revoke", data={
        "csrf_token": csrf, "reason": "Back from leave"}, allow_redirects=False)
    assert revoked.status == 303
    page = text(await (await client.get(revoked.headers["Location"])).text())
    assert "A role has been revoked from Jack Turner" in page
    assert "Back from leave" in page and "Revoked" in page
    services = client.app[SERVICES]
    assert Role.IG_LEAD not in services.directory.roles_of(SPOC)


async def test_a_grant_needs_a_role_and_a_reason(client: TestClient[Any, Any]) -> None:
    csrf = await sign_in(client, ADMIN)
    response = await client.post(f"/console/people/{SPOC}/grant", data={"csrf_token": csrf})
    assert response.status == 200
    page = text(await response.text())
    assert "govuk-error-summary" in page
    assert 'href="#role">Select the role to grant' in page
    assert 'href="#reason">Enter why you are granting this role' in page
    assert page.count("<title>Error: ") == 1
    too_long = await client.post(f"/console/people/{SPOC}/grant", data={
        "csrf_token": csrf, "role": "ig_lead", "reason": "x" * 501})
    assert "The reason must be 500 characters or fewer" in text(await too_long.text())
    for role in ("wizard", "system"):
        odd = await client.post(f"/console/people/{SPOC}/grant", data={
            "csrf_token": csrf, "role": role, "reason": "made up"})
        assert odd.status == 200
        assert 'href="#role">Select a role from the list' in text(await odd.text())


async def test_granting_oneself_a_role_is_refused_with_a_clear_message(
    client: TestClient[Any, Any],
) -> None:
    csrf = await sign_in(client, ADMIN)
    own = text(await (await client.get(f"/console/people/{ADMIN}")).text())
    assert "You cannot grant or revoke your own roles" in own
    assert f"/console/people/{ADMIN}/grant\"" not in own
    response = await client.post(f"/console/people/{ADMIN}/grant", data={
        "csrf_token": csrf, "role": "spoc", "reason": "I want to read the inbox"})
    assert response.status == 200
    page = text(await response.text())
    assert "There is a problem" in page
    assert "No one grants or revokes their own roles; ask another administrator." in page
    assert Role.SPOC not in client.app[SERVICES].directory.roles_of(ADMIN)


async def test_a_role_held_only_elsewhere_is_refused_with_the_rule_s_words(
    client: TestClient[Any, Any],
) -> None:
    """An operator may grant auditor, but only to people of the oversight body."""
    csrf = await sign_in(client, OPERATOR)
    response = await client.post(f"/console/people/{SPOC}/grant", data={
        "csrf_token": csrf, "role": "auditor", "reason": "audit the CJIT"})
    assert response.status == 200
    page = text(await response.text())
    assert "auditor is held only by people of a oversight organisation" in page
    assert Role.AUDITOR not in client.app[SERVICES].directory.roles_of(SPOC)


async def test_adding_a_person_then_granting_them_a_role(
    client: TestClient[Any, Any],
) -> None:
    csrf = await sign_in(client, ADMIN)
    path = "/console/directory/CJIT-NFK/people/new"
    assert (await client.get(path)).status == 200
    bad = await client.post(path, data={
        "csrf_token": csrf, "name": "", "email": "not-an-email",
        "issuer": "http://idp.example", "subject": ""})
    assert bad.status == 200
    page = text(await bad.text())
    assert 'href="#name">Enter the person\'s full name' in page
    assert 'href="#email">Enter an email address in the correct format' in page
    assert 'href="#issuer">Enter the identity provider\'s issuer' in page
    assert 'value="not-an-email"' in page  # what was typed is kept
    added = await client.post(path, data={
        "csrf_token": csrf, "name": "Jo Bloggs", "email": "jo.bloggs@norfolk-cjit.example",
        "issuer": "https://login.norfolk-cjit.example", "subject": "jb-1234"},
        allow_redirects=False)
    assert added.status == 303, await added.text()
    assert added.headers["Location"] == "/console/people/cjit-nfk.jo.bloggs?added=1"
    person = text(await (await client.get(added.headers["Location"])).text())
    assert "Jo Bloggs has been added" in person and "https://login.norfolk-cjit.example" in person
    again = await client.post(path, data={
        "csrf_token": csrf, "name": "Jo Bloggs", "email": "jo.bloggs@norfolk-cjit.example"})
    assert "There is already a person cjit-nfk.jo.bloggs." in text(await again.text())
    people = text(await (await client.get("/console/people")).text())
    assert "Jo Bloggs" in people


async def test_changing_the_delivery_channel_with_the_api_s_validation(
    client: TestClient[Any, Any], settings: Settings,
) -> None:
    csrf = await sign_in(client, ADMIN)
    path = "/console/directory/CJIT-NFK/delivery"
    form = text(await (await client.get(path)).text())
    assert 'value="webhook"' in form and "checked" in form
    missing = await client.post(path, data={"csrf_token": csrf, "channel": "webhook",
                                            "webhook_url": "", "email_notices": "yes"})
    assert missing.status == 200
    page = text(await missing.text())
    assert 'href="#webhook_url">The webhook channel needs the web address, the HTTPS' in page
    assert 'href="#webhook_url">' in page and "HTTPS address" in page
    plain = await client.post(path, data={"csrf_token": csrf, "channel": "webhook",
                                          "webhook_url": "http://cms.example/in"})
    assert "must use https://" in text(await plain.text())
    changed = await client.post(path, data={
        "csrf_token": csrf, "channel": "mesh", "mesh_mailbox": "x26abc123",
        "webhook_url": "left over", "email_notices": "no"}, allow_redirects=False)
    assert changed.status == 303, await changed.text()
    assert changed.headers["Location"] == "/console/people?changed=delivery"
    page = text(await (await client.get(changed.headers["Location"])).text())
    assert "How messages reach your organisation has changed" in page
    assert "NHS MESH mailbox" in page and "X26ABC123" in page
    api = await client.get("/v1/directory/CJIT-NFK/delivery",
                           headers=person_bearer(settings, ADMIN))
    assert await api.json() == {"code": "CJIT-NFK", "channel": "mesh",
                                "mesh_mailbox": "X26ABC123", "email_notices": False}
    org = client.app[SERVICES].directory.get("CJIT-NFK")
    assert org is not None and org.delivery.channel is DeliveryChannel.MESH


async def test_a_spoc_may_see_but_not_change_the_delivery_channel(
    client: TestClient[Any, Any],
) -> None:
    csrf = await sign_in(client, SPOC)
    page = text(await (await client.get("/console/directory/CJIT-NFK/delivery")).text())
    assert "Your systems collect messages" in page
    assert 'action="/console/directory/CJIT-NFK/delivery"' not in page
    refused = await client.post("/console/directory/CJIT-NFK/delivery",
                                data={"csrf_token": csrf, "channel": "amqp"})
    assert refused.status == 403


async def test_changing_the_spoc_contact(client: TestClient[Any, Any]) -> None:
    csrf = await sign_in(client, ADMIN)
    path = "/console/directory/CJIT-NFK/contact"
    form = text(await (await client.get(path)).text())
    assert 'value="Norfolk CJIT SPOC"' in form
    bad = await client.post(path, data={"csrf_token": csrf, "name": "", "phone": "call me",
                                        "email": "", "secure_email": "nope"})
    page = text(await bad.text())
    assert 'href="#name">Enter who to contact' in page
    assert 'href="#phone">Enter a telephone number' in page
    assert 'href="#secure_email">Enter a secure email address' in page
    done = await client.post(path, data={
        "csrf_token": csrf, "name": "Duty SPOC", "phone": "01603 000 999", "email": "",
        "secure_email": "duty@norfolk-cjit.secure.example"}, allow_redirects=False)
    assert done.status == 303
    page = text(await (await client.get(done.headers["Location"])).text())
    assert "SPOC contact has changed" in page and "Duty SPOC" in page
    org = client.app[SERVICES].directory.get("CJIT-NFK")
    assert org is not None and org.spoc.email is None


async def test_every_form_needs_the_session_s_csrf_token(client: TestClient[Any, Any]) -> None:
    await sign_in(client, ADMIN)
    for path, data in (
        (f"/console/people/{SPOC}/grant", {"role": "ig_lead", "reason": "no token"}),
        ("/console/directory/CJIT-NFK/people/new", {"name": "X", "email": "x@y.example"}),
        ("/console/directory/CJIT-NFK/delivery", {"channel": "amqp"}),
        ("/console/directory/CJIT-NFK/contact", {"name": "X"}),
        (f"/console/people/{SPOC}/grants/g-{SPOC}-spoc/revoke", {"reason": "no token"}),
    ):
        for token in ({}, {"csrf_token": "x" * 43}):
            response = await client.post(path, data=data | token)
            assert response.status == 400, path
    assert Role.SPOC in client.app[SERVICES].directory.roles_of(SPOC)
    assert Role.IG_LEAD not in client.app[SERVICES].directory.roles_of(SPOC)


async def test_registering_and_removing_a_person_s_key(client: TestClient[Any, Any]) -> None:
    csrf = await sign_in(client, ADMIN)
    base = f"/console/people/{SPOC}"
    refusal, kid = await register_key(client, csrf, base)
    assert 'href="#jwk">This is a private key' in refusal
    await remove_key(client, csrf, base, kid)
    person = client.app[SERVICES].directory.person(SPOC)
    assert person is not None and kid not in {k.get("kid") for k in person.jwks}
    # An IG lead sees people but does not manage their keys.
    await client.post("/console/sign-out", data={"csrf_token": csrf})
    await sign_in(client, IG_LEAD)
    assert (await client.get(base + "/keys/new")).status == 403
    assert "/keys/new" not in await (await client.get(f"/console/people/{SPOC}")).text()
