"""The operator's console pages (issue 12): the directory, an organisation with its systems'
keys and people, and the SPOC list import: upload, preview, propose, the author's approval
refused, a second operator's approval applying it; on the real app, through the services
the API calls (what the pages change, the API then reports)."""

from __future__ import annotations

import html
import re
from typing import Any

from aiohttp import FormData
from aiohttp.test_utils import TestClient

from gateway.config import Settings
from gateway.http.services import SERVICES
from tests.conftest import person_bearer
from tests.console.pages_support import register_key, remove_key, text
from tests.console.test_console import sign_in

OPERATOR = "dipgw-ops.operator"  # Sam Okoro
SECOND_OPERATOR = "dipgw-ops.operator2"  # Lena Novak
ADMIN = "cjit-nfk.admin"
HEADER = "code,organisation,kind,area,spoc_name,phone,email,secure_email,areas_served\n"
SPOC_LIST = HEADER + (
    "CJIT-SFK,Suffolk CJIT,cjit,Suffolk,New Suffolk SPOC,01473 000 999,"
    "spoc@suffolk-cjit.example,,Ipswich;Babergh;Mid Suffolk;East Suffolk;West Suffolk\n"
    "CJIT-ESX,Essex CJIT,cjit,Essex,Essex SPOC,01245 000 100,spoc@essex-cjit.example,,"
    "Chelmsford;Colchester\n"
)


def upload(csrf: str, content: bytes, name: str = "spoc-list.csv") -> FormData:
    form = FormData()
    form.add_field("csrf_token", csrf)
    form.add_field("spoc_list", content, filename=name, content_type="text/csv")
    return form


async def test_the_directory_lists_every_organisation(client: TestClient[Any, Any]) -> None:
    await sign_in(client, OPERATOR)
    response = await client.get("/console/directory")
    assert response.status == 200
    page = text(await response.text())
    for words in ("CJIT-NFK", "Norfolk CJIT", "Norfolk", "Your systems collect messages",
                  "DIPGW-OPS", "Gateway operator", "Police"):
        assert words in page, words
    assert 'href="/console/directory/CJIT-NFK"' in page
    assert 'href="/console/directory/import"' in page


async def test_only_operators_open_the_directory_pages(client: TestClient[Any, Any]) -> None:
    await sign_in(client, ADMIN)
    for path in ("/console/directory", "/console/directory/import",
                 "/console/directory/CJIT-SFK",
                 "/console/directory/imports/0b6f5a1e-3c2d-4e5f-8a9b-1c2d3e4f5a6b"):
        response = await client.get(path)
        assert response.status == 403, path
        assert "You do not have permission to see this page" in await response.text()


async def test_an_organisation_page_shows_its_keys_and_people(
    client: TestClient[Any, Any],
) -> None:
    await sign_in(client, OPERATOR)
    response = await client.get("/console/directory/CJIT-NFK")
    assert response.status == 200
    page = text(await response.text())
    assert "Norfolk CJIT" in page and "Norwich, Broadland" in page
    assert "How messages reach it" in page  # not "you": the operator is not Norfolk CJIT
    assert "Jack Turner" in page and "Laura Reid" in page  # people of any organisation
    org = client.app[SERVICES].directory.get("CJIT-NFK")
    assert org is not None
    kid = str(org.jwks[0]["kid"])
    assert kid in page and f"/console/directory/CJIT-NFK/keys/{kid}/remove" in page
    assert 'href="/console/directory/CJIT-NFK/delivery"' in page
    # An operator opens any organisation's person, too.
    assert (await client.get("/console/people/cjit-nfk.spoc")).status == 200
    assert (await client.get("/console/directory/NO-SUCH")).status == 404


async def test_registering_and_removing_a_system_key(client: TestClient[Any, Any]) -> None:
    csrf = await sign_in(client, OPERATOR)
    base = "/console/directory/CJIT-CAM"
    refusal, kid = await register_key(client, csrf, base)
    assert "This is a private key" in refusal
    garbage = await client.post(base + "/keys/new", data={"csrf_token": csrf, "jwk": "{not json"})
    assert 'href="#jwk">Paste the public key as a JSON Web Key' in text(await garbage.text())
    await remove_key(client, csrf, base, kid)
    org = client.app[SERVICES].directory.get("CJIT-CAM")
    assert org is not None and kid not in {k.get("kid") for k in org.jwks}


async def test_a_bad_file_is_refused_with_each_problem_and_its_row(
    client: TestClient[Any, Any],
) -> None:
    csrf = await sign_in(client, OPERATOR)
    assert (await client.get("/console/directory/import")).status == 200
    nothing = await client.post("/console/directory/import", data=upload(csrf, b""))
    assert nothing.status == 200
    assert "Select a CSV file of the SPOC list" in text(await nothing.text())
    bad = HEADER + "cjit x,Bad,agency,Somewhere,,,not-an-email,,\n"
    response = await client.post("/console/directory/import", data=upload(csrf, bad.encode()))
    assert response.status == 200
    page = text(await response.text())
    assert "govuk-error-summary" in page
    assert "Row 2: 'spoc_name' is empty." in page
    assert "Row 2: 'agency' is not one of" in page
    binary = await client.post("/console/directory/import",
                               data=upload(csrf, b"\xff\xfe\x00bad"))
    assert "saved as UTF-8" in text(await binary.text())
    huge = await client.post("/console/directory/import",
                             data=upload(csrf, b"x" * (1024 * 1024 + 1)))
    assert huge.status == 200
    assert "The file must be smaller than 1 MB" in text(await huge.text())


