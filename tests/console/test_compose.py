"""Composing and sending a message from the console (issue 12), in-process on the real app:
the form generated from each type's JSON Schema, the API's own checks giving the GOV.UK
error summary, the check page with the decision ``POST /v1/policy/decide`` gives, and the
send through the API's submission service, once however often Send is pressed."""

from __future__ import annotations

import json
import re
import uuid
from html import unescape
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.config import Settings
from gateway.console.compose import form_schema
from gateway.console.schema_form import Schemas, values_of
from gateway.domain.model import MessageType, Role
from gateway.pipeline import access
from gateway.services.directory import DEMO_ORGANISATIONS
from tests.conftest import EXAMPLES, AgencyFactory, bearer, load
from tests.console.test_console import sign_in
from tests.test_audit_log import audit_entries
from tests.test_messages_end_to_end import wait_for_inbox

SPOC = "cjit-nfk.spoc"
DIR = load(EXAMPLES / "dir_transfer" / "valid-enforcement-suffolk-to-norfolk.json")


def spoc_of(kind: str) -> str:
    """The demo SPOC of the first demo organisation of ``kind``."""
    org = next(o for o in DEMO_ORGANISATIONS if o.kind.value == kind)
    return f"{org.code.lower()}.spoc"


def norfolk_dir() -> dict[str, Any]:
    """The Suffolk-to-Norfolk DIR transfer example, sent by Norfolk to Suffolk instead."""
    document: dict[str, Any] = json.loads(json.dumps(DIR))
    document["from"] = "CJIT-NFK"
    document["to"] = ["CJIT-SFK"]
    body = document["body"]
    body["receiving_cjit"] = "CJIT-SFK"
    body["follow_up_appointment"]["organisation"] = "CJIT-SFK"
    return document


def answers(document: dict[str, Any], services_documents: Any) -> dict[str, list[str]]:
    part = {k: document[k] for k in ("to", "route", "subject", "body") if k in document}
    schema = form_schema(services_documents, document["type"])
    # The recipients are ticked from a list (their codes are the values).
    return values_of(schema, Schemas(list(services_documents.values())), part,
                     choices={"/to": ()})


Client = TestClient[Any, Any]
ANSWER_NAMES = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
SUMMARY_LINKS = re.compile(r'<li><a href="#([^"]+)">([^<]+)</a></li>')


def documents(client: Client) -> Any:
    from gateway.http.services import SERVICES

    return client.app[SERVICES].schemas.documents


def form_data(values: dict[str, list[str]], csrf: str | None) -> list[tuple[str, str]]:
    data = [(name, value) for name, items in values.items() for value in items]
    return data + ([("csrf_token", csrf)] if csrf is not None else [])


def hidden_fields(page: str) -> list[tuple[str, str]]:
    """The check page's form: the answers, message_id, sent_at and the CSRF token."""
    return [(name, unescape(value)) for name, value in ANSWER_NAMES.findall(page)]


async def check_page(client: Client, csrf: str, document: dict[str, Any]) -> str:
    response = await client.post(f"/console/compose/{document['type']}",
                                 data=form_data(answers(document, documents(client)), csrf))
    page = await response.text()
    assert response.status == 200, SUMMARY_LINKS.findall(page)
    assert "Check before sending" in page
    return page


def sendable_by(kind: str) -> list[str]:
    return sorted(t.value for t in MessageType
                  if kind in {k.value for k in access.SENDING_RULES[t]})


async def test_the_list_offers_only_what_the_organisation_may_send(client: Client) -> None:
    await sign_in(client, SPOC)
    page = await (await client.get("/console/compose")).text()
    offered = sorted(re.findall(r'href="/console/compose/([a-z_0-9]+)"', page))
    assert offered == sendable_by("cjit")
    assert "DIR transfer to the CJIT of residence" in page  # the schema's title
    assert "ra1_notice" not in offered  # the police's, not a CJIT's


