"""Progress on stderr and the resume journal, on their own."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from adapters.errors import JournalMismatch
from adapters.journal import Journal
from adapters.progress import Progress, render_bar
from adapters.records import Outcome, Result


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_without_a_terminal_a_plain_line_every_few_seconds() -> None:
    stream, clock = io.StringIO(), Clock()
    progress = Progress("court results", 1_000, stream, line_interval_s=5, clock=clock)
    for _ in range(9):
        clock.now += 1
        progress.advance(100)
    progress.finish()

    lines = stream.getvalue().splitlines()
    assert lines == [
        "court results: 500/1,000  50%  100 rows/s  ETA 5s",
        "court results: 900/1,000  90%  100 rows/s  ETA 1s",
    ]
    assert "\r" not in stream.getvalue()


def test_a_resumed_import_counts_its_rate_from_this_run_only() -> None:
    stream, clock = io.StringIO(), Clock()
    progress = Progress("x", 1_000, stream, done=600, clock=clock)
    clock.now = 2
    progress.advance(400)
    progress.finish()
    assert stream.getvalue().splitlines()[-1] == "x: 1,000/1,000 100%  200 rows/s"


def test_the_bar() -> None:
    assert render_bar("r", 250, 1_000, 50.0) == (
        "r [#######-----------------------] 250/1,000  25%  50 rows/s  ETA 15s")


def test_a_journal_keeps_sent_at_and_outcomes_and_refuses_another_file(tmp_path: Path) -> None:
    path = tmp_path / "r.journal"
    journal = Journal.open(path, adapter="a", file_sha256="1" * 64, file_name="f.csv",
                           org="CRT-IPS-MC", now="2026-05-19T17:00:00+00:00")
    journal.record([Outcome(2, "X", Result.SENT, "id-2")])
    journal.close()

    again = Journal.open(path, adapter="a", file_sha256="1" * 64, file_name="f.csv",
                         org="CRT-IPS-MC", now="2026-05-20T09:00:00+00:00")
    assert again.resumed and again.sent_at == "2026-05-19T17:00:00+00:00"
    assert again.outcomes() == {2: Outcome(2, "X", Result.SENT, "id-2")}
    again.close()
    with pytest.raises(JournalMismatch):
        Journal.open(path, adapter="a", file_sha256="2" * 64, file_name="f.csv",
                     org="CRT-IPS-MC", now="2026-05-20T09:00:00+00:00")
    with pytest.raises(JournalMismatch):
        Journal.open(path, adapter="a", file_sha256="1" * 64, file_name="f.csv",
                     org="CRT-NOR-CC", now="2026-05-20T09:00:00+00:00")
