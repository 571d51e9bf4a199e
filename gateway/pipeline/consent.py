"""The consent register: a person's consent to share, shaped on HL7 FHIR Consent. No I/O.

Matching a consent to a message's subject (documented in the README):

* by PNC ID when the message carries one: records with that PNC ID match, and so do
  records made without a PNC ID whose name and date of birth match;
* otherwise by name and date of birth: given and family names compared case-, space-,
  hyphen- and apostrophe-insensitively, and the exact date of birth.

Limits: two people with the same name and date of birth are indistinguishable without a
PNC ID, and a changed or misspelt name does not match. The register errs towards *not*
matching, which can only deny a share, never permit one.

Scope. A record covers a share when it names the recipient, by kind (``actor_roles``) or
by organisation code (``actor_organisations``), and the purpose the share serves
(``gateway.pipeline.policy.facts.PURPOSES``): consent is given for purposes the person was told
about (H 4.2, 4.7.1), so a permit covers only the purposes it lists, and a permit that
lists none covers none (fail closed). A deny that lists no purposes refuses every purpose.

The state for one share (recipient and purpose):

* no record about the person at all: the sender's declaration in the message body
  (``consent.obtained``, ``consent.written``) stands in, as the form the worker completed;
* records about the person, none covering this share: ``none``. A record that does not
  cover the recipient or the purpose is not consent to it, and the declaration no longer
  counts: once the register knows the person, the register decides;
* otherwise the most recent covering record *in force* (not withdrawn, inside its
  period) decides: a permit gives ``verbal`` or ``written`` and is the record the share
  relies on; a deny gives ``withdrawn``. With none in force, the most recent covering
  record says why: ``withdrawn``, ``expired``, or ``none`` (not started yet). A withdrawn
  record therefore never permits, and another record still in force is not hidden by it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from gateway.domain.model import isoformat
from gateway.pipeline.policy.facts import Purpose
from gateway.pipeline.policy.rules import ConsentState


class ConsentForm(StrEnum):
    WRITTEN = "written"
    VERBAL = "verbal"


# Purpose codes the consent API accepted before the vocabulary of
# ``gateway.pipeline.policy.facts.Purpose``; a record is kept and matched under the new code.
PURPOSE_SYNONYMS: Mapping[str, Purpose] = {
    "continuity_of_care": Purpose.CARE_COORDINATION,
    "case_transfer": Purpose.CARE_COORDINATION,
    "throughcare": Purpose.CARE_COORDINATION,
    "drr_supervision": Purpose.COMPLIANCE_REPORTING,
}


def purposes_of(codes: Iterable[str]) -> tuple[str, ...]:
    """The vocabulary codes for what a request or a stored record lists, in order, once."""
    found: list[str] = []
    for code in codes:
        value = PURPOSE_SYNONYMS[code].value if code in PURPOSE_SYNONYMS else code
        if value not in found:
            found.append(value)
    return tuple(found)


class ConsentStatus(StrEnum):
    """FHIR Consent.status values we use."""

    ACTIVE = "active"
    INACTIVE = "inactive"


_IGNORED_IN_NAMES = re.compile("[\\s\\-'\u2019.]+")


def _normal_name(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name).casefold()
    letters = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _IGNORED_IN_NAMES.sub("", letters)


# Each submission asks for the same person's key several times (consent, storage,
# resolution); normalising Unicode names is the costly part, so recent answers are kept.
@lru_cache(maxsize=4096)
def name_dob_key(given_name: str, family_name: str, date_of_birth: str) -> str:
    return f"{_normal_name(family_name)}|{_normal_name(given_name)}|{date_of_birth}"


def normal_pnc(pnc_id: str | None) -> str | None:
    return pnc_id.strip().upper() if pnc_id else None


@dataclass(frozen=True, slots=True)
class SubjectKeys:
    """How a person is found: PNC ID, and name with date of birth (None when searching
    by PNC ID alone)."""

    pnc: str | None
    name_dob: str | None

    @classmethod
    def of(cls, subject: Mapping[str, Any]) -> SubjectKeys:
        return cls(
            pnc=normal_pnc(subject.get("pnc_id")),
            name_dob=name_dob_key(
                subject["given_name"], subject["family_name"], subject["date_of_birth"]
            ),
        )


def same_person(a: SubjectKeys, b: SubjectKeys) -> bool:
    """By PNC ID when both have one, else by normalised name and date of birth."""
    if a.pnc is not None and b.pnc is not None:
        return a.pnc == b.pnc
    return a.name_dob is not None and a.name_dob == b.name_dob


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    id: str
    subject: Mapping[str, Any]
    keys: SubjectKeys
    form: ConsentForm
    permit: bool
    actor_roles: frozenset[str]
    purposes: tuple[str, ...]
    period_start: datetime
    period_end: datetime | None
    information_given: str
    recorded_at: datetime
    performer: str
    withdrawn_at: datetime | None = None
    withdrawn_by: str | None = None
    withdrawal_reason: str | None = None
    actor_organisations: frozenset[str] = frozenset()

    @property
    def recorded_by(self) -> str:
        """The organisation that recorded it (the performer is ``ORG/actor``, set by the
        gateway from the recording caller's key, never from the request body)."""
        return self.performer.split("/", 1)[0]

    @property
    def status(self) -> ConsentStatus:
        return ConsentStatus.INACTIVE if self.withdrawn_at else ConsentStatus.ACTIVE

    def matches(self, keys: SubjectKeys) -> bool:
        return same_person(keys, self.keys)

    def names(self, recipient: str, recipient_kind: str) -> bool:
        """Whether the record is about this recipient, by code or by kind."""
        return recipient in self.actor_organisations or recipient_kind in self.actor_roles

    def covers(self, recipient: str, recipient_kind: str, purpose: str | None) -> bool:
        """Whether the record speaks to a share: its recipient, and its purpose (a permit
        must list it; a deny listing no purposes refuses all)."""
        if not self.names(recipient, recipient_kind):
            return False
        if self.permit:
            return purpose is not None and purpose in self.purposes
        return not self.purposes or purpose is None or purpose in self.purposes

    def in_force(self, at: datetime) -> bool:
        return (
            (self.withdrawn_at is None or self.withdrawn_at > at)
            and self.period_start <= at
            and (self.period_end is None or at < self.period_end)
        )

    def state_at(self, at: datetime) -> ConsentState:
        """This record's own answer at a moment, for a share it covers."""
        if self.withdrawn_at is not None and self.withdrawn_at <= at:
            return ConsentState.WITHDRAWN
        if at < self.period_start:
            return ConsentState.NONE
        if self.period_end is not None and at >= self.period_end:
            return ConsentState.EXPIRED
        if not self.permit:
            return ConsentState.WITHDRAWN
        return ConsentState.WRITTEN if self.form is ConsentForm.WRITTEN else ConsentState.VERBAL

    def as_fhir(self) -> dict[str, Any]:
        """The record as an HL7 FHIR R4 Consent resource, with our two extensions."""
        subject_identifier = (
            {"system": "urn:dipgw:pnc", "value": self.keys.pnc} if self.keys.pnc else None
        )
        period: dict[str, str] = {"start": isoformat(self.period_start)}
        if self.period_end is not None:
            period["end"] = isoformat(self.period_end)
        resource: dict[str, Any] = {
            "resourceType": "Consent",
            "id": self.id,
            "status": self.status.value,
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                  "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "urn:dipgw:consent-category",
                                      "code": "dip-information-sharing"}]}],
            "patient": {
                "display": f"{self.subject['given_name']} {self.subject['family_name']}",
                **({"identifier": subject_identifier} if subject_identifier else {}),
            },
            "dateTime": isoformat(self.recorded_at),
            "performer": [{"identifier": {"system": "urn:dipgw:org",
                                          "value": self.performer.split("/")[0]},
                           "display": self.performer}],
            "provision": {
                "type": "permit" if self.permit else "deny",
                "period": period,
                "actor": [
                    *({"role": {"coding": [{"system": "urn:dipgw:org-kind", "code": role}]}}
                      for role in sorted(self.actor_roles)),
                    *({"role": {"coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                        "code": "IRCP"}]},
                       "reference": {"identifier": {"system": "urn:dipgw:org", "value": org}}}
                      for org in sorted(self.actor_organisations)),
                ],
                "purpose": [{"system": "urn:dipgw:purpose", "code": p} for p in self.purposes],
            },
            "extension": [
                {"url": "urn:dipgw:consent-form", "valueCode": self.form.value},
                {"url": "urn:dipgw:information-given", "valueString": self.information_given},
            ],
        }
        if self.withdrawn_at is not None:
            resource["extension"].append(
                {"url": "urn:dipgw:withdrawn", "valueDateTime": isoformat(self.withdrawn_at)}
            )
        return resource


