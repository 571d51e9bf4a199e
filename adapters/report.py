"""The per-row report: a CSV a person opens to see what happened to every row.

It is rendered from the journal, so it is complete and in row order however many runs
an import took, and is written whole (to a temporary file, then renamed) so a reader
never sees half of it.

``warnings`` says what of a row was not sent as written (a repeat in a list that is a
set, a cell in a column the adapter does not read), whatever its result: a row can be
``sent`` and still have lost a cell. The warnings are worked out from the file itself, so
a resumed import reports them as the first run would.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from adapters.records import Outcome, Problem

HEADER = ("row", "{reference}", "result", "message_id", "reason", "warnings")


def render(
    outcomes: Iterable[Outcome], reference_header: str,
    warnings: Mapping[int, Sequence[Problem]],
) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(h.format(reference=reference_header) for h in HEADER)
    for o in sorted(outcomes, key=lambda o: o.row):
        noted = "; ".join(str(w) for w in warnings.get(o.row, ()))
        writer.writerow((o.row, o.reference, o.result.value, o.message_id, o.reason, noted))
    return buffer.getvalue()


def write(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
