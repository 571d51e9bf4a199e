"""``python -m adapters.prison reception|release LIST.csv``: CARAT referrals (H 2.5)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from adapters import cli
from adapters.prison.mapping import (
    RECEPTION_COLUMNS,
    REFERENCE,
    RELEASE_COLUMNS,
    map_reception,
    map_release,
)

RECEPTION = cli.Adapter(
    label="reception list", columns=RECEPTION_COLUMNS, reference=REFERENCE,
    map=map_reception, sender_kind="cjit",
)
RELEASE = cli.Adapter(
    label="release list", columns=RELEASE_COLUMNS, reference=REFERENCE, map=map_release,
    sender_kind="carat",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m adapters.prison",
        description=cli.paragraph(
            "Send prison reception and release lists (CSV) to the DIP gateway as "
            "carat_referral messages (H 2.5, 4.1.3): a reception list as referrals into "
            "custody to the prison's CARAT team, sent by the CJIT; a release list as "
            "release notices to the community CJIT, sent by the CARAT team. Writes a "
            "per-row report and resumes an interrupted import without sending any row "
            "twice. See each list's --help for its columns."
        ),
    )
    lists = parser.add_subparsers(dest="list", required=True, metavar="LIST")
    for name, adapter, org, text in (
        ("reception", RECEPTION, "CJIT-NFK",
         "people received into prison: referrals into custody, sent by a CJIT"),
        ("release", RELEASE, "CARAT-NWI",
         "people to be released: notices to the community CJIT, sent by a CARAT team"),
    ):
        sub = lists.add_parser(
            name, help=text, formatter_class=argparse.RawDescriptionHelpFormatter,
            description=cli.paragraph(f"The {name} list: {text}."),
            epilog="\n\n".join([
                cli.column_help(adapter.columns),
                f"example:\n  python -m adapters.prison {name} {name}-2026-04-03.csv "
                f"--org {org}",
                cli.EXIT_HELP,
            ]),
        )
        cli.add_import_arguments(sub, adapter)
        sub.set_defaults(handler=cli.run_import)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return cli.main(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
