"""The police custody and prison adapters end to end against a real gateway process, and
the plain-sentence errors every adapter gives instead of a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.police_custody.mapping import COLUMNS as POLICE_COLUMNS
from adapters.prison.mapping import RECEPTION_COLUMNS, RELEASE_COLUMNS
from tests.adapters import samples
from tests.adapters.conftest import Gateway, read_report, wait_until, write_csv
from tests.adapters.court_lists import court_list

POLICE = "POL-SFK-IPS"


def delivered_to(gateway: Gateway, message_id: str) -> list[str]:
    return [str(r) for (r,) in gateway.query(
        "SELECT recipient FROM inbox WHERE message_id = :id", id=message_id)]


def wait_delivered(gateway: Gateway, message_id: str) -> list[str]:
    wait_until(lambda: bool(delivered_to(gateway, message_id)), timeout_s=30)
    return delivered_to(gateway, message_id)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_custody_records_become_ra1_and_ra2_messages(
    gateway: Gateway, tmp_path: Path, suffix: str
) -> None:
    tag = suffix.strip(".").upper()
    ra1 = {**samples.RA1, "custody_record_ref": f"IPS-{tag}-1"}
    ra2 = {**samples.RA2_SAME_FILE, "custody_record_ref": f"ips-{tag}-1"}
    broken = {**samples.RA1, "custody_record_ref": f"IPS-{tag}-2", "test_result": "heroin",
              "arrested_at": "14/03/2026 16:42"}
    records = [ra1, ra2, broken]
    export = tmp_path / f"custody{suffix}"
    if suffix == ".csv":
        write_csv(export, [c.name for c in POLICE_COLUMNS], records)
    else:
        export.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    first = 2 if suffix == ".csv" else 1  # a CSV's header is row 1

    done = gateway.run("adapters.police_custody", str(export), org=POLICE)

    assert done.returncode == 1, done.stderr
    report = read_report(tmp_path / "custody.report.csv")
    assert [(int(r["row"]), r["custody_record_ref"], r["result"]) for r in report] == [
        (first, f"IPS-{tag}-1", "sent"), (first + 1, f"ips-{tag}-1", "sent"),
        (first + 2, f"IPS-{tag}-2", "invalid")]
    assert "arrested_at:" in report[2]["reason"] and "test_result:" in report[2]["reason"]
    assert wait_delivered(gateway, report[0]["message_id"]) == ["CJIT-SFK"]
    assert wait_delivered(gateway, report[1]["message_id"]) == ["CJIT-NFK"]
    [(document,)] = gateway.query("SELECT document_json FROM messages WHERE message_id = :id",
                                  id=report[1]["message_id"])
    assert json.loads(str(document))["body"]["ra1_message_id"] == report[0]["message_id"]


def test_reception_and_release_lists_become_carat_referrals(
    gateway: Gateway, tmp_path: Path
) -> None:
    no_consent = {**samples.RECEPTION, "prison_number": "B1234CD", "consent_obtained": "no",
                  "consent_written": "no", "consent_obtained_at": ""}
    reception = write_csv(tmp_path / "reception.csv", [c.name for c in RECEPTION_COLUMNS],
                          [samples.RECEPTION, no_consent])
    release = write_csv(tmp_path / "release.csv", [c.name for c in RELEASE_COLUMNS],
                        [samples.RELEASE, {**samples.RELEASE, "release_date": "soon"}])

    into = gateway.run("adapters.prison", "reception", str(reception), org="CJIT-NFK")
    out = gateway.run("adapters.prison", "release", str(release), org="CARAT-NWI")

    assert (into.returncode, out.returncode) == (1, 1), (into.stderr, out.stderr)
    received = read_report(tmp_path / "reception.report.csv")
    assert [r["result"] for r in received] == ["sent", "refused"]
    assert "consent" in received[1]["reason"].lower()
    assert "carat-referral-into-custody" in received[1]["reason"]
    assert wait_delivered(gateway, received[0]["message_id"]) == ["CARAT-NWI"]
    released = read_report(tmp_path / "release.report.csv")
    assert [r["result"] for r in released] == ["sent", "invalid"]
    assert released[1]["reason"].startswith("release_date:")
    assert wait_delivered(gateway, released[0]["message_id"]) == ["CJIT-NFK"]


def test_a_list_sent_by_the_wrong_kind_of_organisation_is_refused_before_any_row(
    gateway: Gateway, tmp_path: Path
) -> None:
    reception = write_csv(tmp_path / "reception.csv", [c.name for c in RECEPTION_COLUMNS],
                          [samples.RECEPTION])

    done = gateway.run("adapters.prison", "reception", str(reception), org="CARAT-NWI")

    assert done.returncode == 4
    assert "sent by a cjit organisation; CARAT-NWI is a carat" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("case", "code", "message"), [
    ("missing file", 2, "there is no file"),
    ("not a key", 2, "does not hold a JSON Web Key"),
    ("someone else's key", 4, "did not accept CRT-IPS-MC's token"),
    ("unreachable", 3, "cannot reach the gateway at http://127.0.0.1:9"),
    ("missing columns", 2, "missing required columns: hearing_date, court_name"),
])
def test_problems_before_sending_are_one_sentence_and_an_exit_code(
    gateway: Gateway, tmp_path: Path, case: str, code: int, message: str
) -> None:
    listing = tmp_path / "results.csv"
    listing.write_text(court_list(3, invalid_every=0).text, encoding="utf-8")
    bad_key = tmp_path / "key.jwk.json"
    bad_key.write_text("not a key", encoding="utf-8")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("case_ref,when\nX1,today\n", encoding="utf-8")
    file, key_file, url = {
        "missing file": (tmp_path / "none.csv", None, None),
        "not a key": (listing, bad_key, None),
        "someone else's key": (listing, gateway.key("CRT-NOR-CC"), None),
        "unreachable": (listing, None, "http://127.0.0.1:9"),
        "missing columns": (wrong, None, None),
    }[case]

    done = gateway.run("adapters.court_results", str(file), org="CRT-IPS-MC", url=url,
                       key_file=key_file)

    assert done.returncode == code, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_a_signed_import_reaches_the_recipient_verifiable_with_the_senders_key(
    gateway: Gateway, tmp_path: Path
) -> None:
    """``--sign``: each message goes as the police system's SD-JWT; what the CJIT is
    given verifies with the police key alone."""
    from gateway import keys
    from gateway.sdjwt.envelope import check_received, for_recipient

    export = tmp_path / "signed.csv"
    write_csv(export, [c.name for c in POLICE_COLUMNS],
              [{**samples.RA1, "custody_record_ref": "IPS-SIGNED-1"}])
    done = gateway.run("adapters.police_custody", str(export), "--sign", org=POLICE)
    assert done.returncode == 0, done.stderr
    [row] = read_report(tmp_path / "signed.report.csv")
    wait_delivered(gateway, row["message_id"])
    [(signature, payload, decision)] = gateway.query(
        "SELECT m.sender_signature, d.payload_json, d.decision_json FROM messages m "
        "JOIN deliveries d ON d.message_id = m.message_id WHERE m.message_id = :id",
        id=row["message_id"])
    assert signature is not None
    presented = for_recipient(str(signature), tuple(json.loads(str(decision))["redactions"]))
    public = keys.public_jwk(keys.read_private(gateway.key(POLICE)))
    check_received(json.loads(str(payload)), presented, public)
