"""Issue 11 end to end, in every adapter, as the agency runs it against a real gateway:
repeated list items reach the stored message as the export wrote them (or, for a list
that is a set, once, with the repeat in the report), and a misspelt column is warned
about with the nearest known name and noted in the report, or, with ``--strict`` /
``DIPGW_STRICT=1``, refuses the file before anything is sent."""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adapters.columns import Column
from adapters.court_results.mapping import COLUMNS as COURT_COLUMNS
from adapters.envelopes import ImportContext
from adapters.police_custody.mapping import COLUMNS as POLICE_COLUMNS
from adapters.prison.mapping import RECEPTION_COLUMNS, RELEASE_COLUMNS
from tests.adapters import samples
from tests.adapters.conftest import Gateway, adapter_env, read_report, write_csv


@dataclass(frozen=True)
class Case:
    command: tuple[str, ...]
    org: str
    columns: tuple[Column, ...]
    reference: str
    row: dict[str, str]
    suffix: str
    misspelt: str
    meant: str
    at: tuple[str, ...]
    """Where the list lands in the stored message."""
    stored: list[str]
    list_warning: str
    """The report's note on the list; empty when the list is not a set."""


CASES = {
    "court results": Case(
        ("adapters.court_results",), "CRT-IPS-MC", COURT_COLUMNS, "case_ref",
        {**samples.COURT_DRR, "offences": "Theft from a shop; Theft from a shop"}, ".csv",
        "court_contact_emial", "court_contact_email", ("body", "offences"),
        ["Theft from a shop", "Theft from a shop"], ""),
    "custody csv": Case(
        ("adapters.police_custody",), "POL-SFK-IPS", POLICE_COLUMNS, "custody_record_ref",
        {**samples.RA1, "address_lines": "Flat 3; Flat 3; 41 Rope Walk"}, ".csv",
        "officer_emial", "officer_email", ("body", "person_contact", "address", "lines"),
        ["Flat 3", "Flat 3", "41 Rope Walk"], ""),
    "custody json lines": Case(
        ("adapters.police_custody",), "POL-SFK-IPS", POLICE_COLUMNS, "custody_record_ref",
        {**samples.RA1, "address_lines": "Flat 3; Flat 3; 41 Rope Walk"}, ".jsonl",
        "officer_emial", "officer_email", ("body", "person_contact", "address", "lines"),
        ["Flat 3", "Flat 3", "41 Rope Walk"], ""),
    "reception": Case(
        ("adapters.prison", "reception"), "CJIT-NFK", RECEPTION_COLUMNS, "prison_number",
        {**samples.RECEPTION, "substances": "heroin; crack cocaine; Heroin"}, ".csv",
        "case_manager_emial", "case_manager_email", ("body", "substances"),
        ["heroin", "crack_cocaine"],
        "substances: 'heroin' is named 2 times; sent once, as this list is a set"),
    "release": Case(
        ("adapters.prison", "release"), "CARAT-NWI", RELEASE_COLUMNS, "prison_number",
        {**samples.RELEASE, "immediate_risks": "overdose; overdose; withdrawal"}, ".csv",
        "offender_manager_emial", "offender_manager_email", ("body", "immediate_risks"),
        ["overdose", "withdrawal"],
        "immediate_risks: 'overdose' is named 2 times; sent once, as this list is a set"),
}


def write_export(path: Path, case: Case, rows: list[dict[str, str]]) -> Path:
    if case.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return path
    extra = [name for name in rows[0] if name not in {c.name for c in case.columns}]
    return write_csv(path, [c.name for c in case.columns] + extra, rows)


def rows_for(case: Case, tag: str, extra: dict[str, str]) -> list[dict[str, str]]:
    """Two rows: one whose extra cells hold something, one whose extra cells are empty."""
    digits = int(hashlib.sha256(tag.encode()).hexdigest(), 16) % 10**4
    references = {"case_ref": [f"37SF-{tag}-{n}" for n in (1, 2)],
                  "custody_record_ref": [f"IPS-{tag}-{n}" for n in (1, 2)],
                  "prison_number": [f"Z{digits:04d}Z{letter}" for letter in "AB"]}
    first, second = references[case.reference]
    return [{**case.row, case.reference: first, **extra},
            {**case.row, case.reference: second, **dict.fromkeys(extra, "")}]


