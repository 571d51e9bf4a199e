"""Building envelopes with identities that make a re-sent row byte-identical. Pure.

A row's ``message_id`` is a UUIDv5 of the sender, the input file's SHA-256 and the row
number, and ``sent_at`` is fixed when an import starts (kept in the journal). Sending a
row again after an interruption therefore sends the very same document, which the
gateway answers with its original receipt (``Idempotent-Replayed``) and never delivers
twice. A different file, even a corrected copy, is a different import with new ids.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adapters.fields import Fields
from adapters.records import Mapped, Row

ROW_NAMESPACE = uuid.UUID("6f3c1d0e-5b1a-4f7e-9a43-2d8c0b6e9f21")
"""Fixed for all time: changing it would give every row of a resumed import a new id."""


@dataclass(frozen=True, slots=True)
class ImportContext:
    """What every envelope of one import shares."""

    org: str
    sent_at: str
    file_sha256: str

    def message_id(self, row_number: int) -> str:
        return str(uuid.uuid5(ROW_NAMESPACE, f"{self.org}/{self.file_sha256}/{row_number}"))


def envelope(
    ctx: ImportContext,
    row: Row,
    message_type: str,
    *,
    route: str | None,
    subject: Mapping[str, Any],
    body: Mapping[str, Any],
    to: Sequence[str] | None = None,
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "message_id": ctx.message_id(row.number),
        "type": message_type,
        "schema_version": "1",
        "sent_at": ctx.sent_at,
        "from": ctx.org,
        "route": route,
        "subject": dict(subject),
        "body": dict(body),
    }
    # Left out unless the export names recipients: the gateway then resolves them.
    if to:
        document["to"] = list(to)
    return document


RowMapper = Callable[[Fields, ImportContext], dict[str, Any]]
"""Reads one row into an envelope, noting every problem in ``Fields.problems``."""


def map_rows(
    rows: Sequence[Row], ctx: ImportContext, read: RowMapper, reference_column: str
) -> list[Mapped]:
    """Each row as an envelope, or as every problem found in it; never raises.

    ``reference_column`` names the row in the report (e.g. the case reference).
    """
    mapped: list[Mapped] = []
    for row in rows:
        reference = row.cells.get(reference_column, "")
        if row.problems:
            mapped.append(Mapped.invalid(row, reference, row.problems))
            continue
        fields = Fields(row)
        document = read(fields, ctx)
        warnings = tuple(fields.warnings)
        if fields.problems:
            mapped.append(Mapped.invalid(row, reference, tuple(fields.problems), warnings))
        else:
            mapped.append(Mapped(row.number, reference, document, warnings=warnings))
    return mapped