async def test_import_preview_propose_and_a_second_operator_approves(
    client: TestClient[Any, Any], settings: Settings,
) -> None:
    csrf = await sign_in(client, OPERATOR)
    preview = await client.post("/console/directory/import",
                                data=upload(csrf, SPOC_LIST.encode()))
    assert preview.status == 200
    page = text(await preview.text())
    assert "Check the changes" in page
    assert "Added (1)" in page and "CJIT-ESX" in page and "Essex CJIT" in page
    assert "Changed (1)" in page and "New Suffolk SPOC" in page and "Suffolk CJIT SPOC" in page
    assert "Not in the file, kept as they are" in page and "never removes an organisation" in page
    directory = client.app[SERVICES].directory
    assert directory.get("CJIT-ESX") is None  # a preview changes nothing

    csv_value = re.search(r'name="csv" value="([^"]*)"', await preview.text())
    assert csv_value is not None
    proposed = await client.post("/console/directory/import/propose", data={
        "csrf_token": csrf, "csv": html.unescape(csv_value.group(1))}, allow_redirects=False)
    assert proposed.status == 303, await proposed.text()
    location = proposed.headers["Location"]
    import_id = location.split("/")[-1].split("?")[0]
    page = text(await (await client.get(location)).text())
    assert "Import proposed" in page and "Waiting for approval" in page
    assert "you cannot approve it" in page and "Lena Novak" in page
    assert "Approve import" not in page
    assert directory.get("CJIT-ESX") is None

    # The author's own approval is refused in the rule's words, and nothing changes.
    own = await client.post(f"/console/directory/imports/{import_id}/approve",
                            data={"csrf_token": csrf})
    assert own.status == 200
    assert ("A directory import needs a second person: its author cannot approve it."
            in text(await own.text()))
    assert directory.get("CJIT-ESX") is None

    listing = await (await client.get("/console/directory")).text()
    assert f'href="/console/directory/imports/{import_id}">Your import' in listing
    assert "Sam Okoro (you)" in text(listing)

    # The second operator sees it waiting on the directory page, or finds it by its
    # reference, and approves it.
    await client.post("/console/sign-out", data={"csrf_token": csrf})
    second = await sign_in(client, SECOND_OPERATOR)
    listing = await (await client.get("/console/directory")).text()
    assert f'href="/console/directory/imports/{import_id}">Check and approve' in listing
    found = await client.get(f"/console/directory?import={import_id}", allow_redirects=False)
    assert found.status == 303
    assert found.headers["Location"] == f"/console/directory/imports/{import_id}"
    page = text(await (await client.get(found.headers["Location"])).text())
    assert "Approve import" in page and "Sam Okoro" in page
    assert (await client.post(f"/console/directory/imports/{import_id}/approve",
                              data={})).status == 400
    approved = await client.post(f"/console/directory/imports/{import_id}/approve",
                                 data={"csrf_token": second}, allow_redirects=False)
    assert approved.status == 303, await approved.text()
    page = text(await (await client.get(approved.headers["Location"])).text())
    assert "Import approved: the directory has changed" in page
    assert "Applied" in page and "Lena Novak" in page
    essex = directory.get("CJIT-ESX")
    assert essex is not None and essex.name == "Essex CJIT"
    suffolk = directory.get("CJIT-SFK")
    assert suffolk is not None and suffolk.spoc.name == "New Suffolk SPOC"
    api = await client.get(f"/v1/directory/imports/{import_id}",
                           headers=person_bearer(settings, OPERATOR))
    answer = await api.json()
    assert answer["status"] == "applied" and answer["approved_by"] == SECOND_OPERATOR
    listed = text(await (await client.get("/console/directory")).text())
    assert "Essex CJIT" in listed
    assert "No import is waiting for approval." in listed
    # Applied once: a second approval is refused in words.
    twice = await client.post(f"/console/directory/imports/{import_id}/approve",
                              data={"csrf_token": second})
    assert "already applied" in text(await twice.text())


async def test_an_unknown_import_reference_is_an_error_or_404(
    client: TestClient[Any, Any],
) -> None:
    await sign_in(client, OPERATOR)
    for query, words in (
        ("", "Enter the reference of a proposed import"),
        ("nope", "Enter a reference like"),
        ("0b6f5a1e-3c2d-4e5f-8a9b-1c2d3e4f5a6b", "There is no import with that reference"),
    ):
        missing = await client.get(f"/console/directory?import={query}")
        assert missing.status == 200
        assert f'href="#import">{words}' in text(await missing.text()), query
    for path in ("/console/directory/imports/nope",
                 "/console/directory/imports/0b6f5a1e-3c2d-4e5f-8a9b-1c2d3e4f5a6b"):
        assert (await client.get(path)).status == 404, path


async def test_import_forms_need_the_session_s_csrf_token(
    client: TestClient[Any, Any],
) -> None:
    await sign_in(client, OPERATOR)
    form = FormData()
    form.add_field("spoc_list", SPOC_LIST.encode(), filename="a.csv", content_type="text/csv")
    assert (await client.post("/console/directory/import", data=form)).status == 400
    refused = await client.post("/console/directory/import/propose", data={"csv": SPOC_LIST})
    assert refused.status == 400
    assert client.app[SERVICES].directory.get("CJIT-ESX") is None


async def test_a_file_that_changes_nothing_has_nothing_to_propose(
    client: TestClient[Any, Any],
) -> None:
    csrf = await sign_in(client, OPERATOR)
    same = HEADER + ("CARAT-HPI,HMP Highpoint CARAT team,carat,Suffolk,CARAT team leader,"
                     "01440 000 302,carat@hmp-highpoint.example,,\n")
    response = await client.post("/console/directory/import", data=upload(csrf, same.encode()))
    assert response.status == 200
    page = text(await response.text())
    assert "1 organisation in the file already matches the directory." in page
    assert "The file changes nothing: there is nothing to propose." in page
    assert "Propose this import" not in page
