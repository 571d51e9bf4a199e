"""The console's consent pages (issue 12): find a person's consents, record one through a
GOV.UK form, withdraw one with a reason; the same functions /v1/consents calls, on the
real app."""

from __future__ import annotations

import asyncio
import html
import re
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.config import Settings
from gateway.console import consent_words
from gateway.pipeline.policy.facts import Purpose
from tests.backends import query
from tests.conftest import AgencyFactory
from tests.console.test_console import sign_in
from tests.test_audit_log import audit_entries
from tests.test_consent_and_policy_api import PROACTIVE_DIR, SUBJECT, HeldTransport, as_org, post
from tests.test_consent_and_policy_api import held as held  # the pytest fixture, re-exported

SPOC = "cjit-nfk.spoc"
Held = tuple[TestClient[Any, Any], Settings, HeldTransport]
YEAR, MONTH, DAY = SUBJECT["date_of_birth"].split("-")


def form(csrf: str, **overrides: Any) -> list[tuple[str, str]]:
    """A filled-in 'Record a consent' form (repeated names for the checkboxes)."""
    fields: dict[str, Any] = {
        "csrf_token": csrf,
        "pnc_id": SUBJECT["pnc_id"],
        "given_name": SUBJECT["given_name"],
        "family_name": SUBJECT["family_name"],
        "date_of_birth-day": str(int(DAY)), "date_of_birth-month": str(int(MONTH)),
        "date_of_birth-year": YEAR,
        "form": "written",
        "actor_roles": ["cjit"],
        "purpose": ["care_coordination"],
        "information_given": "Told that her DIR goes to Cambridgeshire CJIT for her appointment.",
        **overrides,
    }
    return [(k, item) for k, v in fields.items()
            for item in (v if isinstance(v, list) else [v]) if item is not None]


def consent_request() -> dict[str, Any]:
    return {
        "subject": SUBJECT, "form": "written",
        "provision": {"type": "permit", "actor_roles": ["cjit"],
                      "purpose": ["care_coordination"]},
        "information_given": "Told that her DIR goes to Cambridgeshire CJIT for her appointment.",
    }


def consent_count(settings: Settings) -> int:
    count: int = query(settings, "SELECT COUNT(*) FROM consents")[0][0]
    return count