@dataclass(frozen=True, slots=True)
class ConsentFinding:
    """The register's answer for one share, and the record it rests on (None when no
    record permits it: the declaration stood in, or there is no consent)."""

    state: ConsentState
    record: str | None = None
    # What the consent found covers beyond the share's purpose, for its field groups
    # (gateway.pipeline.policy.facts.FIELD_PURPOSES): the purposes the record lists, or None when
    # the sender's declaration stood in (it speaks for the message as sent).
    purposes: frozenset[str] | None = frozenset()


def consent_state(
    records: Iterable[ConsentRecord],
    keys: SubjectKeys,
    recipient: str,
    recipient_kind: str,
    purpose: str | None,
    at: datetime,
    declaration: Mapping[str, Any] | None,
) -> ConsentFinding:
    """The person's consent to share with one recipient for one purpose, at a moment
    (the rules are in this module's docstring)."""
    about = [r for r in records if r.matches(keys)]
    if not about:
        if isinstance(declaration, Mapping) and declaration.get("obtained") is True:
            written = declaration.get("written") is True
            return ConsentFinding(ConsentState.WRITTEN if written else ConsentState.VERBAL,
                                  purposes=None)
        return ConsentFinding(ConsentState.NONE)
    covering = sorted(
        (r for r in about if r.covers(recipient, recipient_kind, purpose)),
        key=lambda r: r.recorded_at,
    )
    if not covering:
        return ConsentFinding(ConsentState.NONE)
    in_force = [r for r in covering if r.in_force(at)]
    if in_force:
        deciding = in_force[-1]
        if not deciding.permit:
            return ConsentFinding(deciding.state_at(at))
        return ConsentFinding(deciding.state_at(at), deciding.id, frozenset(deciding.purposes))
    return ConsentFinding(covering[-1].state_at(at))


