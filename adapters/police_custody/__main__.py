"""``python -m adapters.police_custody EXPORT.csv|.jsonl``: RA1/RA2 records as messages."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from adapters import cli
from adapters.police_custody.mapping import COLUMNS, POINTERS, REFERENCE, map_records
from adapters.sources import Format

ADAPTER = cli.Adapter(
    label="custody records", columns=COLUMNS, reference=REFERENCE, map=map_records,
    sender_kind="police", formats=(Format.CSV, Format.JSONL), pointers=POINTERS,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m adapters.police_custody",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=cli.paragraph(
            "Send RA1 (required assessment) and RA2 (variation) records exported from a "
            "custody system to the DIP gateway as ra1_notice and ra2_variation messages, as "
            "the police force (H 4.6.1). The file is CSV or JSON lines (one object a line, "
            "members named as the columns), told apart by its extension or --format. The "
            "gateway sends each RA1 to the CJIT of the initial assessment and each RA2 to "
            "the CJIT of the new appointment. Writes a per-row report and resumes an "
            "interrupted import without sending any record twice."
        ),
        epilog="\n\n".join([
            cli.column_help(COLUMNS),
            "examples:\n  python -m adapters.police_custody custody-2026-03-14.csv "
            "--org POL-SFK-IPS\n  python -m adapters.police_custody export.ndjson "
            "--org POL-NFK-NOR --url https://dipgw.example",
            cli.EXIT_HELP,
        ]),
    )
    cli.add_import_arguments(parser, ADAPTER)
    parser.set_defaults(handler=cli.run_import)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return cli.main(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
