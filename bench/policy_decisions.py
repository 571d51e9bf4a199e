"""In-process cost of one sharing decision with the default policy.

Evaluates ``policies/dip-default.yaml`` over a realistic mix of facts (mostly permitted
RA1 and RA2 notices, disengagement alerts to police with their clinical fields redacted,
DIR transfers, CARAT referrals, court outcomes, and denials: DRR assessment outcomes
without written consent, RA1s on the proactive route, clinical records to police,
shares no rule permits). Timed with time.perf_counter after a warm-up, best of several
rounds, and set beside the cost of a trivial function call doing one dict lookup,
measured in the same run. The target stated in the issue is under 20 µs per decision.

    .venv/bin/python bench/policy_decisions.py --decisions 200000 --rounds 5
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.pipeline.policy.document import load_text  # noqa: E402
from gateway.pipeline.policy.evaluate import evaluate  # noqa: E402
from gateway.pipeline.policy.facts import purpose_of  # noqa: E402
from gateway.pipeline.policy.rules import ConsentState, Facts, FactValue, PolicySet  # noqa: E402

TARGET_US = 20.0
ENF, PRO = "enforcement", "proactive_engagement"
C = ConsentState


def _facts(
    message_type: str,
    route: str,
    sender: str,
    recipient: str,
    consent: ConsentState,
    **message: FactValue,
) -> Facts:
    return Facts(message_type, route, sender, recipient, consent, message,
                 purpose_of(message_type, message))


# (weight, facts): how often each kind of share turns up in a day's traffic, roughly.
MIX: list[tuple[int, Facts]] = [
    # Permitted RA1 and RA2 notices, whatever the consent register says.
    *((6, _facts("ra1_notice", ENF, "police", "cjit", state)) for state in C),
    *((2, _facts("ra2_variation", ENF, "police", "cjit", state)) for state in C),
    # Disengagement alerts to police: permitted, clinical fields redacted.
    *(
        (2, _facts("disengagement_alert", PRO, "cjit", "police", C.NONE, disengagement_event=e))
        for e in ("failed_to_attend_initial_assessment", "disengaged_from_care_plan")
    ),
    (2, _facts("disengagement_alert", PRO, "cjit", "police", C.WITHDRAWN)),
    (
        3,
        _facts(
            "disengagement_alert", ENF, "cjit", "police", C.NONE,
            disengagement_event="failed_to_attend_initial_assessment", statutory=True,
        ),
    ),
    (
        1,
        _facts(
            "disengagement_alert", ENF, "cjit", "police", C.NONE,
            disengagement_event="case_closed_persistent_non_engagement", statutory=False,
        ),
    ),
    (2, _facts("disengagement_alert", ENF, "cjit", "probation", C.NONE)),
    (1, _facts("disengagement_alert", PRO, "cjit", "probation", C.VERBAL)),
    # DRR assessment outcomes to probation: denied without written consent, else permitted.
    *(
        (1, _facts("assessment_outcome", ENF, "cjit", "probation", state, on_drr=True))
        for state in (C.NONE, C.VERBAL, C.WITHDRAWN, C.WRITTEN)
    ),
    (1, _facts("assessment_outcome", ENF, "cjit", "probation", C.WRITTEN, on_drr=False)),
    # CJIT <-> CJIT and CARAT, court outcomes.
    (2, _facts("dir_transfer", ENF, "cjit", "cjit", C.NONE)),
    (1, _facts("dir_transfer", PRO, "cjit", "cjit", C.VERBAL)),
    (1, _facts("dir_acceptance", ENF, "cjit", "cjit", C.NONE, dir_acceptance_outcome="accepted")),
    (1, _facts("carat_referral", ENF, "cjit", "carat", C.WRITTEN, carat_direction="into_custody")),
    (1, _facts("carat_referral", PRO, "carat", "cjit", C.NONE, carat_direction="release")),
    *(
        (1, _facts("court_outcome", ENF, "court", kind, C.NONE, court_outcome="bail"))
        for kind in ("cjit", "probation", "carat")
    ),
    # Refusals: forbidden or no permit.
    (1, _facts("ra1_notice", PRO, "police", "cjit", C.WRITTEN)),
    (1, _facts("assessment_outcome", ENF, "cjit", "police", C.WRITTEN, on_drr=True)),
    (1, _facts("ra1_notice", ENF, "police", "probation", C.NONE)),
]


def workload(count: int) -> list[Facts]:
    weighted = [facts for weight, facts in MIX for _ in range(weight)]
    return list(itertools.islice(itertools.cycle(weighted), count))


def _time(run: Callable[[], None], rounds: int) -> list[float]:
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        timings.append(time.perf_counter() - started)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=20_000)
    args = parser.parse_args()

    policy: PolicySet = load_text((ROOT / "policies" / "dip-default.yaml").read_text("utf-8"))
    facts = workload(args.decisions)
    outcomes = Counter(
        "permit, redacted" if d.permitted and d.redactions
        else "permit" if d.permitted
        else f"deny ({d.denied_because})"
        for d in (evaluate(policy, f) for f in facts[: sum(w for w, _ in MIX)])
    )

    table = {f"key{i}": i for i in range(64)}
    keys = [f"key{i % 64}" for i in range(args.decisions)]

    def lookup(key: str) -> int | None:
        return table.get(key)

    def decide_all() -> None:
        for f in facts:
            evaluate(policy, f)

    def lookup_all() -> None:
        for key in keys:
            lookup(key)

    for f in facts[: args.warmup]:
        evaluate(policy, f)
    for key in keys[: args.warmup]:
        lookup(key)

    decisions = _time(decide_all, args.rounds)
    baseline = _time(lookup_all, args.rounds)

    n = args.decisions
    best, median = min(decisions) / n * 1e6, statistics.median(decisions) / n * 1e6
    base_best = min(baseline) / n * 1e6
    print(f"policy {policy.name} {policy.version}, {len(policy.rules)} rules")
    print(f"mix of {len(MIX)} kinds of share: "
          + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    print(f"{n} decisions x {args.rounds} rounds (best / median):")
    rate_best, rate_median = n / min(decisions), n / statistics.median(decisions)
    print(f"  decisions per second : {rate_best:12,.0f} / {rate_median:,.0f}")
    print(f"  µs per decision      : {best:12.2f} / {median:.2f}")
    print(f"  baseline dict lookup : {base_best:12.3f} µs per call")
    print(f"  ratio decision/lookup: {best / base_best:12.1f}x")
    verdict = "meets" if best < TARGET_US else "MISSES"
    print(f"  target < {TARGET_US:.0f} µs per decision: {verdict}")


if __name__ == "__main__":
    main()