def text_of(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def test_every_purpose_has_a_label_and_a_hint() -> None:
    assert set(consent_words.PURPOSE_WORDS) == set(Purpose)
    assert consent_words.PURPOSE_WORDS[Purpose.CARE_COORDINATION].label == "Care coordination"
    assert consent_words.PURPOSE_WORDS[Purpose.CARE_COORDINATION].hint.startswith(
        "Moving a case between services so care continues")


async def test_a_consent_recorded_through_the_form_is_the_one_the_api_lists(
    client: TestClient[Any, Any], settings: Settings, agency: AgencyFactory,
) -> None:
    csrf = await sign_in(client, SPOC)
    home = await (await client.get("/console/")).text()
    assert 'href="/console/consents"' in home
    page = await (await client.get("/console/consents/new")).text()
    assert "Care coordination" in page
    assert "Moving a case between services so care continues" in page
    assert 'name="actor_organisations" type="checkbox" value="CJIT-CAM"' in page
    assert "Criminal Justice Integrated Teams (CJITs)" in page

    response = await client.post("/console/consents/new", data=form(csrf),
                                 allow_redirects=False)
    assert response.status == 303, await response.text()
    location = response.headers["Location"]
    assert location.startswith("/console/consents?pnc_id=") and "&recorded=" in location
    listed = await client.get(location)
    assert listed.status == 200
    shown = text_of(await listed.text())
    assert "govuk-notification-banner--success" in await listed.text()
    assert "Consent recorded for Gemma Baxter" in shown
    for words in ("Active", "Written", "Criminal Justice Integrated Teams (CJITs)",
                  "Care coordination", "Jack Turner, Norfolk CJIT", "with no end date",
                  "Told that her DIR goes to Cambridgeshire CJIT"):
        assert words in shown, words

    api = await agency("CJIT-NFK").request("GET", "/v1/consents",
                                           params={"pnc_id": SUBJECT["pnc_id"]})
    [consent] = api.body["consents"]
    assert location.endswith(f"recorded={consent['id']}")
    assert consent["status"] == "active"
    assert consent["performer"][0]["display"] == f"CJIT-NFK/{SPOC}"
    assert [p["code"] for p in consent["provision"]["purpose"]] == ["care_coordination"]
    assert consent["extension"][0] == {"url": "urn:dipgw:consent-form", "valueCode": "written"}
    # The list shows exactly what the API lists: one card per record, same ids.
    assert re.findall(r"/console/consents/([0-9a-f-]{36})/withdraw", await listed.text()) == [
        consent["id"]]


async def test_a_consent_for_named_organisations_with_an_end_date(
    client: TestClient[Any, Any], agency: AgencyFactory,
) -> None:
    csrf = await sign_in(client, SPOC)
    response = await client.post("/console/consents/new", data=form(
        csrf, actor_roles=None, actor_organisations=["CJIT-CAM"],
        purpose=["care_coordination", "clinical_care"], form="verbal",
        **{"period_end-day": "1", "period_end-month": "1", "period_end-year": "2099"},
    ), allow_redirects=False)
    assert response.status == 303, await response.text()
    shown = text_of(await (await client.get(response.headers["Location"])).text())
    assert "Cambridgeshire" in shown and "(CJIT-CAM)" in shown
    assert "Verbal" in shown and "Clinical care" in shown and "1 January 2099" in shown
    [consent] = (await agency("CJIT-NFK").request(
        "GET", "/v1/consents", params={"pnc_id": SUBJECT["pnc_id"]})).body["consents"]
    assert consent["provision"]["actor"][0]["reference"]["identifier"]["value"] == "CJIT-CAM"
    assert consent["provision"]["period"]["end"].startswith("2099-01-01T00:00:00")


async def test_missing_form_and_purpose_are_shown_in_the_error_summary_with_values_kept(
    client: TestClient[Any, Any], settings: Settings,
) -> None:
    csrf = await sign_in(client, SPOC)
    response = await client.post("/console/consents/new",
                                 data=form(csrf, form=None, purpose=None))
    assert response.status == 200
    page = await response.text()
    summary = page.split('class="govuk-error-summary"')[1].split("</ul>")[0]
    links = re.findall(r'<a href="(#[^"]+)">([^<]+)</a>', summary)
    assert [href for href, _ in links] == ["#form", "#purpose"]
    assert "Select whether the person gave consent in writing or verbally" in links[0][1]
    assert "Select what the person agreed" in links[1][1]
    # Each link points at a field on the page, marked in error.
    assert 'id="form" name="form" type="radio"' in page
    assert 'id="purpose" name="purpose" type="checkbox"' in page
    assert page.count("govuk-form-group--error") == 2
    assert "<title>Error: Record a consent" in page
    # Values kept.
    assert 'value="Gemma"' in page and f'value="{SUBJECT["pnc_id"]}"' in page
    assert 'value="cjit" checked' in page
    assert "Told that her DIR goes to Cambridgeshire CJIT" in page
    assert consent_count(settings) == 0


async def test_schema_violations_map_to_their_fields(
    client: TestClient[Any, Any], settings: Settings,
) -> None:
    csrf = await sign_in(client, SPOC)
    page = await (await client.post("/console/consents/new", data=form(
        csrf, pnc_id="nonsense", actor_roles=None, information_given="short",
        **{"date_of_birth-day": "31", "date_of_birth-month": "2"},
    ))).text()
    summary = page.split('class="govuk-error-summary"')[1].split("</ul>")[0]
    assert re.findall(r'<a href="(#[^"]+)">', summary) == [
        "#pnc_id", "#date_of_birth-day", "#actor_roles", "#information_given"]
    assert "Date of birth must be a real date" in summary
    assert 'value="nonsense"' in page and 'value="31"' in page
    assert consent_count(settings) == 0


async def test_find_by_pnc_and_by_name_and_date_of_birth(
    client: TestClient[Any, Any], agency: AgencyFactory,
) -> None:
    recorded = await post(agency("CJIT-NFK"), "/v1/consents", consent_request())
    await sign_in(client, SPOC)
    blank = await (await client.get("/console/consents")).text()
    assert "govuk-error-summary" not in blank and "found" not in text_of(blank)

    by_pnc = await (await client.get("/console/consents",
                                     params={"pnc_id": SUBJECT["pnc_id"].lower()})).text()
    by_name = await (await client.get("/console/consents", params={
        "given_name": "GEMMA", "family_name": " baxter", "date_of_birth-day": str(int(DAY)),
        "date_of_birth-month": str(int(MONTH)), "date_of_birth-year": YEAR,
    })).text()
    for page in (by_pnc, by_name):
        assert "1 consent found" in text_of(page)
        assert f"/console/consents/{recorded['id']}/withdraw" in page
        assert "Gemma Baxter" in page

    nobody = await (await client.get("/console/consents", params={"pnc_id": "99/1Z"})).text()
    assert "0 consents found" in text_of(nobody)
    incomplete = await (await client.get("/console/consents",
                                         params={"given_name": "Gemma"})).text()
    summary = incomplete.split('class="govuk-error-summary"')[1].split("</ul>")[0]
    assert re.findall(r'<a href="(#[^"]+)">', summary) == ["#family_name",
                                                           "#date_of_birth-day"]
    assert 'value="Gemma"' in incomplete


async def test_withdrawing_with_a_reason_stops_a_waiting_consent_based_share(
    held: Held,
) -> None:
    test_client, settings, transport = held
    norfolk = as_org(test_client, settings, "CJIT-NFK")
    recorded = await post(norfolk, "/v1/consents", consent_request())
    answer = await norfolk.send(PROACTIVE_DIR)
    assert answer.body["recipients"][0]["decision"]["consent_record"] == recorded["id"]

    csrf = await sign_in(test_client, SPOC)
    path = f"/console/consents/{recorded['id']}/withdraw"
    confirm = await test_client.get(path)
    assert confirm.status == 200
    page = await confirm.text()
    assert "Why is the consent withdrawn?" in page and "Gemma Baxter" in page

    missing = await test_client.post(path, data={"csrf_token": csrf, "reason": "  "})
    assert missing.status == 200
    text = await missing.text()
    assert '<a href="#reason">Enter why the person withdrew their consent</a>' in text
    assert (await norfolk.request("GET", "/v1/consents", params={
        "pnc_id": SUBJECT["pnc_id"]})).body["consents"][0]["status"] == "active"

    done = await test_client.post(path, data={"csrf_token": csrf,
                                              "reason": "Changed her mind at review"})
    assert done.status == 200
    shown = text_of(await done.text())
    assert "Consent withdrawn. 1 waiting share decided again." in shown
    assert PROACTIVE_DIR["message_id"] in shown
    assert "Stopped: it had not been delivered and will not be." in shown
    assert "Changed her mind at review" in shown and "Withdrawn" in shown

    transport.held = False
    await asyncio.sleep(0.5)
    assert await as_org(test_client, settings, "CJIT-CAM").inbox(500) == []
    history = (await norfolk.status(PROACTIVE_DIR["message_id"]))["history"]
    assert [(e["status"], e.get("recipient")) for e in history] == [
        ("accepted", None), ("refused", "CJIT-CAM")]
    logged = [e for e in await audit_entries(test_client, settings)
              if e["action"] == "consent.withdrawn"]
    assert logged[-1]["actor"] == f"CJIT-NFK/{SPOC}"
    assert logged[-1]["details"]["reason"] == "Changed her mind at review"
    assert logged[-1]["details"]["shares"][0]["outcome"] == "stopped"

    # Again: already withdrawn, nothing more done.
    again = text_of(await (await test_client.post(
        path, data={"csrf_token": csrf, "reason": "twice"})).text())
    assert "This consent was already withdrawn" in again


async def test_an_unread_share_is_withdrawn_from_the_inbox(
    client: TestClient[Any, Any], agency: AgencyFactory,
) -> None:
    from tests.test_messages_end_to_end import wait_for_inbox

    norfolk = agency("CJIT-NFK")
    recorded = await post(norfolk, "/v1/consents", consent_request())
    await norfolk.send(PROACTIVE_DIR)
    assert await wait_for_inbox(agency("CJIT-CAM"), PROACTIVE_DIR["message_id"])
    csrf = await sign_in(client, SPOC)
    done = await client.post(f"/console/consents/{recorded['id']}/withdraw",
                             data={"csrf_token": csrf, "reason": "Withdrew at review"})
    assert "Withdrawn: it had been delivered but not read" in text_of(await done.text())
    assert (await agency("CJIT-CAM").status(PROACTIVE_DIR["message_id"]))[
        "status"] == "withdrawn"


async def test_people_without_the_grant_get_the_403_page(
    client: TestClient[Any, Any], agency: AgencyFactory,
) -> None:
    recorded = await post(agency("CJIT-NFK"), "/v1/consents", consent_request())
    paths = ["/console/consents", f"/console/consents?pnc_id={SUBJECT['pnc_id']}",
             "/console/consents/new", f"/console/consents/{recorded['id']}/withdraw"]
    # A police SPOC (the wrong kind of organisation) and a CJIT administrator (no spoc).
    for person in ("pol-sfk-ips.spoc", "cjit-nfk.admin"):
        client.session.cookie_jar.clear()
        csrf = await sign_in(client, person)
        assert 'href="/console/consents"' not in await (await client.get("/console/")).text()
        for path in paths:
            response = await client.get(path)
            assert response.status == 403, (person, path)
            page = await response.text()
            assert "You do not have permission to see this page" in page
            assert "Baxter" not in page and recorded["id"] not in page
        for path in paths[2:]:
            response = await client.post(path, data=[*form(csrf), ("reason", "x" * 20)])
            assert response.status == 403, (person, path)
    status = (await agency("CJIT-NFK").request("GET", "/v1/consents", params={
        "pnc_id": SUBJECT["pnc_id"]})).body["consents"]
    assert [c["status"] for c in status] == ["active"]


async def test_another_cjit_may_not_withdraw_a_consent_it_did_not_record(
    client: TestClient[Any, Any], agency: AgencyFactory,
) -> None:
    recorded = await post(agency("CJIT-NFK"), "/v1/consents", consent_request())
    csrf = await sign_in(client, "cjit-sfk.spoc")
    path = f"/console/consents/{recorded['id']}/withdraw"
    assert (await client.get(path)).status == 403
    assert (await client.post(path, data={"csrf_token": csrf, "reason": "not mine"})
            ).status == 403
    assert (await client.get("/console/consents/00000000-0000-4000-8000-000000000000/withdraw")
            ).status == 404


async def test_forms_without_the_right_csrf_token_change_nothing(
    client: TestClient[Any, Any], settings: Settings, agency: AgencyFactory,
) -> None:
    recorded = await post(agency("CJIT-NFK"), "/v1/consents", consent_request())
    csrf = await sign_in(client, SPOC)
    for token in (None, "", "x" * 43):
        data = [(k, v) for k, v in form(csrf) if k != "csrf_token"]
        if token is not None:
            data.append(("csrf_token", token))
        response = await client.post("/console/consents/new", data=data)
        assert response.status == 400
        assert "Nothing was changed" in await response.text()
        withdraw = await client.post(
            f"/console/consents/{recorded['id']}/withdraw",
            data={"reason": "changed her mind", **({} if token is None else {"csrf_token": token})})
        assert withdraw.status == 400
    assert consent_count(settings) == 1
    [still] = (await agency("CJIT-NFK").request("GET", "/v1/consents", params={
        "pnc_id": SUBJECT["pnc_id"]})).body["consents"]
    assert still["status"] == "active"


async def test_every_read_is_a_consultation_like_the_apis(
    client: TestClient[Any, Any], settings: Settings, agency: AgencyFactory,
) -> None:
    spoc = agency("CJIT-NFK")  # the API as the organisation's system
    recorded = await post(spoc, "/v1/consents", consent_request())
    await spoc.request("GET", "/v1/consents", params={"pnc_id": SUBJECT["pnc_id"]})
    await sign_in(client, SPOC)
    assert (await client.get("/console/consents",
                             params={"pnc_id": SUBJECT["pnc_id"]})).status == 200
    assert (await client.get("/console/consents", params={"pnc_id": "99/1Z"})).status == 200
    assert (await client.get("/console/consents")).status == 200  # no search: no read
    assert (await client.get(f"/console/consents/{recorded['id']}/withdraw")).status == 200

    consulted = [e for e in await audit_entries(client, settings)
                 if e["action"] == "consulted"
                 and e["details"]["resource"] in ("consents", "consent")]
    api, console, nobody, confirm = consulted
    assert api["actor"].startswith("CJIT-NFK/") and "channel" not in api["details"]
    assert console["actor"] == f"CJIT-NFK/{SPOC}"
    assert console["details"] == {**api["details"], "roles": ["spoc"], "channel": "console"}
    assert console.get("subject") == api.get("subject") and api.get("subject")
    assert nobody["details"]["found"] == 0 and nobody["details"]["channel"] == "console"
    assert confirm["details"]["resource"] == "consent"
    assert confirm["details"]["consent_id"] == recorded["id"]
    assert confirm.get("subject") == api.get("subject")


def test_status_words() -> None:
    from dataclasses import replace
    from datetime import UTC, datetime, timedelta

    from gateway.pipeline.consent import ConsentForm, ConsentRecord, SubjectKeys

    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    record = ConsentRecord(
        id="c", subject=SUBJECT, keys=SubjectKeys.of(SUBJECT), form=ConsentForm.WRITTEN,
        permit=True, actor_roles=frozenset({"cjit"}), purposes=("care_coordination",),
        period_start=now - timedelta(days=2), period_end=None, information_given="x" * 10,
        recorded_at=now - timedelta(days=2), performer="CJIT-NFK/cjit-nfk.spoc",
    )
    day_ = timedelta(days=1)
    assert consent_words.status(record, now).words == "Active"
    assert consent_words.status(replace(record, period_end=now - day_), now).words == "Expired"
    assert consent_words.status(replace(record, period_start=now + day_), now).words == (
        "Not started")
    assert consent_words.status(replace(record, withdrawn_at=now - day_), now).words == (
        "Withdrawn")