def record_to_json(record: ConsentRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "subject": dict(record.subject),
        "form": record.form.value,
        "permit": record.permit,
        "actor_roles": sorted(record.actor_roles),
        "actor_organisations": sorted(record.actor_organisations),
        "purposes": list(record.purposes),
        "period_start": isoformat(record.period_start),
        "period_end": isoformat(record.period_end) if record.period_end else None,
        "information_given": record.information_given,
        "recorded_at": isoformat(record.recorded_at),
        "performer": record.performer,
        "withdrawn_at": isoformat(record.withdrawn_at) if record.withdrawn_at else None,
        "withdrawn_by": record.withdrawn_by,
        "withdrawal_reason": record.withdrawal_reason,
    }


def record_from_json(raw: Mapping[str, Any]) -> ConsentRecord:
    def when(value: str | None) -> datetime | None:
        return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None

    start = when(raw["period_start"])
    recorded = when(raw["recorded_at"])
    assert start is not None and recorded is not None
    return ConsentRecord(
        id=raw["id"],
        subject=raw["subject"],
        keys=SubjectKeys.of(raw["subject"]),
        form=ConsentForm(raw["form"]),
        permit=raw["permit"],
        actor_roles=frozenset(raw["actor_roles"]),
        actor_organisations=frozenset(raw.get("actor_organisations", ())),
        purposes=purposes_of(raw["purposes"]),
        period_start=start,
        period_end=when(raw["period_end"]),
        information_given=raw["information_given"],
        recorded_at=recorded,
        performer=raw["performer"],
        withdrawn_at=when(raw.get("withdrawn_at")),
        withdrawn_by=raw.get("withdrawn_by"),
        withdrawal_reason=raw.get("withdrawal_reason"),
    )
