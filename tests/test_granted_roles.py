"""Roles are granted by the gateway, never claimed (issue 10).

Each attack is tried as a hostile member agency would, with nothing but its own valid
development key: every one is refused with 401 or 403, and nothing stored changes. Then
the grants themselves: who may grant what, to whom, and that a revoked grant stops at once.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway import keys
from gateway.config import Settings
from gateway.domain.model import Role
from gateway.http.services import SERVICES
from tests.conftest import (
    EXAMPLES,
    bearer,
    credentials,
    load,
    person_bearer,
    person_credentials,
    table_counts,
)
from tests.test_authentication import claims, sign

POLICE = "POL-SFK-IPS"
NORFOLK = "CJIT-NFK"
HOSTILE_URL = "https://attacker.example/collect"
SUBJECT = {"pnc_id": "2012/118822R", "given_name": "Jordan", "family_name": "Hale",
           "date_of_birth": "1990-04-02"}


def claimed(settings: Settings, org: str, role: str, **changes: Any) -> dict[str, str]:
    """A token signed with ``org``'s own system key that claims ``role``."""
    token = sign(dict(credentials(settings, org).private_jwk),
                 claims(settings, org, role=role, **changes))
    return {"Authorization": f"Bearer {token}"}


async def assert_refused(
    response: Any, settings: Settings, before: dict[str, int], status: int = 403
) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    assert table_counts(settings) == before
    problem: dict[str, Any] = json.loads(await response.text())
    return problem


async def audit_entries(client: TestClient[Any, Any], settings: Settings) -> list[dict[str, Any]]:
    response = await client.get("/v1/audit/entries", params={"from": "0", "to": "1000"},
                                headers=bearer(settings, "DIP-ASSURE", Role.AUDITOR))
    assert response.status == 200
    entries: list[dict[str, Any]] = (await response.json())["entries"]
    return entries


# --- the attacks of issue 10, each with the attacker's own valid key -----------------------


