"""The pure side of issue 11: a ``;``-separated list carries its repeats unless it is a
set, and then the repeat is a warning, not a silent drop; a column the adapter does not
read is found, named with the nearest known name, and noted on each row that loses a cell."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters import config, report
from adapters.columns import Column, UnknownColumn, unknown_columns, unread_cells
from adapters.court_results.mapping import COLUMNS as COURT_COLUMNS
from adapters.court_results.mapping import map_results
from adapters.envelopes import ImportContext
from adapters.errors import ConfigError
from adapters.fields import Fields
from adapters.police_custody.mapping import COLUMNS as POLICE_COLUMNS
from adapters.police_custody.mapping import map_records
from adapters.prison.mapping import (
    RECEPTION_COLUMNS,
    RELEASE_COLUMNS,
    SUBSTANCES,
    map_reception,
    map_release,
)
from adapters.records import Mapped, Outcome, Problem, Result, Row
from adapters.sources import parse_jsonl
from tests.adapters import samples

CTX = ImportContext("CRT-IPS-MC", "2026-05-19T17:00:00+00:00", "ab" * 32)
ITEM = st.text(min_size=1, max_size=30).map(str.strip).filter(lambda s: s and ";" not in s)


# ---------------------------------------------------------------- lists


def test_two_counts_of_one_offence_are_two_items() -> None:
    fields = Fields(Row(5, {"offences": "Theft from a shop; Theft from a shop"}))
    assert fields.items("offences") == ["Theft from a shop", "Theft from a shop"]
    assert (fields.problems, fields.warnings) == ([], [])


def test_a_repeat_in_a_set_is_sent_once_and_warned_about() -> None:
    fields = Fields(Row(5, {"s": "heroin; Crack cocaine; heroin; heroin",
                            "t": "cjit-sfk CJIT-SFK"}))
    assert fields.item_set("s", SUBSTANCES) == ["heroin", "crack_cocaine"]
    assert fields.codes("t") == ["CJIT-SFK"]
    assert fields.problems == []
    assert [str(w) for w in fields.warnings] == [
        "s: 'heroin' is named 3 times; sent once, as this list is a set",
        "t: 'CJIT-SFK' is named 2 times; sent once, as this list is a set",
    ]
    assert {w.row for w in fields.warnings} == {5}


@given(st.lists(ITEM, min_size=1, max_size=20))
def test_any_list_of_items_round_trips_through_join_and_split(items: list[str]) -> None:
    fields = Fields(Row(2, {"c": "; ".join(items)}))
    assert fields.items("c") == items
    assert (fields.problems, fields.warnings) == ([], [])


@given(st.lists(ITEM, min_size=1, max_size=20))
def test_any_list_round_trips_through_a_json_lines_export(items: list[str]) -> None:
    source = parse_jsonl(json.dumps({"offences": ";".join(items)}) + "\n")
    assert Fields(source.rows[0]).items("offences") == items


@given(st.lists(st.sampled_from(SUBSTANCES), min_size=1, max_size=30))
def test_a_set_keeps_each_item_once_in_order_and_warns_once_per_repeated_item(
    items: list[str],
) -> None:
    fields = Fields(Row(2, {"s": ";".join(items)}))
    distinct = list(dict.fromkeys(items))
    assert fields.item_set("s", SUBSTANCES) == distinct
    repeated = [i for i in distinct if items.count(i) > 1]
    assert [w.message.split(" ")[0] for w in fields.warnings] == [repr(i) for i in repeated]


def test_mapping_keeps_repeats_in_messages_and_passes_set_warnings_on() -> None:
    [court] = map_results([Row(2, {**samples.COURT_DRR,
                                   "offences": "Theft from a shop;Theft from a shop"})], CTX)
    [ra1] = map_records([Row(2, {**samples.RA1, "address_lines": "Flat 3; Flat 3; 1 Quay"})],
                        CTX)
    [reception] = map_reception([Row(2, {**samples.RECEPTION,
                                         "immediate_risks": "overdose; Overdose"})], CTX)
    assert court.envelope and court.envelope["body"]["offences"] == ["Theft from a shop"] * 2
    assert ra1.envelope
    assert ra1.envelope["body"]["person_contact"]["address"]["lines"] == [
        "Flat 3", "Flat 3", "1 Quay"]
    assert (court.warnings, ra1.warnings) == ((), ())
    assert reception.envelope and reception.envelope["body"]["immediate_risks"] == ["overdose"]
    assert [w.column for w in reception.warnings] == ["immediate_risks"]


# ---------------------------------------------------------------- columns


def test_unknown_columns_are_named_with_the_nearest_known_name() -> None:
    found = ["case_ref", "court_contact_emial", "judge", "to", "Offenses".lower()]
    assert unknown_columns(found, COURT_COLUMNS) == (
        UnknownColumn("court_contact_emial", "court_contact_email"),
        UnknownColumn("judge", None),
        UnknownColumn("offenses", "offences"),
    )
    assert str(unknown_columns(["judge"], COURT_COLUMNS)[0]) == (
        "judge is not a column this adapter reads (see --help)")


@pytest.mark.parametrize("columns", [COURT_COLUMNS, POLICE_COLUMNS, RECEPTION_COLUMNS,
                                     RELEASE_COLUMNS])
def test_every_declared_column_is_known_optional_ones_included(
    columns: tuple[Column, ...],
) -> None:
    assert unknown_columns([c.name for c in columns], columns) == ()


def test_only_rows_whose_unknown_cell_holds_something_lose_a_cell() -> None:
    unknown = unknown_columns(["court_contact_emial", "judge"], COURT_COLUMNS)
    lost = unread_cells(Row(4, {"court_contact_emial": "jo@example.org", "judge": ""}), unknown)
    assert [str(p) for p in lost] == [
        "court_contact_emial: is not a column this adapter reads (did you mean "
        "court_contact_email?); its value was not sent"]
    assert unread_cells(Row(5, {"court_contact_emial": ""}), unknown) == ()


class Recording(dict[str, str]):
    """Cells that remember which columns the mapping asked for."""

    read: set[str]

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)


@pytest.mark.parametrize(("columns", "mapper", "rows"), [
    (COURT_COLUMNS, map_results, [samples.COURT_DRR, samples.COURT_CUSTODY]),
    (POLICE_COLUMNS, map_records, [samples.RA1, samples.RA1_INSPECTOR, samples.RA2,
                                   {**samples.RA1, "requirement_made": "no"}]),
    (RECEPTION_COLUMNS, map_reception, [samples.RECEPTION]),
    (RELEASE_COLUMNS, map_release, [samples.RELEASE]),
])
def test_a_mapping_reads_exactly_the_columns_its_table_declares(
    columns: tuple[Column, ...],
    mapper: Callable[[Sequence[Row], ImportContext], list[Mapped]],
    rows: list[dict[str, str]],
) -> None:
    """So "known" means "read": a column outside the table would be warned about, and a
    declared column nothing reads would be a silent drop the check cannot see."""
    read: set[str] = set()
    for number, cells in enumerate(rows, start=2):
        recording = Recording(cells)
        recording.read = read
        mapper([Row(number, recording)], CTX)
    assert read == {c.name for c in columns}


# ---------------------------------------------------------------- strict and report


@pytest.mark.parametrize(("flag", "env", "expected"), [
    (True, {}, True), (False, {}, False), (False, {"DIPGW_STRICT": "1"}, True),
    (False, {"DIPGW_STRICT": " Yes "}, True), (False, {"DIPGW_STRICT": "0"}, False),
    (True, {"DIPGW_STRICT": "0"}, True),
])
def test_strict_comes_from_the_flag_or_dipgw_strict(
    flag: bool, env: dict[str, str], expected: bool
) -> None:
    assert config.strict(flag, env) is expected


def test_an_unclear_dipgw_strict_is_an_error_not_a_guess() -> None:
    with pytest.raises(ConfigError, match="DIPGW_STRICT='maybe'"):
        config.strict(False, {"DIPGW_STRICT": "maybe"})


def test_the_report_shows_warnings_beside_any_result() -> None:
    text = report.render(
        [Outcome(3, "B", Result.INVALID, reason="x: bad"), Outcome(2, "A", Result.SENT, "m1")],
        "case_ref",
        {2: (Problem(2, "judge", "is not a column this adapter reads (see --help); its value "
                                 "was not sent"),
             Problem(2, "to", "'CJIT-SFK' is named 2 times; sent once, as this list is a set"))},
    )
    assert list(csv.reader(io.StringIO(text))) == [
        ["row", "case_ref", "result", "message_id", "reason", "warnings"],
        ["2", "A", "sent", "m1", "", "judge: is not a column this adapter reads (see --help); "
         "its value was not sent; to: 'CJIT-SFK' is named 2 times; sent once, as this list "
         "is a set"],
        ["3", "B", "invalid", "", "x: bad", ""],
    ]
