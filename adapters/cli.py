"""What every adapter command does around the pure mapping: read the file, check the
columns, open the journal, send through ``adapters.bulk``, write the report.

A column the adapter does not read is warned about once on stderr, before anything is
sent, with the nearest known name, and each row that loses a cell to it says so in the
report; with ``--strict`` / ``DIPGW_STRICT=1`` the file is refused (exit 2) instead.

Errors reach the user as one sentence and an exit code, never a traceback:
0 every row sent (or replayed); 1 some rows invalid, refused or to be sent again (see the
report); 2 a problem with the file, the flags, the key or the journal; 3 the gateway could
not be reached (run again to resume); 4 the gateway refused the import as a whole;
130 interrupted (run again to resume).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
import textwrap
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

from adapters import bulk, config, report
from adapters.columns import Column, UnknownColumn, pointer_columns, unknown_columns, unread_cells
from adapters.envelopes import ImportContext
from adapters.errors import (
    AdapterError,
    ConfigError,
    GatewayUnreachable,
    ImportStopped,
    InputError,
)
from adapters.journal import Journal
from adapters.progress import Progress
from adapters.records import Mapped, Problem, Result, Row
from adapters.sources import Format, Source, format_for, parse
from gateway.client import Credentials, GatewayClient, GatewayProblem

EXIT_OK = 0
EXIT_ROWS_NEED_ATTENTION = 1
EXIT_INTERRUPTED = 130

Mapper = Callable[[Sequence[Row], ImportContext], list[Mapped]]


@dataclass(frozen=True, slots=True)
class Adapter:
    """One kind of export: its columns, its mapping and who may send it."""

    label: str
    columns: tuple[Column, ...]
    reference: str
    map: Mapper
    sender_kind: str
    formats: tuple[Format, ...] = (Format.CSV,)
    pointers: Mapping[str, str] | None = None
    """Message pointer → column, when not simply each column's own pointer."""


def column_help(columns: Sequence[Column]) -> str:
    lines = ["columns (* required; header names ignore case, spaces and hyphens):"]
    for column in columns:
        lines += textwrap.wrap(
            f"{column.name}{' *' if column.required else ''} — {column.meaning}",
            width=88, initial_indent="  ", subsequent_indent="      ",
        )
    return "\n".join(lines)


def paragraph(text: str) -> str:
    """Help text wrapped for a terminal (the epilogs are preformatted, so wrap here)."""
    return textwrap.fill(text, width=88)


EXIT_HELP = paragraph(
    "exit status: 0 all rows sent; 1 some rows invalid, refused or left to resend (see the "
    "report); 2 bad file, flags, key or journal; 3 gateway unreachable; 4 gateway refused "
    "the import; 130 interrupted. After 1 (resend), 3 or 130, run the same command again: "
    "rows already answered are skipped and none is sent twice."
)


def add_import_arguments(parser: argparse.ArgumentParser, adapter: Adapter) -> None:
    parser.add_argument("file", help="the export to import")
    if len(adapter.formats) > 1:
        parser.add_argument(
            "--format", choices=[f.value for f in adapter.formats],
            help="the file's format (default: from its extension: .csv, .jsonl, .ndjson)",
        )
    parser.add_argument("--org", help="sending organisation's directory code (DIPGW_ORG)")
    parser.add_argument(
        "--key-file",
        help="its private signing key, a JWK (DIPGW_KEY_FILE; default: the demo gateway's "
             "development key $DIPGW_DATA_DIR/dev-keys/ORG.jwk.json)")
    parser.add_argument("--url", help=f"the gateway (DIPGW_URL; default {config.DEFAULT_URL})")
    parser.add_argument(
        "--report",
        help="per-row report to write (default: FILE's name with .report.csv); the resume "
             "journal is kept beside it as REPORT.journal")
    defaults = bulk.Limits()
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size,
                        help=f"messages per request, 1-500 (default {defaults.batch_size})")
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency,
                        help=f"requests in flight (default {defaults.concurrency})")
    parser.add_argument(
        "--sign", action="store_true",
        help="sign each message with the key (an SD-JWT, README 'Sender-signed messages') "
             "so every recipient can prove what was sent (DIPGW_SIGN=1); required where "
             "the gateway's directory says the organisation must sign")
    parser.add_argument(
        "--strict", action="store_true",
        help="refuse the file, sending nothing, if it has a column this adapter does not "
             "read (DIPGW_STRICT=1); without it such a column is warned about and its "
             "cells, which reach no message, are noted in the report")
    parser.set_defaults(adapter=adapter)


