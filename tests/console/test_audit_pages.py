"""The auditor's console pages (issue 12): the newest checkpoint with its signature checked,
an entry's inclusion proved (and a tampered proof refused), entries by time and event, an
export that ``dipgw audit verify`` accepts, and a person's disclosure report (DPA 2018 s.62),
on the real app, with the API's access rule and every read audited as a consultation."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from structlog.testing import capture_logs

from gateway import cli
from gateway.config import Settings
from gateway.console.words import LONDON
from gateway.domain.model import Role
from gateway.http.services import SERVICES
from gateway.services import audit_proofs
from gateway.storage.base import AuditRepository
from gateway.tlog.checkpoint import Checkpoint
from gateway.tlog.note import parse_signed_note
from tests.conftest import EXAMPLES, AgencyFactory, bearer, load
from tests.console.test_consent_pages import text_of
from tests.console.test_console import sign_in
from tests.test_audit_log import audit_entries
from tests.test_messages_end_to_end import wait_for_inbox

AUDITOR = "dip-assure.auditor"
SPOC = "cjit-nfk.spoc"
# Person A: a conditional caution notice Suffolk police send to Suffolk CJIT.
CAUTION = load(EXAMPLES / "conditional_caution_notice"
               / "valid-enforcement-suffolk-attend-initial-assessment.json")
# Person B, who must not appear in A's report: a DIR from Cambridgeshire to Suffolk.
OTHER = load(EXAMPLES / "dir_transfer"
             / "valid-enforcement-cambridgeshire-to-suffolk-with-prescribing.json")
PAGES = ("/console/audit", "/console/audit/inclusion?index=0", "/console/audit/entries",
         "/console/audit/export", "/console/audit/export/download?from=0&to=1",
         "/console/audit/keys.txt", "/console/audit/disclosures?pnc_id=13/560217P",
         "/console/audit/disclosures.csv?pnc_id=13/560217P")


async def send(agency: AgencyFactory, document: dict[str, Any]) -> None:
    answer = await agency(document["from"]).send(document)
    assert answer.status == 202, answer
    for code in document["to"]:
        assert await wait_for_inbox(agency(code), document["message_id"])


async def page_text(client: TestClient[Any, Any], path: str, status: int = 200) -> str:
    response = await client.get(path)
    body = await response.text()
    assert response.status == status, body
    return body


def console_reads(entries: list[dict[str, Any]], resource: str) -> list[dict[str, Any]]:
    return [e for e in entries if e["action"] == "consulted"
            and e["details"]["resource"] == resource
            and e["details"].get("channel") == "console" and e["actor"].endswith(AUDITOR)]


async def test_the_newest_checkpoint_is_shown_with_its_signature_verified(
    client: TestClient[Any, Any], settings: Settings,
) -> None:
    await sign_in(client, AUDITOR)
    page = await page_text(client, "/console/audit")
    size = int(re.search(r'id="size">(\d+) entries', page).group(1))  # type: ignore[union-attr]
    stored = await client.server.app[SERVICES].audit.checkpoint(size)
    assert stored is not None
    signed = Checkpoint.from_text(parse_signed_note(stored[1]).text)
    text = text_of(page)
    assert "Signature Verified" in text and "NOT verified" not in text
    assert signed.root_hash.hex() in page and signed.origin in page
    key_id = parse_signed_note(stored[1]).signatures[0].key_id.hex()
    assert f"key ID {key_id} (current key)" in text
    assert console_reads(await audit_entries(client, settings), "checkpoint")


async def test_an_entry_s_inclusion_is_verified_in_the_page_with_the_api_s_proof(
    client: TestClient[Any, Any], settings: Settings, agency: AgencyFactory,
) -> None:
    await send(agency, CAUTION)
    await client.server.app[SERVICES].checkpointer.integrate()
    await sign_in(client, AUDITOR)
    page = await page_text(client, "/console/audit/inclusion?index=3")
    assert "Verified by the gateway" in page and "NOT verified" not in page
    size = int(re.search(r'data-size="(\d+)"', page).group(1))  # type: ignore[union-attr]
    api = await (await client.get(
        "/v1/audit/proof/inclusion", params={"index": "3", "size": str(size)},
        headers=bearer(settings, "DIP-ASSURE", Role.AUDITOR))).json()
    assert f'data-proof="{" ".join(api["proof"])}"' in page
    assert f'data-leaf-hash="{api["leaf_hash"]}"' in page
    assert '<script type="module" src="/console/static/audit.js"></script>' in page
    reads = console_reads(await audit_entries(client, settings), "inclusion_proof")
    assert [(r["details"]["index"], r["details"]["size"]) for r in reads] == [(3, size)]
    script = await client.get("/console/static/audit.js")
    assert script.status == 200 and "crypto.subtle.digest" in await script.text()


async def test_a_tampered_proof_is_reported_as_not_verified(
    client: TestClient[Any, Any], agency: AgencyFactory, monkeypatch: pytest.MonkeyPatch,
) -> None:
    await send(agency, CAUTION)
    await client.server.app[SERVICES].checkpointer.integrate()

    async def tampered(audit: AuditRepository, index: int, size: int) -> tuple[
            bytes, list[bytes]]:
        leaf, proof = await served(audit, index, size)
        return leaf, [bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:]]

    served = audit_proofs.inclusion
    monkeypatch.setattr(audit_proofs, "inclusion", tampered)
    await sign_in(client, AUDITOR)
    page = await page_text(client, "/console/audit/inclusion?index=2")
    text = text_of(page)
    assert "Entry 2 is NOT proved to be in the log" in text
    assert "NOT verified" in text and "Verified by the gateway" not in text
    assert "inclusion proof failed" in text


async def test_entries_are_filtered_by_event_and_day_and_paged(
    client: TestClient[Any, Any], agency: AgencyFactory,
) -> None:
    await send(agency, CAUTION)
    await sign_in(client, AUDITOR)
    page = await page_text(client, "/console/audit/entries?action=message.delivered")
    rows = re.findall(r'<tr class="govuk-table__row">(.*?)</tr>', page, re.S)[1:]
    assert len(rows) == len(CAUTION["to"])
    assert all("Disclosed (delivered)" in row and "psn:" in row for row in rows)
    assert CAUTION["subject"]["pnc_id"] not in page
    assert CAUTION["subject"]["family_name"] not in page
    # Days are UK days: today holds the caution's entries, a day long past and one far
    # ahead hold none.
    today = datetime.now(LONDON).date()
    day = f"day={today.day}&{{0}}-month={today.month}&{{0}}-year={today.year}"
    both = f"since-{day.format('since')}&until-{day.format('until')}"
    found = await page_text(client, f"/console/audit/entries?{both}&action=message.accepted")
    assert CAUTION["message_id"] not in found  # entries show no message ids, only types
    assert "1 entry found" in text_of(found) and "Conditional caution" in text_of(found)
    for far in ("since-day=1&since-month=1&since-year=2999",
                "until-day=1&until-month=1&until-year=2000"):
        empty = text_of(await page_text(client, f"/console/audit/entries?{far}"))
        assert "0 entries found" in empty
    everything = await page_text(client, "/console/audit/entries")
    assert 'aria-label="Pagination"' in everything
    second = await page_text(client, "/console/audit/entries?page=2")
    assert 'aria-current="page">2</a>' in second


async def test_the_export_downloads_and_dipgw_audit_verify_accepts_it(
    client: TestClient[Any, Any], agency: AgencyFactory, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await send(agency, CAUTION)
    await sign_in(client, AUDITOR)
    page = await page_text(client, "/console/audit/export")
    command = html_unescape(re.search(
        r'id="verify-command">(.*?)</code>', page).group(1))  # type: ignore[union-attr]
    href = html_unescape(re.search(r'id="export-link" href="([^"]+)"', page).group(1))  # type: ignore[union-attr]
    bundle = await client.get(href)
    assert bundle.status == 200
    name = re.search(r'filename="([^"]+)"', bundle.headers["Content-Disposition"]).group(1)  # type: ignore[union-attr]
    (tmp_path / name).write_bytes(await bundle.read())
    keys = await client.get("/console/audit/keys.txt")
    assert keys.status == 200
    (tmp_path / "dipgw-audit-keys.txt").write_text(await keys.text())
    argv = command.split()
    assert argv[:3] == ["dipgw", "audit", "verify"] and argv[3] == name
    # The command exactly as shown, run where the two files were saved.
    args = [str(tmp_path / a) if a in (name, "dipgw-audit-keys.txt") else a for a in argv[1:]]
    capsys.readouterr()
    assert cli.main(args, env={"DIPGW_DATA_DIR": str(tmp_path / "cli")}) == 0
    assert capsys.readouterr().out.startswith("OK:")
    exported = [e for e in await audit_entries(client, client.server.app[SERVICES].settings)
                if e["action"] == "audit.exported"]
    assert exported[-1]["details"]["channel"] == "console"


async def test_the_disclosure_report_lists_who_when_to_whom_rule_and_basis_for_one_person(
    client: TestClient[Any, Any], settings: Settings, agency: AgencyFactory,
) -> None:
    await send(agency, CAUTION)
    await send(agency, OTHER)
    pnc = CAUTION["subject"]["pnc_id"]
    await sign_in(client, AUDITOR)
    with capture_logs() as logged:
        page = await page_text(client, f"/console/audit/disclosures?pnc_id={pnc}")
    text = text_of(page)
    assert "1 disclosure" in text
    rows = re.findall(r'<tr class="govuk-table__row">(.*?)</tr>', page, re.S)[1:]
    disclosed = [text_of(r) for r in rows if "Disclosure" in r]
    assert len(disclosed) == 1
    entries = await audit_entries(client, settings)
    delivered = next(e for e in entries if e["action"] == "message.delivered"
                     and e.get("message_id") == CAUTION["message_id"])
    decision = delivered["details"]["decision"]
    row = disclosed[0]
    assert "Sent by Suffolk Constabulary" in row and "(POL-SFK-IPS)" in row
    assert "Suffolk CJIT" in row or "(CJIT-SFK)" in row
    assert decision["rule"] in row and decision["legal_basis"] in row
    assert str(delivered["index"]) in row
    # Nothing about the other person.
    assert OTHER["message_id"] not in page and "CJIT-CAM" not in page
    # Searching is itself a consultation about the person, under their pseudonym only.
    read = console_reads(await audit_entries(client, settings), "disclosures")[-1]
    assert read["subject"] == delivered["subject"]
    assert pnc not in json.dumps(entries) and pnc not in repr(logged)
    # The same by name and date of birth, and as CSV.
    year, month, day_ = CAUTION["subject"]["date_of_birth"].split("-")
    by_name = (f"given_name={CAUTION['subject']['given_name']}&family_name="
               f"{CAUTION['subject']['family_name']}&date_of_birth-day={day_}"
               f"&date_of_birth-month={month}&date_of_birth-year={year}")
    assert "1 disclosure" in text_of(await page_text(
        client, f"/console/audit/disclosures?{by_name}"))
    sheet = await client.get(f"/console/audit/disclosures.csv?pnc_id={pnc}")
    assert sheet.status == 200 and sheet.content_type == "text/csv"
    lines = list(csv.DictReader(io.StringIO(await sheet.text())))
    shared = [line for line in lines if line["action"] == "message.delivered"]
    assert [line["message_id"] for line in shared] == [CAUTION["message_id"]]
    assert shared[0]["legal_basis"] == decision["legal_basis"]


async def test_the_disclosure_api_answers_auditors_and_is_audited(
    client: TestClient[Any, Any], settings: Settings, agency: AgencyFactory,
) -> None:
    await send(agency, CAUTION)
    pnc = CAUTION["subject"]["pnc_id"]
    response = await client.get("/v1/audit/disclosures", params={"pnc_id": pnc},
                                headers=bearer(settings, "DIP-ASSURE", Role.AUDITOR))
    assert response.status == 200
    report = await response.json()
    assert report["disclosures"] == 1
    assert {e["message_id"] for e in report["entries"]} == {CAUTION["message_id"]}
    # Suffolk CJIT's system read its inbox, which showed the caution: a consultation of
    # this person's data though the inbox read names messages, not people.
    assert any(e["action"] == "consulted" and e["resource"] == "inbox"
               and e["actor"].startswith("CJIT-SFK/") for e in report["entries"])
    refused = await client.get("/v1/audit/disclosures", params={"pnc_id": pnc},
                               headers=bearer(settings, "CJIT-SFK", Role.SPOC))
    assert refused.status == 403
    bad = await client.get("/v1/audit/disclosures", params={"given_name": "Ann"},
                           headers=bearer(settings, "DIP-ASSURE", Role.AUDITOR))
    assert bad.status == 400
    reads = [e for e in await audit_entries(client, settings)
             if e["action"] == "consulted" and e["details"]["resource"] == "disclosures"]
    assert len(reads) == 1 and reads[0]["subject"].startswith("psn:")


async def test_a_spoc_gets_the_403_page_for_every_audit_page(
    client: TestClient[Any, Any],
) -> None:
    await sign_in(client, SPOC)
    home = await page_text(client, "/console/")
    assert 'href="/console/audit"' not in home
    for path in PAGES:
        page = await page_text(client, path, status=403)
        assert "You do not have permission to see this page" in page, path
        assert "13/560217P" not in page


@pytest.mark.parametrize(("path", "error", "href"), [
    ("/console/audit/disclosures?given_name=Ann", "Enter the person's family name, or their "
     "PNC ID", "#family_name"),
    ("/console/audit/disclosures?pnc_id=%3Cscript%3E", "Enter a PNC ID in the form", "#pnc_id"),
    ("/console/audit/disclosures?given_name=A&family_name=B&date_of_birth-day=31"
     "&date_of_birth-month=2&date_of_birth-year=1990", "Date of birth must be a real date",
     "#date_of_birth-day"),
    ("/console/audit/inclusion?index=abc", "Entry number must be a whole number", "#index"),
    ("/console/audit/inclusion?index=99999999", "Entry number must be a whole number",
     "#index"),
    ("/console/audit/entries?since-day=40&since-month=1&since-year=2026",
     "The first day must be a real date", "#since-day"),
    ("/console/audit/entries?action=nonsense", "Select an event from the list", "#action"),
    ("/console/audit/export?from=5&to=2", "The first entry must be before the end", "#from"),
    ("/console/audit/export?to=x", "The end must be a whole number", "#to"),
])
async def test_bad_input_gives_a_gov_uk_error_summary(
    client: TestClient[Any, Any], path: str, error: str, href: str,
) -> None:
    await sign_in(client, AUDITOR)
    page = await page_text(client, path, status=400)
    assert 'class="govuk-error-summary"' in page
    assert f'href="{href}"' in page and error in html_unescape(page)
    assert page.count("govuk-error-message") >= 1


def html_unescape(text: str) -> str:
    import html
    return html.unescape(text)


def test_the_verify_command_names_the_file_the_link_downloads() -> None:
    from gateway.console.audit_pages import verify_command
    assert verify_command(0, 12) == ("dipgw audit verify dipgw-audit-0-12.tar.gz "
                                     "--public-key dipgw-audit-keys.txt --from 0 --to 12")
    assert base64.b64decode(base64.b64encode(b"x")) == b"x"
