"""``python -m adapters.court_results RESULTS.csv``: a court result list as court outcomes."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from adapters import cli
from adapters.court_results.mapping import COLUMNS, REFERENCE, map_results

ADAPTER = cli.Adapter(
    label="court results", columns=COLUMNS, reference=REFERENCE, map=map_results,
    sender_kind="court",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m adapters.court_results",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=cli.paragraph(
            "Send a court result list (CSV, one row per result) to the DIP gateway as "
            "court_outcome messages, as the court (H 3.3). The gateway addresses each "
            "result itself: to the CJIT managing the person, and custody and remand to the "
            "prison's CARAT team, community orders to the probation provider. Shows "
            "progress on stderr and writes a per-row report "
            "(row, case_ref, result = sent | replayed | refused | invalid, message_id, "
            "reason). Interrupted imports resume where they stopped, sending no row twice."
        ),
        epilog="\n\n".join([
            cli.column_help(COLUMNS),
            "example:\n  python -m adapters.court_results results-2026-05-19.csv "
            "--org CRT-IPS-MC --url http://127.0.0.1:8080",
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
