"""One bench, run on this checkout and on an earlier revision of the gateway, in one run.

Each tree runs its own copy of the bench script (module paths move between revisions), in
turns (baseline, this tree, baseline, ...), so a machine that slows down during the run
slows both alike. The figure compared is the first number after ``--figure`` (a regular
expression) in each run's output; the bench's own output is printed too.

Issue 13 asks the court-results import and the broker-vs-gateway bench on SQLite to be no
slower than the code before the storage moved to SQLAlchemy Core (within 10%). That code
is 0516242, the last revision that landed before it (stop 17):

    .venv/bin/python bench/against_revision.py 0516242 --rounds 3 \\
        --figure '\\(a\\) adapter.*?: ([\\d,.]+) rows/s' \\
        -- bench/court_results_import.py --rows 10000
    .venv/bin/python bench/against_revision.py 0516242 --rounds 3 \\
        --figure 'gateway +\\d+ +([\\d,.]+)' -- bench/broker_vs_gateway.py --messages 2000

The earlier revision is checked out with ``git worktree`` into a temporary folder (removed
afterwards) and runs on this checkout's virtual environment: its dependencies are a subset.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(tree: Path, script: str, arguments: list[str], figure: re.Pattern[str]) -> float:
    """One run of the bench in ``tree``; its figure."""
    done = subprocess.run(  # noqa: S603 - a bench script of this repository, by its user
        [sys.executable, str(tree / script), *arguments],
        cwd=tree, capture_output=True, text=True, check=False,
    )
    print(done.stdout, end="")
    if done.returncode != 0:
        sys.exit(f"{script} failed in {tree} (exit {done.returncode}):\n{done.stderr[-2000:]}")
    found = figure.search(done.stdout)
    if found is None:
        sys.exit(f"--figure {figure.pattern!r} found nothing in {script}'s output")
    return float(found.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("revision", help="the earlier revision (a commit, tag or branch)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--figure", required=True,
                        help="regular expression whose first group is the figure compared")
    parser.epilog = "after --: the bench script (relative to the tree) and its arguments"
    argv = sys.argv[1:]
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        parser.error("name the bench after --, e.g. -- bench/court_results_import.py")
    split = argv.index("--")
    args = parser.parse_args(argv[:split])
    script, arguments = argv[split + 1], argv[split + 2:]
    figure = re.compile(args.figure, re.DOTALL)
    with tempfile.TemporaryDirectory(prefix="dipgw-baseline-") as folder:
        baseline = Path(folder) / "tree"
        subprocess.run(  # noqa: S603 - git, on a revision its user names
            ["git", "worktree", "add", "--detach", "--quiet", str(baseline),  # noqa: S607
             args.revision], cwd=ROOT, check=True)
        try:
            figures: dict[str, list[float]] = {"baseline": [], "this tree": []}
            for round_number in range(1, args.rounds + 1):
                for label, tree in (("baseline", baseline), ("this tree", ROOT)):
                    print(f"--- round {round_number}, {label} ({tree})")
                    figures[label].append(run(tree, script, arguments, figure))
        finally:
            subprocess.run(  # noqa: S603 - removes the worktree made above
                ["git", "worktree", "remove", "--force", str(baseline)],  # noqa: S607
                cwd=ROOT, check=False)
    before = statistics.median(figures["baseline"])
    after = statistics.median(figures["this tree"])
    print(f"\n{script} {' '.join(arguments)}")
    for label, values in figures.items():
        shown = ", ".join(f"{v:,.1f}" for v in values)
        print(f"{label:<10} {args.revision if label == 'baseline' else 'HEAD':<10} "
              f"median {statistics.median(values):,.1f}  ({shown})")
    print(f"this tree / baseline: {after / before:.3f}")


if __name__ == "__main__":
    main()