def run_import(args: argparse.Namespace) -> int:
    adapter: Adapter = args.adapter
    if not 1 <= args.batch_size <= 500 or args.concurrency < 1:
        raise ConfigError("--batch-size must be 1 to 500 and --concurrency at least 1")
    path = Path(args.file)
    strict = config.strict(args.strict)
    signing = config.sign(args.sign)
    data = _read(path)
    source, unknown = _source(path, data, getattr(args, "format", None), adapter, strict)
    if unknown:
        print(f"{adapter.label}: warning: {path.name} has columns this adapter does not "
              "read; their cells will not be sent (the report notes each row that loses "
              "one; --strict refuses such a file):\n"
              + "\n".join(f"  {u}" for u in unknown), file=sys.stderr)
    target = config.resolve(url=args.url, org=args.org, key_file=args.key_file)
    credentials = target.credentials()
    report_path = Path(args.report) if args.report else path.with_name(f"{path.stem}.report.csv")
    file_sha256 = hashlib.sha256(data).hexdigest()
    journal = Journal.open(
        report_path.with_name(report_path.name + ".journal"),
        adapter=adapter.label, file_sha256=file_sha256,
        file_name=path.name, org=target.org,
        now=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    warnings: dict[int, tuple[Problem, ...]] = {}
    try:
        ctx = ImportContext(target.org, journal.sent_at, file_sha256)
        mapped = adapter.map(source.rows, ctx)
        warnings = _warnings(source.rows, mapped, unknown)
        limits = bulk.Limits(batch_size=args.batch_size, concurrency=args.concurrency)
        summary = _run(_send(adapter, target, credentials, mapped, journal, limits,
                             signing=signing))
    finally:
        report.write(report_path, report.render(
            journal.outcomes().values(), adapter.reference, warnings))
        journal.close()
    counts = ", ".join(f"{summary.counts[r]:,} {r.value}" for r in Result)
    print(f"{adapter.label}: {counts}. Report: {report_path}", file=sys.stderr)
    if not summary.complete:
        print(f"{summary.unsent:,} rows met a gateway error and were not recorded; run the "
              "same command again to send them.", file=sys.stderr)
    attention = summary.unsent or summary.counts[Result.INVALID] or summary.counts[Result.REFUSED]
    return EXIT_ROWS_NEED_ATTENTION if attention else EXIT_OK


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"there is no file {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None


def _source(
    path: Path, data: bytes, fmt: str | None, adapter: Adapter, strict: bool
) -> tuple[Source, tuple[UnknownColumn, ...]]:
    """The file's rows and the columns in it the adapter does not read; refused (nothing
    is sent) for a problem with the file as a whole, or, when ``strict``, for any unknown
    column."""
    chosen = Format(fmt) if fmt else format_for(path.name)
    if len(adapter.formats) == 1:
        chosen = adapter.formats[0]
    if chosen is None:
        raise InputError(f"cannot tell the format of {path} from its name; pass --format "
                         + " or ".join(f.value for f in adapter.formats))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text (byte {exc.start:,}); export it as "
                         "UTF-8") from None
    source = parse(text, chosen)
    problems = [f"  row {p.row}, {p}" for p in source.problems]
    missing = [c.name for c in adapter.columns if c.required and c.name not in source.columns]
    if missing and not problems:
        problems.append(f"  missing required columns: {', '.join(missing)} (see --help)")
    unknown = unknown_columns(source.columns, adapter.columns)
    if strict:
        problems += [f"  unknown column {u} (--strict)" for u in unknown]
    if problems:
        raise InputError(f"{path} cannot be imported; nothing was sent:\n" + "\n".join(problems))
    return source, unknown


def _warnings(
    rows: Sequence[Row], mapped: Sequence[Mapped], unknown: Sequence[UnknownColumn]
) -> dict[int, tuple[Problem, ...]]:
    """Each row's warnings for the report: what the mapping noted, then lost cells."""
    return {
        row.number: found
        for row, item in zip(rows, mapped, strict=True)
        if (found := item.warnings + unread_cells(row, unknown))
    }


def _run(coroutine: Coroutine[Any, Any, bulk.Summary]) -> bulk.Summary:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


async def _send(
    adapter: Adapter,
    target: config.Target,
    credentials: Credentials,
    mapped: list[Mapped],
    journal: Journal,
    limits: bulk.Limits,
    *,
    signing: bool,
) -> bulk.Summary:
    async with GatewayClient(target.url, credentials, sign_messages=signing) as client:
        await _check_sender(client, target, adapter)
        recorded = len(journal.outcomes())
        progress = Progress(adapter.label, len(mapped), sys.stderr, done=recorded)
        summary = await bulk.send_all(
            mapped, client, journal, progress,
            adapter.pointers or pointer_columns(adapter.columns), limits,
        )
        progress.finish()
        return summary


async def _check_sender(client: GatewayClient, target: config.Target, adapter: Adapter) -> None:
    """Fail before the first row on a wrong URL, key or organisation."""
    try:
        organisations = await client.directory()
    except GatewayProblem as problem:
        raise ImportStopped(
            f"the gateway at {target.url} did not accept {target.org}'s token signed with "
            f"{target.key_file}: {problem.problem.get('detail', problem)}"
        ) from None
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise GatewayUnreachable(
            f"cannot reach the gateway at {target.url} ({exc or type(exc).__name__}). Is it "
            "running? Set --url or DIPGW_URL if it is elsewhere."
        ) from None
    kind = next((o.get("kind") for o in organisations if o.get("code") == target.org), None)
    if kind != adapter.sender_kind:
        raise ImportStopped(
            f"{adapter.label} are sent by a {adapter.sender_kind} organisation; {target.org} "
            f"is {'a ' + str(kind) if kind else 'not in the directory'}."
        )


def main(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
        return code
    except AdapterError as error:
        print(f"{parser.prog}: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; run the same command again to resume.",
              file=sys.stderr)
        return EXIT_INTERRUPTED