@pytest.mark.parametrize("message_type", sorted(t.value for t in MessageType))
async def test_each_types_form_renders_for_a_sender_that_may_send_it(
    client: Client, message_type: str,
) -> None:
    kind = next(iter(sorted(k.value for k in access.SENDING_RULES[MessageType(message_type)])))
    await sign_in(client, spoc_of(kind))
    response = await client.get(f"/console/compose/{message_type}")
    page = await response.text()
    assert response.status == 200
    schema = documents(client)[message_type]
    assert schema["title"] in page
    # Every property of the body is asked, by its id, and labelled.
    for name in schema["properties"]:
        assert f'id="body-{name}' in page, name
    # What only the gateway fills in is never asked.
    for name in ("message_id", "sent_at", "from", "schema_version"):
        assert f'name="{name}"' not in page


async def test_without_the_send_grant_the_pages_are_403(client: Client) -> None:
    csrf = await sign_in(client, "cjit-nfk.ig-lead")
    for path in ("/console/compose", "/console/compose/dir_transfer"):
        response = await client.get(path)
        assert response.status == 403
        assert "You do not have permission to see this page" in await response.text()
    response = await client.post("/console/compose/dir_transfer/send",
                                 data={"csrf_token": csrf, **{"message_id": str(uuid.uuid4())}})
    assert response.status == 403
    home = await (await client.get("/console/")).text()
    assert 'href="/console/compose"' not in home


async def test_a_type_the_organisations_kind_may_not_send_is_refused(client: Client) -> None:
    csrf = await sign_in(client, SPOC)
    # RA1 notices are the police's (access.SENDING_RULES): a CJIT gets the 403 page.
    for response in (
        await client.get("/console/compose/ra1_notice"),
        await client.post("/console/compose/ra1_notice", data={"csrf_token": csrf}),
    ):
        assert response.status == 403
    assert (await client.get("/console/compose/no_such_type")).status == 404
    # A CJIT may send a CARAT referral only into custody (access.SENDER_STATES): the
    # form offers nothing else.
    page = await (await client.get("/console/compose/carat_referral")).text()
    assert 'value="into_custody"' in page and 'value="release"' not in page


async def test_errors_are_summarised_with_links_to_their_fields(client: Client) -> None:
    csrf = await sign_in(client, SPOC)
    document = norfolk_dir()
    values = answers(document, documents(client))
    values["body-dir_ref"] = ["X"]  # too short
    values["body-assessment-date-day"] = ["31"]
    values["body-assessment-date-month"] = ["2"]  # 31 February
    del values["body-written_notice_given"]  # required
    values["subject-date_of_birth-year"] = ["94"]  # two digits
    response = await client.post("/console/compose/dir_transfer",
                                 data=form_data(values, csrf))
    page = await response.text()
    assert response.status == 422
    assert page.count('class="govuk-error-summary"') == 1
    assert "<title>Error: " in page
    links = dict(SUMMARY_LINKS.findall(page))
    assert links == {
        "subject-date_of_birth-day": "Date of birth must be a real date",
        "body-dir_ref": "DIR reference must be at least 3 characters",
        "body-assessment-date-day": "Assessment date must be a real date",
        "body-written_notice_given": "Select written notice given",
    }
    for anchor in links:
        assert f'id="{anchor}"' in page  # the link lands on an input
    # Each field shows its own message, and the answers are kept.
    for field_id in ("subject-date_of_birth", "body-dir_ref", "body-assessment-date",
                     "body-written_notice_given"):
        assert f'id="{field_id}-error"' in page
    assert 'value="SFK-DIR-26-0193"' not in page and 'value="X"' in page
    assert 'value="Kerry-Ann"' in page


async def test_an_empty_form_names_each_required_question(client: Client) -> None:
    csrf = await sign_in(client, SPOC)
    response = await client.post("/console/compose/dir_transfer", data={"csrf_token": csrf})
    page = await response.text()
    assert response.status == 422
    links = dict(SUMMARY_LINKS.findall(page))
    assert links["route"] == "Select identification route"
    assert links["subject-given_name"] == "Enter given name"
    assert links["body-sending_worker-phone"] == "Enter telephone (Sending worker)"
    for anchor in links:
        assert f'id="{anchor}"' in page


