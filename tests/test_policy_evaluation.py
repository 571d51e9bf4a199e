"""The sharing-policy decision procedure: Cedar-style combination, deny by default.

Properties over random rule sets (hypothesis) check the combination itself; the default
policy is checked against its own cases, their coverage of the handbook rules, a few
decisions spelled out here, and every situation the message schemas allow.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from gateway.domain.model import Consent, Decision, MessageType, Route
from gateway.pipeline.policy.cases import run_cases
from gateway.pipeline.policy.diff import diff as policy_diff
from gateway.pipeline.policy.diff import fact_domains, situations
from gateway.pipeline.policy.document import load_text
from gateway.pipeline.policy.evaluate import DEFAULT_DENY, evaluate
from gateway.pipeline.policy.facts import purpose_of
from gateway.pipeline.policy.rules import (
    ConsentState,
    Effect,
    Facts,
    FactValue,
    PolicySet,
    Rule,
    consent_satisfies,
)
from gateway.pipeline.validation import SchemaSet

ROOT = Path(__file__).resolve().parents[1]
POLICY_PATH = ROOT / "policies" / "dip-default.yaml"
CASES_PATH = ROOT / "policies" / "dip-default.cases.yaml"
SCHEMAS_PATH = ROOT / "schemas"

ROUTES = ("enforcement", "proactive_engagement")
CONSENT_STATES = tuple(ConsentState)

# ------------------------------------------------------------------ random policies

# Small vocabularies so that random rules and random facts often meet.
TYPES = ("ra1_notice", "disengagement_alert", "assessment_outcome")
# A type no random rule names: its decisions come from the untyped rules only.
UNNAMED_TYPE = "dir_transfer"
OTHER_TYPE = "court_outcome"  # used only by the "rule for another type" property
KINDS = ("police", "cjit", "probation")
FACT_NAMES = ("statutory", "on_drr")
FACT_VALUES: tuple[FactValue, ...] = (True, False, "yes", "no")
POINTERS = ("/body/a", "/body/b", "/body/c", "/body/d/e")

FAST = hypothesis_settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _optional_set(values: Sequence[str]) -> st.SearchStrategy[frozenset[str] | None]:
    return st.none() | st.frozensets(st.sampled_from(values), min_size=1, max_size=len(values))


def rule_strategy(
    effects: Sequence[Effect] = tuple(Effect),
) -> st.SearchStrategy[Rule]:
    return st.builds(
        Rule,
        id=st.just("unnamed"),
        effect=st.sampled_from(effects),
        reason=st.just("A reason given in the test."),
        legal_basis=st.just("test basis"),
        consent=st.sampled_from(tuple(Consent)),
        redact=st.lists(st.sampled_from(POINTERS), unique=True, max_size=3).map(tuple),
        types=_optional_set(TYPES),
        routes=_optional_set(ROUTES),
        senders=_optional_set(KINDS),
        recipients=_optional_set(KINDS),
        consent_states=_optional_set([c.value for c in ConsentState]),
        facts=st.dictionaries(
            st.sampled_from(FACT_NAMES),
            st.frozensets(st.sampled_from(FACT_VALUES), min_size=1, max_size=2),
            max_size=2,
        ),
    )


def _named(rules: Sequence[Rule], prefix: str = "r") -> tuple[Rule, ...]:
    return tuple(replace(rule, id=f"{prefix}{i}") for i, rule in enumerate(rules))


def rules_strategy(
    effects: Sequence[Effect] = tuple(Effect), max_size: int = 8
) -> st.SearchStrategy[tuple[Rule, ...]]:
    return st.lists(rule_strategy(effects), max_size=max_size).map(_named)


facts_strategy = st.builds(
    Facts,
    message_type=st.sampled_from((*TYPES, UNNAMED_TYPE)),
    route=st.sampled_from(ROUTES),
    sender_kind=st.sampled_from(KINDS),
    recipient_kind=st.sampled_from(KINDS),
    consent=st.sampled_from(CONSENT_STATES),
    # Any subset of the facts may be missing from the message.
    message=st.dictionaries(st.sampled_from(FACT_NAMES), st.sampled_from(FACT_VALUES)),
)


def build(rules: Sequence[Rule]) -> PolicySet:
    return PolicySet.build("t", "v", tuple(rules))


# An independent statement of when a rule applies (the docstrings of rules.py and
# policies/dip-default.yaml), so the properties do not trust Rule.applies.
def holds(rule: Rule, facts: Facts) -> bool:
    for accepted, value in (
        (rule.types, facts.message_type),
        (rule.routes, facts.route),
        (rule.senders, facts.sender_kind),
        (rule.recipients, facts.recipient_kind),
        (rule.consent_states, facts.consent.value),
    ):
        if accepted is not None and value not in accepted:
            return False
    for name, accepted_values in rule.facts.items():
        if name not in facts.message:
            if rule.effect is Effect.PERMIT:
                return False  # a permit cannot rest on a fact the message lacks
            continue  # forbid and redact rules fail closed: they still apply
        if facts.message[name] not in accepted_values:
            return False
    return True


def satisfied_permits(rules: Sequence[Rule], facts: Facts) -> list[Rule]:
    return [
        r
        for r in rules
        if r.effect is Effect.PERMIT
        and holds(r, facts)
        and consent_satisfies(r.consent, facts.consent)
    ]


def applicable(rules: Sequence[Rule], facts: Facts, effect: Effect) -> list[Rule]:
    return [r for r in rules if r.effect is effect and holds(r, facts)]


def without_fact(facts: Facts, name: str) -> Facts:
    return replace(facts, message={k: v for k, v in facts.message.items() if k != name})


# ------------------------------------------------------------------ (a) permits need a rule


@FAST
@given(rules_strategy(), facts_strategy)
def test_nothing_is_permitted_without_an_applicable_satisfied_permit(
    rules: tuple[Rule, ...], facts: Facts
) -> None:
    decision = evaluate(build(rules), facts)
    satisfied = satisfied_permits(rules, facts)
    forbidden = applicable(rules, facts, Effect.FORBID)
    if decision.permitted:
        assert satisfied, "permitted although no permit rule applies with its consent met"
        assert decision.rule == satisfied[0].id  # the first such rule in file order decides
        assert decision.consent is satisfied[0].consent
        assert decision.consent_satisfied
        assert decision.rules == tuple(r.id for r in satisfied)
        assert decision.denied_because is None
    else:
        # ... and conversely nothing but a forbid stops a satisfied permit.
        assert forbidden or not satisfied


@FAST
@given(rules_strategy(), facts_strategy)
def test_applicable_permit_with_unmet_consent_denies_for_consent(
    rules: tuple[Rule, ...], facts: Facts
) -> None:
    decision = evaluate(build(rules), facts)
    permits = applicable(rules, facts, Effect.PERMIT)
    if applicable(rules, facts, Effect.FORBID) or satisfied_permits(rules, facts) or not permits:
        return
    assert not decision.permitted
    assert decision.denied_because == "consent_not_satisfied"
    assert not decision.consent_satisfied
    assert decision.rule in {r.id for r in permits}
    assert decision.consent is not Consent.NOT_REQUIRED


# ------------------------------------------------------------------ (b) a forbid always wins


@FAST
@given(rules_strategy(), facts_strategy)
def test_any_applicable_forbid_denies(rules: tuple[Rule, ...], facts: Facts) -> None:
    forbids = applicable(rules, facts, Effect.FORBID)
    decision = evaluate(build(rules), facts)
    if forbids:
        assert not decision.permitted
        assert decision.denied_because == "forbidden"
        assert decision.rule == forbids[0].id
        assert decision.redactions == ()
    else:
        assert decision.denied_because != "forbidden"


@FAST
@given(
    rules_strategy(),
    facts_strategy,
    rule_strategy(effects=(Effect.FORBID,)),
    st.integers(min_value=0, max_value=8),
)
def test_adding_an_applicable_forbid_turns_a_permit_into_a_deny(
    rules: tuple[Rule, ...], facts: Facts, forbid: Rule, position: int
) -> None:
    permit = Rule(
        id="always", effect=Effect.PERMIT, reason="Permits anything.", legal_basis="test"
    )
    base = (*rules, permit)
    before = evaluate(build(base), facts)
    if not before.permitted:
        return  # some random forbid already applies
    # Make the random forbid apply to exactly this situation, keeping its fact conditions
    # only where they match (or the fact is absent, which a forbid treats as matching).
    fitted = replace(
        forbid,
        id="added-forbid",
        types=None if forbid.types is None else forbid.types | {facts.message_type},
        routes=None if forbid.routes is None else forbid.routes | {facts.route},
        senders=None if forbid.senders is None else forbid.senders | {facts.sender_kind},
        recipients=None
        if forbid.recipients is None
        else forbid.recipients | {facts.recipient_kind},
        consent_states=None
        if forbid.consent_states is None
        else forbid.consent_states | {facts.consent.value},
        facts={
            name: values | ({facts.message[name]} if name in facts.message else set())
            for name, values in forbid.facts.items()
        },
    )
    at = min(position, len(base))
    after = evaluate(build((*base[:at], fitted, *base[at:])), facts)
    assert not after.permitted
    assert after.denied_because == "forbidden"
    assert after.rule == "added-forbid"
    assert after.redactions == ()


# ------------------------------------------------------------------ (c) missing facts never permit


@FAST
@given(rules_strategy(), facts_strategy)
def test_removing_a_fact_never_turns_a_deny_into_a_permit(
    rules: tuple[Rule, ...], facts: Facts
) -> None:
    policy = build(rules)
    before = evaluate(policy, facts)
    for name in facts.message:
        after = evaluate(policy, without_fact(facts, name))
        if after.permitted:
            assert before.permitted, f"removing fact {name!r} turned a deny into a permit"


@FAST
@given(
    rules_strategy(effects=(Effect.FORBID, Effect.REDACT), max_size=5),
    rule_strategy(effects=(Effect.PERMIT,)),
    facts_strategy,
    st.sampled_from(FACT_NAMES),
)
def test_a_policy_whose_only_permit_needs_an_absent_fact_denies(
    others: tuple[Rule, ...], permit: Rule, facts: Facts, needed: str
) -> None:
    only_permit = replace(
        permit, id="needs-fact", facts={**permit.facts, needed: frozenset(FACT_VALUES)}
    )
    message = without_fact(facts, needed)
    decision = evaluate(build((*others, only_permit)), message)
    assert not decision.permitted
    assert decision.denied_because in ("forbidden", "no_permit")


def test_missing_fact_stops_a_permit_but_not_a_forbid() -> None:
    permit = Rule(
        id="p",
        effect=Effect.PERMIT,
        reason="Permit statutory alerts.",
        legal_basis="test",
        facts={"statutory": frozenset({True})},
    )
    forbid = Rule(
        id="f",
        effect=Effect.FORBID,
        reason="Forbid non-statutory alerts.",
        legal_basis="test",
        facts={"statutory": frozenset({False})},
    )
    facts = Facts("disengagement_alert", "enforcement", "cjit", "police", ConsentState.NONE)
    assert evaluate(build([permit]), facts).denied_because == "no_permit"
    assert evaluate(build([forbid, permit]), facts).denied_because == "forbidden"
    stated = replace(facts, message={"statutory": True})
    assert evaluate(build([forbid, permit]), stated).permitted


# ------------------------------------------------------------------ (d) deny by default


@FAST
@given(rules_strategy(effects=(Effect.REDACT,)), facts_strategy)
def test_policy_without_permits_or_forbids_denies_no_permit(
    rules: tuple[Rule, ...], facts: Facts
) -> None:
    decision = evaluate(build(rules), facts)
    assert not decision.permitted
    assert decision.denied_because == "no_permit"
    assert decision.rule == DEFAULT_DENY
    assert decision.redactions == ()
    assert not decision.consent_satisfied


@FAST
@given(rules_strategy(effects=(Effect.FORBID, Effect.REDACT)), facts_strategy)
def test_policy_without_permits_always_denies(rules: tuple[Rule, ...], facts: Facts) -> None:
    decision = evaluate(build(rules), facts)
    assert not decision.permitted
    if applicable(rules, facts, Effect.FORBID):
        assert decision.denied_because == "forbidden"
    else:
        assert decision.denied_because == "no_permit"
        assert decision.rule == DEFAULT_DENY


@pytest.mark.parametrize("state", CONSENT_STATES)
def test_empty_policy_denies(state: ConsentState) -> None:
    facts = Facts("ra1_notice", "enforcement", "police", "cjit", state)
    decision = evaluate(build([]), facts)
    assert (decision.permitted, decision.denied_because, decision.rule) == (
        False,
        "no_permit",
        DEFAULT_DENY,
    )
    assert decision.consent_state == state.value


# ------------------------------------------------------------------ (e) redactions accumulate


@FAST
@given(rules_strategy(), facts_strategy)
def test_redactions_of_a_permit_cover_every_satisfied_permit_and_redact_rule(
    rules: tuple[Rule, ...], facts: Facts
) -> None:
    decision = evaluate(build(rules), facts)
    if not decision.permitted:
        assert decision.redactions == ()
        return
    owed = [
        pointer
        for rule in [*satisfied_permits(rules, facts), *applicable(rules, facts, Effect.REDACT)]
        for pointer in rule.redact
    ]
    assert set(decision.redactions) >= set(owed)
    # ... and nothing else is removed, each pointer once.
    assert set(decision.redactions) == set(owed)
    assert len(decision.redactions) == len(set(decision.redactions))


# ------------------------------------------------------------------ (f) determinism, irrelevance


@FAST
@given(rules_strategy(), facts_strategy)
def test_evaluation_is_deterministic(rules: tuple[Rule, ...], facts: Facts) -> None:
    first = evaluate(build(rules), facts)
    assert evaluate(build(rules), facts) == first
    assert evaluate(build(list(rules)), replace(facts, message=dict(facts.message))) == first


@FAST
@given(
    rules_strategy(),
    facts_strategy,
    rule_strategy(),
    st.integers(min_value=0, max_value=8),
)
def test_a_rule_for_another_message_type_changes_nothing(
    rules: tuple[Rule, ...], facts: Facts, extra: Rule, position: int
) -> None:
    other = replace(extra, id="other-type", types=frozenset({OTHER_TYPE}))
    at = min(position, len(rules))
    before = evaluate(build(rules), facts)
    after = evaluate(build((*rules[:at], other, *rules[at:])), facts)
    assert after == before


@FAST
@given(rules_strategy(), facts_strategy)
def test_decision_matches_a_reference_model(rules: tuple[Rule, ...], facts: Facts) -> None:
    decision = evaluate(build(rules), facts)
    forbids = applicable(rules, facts, Effect.FORBID)
    permits = applicable(rules, facts, Effect.PERMIT)
    satisfied = satisfied_permits(rules, facts)
    assert decision.policy_version == "v"
    assert decision.consent_state == facts.consent.value
    if forbids:
        expected: tuple[Any, ...] = (False, "forbidden", forbids[0].id)
    elif satisfied:
        expected = (True, None, satisfied[0].id)
    elif permits:
        expected = (False, "consent_not_satisfied", decision.rule)
    else:
        expected = (False, "no_permit", DEFAULT_DENY)
    assert (decision.permitted, decision.denied_because, decision.rule) == expected


# ------------------------------------------------------------------ the default policy


@cache
def default_text() -> str:
    return POLICY_PATH.read_text(encoding="utf-8")


@cache
def default_policy() -> PolicySet:
    return load_text(default_text())


@cache
def default_document() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(default_text())
    return document


@cache
def cases_document() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(CASES_PATH.read_text(encoding="utf-8"))
    return document


@cache
def schemas() -> Mapping[str, Mapping[str, Any]]:
    return SchemaSet.load(SCHEMAS_PATH).documents


@cache
def every_situation() -> tuple[Facts, ...]:
    return tuple(situations(fact_domains(schemas())))


def rule_named(rule_id: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        r for r in default_document()["rules"] if r["id"] == rule_id
    ]
    [raw] = found
    return raw


CLINICAL_REDACT_RULE = "no-clinical-detail-to-police-or-court"


def facts(
    message_type: str,
    route: str,
    sender: str,
    recipient: str,
    consent: ConsentState,
    **message: FactValue,
) -> Facts:
    """A situation with the purpose the gateway finds for it (gateway/pipeline/policy/facts.py)."""
    return Facts(message_type, route, sender, recipient, consent, message,
                 purpose_of(message_type, message))


def test_default_policy_passes_its_own_cases() -> None:
    results = run_cases(default_policy(), cases_document())
    failures = [r.describe() for r in results if not r.passed]
    assert not failures, "\n".join(failures)
    assert len(results) == 5 * len(cases_document()["cases"])


def test_cases_cover_every_handbook_rule_on_both_routes_and_every_consent_state() -> None:
    covered: dict[tuple[int, str], set[str]] = {}
    for case in cases_document()["cases"]:
        states = set(case["expect"])
        assert states == {s.value for s in ConsentState}, case["name"]
        # A flow beyond DOMAIN.md's nine rules names its handbook paragraphs instead.
        assert "handbook_rule" in case or case.get("handbook"), case["name"]
        key = (case.get("handbook_rule", 0), case["message"]["route"])
        covered.setdefault(key, set()).update(states)
    wanted = {(n, route) for n in range(1, 10) for route in ROUTES}
    assert wanted <= covered.keys(), sorted(wanted - covered.keys())


@pytest.mark.parametrize("state", CONSENT_STATES)
def test_ra1_on_the_proactive_route_is_forbidden(state: ConsentState) -> None:
    decision = evaluate(
        default_policy(), facts("ra1_notice", "proactive_engagement", "police", "cjit", state)
    )
    assert not decision.permitted
    assert decision.denied_because == "forbidden"
    assert decision.rule == "ra-not-on-proactive-route"


@pytest.mark.parametrize("route", ROUTES)
def test_drr_assessment_outcome_to_probation_needs_written_consent(route: str) -> None:
    def decide(state: ConsentState) -> Decision:
        return evaluate(
            default_policy(),
            facts("assessment_outcome", route, "cjit", "probation", state, on_drr=True),
        )

    verbal = decide(ConsentState.VERBAL)
    assert not verbal.permitted
    assert verbal.denied_because == "consent_not_satisfied"
    assert verbal.consent is Consent.WRITTEN_REQUIRED
    assert verbal.rule == "drr-assessment-outcome-to-probation"
    written = decide(ConsentState.WRITTEN)
    assert written.permitted
    assert written.rule == "drr-assessment-outcome-to-probation"
    assert written.consent is Consent.WRITTEN_REQUIRED
    assert written.consent_satisfied


def _clinical_fields(message_type: str) -> set[str]:
    """Top-level body members the message schema marks CLINICAL."""
    properties = schemas()[message_type].get("properties", {})
    return {
        name
        for name, schema in properties.items()
        if str(schema.get("description", "")).startswith("CLINICAL")
    }


def test_disengagement_alert_schema_lists_the_four_clinical_fields() -> None:
    raw = json.loads((SCHEMAS_PATH / "disengagement_alert.schema.json").read_text("utf-8"))
    optional = set(raw["properties"]) - set(raw["required"])
    assert _clinical_fields("disengagement_alert") == {
        "clinical_summary",
        "prescribing",
        "immediate_risks",
        "risk_narrative",
    }
    assert _clinical_fields("disengagement_alert") <= optional


@pytest.mark.parametrize(
    "message",
    [
        {},
        {"disengagement_event": "failed_to_attend_initial_assessment"},
        {"disengagement_event": "disengaged_from_care_plan", "statutory": False},
    ],
    ids=["no-facts", "failed-to-attend", "disengaged"],
)
def test_proactive_disengagement_alert_to_police_without_consent_is_fact_only(
    message: dict[str, FactValue],
) -> None:
    decision = evaluate(
        default_policy(),
        facts("disengagement_alert", "proactive_engagement", "cjit", "police",
              ConsentState.NONE, **message),
    )
    assert decision.permitted
    assert decision.consent is Consent.NOT_REQUIRED
    clinical = {f"/body/{name}" for name in _clinical_fields("disengagement_alert")}
    assert clinical
    assert clinical <= set(decision.redactions)


def test_every_clinical_schema_field_is_in_the_clinical_redact_rule() -> None:
    listed = set(rule_named(CLINICAL_REDACT_RULE)["redact"])
    for message_type in MessageType:
        missing = {f"/body/{n}" for n in _clinical_fields(message_type.value)} - listed
        assert not missing, f"{message_type.value}: {sorted(missing)}"


def test_nothing_clinical_ever_reaches_police_or_court() -> None:
    listed = rule_named(CLINICAL_REDACT_RULE)["redact"]
    checked = 0
    for situation in every_situation():
        if situation.recipient_kind not in ("police", "court"):
            continue
        decision = evaluate(default_policy(), situation)
        if not decision.permitted:
            continue
        members = set(schemas()[situation.message_type].get("properties", {}))
        owed = {p for p in listed if p.split("/")[2] in members}
        assert owed <= set(decision.redactions), (situation, decision.redactions)
        # The whole rule applies, whatever the type.
        assert set(listed) <= set(decision.redactions), situation
        checked += 1
    assert checked > 0  # disengagement alerts do reach the police


def test_situations_cover_every_type_route_and_consent_state() -> None:
    seen = {(s.message_type, s.route, s.consent) for s in every_situation()}
    assert seen == {
        (t.value, r.value, c) for t in MessageType for r in Route for c in ConsentState
    }


# ------------------------------------------------------------------ diff


def test_diff_of_a_policy_with_itself_is_empty() -> None:
    assert policy_diff(default_policy(), default_policy(), every_situation()) == []


@pytest.mark.parametrize(
    "rule_id",
    [
        "dir-transfer-proactive",
        "carat-referral-into-custody",
        "carat-referral-release",
        "disengagement-to-probation-proactive",
    ],
)
def test_diff_of_required_to_written_consent(rule_id: str) -> None:
    text = default_text()
    marker = f"- id: {rule_id}\n    effect: permit\n    consent: required\n"
    assert text.count(marker) == 1
    changed = text.replace(marker, marker.replace("consent: required", "consent: written_required"))
    before, after = default_policy(), load_text(changed)
    assert before.version != after.version
    changes = policy_diff(before, after, every_situation())
    assert changes

    decided_here = [
        s for s in every_situation() if evaluate(before, s).rule == rule_id
    ]
    flips = {
        tuple(sorted(c.situation.items()))
        for c in changes
        if c.before["decision"] != c.after["decision"]
    }
    expected_flips = {
        tuple(sorted(_situation_view(s).items()))
        for s in decided_here
        if s.consent is ConsentState.VERBAL
    }
    # The outcome changes exactly where consent is verbal and this rule decided.
    assert expected_flips
    assert flips == expected_flips
    for change in changes:
        assert change.before["rule"] == rule_id
        if change.situation["consent"] == "verbal":
            assert change.before["decision"] == "permit"
            assert change.after["decision"] == "deny"
            assert change.after["rule"] == rule_id
        else:
            # Elsewhere only the consent the decision names moves: required -> written.
            differing = {k for k in change.before if change.before[k] != change.after[k]}
            assert differing == {"consent"}
            assert (change.before["consent"], change.after["consent"]) == (
                "required",
                "written_required",
            )


def _situation_view(facts: Facts) -> dict[str, Any]:
    return {
        "type": facts.message_type,
        "route": facts.route,
        "sender": facts.sender_kind,
        "recipient": facts.recipient_kind,
        "consent": facts.consent.value,
        **{f"fact:{k}": v for k, v in sorted(facts.message.items())},
    }