async def test_police_claiming_ig_lead_cannot_redirect_a_cjits_messages(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    before = table_counts(settings)
    response = await client.put(
        f"/v1/directory/{NORFOLK}/delivery",
        json={"channel": "webhook", "webhook_url": HOSTILE_URL},
        headers=claimed(settings, POLICE, "ig_lead"),
    )
    problem = await assert_refused(response, settings, before)
    assert "has not been granted" in problem["detail"]
    assert client.server.app[SERVICES].directory.get(NORFOLK).delivery.webhook_url is None


@pytest.mark.parametrize("person_id", ["pol-sfk-ips.ig-lead", "pol-sfk-ips.admin",
                                       "cjit-sfk.ig-lead", "cjit-sfk.admin"])
async def test_another_organisations_ig_lead_or_administrator_cannot_redirect_it(
    person_id: str, client: TestClient[Any, Any], settings: Settings
) -> None:
    before = table_counts(settings)
    response = await client.put(
        f"/v1/directory/{NORFOLK}/delivery",
        json={"channel": "webhook", "webhook_url": HOSTILE_URL},
        headers=person_bearer(settings, person_id),
    )
    await assert_refused(response, settings, before)


async def test_police_claiming_ig_lead_cannot_import_the_directory(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    takeover = (
        "code,organisation,kind,area,spoc_name,email,secure_email\n"
        f"{POLICE},Suffolk custody,cjit,Suffolk,Attacker,a@attacker.example,"
        "a@attacker.secure.example\n"
        "CJIT-SFK,Suffolk CJIT,cjit,Suffolk,Attacker,a@attacker.example,"
        "a@attacker.secure.example\n"
    )
    for headers in (claimed(settings, POLICE, "ig_lead"),
                    claimed(settings, POLICE, "directory_admin"),
                    person_bearer(settings, "pol-sfk-ips.ig-lead"),
                    person_bearer(settings, "pol-sfk-ips.admin")):
        before = table_counts(settings)
        response = await client.post("/v1/directory/import",
                                     json={"csv": takeover, "apply": True}, headers=headers)
        await assert_refused(response, settings, before)
    directory = client.server.app[SERVICES].directory
    assert directory.get(POLICE).kind.value == "police"
    assert directory.get("CJIT-SFK").spoc.secure_email == "spoc@suffolk-cjit.secure.example"


async def test_the_two_person_rule_compares_person_ids_not_caller_strings(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    draft = {"text": (EXAMPLES.parents[1] / "policies" / "dip-default.yaml").read_text()
             .replace("policy: dip-default", "policy: dip-sneaky", 1)}
    proposed = await client.post("/v1/policy/versions", json=draft,
                                 headers=person_bearer(settings, "cjit-sfk.ig-lead"))
    assert proposed.status == 201
    version = (await proposed.json())["version"]
    approve = f"/v1/policy/versions/{version}/approve"
    ig_key = dict(person_credentials(settings, "cjit-sfk.ig-lead").private_jwk)

    before = table_counts(settings)
    # The author's own key with a sub that differs by a trailing space: not a second person.
    spaced = sign(ig_key, claims(settings, "CJIT-SFK", sub="cjit-sfk.ig-lead ", role=None))
    response = await client.post(approve, headers={"Authorization": f"Bearer {spaced}"})
    await assert_refused(response, settings, before, status=401)
    # The author under their own id.
    response = await client.post(approve, headers=person_bearer(settings, "cjit-sfk.ig-lead"))
    await assert_refused(response, settings, before)
    # A system claiming ig_lead, whatever sub it picks.
    response = await client.post(approve, headers=claimed(settings, NORFOLK, "ig_lead",
                                                          sub="ig.two"))
    await assert_refused(response, settings, before)
    assert client.server.app[SERVICES].policy.active.name == "dip-default"

    approved = await client.post(approve, headers=person_bearer(settings, "cjit-nfk.ig-lead"))
    assert approved.status == 200
    assert (await approved.json())["approved_by"] == "cjit-nfk.ig-lead"


@pytest.mark.parametrize("path", ["/v1/audit/entries", "/v1/audit/export",
                                  "/v1/audit/disclosures?pnc_id=x"])
async def test_no_agency_can_call_itself_an_auditor(
    path: str, client: TestClient[Any, Any], settings: Settings
) -> None:
    for headers in (claimed(settings, POLICE, "auditor"),
                    person_bearer(settings, "pol-sfk-ips.admin"),
                    person_bearer(settings, "cjit-nfk.ig-lead"),
                    person_bearer(settings, "dip-assure.admin")):
        before = table_counts(settings)
        await assert_refused(await client.get(path, headers=headers), settings, before)


async def record_consent(client: TestClient[Any, Any], headers: dict[str, str]) -> str:
    response = await client.post("/v1/consents", headers=headers, json={
        "subject": SUBJECT, "form": "written",
        "provision": {"type": "permit", "actor_roles": ["cjit", "probation"]},
        "information_given": "Leaflet DIP-7 explained and signed.",
    })
    assert response.status == 201, await response.text()
    consent_id: str = (await response.json())["id"]
    return consent_id


async def test_only_the_recorder_or_the_managing_cjit_withdraws_a_consent(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    consent_id = await record_consent(client, bearer(settings, "PRB-EOE"))
    withdraw = f"/v1/consents/{consent_id}/withdraw"
    for outsider in ("CJIT-SFK", "CARAT-NWI"):
        before = table_counts(settings)
        response = await client.post(withdraw, json={"reason": "hostile"},
                                     headers=bearer(settings, outsider))
        problem = await assert_refused(response, settings, before)
        assert "recorded by PRB-EOE" in problem["detail"]

    # An RA1 makes Norfolk CJIT the CJIT managing this person.
    ra1 = load(EXAMPLES / "ra1_notice" / "valid-out-of-area-norfolk-resident.json")
    ra1["message_id"] = str(uuid.uuid4())
    ra1["subject"] = {**ra1["subject"], **SUBJECT}
    sent = await client.post("/v1/messages", json=ra1, headers=bearer(settings, ra1["from"]))
    assert sent.status == 202, await sent.text()

    no_reason = await client.post(withdraw, json={}, headers=bearer(settings, NORFOLK))
    assert no_reason.status == 400
    withdrawn = await client.post(withdraw, json={"reason": "the person asked their keyworker"},
                                  headers=bearer(settings, NORFOLK))
    assert withdrawn.status == 200
    assert (await withdrawn.json())["consent"]["status"] == "inactive"
    logged = [e for e in await audit_entries(client, settings)
              if e["action"] == "consent.withdrawn"]
    assert logged[-1]["details"]["reason"] == "the person asked their keyworker"


async def test_the_recording_organisation_may_withdraw_its_consent(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    consent_id = await record_consent(client, bearer(settings, "PRB-EOE", Role.SPOC))
    response = await client.post(f"/v1/consents/{consent_id}/withdraw",
                                 json={"reason": "withdrawn at supervision"},
                                 headers=bearer(settings, "PRB-EOE"))
    assert response.status == 200


async def test_a_single_use_token_stays_used_through_the_clock_skew_leeway(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    now = int(datetime.now(UTC).timestamp())
    # Expired five seconds ago, still inside the 30 s leeway.
    token = sign(dict(credentials(settings, NORFOLK).private_jwk),
                 claims(settings, NORFOLK, iat=now - 65, exp=now - 5))
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/v1/inbox", headers=headers)).status == 200
    # Any later request clears the ledger of what it thinks has expired.
    assert (await client.get("/v1/inbox", headers=bearer(settings, NORFOLK))).status == 200
    assert (await client.get("/v1/inbox", headers=headers)).status == 401


@pytest.mark.parametrize("changes", [
    {"iat": "1700000000", "exp": "1700000300"},
    {"exp": "9999999999"},
    {"iat": True},
    {"sub": 7},
    {"jti": ["a"]},
    {"jti": "x" * 500},
    {"role": 3},
    {"role": "superuser"},
], ids=["numeric-string-times", "string-exp", "boolean-iat", "number-sub", "list-jti",
        "huge-jti", "number-role", "unknown-role"])
async def test_claims_of_the_wrong_type_are_401_not_500(
    changes: dict[str, Any], client: TestClient[Any, Any], settings: Settings
) -> None:
    now = int(datetime.now(UTC).timestamp())
    base = {"iat": now, "exp": now + 60}
    token = sign(dict(credentials(settings, NORFOLK).private_jwk),
                 claims(settings, NORFOLK, **{**base, **changes}))
    before = table_counts(settings)
    response = await client.get("/v1/inbox", headers={"Authorization": f"Bearer {token}"})
    await assert_refused(response, settings, before, status=401)


async def test_bearer_bytes_that_are_not_utf8_are_401(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    host, port = client.server.host, client.server.port
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /v1/inbox HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\xc3(."
                 b"\x80abc\r\nConnection: close\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


# --- identities -----------------------------------------------------------------------------


async def test_a_persons_key_cannot_act_as_the_system_nor_as_someone_else(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    spoc_key = dict(person_credentials(settings, "cjit-nfk.spoc").private_jwk)
    as_system = sign(spoc_key, claims(settings, NORFOLK, sub="cjit-nfk.spoc", role="system"))
    response = await client.get("/v1/inbox", headers={"Authorization": f"Bearer {as_system}"})
    assert response.status == 403
    as_admin = sign(spoc_key, claims(settings, NORFOLK, sub="cjit-nfk.admin", role=None))
    response = await client.get("/v1/me", headers={"Authorization": f"Bearer {as_admin}"})
    assert response.status == 401
    # The SPOC reads the inbox in their own right.
    assert (await client.get("/v1/inbox",
                             headers=person_bearer(settings, "cjit-nfk.spoc"))).status == 200


async def test_a_system_cannot_pass_for_a_person_in_the_audit_log(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    """A system's sub labels its audit entries; naming a person there would let the system's
    actions read as that person's."""
    before = table_counts(settings)
    response = await client.get("/v1/inbox", headers=claimed(settings, NORFOLK, "system",
                                                             sub="cjit-nfk.spoc"))
    await assert_refused(response, settings, before, status=401)


async def test_me_says_who_the_gateway_takes_the_caller_for(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    me = await (await client.get("/v1/me", headers=person_bearer(settings, "cjit-sfk.admin")))\
        .json()
    assert me["organisation"] == "CJIT-SFK" and me["roles"] == ["org_admin"]
    assert me["person"]["id"] == "cjit-sfk.admin"
    assert me["person"]["grants"][0]["granted_by"] == "bootstrap"
    system = await (await client.get("/v1/me", headers=bearer(settings, "CJIT-SFK"))).json()
    assert system["roles"] == ["system"] and system["person"] is None


async def test_an_administrator_grants_ig_lead_to_a_colleague_and_revokes_it(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    admin = "cjit-sfk.admin"
    spoc = "cjit-sfk.spoc"
    refused = await client.get("/v1/policy/versions", headers=person_bearer(settings, spoc))
    assert refused.status == 403

    granted = await client.post(f"/v1/people/{spoc}/grants",
                                json={"role": "ig_lead", "reason": "covering maternity leave"},
                                headers=person_bearer(settings, admin))
    assert granted.status == 201, await granted.text()
    grant = await granted.json()
    assert grant["granted_by"] == f"CJIT-SFK/{admin}" and grant["role"] == "ig_lead"
    assert (await client.get("/v1/policy/versions",
                             headers=person_bearer(settings, spoc))).status == 200
    twice = await client.post(f"/v1/people/{spoc}/grants",
                              json={"role": "ig_lead", "reason": "again"},
                              headers=person_bearer(settings, admin))
    assert twice.status == 409

    revoked = await client.post(f"/v1/grants/{grant['id']}/revoke",
                                json={"reason": "cover ended"},
                                headers=person_bearer(settings, admin))
    assert revoked.status == 200
    assert (await revoked.json())["revocation_reason"] == "cover ended"
    assert (await client.get("/v1/policy/versions",
                             headers=person_bearer(settings, spoc))).status == 403

    logged = await audit_entries(client, settings)
    given = [e for e in logged if e["action"] == "grant.given"
             and e["details"].get("grant") == grant["id"]]
    taken = [e for e in logged if e["action"] == "grant.revoked"]
    assert given[0]["details"]["reason"] == "covering maternity leave"
    assert taken[-1]["details"]["reason"] == "cover ended"


@pytest.mark.parametrize(("granter", "person_id", "role", "why"), [
    ("cjit-nfk.admin", "cjit-sfk.spoc", "ig_lead", "of that organisation"),
    ("cjit-sfk.ig-lead", "cjit-sfk.spoc", "ig_lead", "org_admin"),
    ("cjit-sfk.spoc", "cjit-sfk.spoc", "ig_lead", "org_admin"),
    ("cjit-sfk.admin", "cjit-sfk.admin", "ig_lead", "their own roles"),
    ("cjit-sfk.admin", "cjit-sfk.spoc", "auditor", "directory_admin"),
    ("cjit-sfk.admin", "cjit-sfk.spoc", "directory_admin", "directory_admin"),
    ("dipgw-ops.operator", "cjit-sfk.spoc", "auditor", "oversight"),
    ("dipgw-ops.operator", "cjit-sfk.spoc", "ig_lead", "org_admin"),
    ("dip-assure.auditor", "dip-assure.admin", "auditor", "directory_admin"),
    ("dipgw-ops.operator", "dipgw-ops.operator", "auditor", "their own roles"),
])
async def test_grants_only_from_those_the_table_names(
    granter: str, person_id: str, role: str, why: str,
    client: TestClient[Any, Any], settings: Settings,
) -> None:
    before = table_counts(settings)
    response = await client.post(f"/v1/people/{person_id}/grants",
                                 json={"role": role, "reason": "trying"},
                                 headers=person_bearer(settings, granter))
    problem = await assert_refused(response, settings, before)
    assert why in problem["detail"]


async def test_a_system_cannot_grant_even_claiming_an_administrator(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    before = table_counts(settings)
    response = await client.post("/v1/people/cjit-sfk.spoc/grants",
                                 json={"role": "ig_lead", "reason": "trying"},
                                 headers=claimed(settings, "CJIT-SFK", "org_admin"))
    await assert_refused(response, settings, before)


async def test_the_operator_grants_the_first_administrator_and_auditors(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    operator = "dipgw-ops.operator"
    public = keys.public_jwk(keys.generate())
    added = await client.post("/v1/directory/CJIT-CAM/people", json={
        "name": "Rosa Diaz", "email": "rosa.diaz@cambs-cjit.example", "keys": [public],
    }, headers=person_bearer(settings, operator))
    assert added.status == 201, await added.text()
    person = await added.json()
    assert person["id"] == "cjit-cam.rosa.diaz" and person["roles"] == []
    granted = await client.post(f"/v1/people/{person['id']}/grants",
                                json={"role": "org_admin", "reason": "new service manager"},
                                headers=person_bearer(settings, operator))
    assert granted.status == 201

    auditor = await client.post("/v1/directory/DIP-ASSURE/people", json={
        "name": "Ola Berg", "email": "ola.berg@dip-oversight.example",
    }, headers=person_bearer(settings, operator))
    assert auditor.status == 201
    granted = await client.post("/v1/people/dip-assure.ola.berg/grants",
                                json={"role": "auditor", "reason": "annual assurance review"},
                                headers=person_bearer(settings, operator))
    assert granted.status == 201


async def test_adding_people_is_for_the_organisations_administrator(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    for headers in (person_bearer(settings, "cjit-nfk.admin"),
                    person_bearer(settings, "cjit-sfk.ig-lead"),
                    claimed(settings, "CJIT-SFK", "org_admin"),
                    bearer(settings, "CJIT-SFK")):
        before = table_counts(settings)
        response = await client.post("/v1/directory/CJIT-SFK/people", json={
            "name": "Mallory", "email": "mallory@attacker.example",
        }, headers=headers)
        await assert_refused(response, settings, before)


@pytest.mark.parametrize(("body", "pointer"), [
    ({"email": "a@b.example"}, "/name"),
    ({"name": "A", "email": "not-an-email"}, "/email"),
    ({"name": "A", "email": "a@b.example", "id": "Has Spaces"}, "/id"),
    ({"name": "A", "email": "a@b.example", "keys": [{"kty": "OKP", "crv": "Ed25519",
                                                      "x": "AAAA", "d": "BBBB"}]},
     "/keys/0/d"),
    ({"name": "A", "email": "a@b.example", "keys": [{"kty": "RSA", "n": "x"}]}, "/keys/0/kty"),
    ({"name": "A", "email": "a@b.example", "sign_in": {"issuer": "http://idp", "subject": "1"}},
     "/sign_in/issuer"),
    ({"name": "A", "email": "a@b.example", "role": "ig_lead"}, "/role"),
])
async def test_a_bad_person_record_names_every_problem(
    body: dict[str, Any], pointer: str, client: TestClient[Any, Any], settings: Settings
) -> None:
    before = table_counts(settings)
    response = await client.post("/v1/directory/CJIT-SFK/people", json=body,
                                 headers=person_bearer(settings, "cjit-sfk.admin"))
    problem = await assert_refused(response, settings, before, status=422)
    assert pointer in [e["pointer"] for e in problem["errors"]]


async def test_a_key_registered_twice_identifies_no_one(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    """An administrator registering a colleague's (or a system's) key under another name is
    refused; if two holders ever shared one, tokens signed with it would be refused."""
    system_key = keys.public_jwk(dict(credentials(settings, "CJIT-SFK").private_jwk))
    before = table_counts(settings)
    response = await client.post("/v1/people/cjit-sfk.spoc/keys", json=system_key,
                                 headers=person_bearer(settings, "cjit-sfk.admin"))
    await assert_refused(response, settings, before, status=409)


async def test_a_new_persons_own_key_works_at_once(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    private = keys.generate("ES256")
    added = await client.post("/v1/directory/CJIT-SFK/people", json={
        "name": "Kai Moore", "email": "kai.moore@suffolk-cjit.example", "id": "cjit-sfk.kai",
        "keys": [keys.public_jwk(private)],
    }, headers=person_bearer(settings, "cjit-sfk.admin"))
    assert added.status == 201
    creds = person_credentials(settings, "cjit-sfk.spoc")
    kai = type(creds).for_person("CJIT-SFK", "cjit-sfk.kai", private,
                                 audience=settings.audience)
    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {kai.token()}"})
    assert (await me.json())["roles"] == []
    inbox = await client.get("/v1/inbox", headers={"Authorization": f"Bearer {kai.token()}"})
    assert inbox.status == 403


async def test_a_spoc_contact_is_changed_only_by_its_own_organisation_or_the_operator(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    hostile = {"name": "Attacker", "secure_email": "collect@attacker.example"}
    for headers in (claimed(settings, POLICE, "ig_lead"),
                    person_bearer(settings, "pol-sfk-ips.admin"),
                    bearer(settings, NORFOLK)):
        before = table_counts(settings)
        response = await client.put(f"/v1/directory/{NORFOLK}/contact", json=hostile,
                                    headers=headers)
        await assert_refused(response, settings, before)

    bad = await client.put(f"/v1/directory/{NORFOLK}/contact",
                           json={"name": "", "email": "nope", "fax": "1"},
                           headers=person_bearer(settings, "cjit-nfk.admin"))
    problem = await assert_refused(bad, settings, table_counts(settings), status=422)
    assert [e["pointer"] for e in problem["errors"]] == ["/fax", "/name", "/email"]

    changed = await client.put(f"/v1/directory/{NORFOLK}/contact", json={
        "name": "Norfolk CJIT duty SPOC", "phone": "01603 000 299",
        "secure_email": "duty@norfolk-cjit.secure.example",
    }, headers=person_bearer(settings, "cjit-nfk.ig-lead"))
    assert changed.status == 200
    assert (await changed.json())["spoc"]["secure_email"] == "duty@norfolk-cjit.secure.example"
    logged = [e for e in await audit_entries(client, settings)
              if e["action"] == "directory.updated" and "contact" in e["details"]]
    assert logged[-1]["actor"] == "CJIT-NFK/cjit-nfk.ig-lead"


async def test_a_withdrawn_key_is_refused_at_once(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    spoc = person_credentials(settings, "cjit-nfk.spoc")
    kid = str(spoc.private_jwk["kid"])
    before = table_counts(settings)
    refused = await client.delete(f"/v1/people/cjit-nfk.spoc/keys/{kid}",
                                  headers=person_bearer(settings, "cjit-sfk.admin"))
    await assert_refused(refused, settings, before)

    # The SPOC withdraws their own key (a lost laptop): their next token is refused.
    withdrawn = await client.delete(f"/v1/people/cjit-nfk.spoc/keys/{kid}",
                                    headers={"Authorization": f"Bearer {spoc.token()}"})
    assert withdrawn.status == 200
    assert (await withdrawn.json())["keys"] == []
    after = await client.get("/v1/me", headers={"Authorization": f"Bearer {spoc.token()}"})
    assert after.status == 401

    system = credentials(settings, NORFOLK)
    removed = await client.delete(f"/v1/directory/{NORFOLK}/keys/{system.private_jwk['kid']}",
                                  headers=person_bearer(settings, "cjit-nfk.admin"))
    assert removed.status == 200
    gone = await client.get("/v1/inbox", headers={"Authorization": f"Bearer {system.token()}"})
    assert gone.status == 401
    logged = [e for e in await audit_entries(client, settings) if e["action"] == "key.removed"]
    assert [e["details"]["holder"] for e in logged] == ["cjit-nfk.spoc", NORFOLK]


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/v1/directory/CJIT-NFK/people", None),
    ("GET", "/v1/people/cjit-nfk.spoc", None),
    ("POST", "/v1/people/cjit-nfk.spoc/keys", "new-key"),
    ("DELETE", "/v1/people/cjit-nfk.spoc/keys/{spoc_kid}", None),
    ("POST", "/v1/people/cjit-nfk.spoc/grants", {"role": "org_admin", "reason": "takeover"}),
    ("POST", "/v1/grants/g-cjit-nfk.spoc-spoc/revoke", {"reason": "takeover"}),
    ("GET", "/v1/directory/CJIT-NFK/delivery", None),
    ("POST", "/v1/directory/CJIT-NFK/keys", "new-key"),
    ("DELETE", "/v1/directory/CJIT-NFK/keys/{system_kid}", None),
    ("POST", "/v1/directory/CJIT-NFK/people", {"name": "Mallory",
                                               "email": "mallory@attacker.example"}),
], ids=lambda value: value if isinstance(value, str) else "")
@pytest.mark.parametrize("caller", ["pol-sfk-ips.admin", "pol-sfk-ips.ig-lead",
                                    "police-system", "police-system-claiming-admin"])
async def test_a_member_agency_cannot_read_or_change_another_organisations_people_or_keys(
    method: str, path: str, body: Any, caller: str,
    client: TestClient[Any, Any], settings: Settings,
) -> None:
    """Each attempt with the attacker's own valid key, against Norfolk CJIT; none works and
    Norfolk's people, grants and keys are as they were."""
    headers = {
        "police-system": bearer(settings, POLICE),
        "police-system-claiming-admin": claimed(settings, POLICE, "org_admin"),
    }.get(caller) or person_bearer(settings, caller)
    spoc = person_credentials(settings, "cjit-nfk.spoc")
    system = credentials(settings, NORFOLK)
    path = path.format(spoc_kid=spoc.private_jwk["kid"], system_kid=system.private_jwk["kid"])
    if body == "new-key":
        body = keys.public_jwk(keys.generate())
    before = table_counts(settings)
    response = await client.request(method, path, json=body, headers=headers)
    await assert_refused(response, settings, before)
    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {spoc.token()}"})
    assert (await me.json())["roles"] == ["spoc"]
    assert (await client.get("/v1/inbox", headers={
        "Authorization": f"Bearer {system.token()}"})).status == 200
