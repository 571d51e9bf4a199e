"""The pure parts: cells to typed values, text to rows, rows to envelopes the gateway's
own schemas accept; hypothesis shows none of it raises and every problem is located."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.columns import Column, column_for, pointer_columns
from adapters.court_results.mapping import COLUMNS as COURT_COLUMNS
from adapters.court_results.mapping import OUTCOMES, map_results
from adapters.envelopes import ImportContext
from adapters.fields import Fields
from adapters.police_custody.mapping import COLUMNS as POLICE_COLUMNS
from adapters.police_custody.mapping import map_records
from adapters.prison.mapping import (
    RECEPTION_COLUMNS,
    RELEASE_COLUMNS,
    map_reception,
    map_release,
)
from adapters.records import WHOLE_ROW, Row
from adapters.sources import Format, format_for, parse_csv, parse_jsonl
from gateway.app import SCHEMA_DIR
from gateway.pipeline.validation import SchemaSet
from tests.adapters import samples
from tests.adapters.court_lists import court_list

CTX = ImportContext("CRT-IPS-MC", "2026-05-19T17:00:00+00:00", "ab" * 32)
SCHEMAS = SchemaSet.load(SCHEMA_DIR)
ADAPTERS = [
    (COURT_COLUMNS, map_results),
    (POLICE_COLUMNS, map_records),
    (RECEPTION_COLUMNS, map_reception),
    (RELEASE_COLUMNS, map_release),
]


def row(**cells: str) -> Row:
    return Row(7, cells)


# ---------------------------------------------------------------- cells


@pytest.mark.parametrize(("raw", "expected"), [
    ("2026-05-19", "2026-05-19"), ("19/05/2026", "2026-05-19"), ("1/6/2026", "2026-06-01"),
])
def test_dates_are_read_in_iso_and_uk_forms(raw: str, expected: str) -> None:
    assert Fields(row(d=raw)).date("d") == expected


@pytest.mark.parametrize(
    "raw", ["31/02/2026", "2026-5-19", "19.05.2026", "tomorrow", "\uff11/\uff16/2026"]
)
def test_impossible_or_unknown_dates_are_problems_of_their_cell(raw: str) -> None:
    fields = Fields(row(d=raw))
    assert fields.date("d") is None
    assert [(p.row, p.column) for p in fields.problems] == [(7, "d")]


def test_times_need_an_offset() -> None:
    fields = Fields(row(a="2026-03-14T16:42:00Z", b="2026-06-14 17:42+01:00",
                        c="2026-03-14T16:42:00"))
    assert fields.date_time("a") == "2026-03-14T16:42:00+00:00"
    assert fields.date_time("b") == "2026-06-14T17:42:00+01:00"
    assert fields.date_time("c") is None
    assert "UTC offset" in fields.problems[0].message


def test_vocabulary_booleans_lengths_and_lists() -> None:
    fields = Fields(row(o="Remand in custody", b="Y", n="no", d="18 Months", x="1 year",
                        s="heroin; Crack cocaine ;heroin", t="cjit-sfk, PRB-EOE"))
    assert fields.choice("o", OUTCOMES) == "remand_in_custody"
    assert (fields.boolean("b"), fields.boolean("n")) == (True, False)
    assert fields.duration("d") == {"value": 18, "unit": "months"}
    assert fields.duration("x") == {"value": 1, "unit": "years"}
    assert fields.items("s", ("heroin", "crack_cocaine")) == ["heroin", "crack_cocaine",
                                                              "heroin"]
    assert fields.codes("t") == ["CJIT-SFK", "PRB-EOE"]
    assert fields.problems == []


def test_a_required_empty_cell_is_a_problem_and_an_optional_one_is_absent() -> None:
    fields = Fields(row(a="", b="  "))
    assert fields.text("a") is None
    assert fields.text("missing", required=True) is None
    assert [p.column for p in fields.problems] == ["missing"]


@settings(max_examples=300)
@given(st.text(max_size=60))
def test_no_cell_reader_raises_and_every_problem_names_row_and_column(raw: str) -> None:
    fields = Fields(row(c=raw))
    fields.text("c")
    fields.choice("c", OUTCOMES)
    fields.boolean("c")
    fields.date("c")
    fields.date_time("c")
    fields.duration("c")
    fields.number("c")
    fields.items("c", OUTCOMES)
    fields.item_set("c", OUTCOMES)
    fields.codes("c")
    assert all((p.row, p.column) == (7, "c") and p.message
               for p in fields.problems + fields.warnings)


# ---------------------------------------------------------------- text to rows


def test_csv_rows_are_numbered_as_a_spreadsheet_shows_them() -> None:
    source = parse_csv("\ufeffCase Ref,Outcome\nA1, fine \n\nA2,bail,extra\n")
    assert source.columns == ("case_ref", "outcome")
    assert [(r.number, dict(r.cells)) for r in source.rows[:1]] == [
        (2, {"case_ref": "A1", "outcome": "fine"})]
    assert source.rows[1].number == 4
    assert source.rows[1].problems[0].column == WHOLE_ROW


@pytest.mark.parametrize("text", ["", "a,,b\n1,2,3\n", "a,a\n1,2\n"])
def test_unusable_csv_headers_are_file_problems(text: str) -> None:
    source = parse_csv(text)
    assert source.problems and not source.rows
    assert all(p.row == 1 for p in source.problems)


def test_json_lines_take_scalars_and_refuse_the_rest_per_line() -> None:
    source = parse_jsonl('{"Record Type": "RA1", "requirement_made": true, "n": 3}\n'
                         '[1]\n{"a": {"b": 1}}\nnot json\n')
    first, array, nested, broken = source.rows
    assert dict(first.cells) == {"record_type": "RA1", "requirement_made": "true", "n": "3"}
    assert [p.column for p in array.problems] == [WHOLE_ROW]
    assert [p.column for p in nested.problems] == ["a"]
    assert broken.number == 4 and broken.problems


def test_format_follows_the_extension() -> None:
    assert format_for("x.CSV") is Format.CSV
    assert format_for("x.ndjson") is Format.JSONL
    assert format_for("x.txt") is None


@settings(max_examples=300)
@given(st.text(max_size=300))
def test_parsers_never_raise_and_locate_every_problem(text: str) -> None:
    for source in (parse_csv(text), parse_jsonl(text)):
        for problem in [*source.problems, *(p for r in source.rows for p in r.problems)]:
            assert problem.row >= 1 and problem.column and problem.message


# ---------------------------------------------------------------- rows to envelopes


# Ids from the sample's name only: a function's repr holds its address, which differs
# between the processes pytest-xdist collects in (they must collect identical ids).
@pytest.mark.parametrize(
    ("name", "mapper", "cells"), samples.VALID, ids=[name for name, _, _ in samples.VALID])
def test_valid_rows_become_envelopes_the_gateway_schemas_accept(
    name: str, mapper: Any, cells: dict[str, str]
) -> None:
    [mapped] = mapper([Row(2, cells)], CTX)
    assert mapped.problems == (), name
    assert mapped.envelope is not None
    SCHEMAS.check(json.loads(json.dumps(mapped.envelope)))
    assert "to" not in mapped.envelope or cells.get("to")


def test_message_ids_depend_on_sender_file_and_row_only() -> None:
    [a] = map_results(parse_csv(court_list(1, invalid_every=0).text).rows, CTX)
    [b] = map_results(parse_csv(court_list(1, invalid_every=0).text).rows, CTX)
    assert a.envelope == b.envelope
    other = ImportContext(CTX.org, CTX.sent_at, "cd" * 32)
    assert other.message_id(2) != CTX.message_id(2) != CTX.message_id(3)


def test_an_ra2_finds_its_ra1_in_the_same_file() -> None:
    ra1, ra2 = map_records([Row(2, samples.RA1), Row(3, samples.RA2_SAME_FILE)], CTX)
    assert ra2.envelope is not None and ra1.envelope is not None
    assert ra2.envelope["body"]["ra1_message_id"] == ra1.envelope["message_id"]
    [alone] = map_records([Row(3, samples.RA2_SAME_FILE)], CTX)
    assert [p.column for p in alone.problems] == ["ra1_message_id"]


def test_gateway_pointers_are_shown_against_columns() -> None:
    pointers = pointer_columns(COURT_COLUMNS)
    assert column_for(pointers, "/body/sentence_length") == "sentence_length"
    assert column_for(pointers, "/body/establishment") == "prison_code"
    assert column_for(pointers, "/body/establishment/name") == "establishment_name"
    assert column_for(pointers, "/body/court_contact/phone") == "court_contact_phone"
    assert column_for(pointers, "/body/judge") == "/body/judge"


def test_vocabularies_match_the_schemas() -> None:
    schema = json.loads((SCHEMA_DIR / "court_outcome.schema.json").read_text())
    assert tuple(schema["properties"]["outcome"]["enum"]) == OUTCOMES


@pytest.mark.parametrize(("columns", "mapper"), ADAPTERS)
def test_every_column_is_documented_in_the_module_and_the_readme(
    columns: tuple[Column, ...], mapper: Any
) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    docstring = sys.modules[mapper.__module__].__doc__ or ""
    for column in columns:
        assert f"``{column.name}``" in docstring or f"``_{column.name.split('_')[-1]}``" \
            in docstring, column.name
        assert f"`{column.name}`" in readme, column.name


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mapping_never_raises_and_every_problem_names_its_row_and_a_column(
    data: st.DataObject,
) -> None:
    columns, mapper = data.draw(st.sampled_from(ADAPTERS))
    names = [c.name for c in columns]
    cells = data.draw(st.dictionaries(st.sampled_from(names), st.text(max_size=30)))
    number = data.draw(st.integers(min_value=2, max_value=10**6))

    [mapped] = mapper([Row(number, cells)], CTX)

    assert (mapped.envelope is None) == bool(mapped.problems)
    for problem in mapped.problems:
        assert problem.row == number
        assert problem.column in names, problem
        assert problem.message
