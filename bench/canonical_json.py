"""In-process cost of the audit log's RFC 8785 canonical JSON, per document.

Two documents: the audit entry the gateway appends when it accepts an RA1 notice (built
as gateway/services/submission.py builds it: the default policy's real decision,
``acceptance_event``, then ``entry_document``), and the RA1 notice itself
(schemas/examples/ra1_notice/valid-out-of-area-norfolk-resident.json). Each is
serialised by the reference, member-by-member path (``canonical_text_exact``, all there
was before), by ``canonicalize`` (the check, then the standard library's C encoder when
its text is provably RFC 8785's, else the reference), and by the ``rfc8785`` package
when it is installed; the check and the encoder are also timed alone. All give the same
bytes, which is asserted first. Timed after a warm-up as this process's CPU time
(time.process_time: other work on a shared machine inflates it less than wall time), the
contenders interleaved round by round, best and median of the rounds.

    .venv/bin/python bench/canonical_json.py --documents 5000 --rounds 21
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.domain.model import Envelope  # noqa: E402
from gateway.pipeline.audit import Pseudonymiser, entry_document  # noqa: E402
from gateway.pipeline.policy.document import load_text  # noqa: E402
from gateway.pipeline.policy.evaluate import evaluate  # noqa: E402
from gateway.pipeline.policy.facts import message_facts, purpose_of  # noqa: E402
from gateway.pipeline.policy.rules import ConsentState, Facts  # noqa: E402
from gateway.services.submission import acceptance_event  # noqa: E402
from gateway.storage.base import PlannedDelivery, Submission  # noqa: E402
from gateway.tlog import canonical  # noqa: E402

RA1 = ROOT / "schemas/examples/ra1_notice/valid-out-of-area-norfolk-resident.json"


def acceptance_entry(document: dict[str, Any]) -> dict[str, Any]:
    """The entry logged for accepting ``document``, to one CJIT, permitted by policy."""
    envelope = Envelope.from_document(document)
    policy = load_text((ROOT / "policies/dip-default.yaml").read_text("utf-8"))
    facts = message_facts(envelope.type.value, document["body"])
    decision = evaluate(policy, Facts(
        envelope.type.value, envelope.route.value, "police", "cjit", ConsentState.NONE,
        facts, purpose_of(envelope.type.value, facts),
    ))
    submission = Submission(
        envelope=envelope,
        deliveries=(PlannedDelivery("CJIT-NFK", decision, envelope.document),),
        received_at=datetime(2026, 3, 20, 5, 31, 48, 120000, tzinfo=UTC),
        submitted_by="POL-SFK-IPS/custody-system",
    )
    return entry_document(acceptance_event(submission), 123_456, Pseudonymiser(b"k" * 32))


def contenders(value: Any) -> dict[str, Callable[[], object]]:
    exact, encode = canonical.canonical_text_exact, canonical._stdlib_text
    found: dict[str, Callable[[], object]] = {
        "exact (before)": lambda: exact(value).encode("utf-8"),
        "canonicalize (now)": lambda: canonical.canonicalize(value),
        "  the check alone": lambda: canonical.stdlib_is_canonical(value),
        "  the encoder alone": lambda: encode(value).encode("utf-8"),
    }
    try:
        import rfc8785
    except ImportError:
        return found
    found["rfc8785 package"] = lambda: rfc8785.dumps(value)
    return found


def run(name: str, value: Any, count: int, rounds: int, warmup: int) -> None:
    runs = contenders(value)
    reference = canonical.canonical_text_exact(value).encode("utf-8")
    for label, call in runs.items():
        if not label.startswith(" "):
            assert call() == reference, f"{label} differs from the reference"
    assert canonical.stdlib_is_canonical(value), f"{name} does not take the fast path"
    timings: dict[str, list[float]] = {label: [] for label in runs}
    for call in runs.values():
        for _ in range(warmup):
            call()
    for _ in range(rounds):
        for label, call in runs.items():
            started = time.process_time()
            for _ in range(count):
                call()
            timings[label].append((time.process_time() - started) / count * 1e6)
    before = min(timings["exact (before)"])
    print(f"{name}: {len(reference)} bytes, {count} x {rounds} rounds, µs (best / median):")
    for label, times in timings.items():
        best = min(times)
        print(f"  {label:22}: {best:8.2f} / {statistics.median(times):7.2f}"
              f"   {before / best:5.2f}x the exact path's speed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--warmup", type=int, default=2_000)
    args = parser.parse_args()
    document = json.loads(RA1.read_text("utf-8"))
    try:
        import rfc8785  # noqa: F401
    except ImportError:
        print("rfc8785 is not installed: its column is left out")
    print(f"Python {sys.version.split()[0]}")
    for name, value in (("audit entry (message.accepted)", acceptance_entry(document)),
                        ("RA1 notice", document)):
        run(name, value, args.documents, args.rounds, args.warmup)


if __name__ == "__main__":
    main()
