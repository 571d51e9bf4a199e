"""The consent register's matching rules, by property (gateway/pipeline/consent.py; README,
"Consent"): recipient and purpose scope, withdrawal, and when the declaration counts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.model import MessageType
from gateway.pipeline.consent import (
    ConsentForm,
    ConsentRecord,
    SubjectKeys,
    consent_state,
    purposes_of,
)
from gateway.pipeline.policy.facts import PURPOSES, Purpose, purpose_of
from gateway.pipeline.policy.rules import ConsentState

SUBJECT = {"given_name": "Gemma", "family_name": "Baxter", "date_of_birth": "1996-05-25"}
KEYS = SubjectKeys.of(SUBJECT)
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
KINDS = ["police", "cjit", "carat", "probation", "court"]
ORGS = ["CJIT-NFK", "CJIT-CAM", "PRB-EOE"]
PURPOSE_CODES = [p.value for p in Purpose]
DECLARATIONS = st.sampled_from([None, {"obtained": True, "written": True},
                                {"obtained": True, "written": False}])
PERMITTING = (ConsentState.VERBAL, ConsentState.WRITTEN)


@st.composite
def records(draw: st.DrawFn) -> ConsentRecord:
    start = NOW + timedelta(days=draw(st.integers(-30, 5)))
    end = draw(st.none() | st.integers(-20, 30).map(lambda d: NOW + timedelta(days=d)))
    withdrawn = draw(st.none() | st.integers(-10, 10).map(lambda d: NOW + timedelta(days=d)))
    return ConsentRecord(
        id=draw(st.uuids()).hex,
        subject=SUBJECT,
        keys=KEYS,
        form=draw(st.sampled_from(ConsentForm)),
        permit=draw(st.booleans()),
        actor_roles=frozenset(draw(st.lists(st.sampled_from(KINDS), max_size=3))),
        actor_organisations=frozenset(draw(st.lists(st.sampled_from(ORGS), max_size=2))),
        purposes=tuple(draw(st.lists(st.sampled_from(PURPOSE_CODES), max_size=3,
                                     unique=True))),
        period_start=start,
        period_end=end if end is None or end > start else None,
        information_given="Told who receives what, and why.",
        recorded_at=NOW - timedelta(minutes=draw(st.integers(0, 10_000))),
        performer="CJIT-NFK/worker",
        withdrawn_at=withdrawn,
    )


shares = st.tuples(st.sampled_from(ORGS), st.sampled_from(KINDS),
                   st.sampled_from([*PURPOSE_CODES, None]))


@given(st.lists(records(), max_size=6), shares, DECLARATIONS)
def test_a_consent_permits_only_through_a_record_in_force_listing_the_recipient_and_purpose(
    held: list[ConsentRecord], share: tuple[str, str, str | None], declaration: object,
) -> None:
    recipient, kind, purpose = share
    finding = consent_state(held, KEYS, recipient, kind, purpose, NOW,
                            declaration if isinstance(declaration, dict) else None)
    if held and finding.state in PERMITTING:
        basis = {r.id: r for r in held}[str(finding.record)]
        assert basis.permit and basis.in_force(NOW)
        assert purpose is not None and purpose in basis.purposes
        assert recipient in basis.actor_organisations or kind in basis.actor_roles


@given(st.lists(records(), min_size=1, max_size=6), shares)
def test_a_withdrawn_record_never_permits(
    held: list[ConsentRecord], share: tuple[str, str, str | None],
) -> None:
    recipient, kind, purpose = share
    withdrawn = [replace(r, withdrawn_at=NOW - timedelta(seconds=1)) for r in held]
    finding = consent_state(withdrawn, KEYS, recipient, kind, purpose, NOW,
                            {"obtained": True, "written": True})
    assert finding.state not in PERMITTING and finding.record is None


@given(st.lists(records(), min_size=1, max_size=6), DECLARATIONS)
def test_with_any_record_about_the_person_the_declaration_never_counts(
    held: list[ConsentRecord], declaration: object,
) -> None:
    # A purpose no record lists and an organisation no record names: nothing covers it.
    unlisted = [replace(r, purposes=(), permit=True) for r in held]
    finding = consent_state(unlisted, KEYS, "CJIT-CAM", "cjit", "care_coordination", NOW,
                            declaration if isinstance(declaration, dict) else None)
    assert finding.state is ConsentState.NONE and finding.record is None


def test_with_no_record_the_declaration_stands_in_and_relies_on_no_record() -> None:
    finding = consent_state([], KEYS, "PRB-EOE", "probation", "compliance_reporting", NOW,
                            {"obtained": True, "written": True})
    assert (finding.state, finding.record) == (ConsentState.WRITTEN, None)


def test_a_deny_listing_no_purpose_refuses_every_purpose() -> None:
    deny = ConsentRecord(
        id="deny", subject=SUBJECT, keys=KEYS, form=ConsentForm.WRITTEN, permit=False,
        actor_roles=frozenset({"probation"}), purposes=(), period_start=NOW - timedelta(1),
        period_end=None, information_given="Refused any sharing with probation.",
        recorded_at=NOW - timedelta(hours=1), performer="CJIT-NFK/worker",
    )
    for purpose in PURPOSE_CODES:
        finding = consent_state([deny], KEYS, "PRB-EOE", "probation", purpose, NOW, None)
        assert finding.state is ConsentState.WITHDRAWN


def test_every_message_type_has_a_purpose_and_a_drr_outcome_is_compliance_reporting() -> None:
    assert set(PURPOSES) == {t.value for t in MessageType}
    assert purpose_of("assessment_outcome", {"on_drr": True}) == "compliance_reporting"
    assert purpose_of("assessment_outcome", {"on_drr": False}) == "clinical_care"
    assert purpose_of("assessment_outcome", {}) == "clinical_care"
    assert purpose_of("not_a_type", {}) is None


def test_older_purpose_codes_read_as_the_vocabulary() -> None:
    assert purposes_of(["case_transfer", "throughcare", "drr_supervision"]) == (
        "care_coordination", "compliance_reporting"
    )