def stored(gateway: Gateway, message_id: str) -> dict[str, Any]:
    [(document,)] = gateway.query("SELECT document_json FROM messages WHERE message_id = :id",
                                  id=message_id)
    found: dict[str, Any] = json.loads(str(document))
    return found


@pytest.mark.parametrize("name", CASES)
def test_repeats_arrive_as_written_and_a_misspelt_column_is_warned_and_reported(
    gateway: Gateway, tmp_path: Path, name: str
) -> None:
    case = CASES[name]
    tag = name.replace(" ", "-").upper()
    export = write_export(tmp_path / f"export{case.suffix}", case,
                          rows_for(case, tag, {case.misspelt: "someone@example.org"}))

    done = gateway.run(*case.command, str(export), org=case.org)

    assert done.returncode == 0, done.stderr
    assert done.stderr.count(case.misspelt) == 1, done.stderr
    assert (f"{case.misspelt} is not a column this adapter reads (did you mean "
            f"{case.meant}?)") in done.stderr
    assert "--strict refuses" in done.stderr
    report = read_report(tmp_path / "export.report.csv")
    assert [r["result"] for r in report] == ["sent", "sent"]
    lost = (f"{case.misspelt}: is not a column this adapter reads (did you mean "
            f"{case.meant}?); its value was not sent")
    assert report[0]["warnings"] == "; ".join(w for w in (case.list_warning, lost) if w)
    assert report[1]["warnings"] == case.list_warning, "its misspelt cell was empty"
    for line in report:
        document = stored(gateway, line["message_id"])
        value: Any = document
        for key in case.at:
            value = value[key]
        assert value == case.stored
        assert "someone@example.org" not in json.dumps(document)


@pytest.mark.parametrize("name", CASES)
def test_strict_refuses_a_file_with_unknown_columns_before_sending_anything(
    gateway: Gateway, tmp_path: Path, name: str
) -> None:
    case = CASES[name]
    tag = f"STRICT-{name.replace(' ', '-').upper()}"
    export = write_export(tmp_path / f"export{case.suffix}", case, rows_for(
        case, tag, {case.misspelt: "someone@example.org", "judge": "HHJ Moss"}))
    before = gateway.query("SELECT COUNT(*) FROM messages")

    done = gateway.run(*case.command, str(export), "--strict", org=case.org)

    assert done.returncode == 2, done.stderr
    assert "cannot be imported; nothing was sent" in done.stderr
    assert (f"unknown column {case.misspelt} is not a column this adapter reads (did you "
            f"mean {case.meant}?)") in done.stderr
    assert "unknown column judge is not a column this adapter reads" in done.stderr
    assert "Traceback" not in done.stderr
    assert gateway.query("SELECT COUNT(*) FROM messages") == before
    assert not (tmp_path / "export.report.csv").exists()
    assert not (tmp_path / "export.report.csv.journal").exists()


def test_dipgw_strict_refuses_as_the_flag_does(gateway: Gateway, tmp_path: Path) -> None:
    case = CASES["court results"]
    export = write_export(tmp_path / "export.csv", case,
                          rows_for(case, "ENV-STRICT", {case.misspelt: "jo@example.org"}))
    ids = ImportContext(case.org, "", hashlib.sha256(export.read_bytes()).hexdigest())

    done = subprocess.run(
        gateway.command(*case.command, str(export), org=case.org), capture_output=True,
        text=True, timeout=120, env={**adapter_env(), "DIPGW_STRICT": "1"}, check=False)

    assert done.returncode == 2, done.stderr
    assert "unknown column court_contact_emial" in done.stderr
    assert gateway.query("SELECT COUNT(*) FROM messages WHERE message_id IN (:a, :b)",
                         a=ids.message_id(2), b=ids.message_id(3)) == [(0,)]
