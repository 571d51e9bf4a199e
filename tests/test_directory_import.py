"""Importing the CJIT SPOC list: preview, apply, audit; and the CJIT of residence."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import Settings
from gateway.domain.model import Role
from gateway.pipeline.directory_import import (
    InvalidDirectoryFile,
    cjit_of_residence,
    parse_spoc_csv,
    plan,
)
from gateway.services.directory import DEMO_ORGANISATIONS
from tests.conftest import bearer, person_bearer, table_counts

HEADER = "code,organisation,kind,area,spoc_name,phone,email,secure_email,areas_served\n"
SPOC_LIST = HEADER + (
    "CJIT-SFK,Suffolk CJIT,cjit,Suffolk,New SPOC,01473 000 999,spoc@suffolk-cjit.example,,"
    "Ipswich;Babergh;Mid Suffolk;East Suffolk;West Suffolk\n"
    "CJIT-ESX,Essex CJIT,cjit,Essex,Essex SPOC,01245 000 100,spoc@essex-cjit.example,,"
    "Chelmsford;Colchester\n"
)


def test_rows_become_organisations_without_keys() -> None:
    orgs = parse_spoc_csv(SPOC_LIST)
    assert [o.code for o in orgs] == ["CJIT-SFK", "CJIT-ESX"]
    assert orgs[1].areas_served == ("Chelmsford", "Colchester")
    assert all(o.jwks == () for o in orgs)


def test_every_problem_is_reported_with_its_row() -> None:
    text = HEADER + (
        "cjit x,Bad,agency,Somewhere,,,not-an-email,,\n"
        "POL-X,Police,police,Area,Name,,,,Norwich\n"
        "POL-X,Police,police,Area,Name,,,,\n"
    )
    with pytest.raises(InvalidDirectoryFile) as raised:
        parse_spoc_csv(text)
    pointers = [v.pointer for v in raised.value.violations]
    assert pointers == ["/rows/2/spoc_name", "/rows/2/code", "/rows/2/kind", "/rows/2/email",
                        "/rows/3/areas_served", "/rows/4/code"]


def test_missing_columns_are_named() -> None:
    with pytest.raises(InvalidDirectoryFile) as raised:
        parse_spoc_csv("code,organisation\nX,Y\n")
    assert "kind, area, spoc_name" in raised.value.violations[0].message


@given(st.text(max_size=300))
def test_any_text_is_parsed_or_refused_clearly(text: str) -> None:
    with contextlib.suppress(InvalidDirectoryFile):
        parse_spoc_csv(text)


def test_plan_shows_added_changed_and_absent_and_keeps_keys() -> None:
    current = list(DEMO_ORGANISATIONS)
    changes = plan(current, parse_spoc_csv(SPOC_LIST))
    assert [o.code for o in changes.added] == ["CJIT-ESX"]
    [(changed, fields)] = changes.changed
    assert changed.code == "CJIT-SFK" and set(fields) == {"spoc"}
    assert "POL-SFK-IPS" in changes.not_in_file


def test_cjit_of_residence_including_out_of_area() -> None:
    assert cjit_of_residence(DEMO_ORGANISATIONS, "norwich").code == "CJIT-NFK"
    assert cjit_of_residence(DEMO_ORGANISATIONS, "King's Lynn and West Norfolk").code == "CJIT-NFK"
    assert cjit_of_residence(DEMO_ORGANISATIONS, "Peterborough").code == "CJIT-CAM"
    assert cjit_of_residence(DEMO_ORGANISATIONS, "Chelmsford") is None


async def test_preview_changes_nothing_and_a_second_operator_applies_it(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    operator = person_bearer(settings, "dipgw-ops.operator")
    preview = await client.post("/v1/directory/import", json={"csv": SPOC_LIST},
                                headers=operator)
    assert preview.status == 200
    assert (await preview.json())["applied"] is False
    listed = await client.get("/v1/directory", headers=bearer(settings, "CJIT-SFK"))
    directory = await listed.json()
    assert "CJIT-ESX" not in [o["code"] for o in directory["organisations"]]

    for not_operator in (bearer(settings, "CJIT-SFK"), bearer(settings, "CJIT-SFK", Role.IG_LEAD),
                         bearer(settings, "CJIT-SFK", Role.ORG_ADMIN)):
        before = table_counts(settings)
        refused = await client.post("/v1/directory/import",
                                    json={"csv": SPOC_LIST, "apply": True}, headers=not_operator)
        assert refused.status == 403
        assert table_counts(settings) == before

    proposed = await client.post("/v1/directory/import", json={"csv": SPOC_LIST, "apply": True},
                                 headers=person_bearer(settings, "dipgw-ops.operator"))
    assert proposed.status == 202
    proposal = await proposed.json()
    assert proposal["applied"] is False and proposal["status"] == "awaiting_approval"
    assert [o["code"] for o in proposal["added"]] == ["CJIT-ESX"]
    approve = f"/v1/directory/imports/{proposal['import_id']}/approve"

    own = await client.post(approve, headers=person_bearer(settings, "dipgw-ops.operator"))
    assert own.status == 403
    residence = await client.get("/v1/directory/residence", params={"area": "Colchester"},
                                 headers=bearer(settings, "POL-SFK-IPS"))
    assert residence.status == 404

    applied = await client.post(approve, headers=person_bearer(settings, "dipgw-ops.operator2"))
    assert applied.status == 200, await applied.text()
    assert (await applied.json())["applied"] is True
    residence = await client.get("/v1/directory/residence", params={"area": "Colchester"},
                                 headers=bearer(settings, "POL-SFK-IPS"))
    assert (await residence.json())["code"] == "CJIT-ESX"
    again = await client.post(approve, headers=person_bearer(settings, "dipgw-ops.operator2"))
    assert again.status == 409

    entries = await client.get("/v1/audit/entries", params={"from": "0", "to": "1000"},
                               headers=bearer(settings, "DIP-ASSURE", Role.AUDITOR))
    logged = (await entries.json())["entries"]
    proposals = [e for e in logged if e["action"] == "directory.import_proposed"]
    assert proposals[0]["actor"] == "dipgw-ops.operator"
    updates = [e for e in logged
               if e["action"] == "directory.updated" and "import" in e["details"]]
    assert "CJIT-ESX" in updates[0]["details"]["applied"]
    assert updates[0]["actor"] == "dipgw-ops.operator2"


async def test_an_import_is_refused_when_the_directory_moved_since_its_proposal(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    operator = person_bearer(settings, "dipgw-ops.operator")
    first = await (await client.post("/v1/directory/import", json={"csv": SPOC_LIST,
                                     "apply": True}, headers=operator)).json()
    second = await (await client.post(
        "/v1/directory/import", json={"csv": SPOC_LIST, "apply": True},
        headers=person_bearer(settings, "dipgw-ops.operator"))).json()
    approved = await client.post(f"/v1/directory/imports/{first['import_id']}/approve",
                                 headers=person_bearer(settings, "dipgw-ops.operator2"))
    assert approved.status == 200
    before = table_counts(settings)
    stale = await client.post(f"/v1/directory/imports/{second['import_id']}/approve",
                              headers=person_bearer(settings, "dipgw-ops.operator2"))
    assert stale.status == 409
    assert "changed since" in (await stale.json())["detail"]
    assert table_counts(settings) == before


async def test_a_spoc_list_cannot_touch_the_operator_or_oversight_body(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    hostile = ("code,organisation,kind,area,spoc_name\n"
               "DIPGW-OPS,Taken over,police,Suffolk,Someone\n")
    refused = await client.post("/v1/directory/import", json={"csv": hostile},
                                headers=person_bearer(settings, "dipgw-ops.operator"))
    assert refused.status == 422
    kind = ("code,organisation,kind,area,spoc_name\n"
            "CJIT-XYZ,New,operator,Suffolk,Someone\n")
    refused = await client.post("/v1/directory/import", json={"csv": kind},
                                headers=person_bearer(settings, "dipgw-ops.operator"))
    assert refused.status == 422


async def test_unreadable_spoc_list_is_refused(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    bad = await client.post("/v1/directory/import", json={"csv": "nonsense"},
                            headers=person_bearer(settings, "dipgw-ops.operator"))
    assert bad.status == 422