async def test_the_check_page_shows_the_answers_and_the_decision(
    client: Client, settings: Settings,
) -> None:
    csrf = await sign_in(client, SPOC)
    page = await check_page(client, csrf, norfolk_dir())
    assert "Suffolk CJIT (CJIT-SFK)" in page
    assert "Will be shared" in page and "Will not be shared" not in page
    assert "Drugs Act 2005" in page  # the legal basis the policy gives
    assert "Kerry-Ann" in page and "3 February 1994" in page
    assert ">Send</button>" in page
    fields = dict(hidden_fields(page))
    assert uuid.UUID(fields["message_id"]).version == 4
    # Nothing is sent by checking.
    assert not [e for e in await audit_entries(client, settings)
                if e.get("message_id") == fields["message_id"]
                and e.get("action") != "consulted"]


async def test_a_share_the_policy_refuses_is_shown_and_cannot_be_sent(client: Client) -> None:
    csrf = await sign_in(client, SPOC)
    # On the proactive route a DIR transfer rests on the person's consent: without the
    # sender's declaration of it, and none recorded, nothing would be shared.
    document = load(EXAMPLES / "dir_transfer"
                    / "valid-proactive-norfolk-to-cambridgeshire-with-consent.json")
    del document["body"]["consent"]
    page = await check_page(client, csrf, document)
    assert "Will not be shared" in page
    assert "Needed" in page
    assert ">Send</button>" not in page
    assert "This message cannot be sent" in page


async def test_send_delivers_once_however_often_it_is_pressed(
    client: Client, settings: Settings, agency: AgencyFactory,
) -> None:
    csrf = await sign_in(client, SPOC)
    page = await check_page(client, csrf, norfolk_dir())
    fields = hidden_fields(page)
    message_id = dict(fields)["message_id"]
    first = await client.post("/console/compose/dir_transfer/send", data=fields,
                              allow_redirects=False)
    second = await client.post("/console/compose/dir_transfer/send", data=fields,
                               allow_redirects=False)
    assert first.status == second.status == 303
    assert first.headers["Location"] == second.headers["Location"] == (
        f"/console/compose/sent/{message_id}")
    delivered = await wait_for_inbox(agency("CJIT-SFK"), message_id)
    assert len(delivered) == 1
    assert delivered[0]["envelope"]["from"] == "CJIT-NFK"
    confirmation = await client.get(first.headers["Location"])
    text = await confirmation.text()
    assert "govuk-panel--confirmation" in text and message_id in text
    assert f'href="/console/sent/{message_id}"' in text
    # Audited as the API's submissions are, with the person as the one who sent it.
    entries = [e for e in await audit_entries(client, settings)
               if e.get("message_id") == message_id]
    assert any(SPOC in json.dumps(e) for e in entries if e.get("action") != "consulted")
    # A message this organisation did not send has no confirmation page.
    assert (await client.get(f"/console/compose/sent/{uuid.uuid4()}")).status == 404


async def test_change_your_answers_keeps_them_and_the_message_id(client: Client) -> None:
    csrf = await sign_in(client, SPOC)
    page = await check_page(client, csrf, norfolk_dir())
    fields = [*hidden_fields(page), ("action", "change")]
    message_id = dict(fields)["message_id"]
    response = await client.post("/console/compose/dir_transfer", data=fields)
    form = await response.text()
    assert response.status == 200
    assert 'value="SFK-DIR-26-0193"' in form and "govuk-error-summary" not in form
    assert f'name="message_id" value="{message_id}"' in form


async def test_add_another_row_without_javascript(client: Client) -> None:
    csrf = await sign_in(client, "pol-sfk-ips.spoc")
    page = await (await client.get("/console/compose/conditional_caution_notice")).text()
    assert 'id="body-offences-0"' in page and 'id="body-offences-1"' not in page
    response = await client.post("/console/compose/conditional_caution_notice", data={
        "csrf_token": csrf, "body-offences-0": "Theft from a shop", "body-offences-rows": "1",
        "add": "body-offences",
    })
    page = await response.text()
    assert response.status == 200 and "govuk-error-summary" not in page
    assert 'id="body-offences-1"' in page and 'value="Theft from a shop"' in page


