"""Reading an export's text into rows: CSV or JSON lines. Pure: text in, rows out.

Nothing here raises on any text. A problem with the file as a whole (an unreadable CSV,
a blank or repeated header) is returned in ``Source.problems`` and stops the import
before anything is sent; a problem with one record (a line that is not a JSON object, a
row with more cells than the header) makes only that row invalid.

Column names are normalised (case, spaces and hyphens ignored: ``Case Ref`` is
``case_ref``) and cells are trimmed, since exports from different systems differ there.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from adapters.records import WHOLE_ROW, Problem, Row


class Format(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"


def format_for(file_name: str) -> Format | None:
    """The format a file's extension names (``.csv``, ``.jsonl``, ``.ndjson``), if any."""
    suffix = file_name.lower().rsplit(".", 1)[-1] if "." in file_name else ""
    return {"csv": Format.CSV, "jsonl": Format.JSONL, "ndjson": Format.JSONL}.get(suffix)


@dataclass(frozen=True, slots=True)
class Source:
    columns: tuple[str, ...]
    rows: tuple[Row, ...]
    problems: tuple[Problem, ...] = field(default=())


def parse(text: str, fmt: Format) -> Source:
    return parse_csv(text) if fmt is Format.CSV else parse_jsonl(text)


_SEPARATORS = re.compile(r"[\s\-]+")


def column_name(raw: str) -> str:
    return _SEPARATORS.sub("_", raw.strip().lstrip("\ufeff").strip()).lower()


def parse_csv(text: str) -> Source:
    records = _csv_records(text)
    try:
        header_line, header = next(records)
    except StopIteration:
        return Source((), (), (Problem(1, WHOLE_ROW, "the file is empty: no header row"),))
    except csv.Error as exc:
        return Source((), (), (Problem(1, WHOLE_ROW, f"not readable as CSV: {exc}"),))
    columns = tuple(column_name(name) for name in header)
    problems = _header_problems(header_line, columns)
    if problems:
        return Source(columns, (), problems)
    rows: list[Row] = []
    try:
        for number, cells in records:
            if len(cells) > len(columns) and any(c.strip() for c in cells[len(columns):]):
                rows.append(Row(number, {}, (Problem(
                    number, WHOLE_ROW,
                    f"has {len(cells)} cells but the header names {len(columns)} columns",
                ),)))
                continue
            rows.append(Row(number, {
                name: value.strip() for name, value in zip(columns, cells, strict=False)
            }))
    except csv.Error as exc:
        # The rest of the file cannot be trusted to split into the same records.
        next_row = rows[-1].number + 1 if rows else header_line + 1
        return Source(columns, (), (Problem(next_row, WHOLE_ROW, f"not readable as CSV: {exc}"),))
    return Source(columns, tuple(rows))


def _csv_records(text: str) -> Iterator[tuple[int, list[str]]]:
    """Non-blank records, numbered as a spreadsheet numbers rows."""
    reader = csv.reader(io.StringIO(text.replace("\x00", "")))
    for number, cells in enumerate(reader, start=1):
        if any(cell.strip() for cell in cells):
            yield number, cells


def _header_problems(line: int, columns: tuple[str, ...]) -> tuple[Problem, ...]:
    problems = [Problem(line, WHOLE_ROW, f"column {i + 1} of the header has no name")
                for i, name in enumerate(columns) if not name]
    seen: set[str] = set()
    for name in columns:
        if name and name in seen:
            problems.append(Problem(line, name, "the header names this column twice"))
        seen.add(name)
    return tuple(problems)


def parse_jsonl(text: str) -> Source:
    rows: list[Row] = []
    columns: dict[str, None] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        row = _json_row(number, line)
        columns.update(dict.fromkeys(row.cells))
        rows.append(row)
    if not rows:
        return Source((), (), (Problem(1, WHOLE_ROW, "the file holds no records"),))
    return Source(tuple(columns), tuple(rows))


def _json_row(number: int, line: str) -> Row:
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        return Row(number, {}, (Problem(number, WHOLE_ROW, "not a JSON object on one line"),))
    if not isinstance(value, dict):
        return Row(number, {}, (Problem(number, WHOLE_ROW, "not a JSON object"),))
    cells: dict[str, str] = {}
    problems: list[Problem] = []
    for key, item in value.items():
        name = column_name(key)
        text = _cell(item)
        if text is None:
            problems.append(Problem(number, name or WHOLE_ROW,
                                    "must be text, a number, true, false or null"))
        else:
            cells[name] = text
    return Row(number, cells, tuple(problems))


def _cell(value: Any) -> str | None:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float):
        return str(value)
    return None
