"""A 10,000-row court result list through ``python -m adapters.court_results`` against a
real gateway process: every valid row one message and one delivery, every invalid row
reported with its row and reason, and a SIGKILL mid-import followed by a resume sends
nothing twice."""

from __future__ import annotations

import hashlib
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from adapters.envelopes import ImportContext
from tests.adapters.conftest import Gateway, adapter_env, read_report, wait_until
from tests.adapters.court_lists import FOUND_BY_GATEWAY, court_list

COURT = "CRT-IPS-MC"
MODULE = "adapters.court_results"
ROWS = 10_000
BATCH, CONCURRENCY = 100, 2

EXPECTED_COLUMN = {
    "impossible date": "hearing_date",
    "unknown outcome": "outcome",
    "missing name": "family_name",
    "custody without length": "sentence_length",
    "nobody to address": "to",
}


def journal_outcomes(journal: Path) -> dict[int, tuple[str, str]]:
    with sqlite3.connect(journal) as conn:
        return {row: (result, mid) for row, result, mid in
                conn.execute("SELECT row, result, message_id FROM outcomes")}


def recorded(journal: Path) -> int:
    """Rows the journal holds so far; 0 until the adapter has created it and its table
    (the file appears a moment before the table does)."""
    try:
        return len(journal_outcomes(journal)) if journal.exists() else 0
    except sqlite3.OperationalError:
        return 0


@pytest.mark.timeout(1800)
def test_ten_thousand_rows_interrupted_by_sigkill_and_resumed_send_nothing_twice(
    gateway: Gateway, tmp_path: Path
) -> None:
    listing = court_list(ROWS)
    results = tmp_path / "results-2026-05-19.csv"
    results.write_text(listing.text, encoding="utf-8")
    report = tmp_path / "results-2026-05-19.report.csv"
    journal = Path(f"{report}.journal")
    args = [str(results), "--batch-size", str(BATCH), "--concurrency", str(CONCURRENCY)]

    # First run, killed for real once a good part of the list is recorded.
    first = subprocess.Popen(gateway.command(MODULE, *args, org=COURT), env=adapter_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # On PostgreSQL delivery is slower than intake, so backpressure paces the import
    # (503 + Retry-After, which the client waits out): allow it the time.
    wait_until(lambda: recorded(journal) >= 3_000, timeout_s=600)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    time.sleep(0.5)  # let the gateway finish answering the batches in flight
    before = journal_outcomes(journal)
    assert 3_000 <= len(before) < ROWS, "the import should have been cut off mid-way"
    assert not report.exists(), "SIGKILL leaves no chance to write the report"
    log_offset = gateway.log.stat().st_size

    resumed = gateway.run(MODULE, *args, org=COURT)

    assert resumed.returncode == 1, resumed.stderr  # invalid rows need attention
    assert "Traceback" not in resumed.stderr
    rows = {int(r["row"]): r for r in read_report(report)}
    assert sorted(rows) == list(range(2, ROWS + 2))

    # Every valid row: exactly one message, with the id the report names; no other row
    # of the file left a message.
    valid = {n: rows[n] for n in listing.valid_rows}
    assert {r["result"] for r in valid.values()} <= {"sent", "replayed"}
    ids = ImportContext(COURT, "", hashlib.sha256(listing.text.encode()).hexdigest())
    file_ids = {ids.message_id(n) for n in rows}
    stored = {str(mid) for (mid,) in gateway.query("SELECT message_id FROM messages")}
    assert stored & file_ids == {r["message_id"] for r in valid.values()}
    assert {ids.message_id(n) for n in valid} == {r["message_id"] for r in valid.values()}
    accepted = dict(gateway.query(
        "SELECT message_id, COUNT(*) FROM status_events WHERE status = 'accepted' "
        "GROUP BY message_id"))
    assert {accepted[mid] for mid in stored & file_ids} == {1}

    # Every invalid row reported with its row number and the column at fault.
    for number, kind in listing.invalid_rows.items():
        row = rows[number]
        assert row["result"] == "invalid", (number, kind)
        assert row["case_ref"] == f"37SF{number - 2:07d}"
        assert row["reason"].startswith(EXPECTED_COLUMN[kind] + ":"), (kind, row["reason"])
        assert (row["message_id"] == ""), "an invalid row stored nothing"
    assert {listing.invalid_rows[n] for n in listing.invalid_rows} >= FOUND_BY_GATEWAY

    # Nothing the journal had recorded was sent again; only rows in flight were replayed.
    resent = {str(mid) for line in gateway.batch_logs(log_offset)
              for mid in [*line["accepted"], *line["replayed"]]}  # type: ignore[misc]
    recorded_ids = {mid for result, mid in before.values() if mid}
    assert not resent & recorded_ids
    for number, (result, message_id) in before.items():
        assert (rows[number]["result"], rows[number]["message_id"]) == (result, message_id)
    replayed = [n for n, r in valid.items() if r["result"] == "replayed"]
    assert all(n not in before for n in replayed)
    assert len(replayed) <= BATCH * CONCURRENCY

    # One delivery per message, to the recipient the gateway resolved.
    def inbox() -> list[tuple[object, ...]]:
        return [row for row in gateway.query("SELECT message_id, recipient FROM inbox")
                if row[0] in file_ids]

    wait_until(lambda: len(inbox()) >= len(valid), timeout_s=120)
    assert sorted(str(mid) for mid, _ in inbox()) == sorted(r["message_id"] for r in valid.values())

    # A third run finds everything recorded and sends nothing at all.
    offset = gateway.log.stat().st_size
    again = gateway.run(MODULE, *args, org=COURT)
    assert again.returncode == 1
    assert gateway.batch_logs(offset) == []
    assert {int(r["row"]): r for r in read_report(report)} == rows


def test_a_journal_made_for_another_file_is_refused(gateway: Gateway, tmp_path: Path) -> None:
    results = tmp_path / "results.csv"
    results.write_text(court_list(20, invalid_every=0).text, encoding="utf-8")
    assert gateway.run(MODULE, str(results), org=COURT).returncode == 0
    results.write_text(court_list(21, invalid_every=0).text, encoding="utf-8")

    again = gateway.run(MODULE, str(results), org=COURT)

    assert again.returncode == 2
    assert "journal of another import" in again.stderr
    assert "Traceback" not in again.stderr