async def test_forms_without_the_csrf_token_are_refused(client: Client) -> None:
    await sign_in(client, SPOC)
    values = form_data(answers(norfolk_dir(), documents(client)), None)
    for path in ("/console/compose/dir_transfer", "/console/compose/dir_transfer/send"):
        response = await client.post(path, data=values)
        assert response.status == 400
        assert "Sorry, there is a problem with the form" in await response.text()


@pytest.mark.parametrize("path", sorted(str(p.relative_to(EXAMPLES))
                                        for p in EXAMPLES.glob("*/valid-*.json")))
async def test_every_valid_example_goes_through_the_form_to_the_check_page(
    client: Client, path: str,
) -> None:
    document = load(EXAMPLES / path)
    csrf = await sign_in(client, f"{document['from'].lower()}.spoc")
    await check_page(client, csrf, document)


async def test_hostile_answers_get_the_error_summary_never_a_crash(client: Client) -> None:
    csrf = await sign_in(client, SPOC)
    answers_ = answers(norfolk_dir(), documents(client))
    for tampered in (
        {"to": ["POL-SFK-IPS"]},  # a kind a CJIT may not send a DIR transfer to
        {"to": ["NO-SUCH-ORG"]},
        {"route": ["<script>"]},
        {"body-substances": ["heroin", "heroin"]},
        {"body-appointment_kind": ["x" * 5000]},
        {"body-needs-drug_and_alcohol-goals-rows": ["99999"], "add": ["nowhere"]},
        {"subject-date_of_birth-year": ["-1"], "body-urgent_referral_needed": ["maybe"]},
        {"body-follow_up_appointment-at-hour": ["25"]},
    ):
        values = {**answers_, **{k: v for k, v in tampered.items() if k != "add"}}
        data = form_data(values, csrf) + [("add", v) for v in tampered.get("add", [])]
        response = await client.post("/console/compose/dir_transfer", data=data)
        page = await response.text()
        assert response.status in (200, 422), tampered
        assert "<script>" not in page.split("<main", 1)[1], tampered
        if "add" not in tampered:
            assert "govuk-error-summary" in page, tampered
    # Send without the check page's message_id and sent_at: back to the form, nothing sent.
    response = await client.post("/console/compose/dir_transfer/send",
                                 data=[*form_data(answers_, csrf), ("message_id", "1")])
    assert response.status == 200 and "Check before sending" not in await response.text()


async def test_working_out_the_recipients_is_logged_as_a_consultation(
    client: Client, settings: Settings,
) -> None:
    csrf = await sign_in(client, SPOC)
    document = norfolk_dir()
    del document["to"]
    page = await check_page(client, csrf, document)
    assert "Worked out by the gateway" in page and "Suffolk CJIT (CJIT-SFK)" in page
    logged = [e for e in await audit_entries(client, settings)
              if "recipient_resolution" in json.dumps(e)]
    assert logged and "console" in json.dumps(logged[-1]) and SPOC in json.dumps(logged[-1])


async def test_an_organisation_that_must_sign_cannot_send_from_the_console(
    client: Client, settings: Settings, agency: AgencyFactory,
) -> None:
    """The browser holds no system key: the refusal names why, and nothing is sent."""
    required = await client.put("/v1/directory/CJIT-NFK/signing",
                                json={"signed_messages_required": True},
                                headers=bearer(settings, "CJIT-NFK", Role.ORG_ADMIN))
    assert required.status == 200
    csrf = await sign_in(client, SPOC)
    fields = hidden_fields(await check_page(client, csrf, norfolk_dir()))
    response = await client.post("/console/compose/dir_transfer/send", data=fields,
                                  allow_redirects=False)
    page = await response.text()
    assert response.status == 422
    assert "govuk-error-summary" in page and "must sign its messages" in page
    assert not await agency("CJIT-SFK").inbox()
