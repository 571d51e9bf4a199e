"""Trim the image's virtual environment to what one distribution needs at run time.

requirements.lock pins the runtime and the ``dev`` extra together (one ``make lock``, one
set of hashes), so the Docker build installs all of it hash-checked and then removes what
the gateway does not import in production: test runners, linters, the browser driver.
The closure is read from the installed distributions' own metadata (``Requires-Dist``,
markers evaluated for this interpreter, extras followed only where a requirement names
them), so it follows the lock without a second list to keep in step.

    python runtime_closure.py DIST                    # print the closure, one name a line
    python runtime_closure.py --uninstall-others DIST # pip-uninstall everything else
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# The installer and the build backend are the environment's, not the gateway's: never
# removed (pip is what removes the others).
KEEP = frozenset({"pip", "setuptools", "wheel"})


def closure(root: str) -> set[str]:
    """Canonical names of ``root`` and every distribution it needs, transitively."""
    seen: set[str] = set()
    pending: list[tuple[str, frozenset[str]]] = [(root, frozenset())]
    while pending:
        name, extras = pending.pop()
        key = canonicalize_name(name)
        dist = metadata.distribution(key)
        # Revisit a distribution only for extras not yet followed; a plain visit once.
        marker = f"{key}[{','.join(sorted(extras))}]"
        if marker in seen:
            continue
        seen.add(marker)
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is not None and not any(
                # evaluate() fills in this interpreter's environment around ``extra``.
                req.marker.evaluate({"extra": extra})
                for extra in (extras or {""})
            ):
                continue
            pending.append((req.name, frozenset(req.extras)))
    return {marker.split("[", 1)[0] for marker in seen}


def installed() -> set[str]:
    return {canonicalize_name(d.metadata["Name"]) for d in metadata.distributions()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dist", help="the distribution whose run-time closure is kept")
    parser.add_argument("--uninstall-others", action="store_true",
                        help="uninstall every installed distribution outside the closure")
    args = parser.parse_args()
    needed = closure(args.dist)
    if not args.uninstall_others:
        print("\n".join(sorted(needed)))
        return 0
    others = sorted(installed() - needed - KEEP)
    if others:
        subprocess.run(  # noqa: S603 (a fixed pip command over installed names)
            [sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", *others],
            check=True,
        )
    print(f"runtime_closure: kept {len(needed)} distributions, removed {len(others)}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
