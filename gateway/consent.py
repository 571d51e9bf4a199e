"""The consent register: a person's consent to share, shaped on HL7 FHIR Consent. No I/O.

Matching a consent to a message's subject (documented in the README):

* by PNC ID when the message carries one: records with that PNC ID match, and so do
  records made without a PNC ID whose name and date of birth match;
* otherwise by name and date of birth: given and family names compared case-, space-,
  hyphen- and apostrophe-insensitively, and the exact date of birth.

Limits: two people with the same name and date of birth are indistinguishable without a
PNC ID, and a changed or misspelt name does not match. The register errs towards *not*
matching, which can only deny a share, never permit one.

The state for one recipient is taken from the most recent matching record that covers
that recipient's kind: withdrawn, expired (outside its period), or given (verbal or
written). A record that denies the recipient's kind counts as withdrawn. With no
matching record, the sender's declaration in the message body (``consent.obtained``,
``consent.written``) stands in, as the form the worker completed; the register, when it
has a record, always wins over a declaration.
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

from gateway.model import isoformat
from gateway.policy.rules import ConsentState


class ConsentForm(StrEnum):
    WRITTEN = "written"
    VERBAL = "verbal"


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

    def state_for(self, recipient_kind: str, at: datetime) -> ConsentState | None:
        """This record's answer for a recipient kind, or None if it does not cover it."""
        if recipient_kind not in self.actor_roles:
            return None
        if self.withdrawn_at is not None and self.withdrawn_at <= at:
            return ConsentState.WITHDRAWN
        if not self.permit:
            return ConsentState.WITHDRAWN
        if at < self.period_start:
            return ConsentState.NONE
        if self.period_end is not None and at >= self.period_end:
            return ConsentState.EXPIRED
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
                    {"role": {"coding": [{"system": "urn:dipgw:org-kind", "code": role}]}}
                    for role in sorted(self.actor_roles)
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


def consent_state(
    records: Iterable[ConsentRecord],
    keys: SubjectKeys,
    recipient_kind: str,
    at: datetime,
    declaration: Mapping[str, Any] | None,
) -> ConsentState:
    """The person's consent to share with a kind of recipient, at a moment."""
    covering = sorted(
        (r for r in records if r.matches(keys) and recipient_kind in r.actor_roles),
        key=lambda r: r.recorded_at,
    )
    if covering:
        state = covering[-1].state_for(recipient_kind, at)
        return state if state is not None else ConsentState.NONE
    if isinstance(declaration, Mapping) and declaration.get("obtained") is True:
        return ConsentState.WRITTEN if declaration.get("written") is True else ConsentState.VERBAL
    return ConsentState.NONE


def record_to_json(record: ConsentRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "subject": dict(record.subject),
        "form": record.form.value,
        "permit": record.permit,
        "actor_roles": sorted(record.actor_roles),
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
        purposes=tuple(raw["purposes"]),
        period_start=start,
        period_end=when(raw["period_end"]),
        information_given=raw["information_given"],
        recorded_at=recorded,
        performer=raw["performer"],
        withdrawn_at=when(raw.get("withdrawn_at")),
        withdrawn_by=raw.get("withdrawn_by"),
        withdrawal_reason=raw.get("withdrawal_reason"),
    )
