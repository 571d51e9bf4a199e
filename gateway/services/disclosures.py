"""What the audit log says about one person, and entries chosen by time and event.

A disclosure report answers what a subject access request (DPA 2018 s.45) or an ICO
investigation asks of the logs s.62 requires: every disclosure of a person's data and every
consultation of it — who did it, when, to whom, and under which rule and legal basis. The
log names people only by keyed pseudonym (``gateway.pipeline.audit.Pseudonymiser``), so the report
is found by computing the person's pseudonyms with the log's own key and reading the
entries that carry them; the PNC ID or name searched for is never stored or logged here.

The log is read as it is served (``AuditRepository.entries``, the entries of the RFC 6962
tree, pseudonymised), so what the report lists is exactly what an exported bundle holds
and ``dipgw audit verify`` checks. No HTTP here: the API route and the console page call
these functions and log their own read as a consultation.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.config import Settings
from gateway.pipeline.audit import AuditAction, Pseudonymiser
from gateway.pipeline.consent import SubjectKeys, same_person
from gateway.services.checkpoints import pseudonym_key
from gateway.storage.base import AuditRepository, MessageRepository

__all__ = [
    "Basis",
    "Disclosure",
    "DisclosureReport",
    "EntryFilter",
    "EntryPage",
    "disclosure_report",
    "pseudonymiser",
    "read_entries",
    "select_entries",
]

# Entries read from the store at a time: bounded memory however long the log grows.
CHUNK = 1000
# Earlier messages consulted to link a person's PNC ID and their name and date of birth.
LINKED_MESSAGES = 500

DISCLOSED = frozenset({AuditAction.MESSAGE_DELIVERED.value})
CONSULTED = frozenset({AuditAction.CONSULTED.value})


def pseudonymiser(settings: Settings) -> Pseudonymiser:
    """The log's own pseudonym key (``gateway.services.checkpoints.pseudonym_key``): the only way to
    find a person's entries, and kept outside the database like the signing keys."""
    return Pseudonymiser(
        pseudonym_key(settings.audit_keys_dir, create=not settings.is_production)
    )


async def read_entries(
    audit: AuditRepository, start: int = 0, end: int | None = None
) -> AsyncIterator[dict[str, Any]]:
    """The log's entries from ``start`` up to ``end`` (its size when None), parsed, in
    index order, ``CHUNK`` at a time."""
    end = await audit.size() if end is None else end
    for low in range(start, end, CHUNK):
        for raw in await audit.entries(low, min(low + CHUNK, end)):
            entry: dict[str, Any] = json.loads(raw)
            yield entry


def logged_at(entry: Mapping[str, Any]) -> datetime | None:
    """An entry's time (RFC 3339 as logged), or None when it does not parse."""
    try:
        return datetime.fromisoformat(str(entry.get("at", "")))
    except ValueError:
        return None


# --- entries by time and event ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EntryFilter:
    """Entries logged in ``[since, until)`` (either end open when None) whose action is in
    ``actions`` (every action when empty)."""

    since: datetime | None = None
    until: datetime | None = None
    actions: frozenset[str] = frozenset()

    def matches(self, entry: Mapping[str, Any]) -> bool:
        if self.actions and entry.get("action") not in self.actions:
            return False
        if self.since is None and self.until is None:
            return True
        at = logged_at(entry)
        if at is None:
            return False
        return ((self.since is None or at >= self.since)
                and (self.until is None or at < self.until))


@dataclass(frozen=True, slots=True)
class EntryPage:
    """One page of the entries a filter chose, newest first, and how many it chose."""

    entries: tuple[dict[str, Any], ...]
    total: int
    log_size: int


async def select_entries(
    audit: AuditRepository, wanted: EntryFilter, offset: int, limit: int
) -> EntryPage:
    """Entries ``offset`` to ``offset + limit`` of those ``wanted`` chose, newest first."""
    size = await audit.size()
    chosen: list[dict[str, Any]] = []
    total = 0
    async for entry in read_entries(audit, 0, size):
        if wanted.matches(entry):
            chosen.append(entry)
            total += 1
            # Newest first: keep only the newest offset + limit seen so far.
            if len(chosen) > offset + limit:
                chosen.pop(0)
    newest_first = chosen[::-1]
    return EntryPage(tuple(newest_first[offset:offset + limit]), total, size)


# --- the disclosure report -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Basis:
    """Why a recipient was (or was not) given the message: the policy's decision as logged
    (s.62(2)(a): the justification for a disclosure)."""

    recipient: str
    decision: str
    rule: str
    legal_basis: str
    consent: str | None = None

    @classmethod
    def of(cls, recipient: str, logged: Mapping[str, Any]) -> Basis:
        consent = logged.get("consent_state") or logged.get("consent")
        return cls(recipient, str(logged.get("decision", "")), str(logged.get("rule", "")),
                   str(logged.get("legal_basis", "")),
                   str(consent) if consent is not None else None)

    def as_json(self) -> dict[str, Any]:
        return {"recipient": self.recipient, "decision": self.decision, "rule": self.rule,
                "legal_basis": self.legal_basis, "consent": self.consent}


@dataclass(frozen=True, slots=True)
class Disclosure:
    """One entry about the person: what happened, when, who did it, to whom, and why."""

    index: int
    at: str
    action: str
    actor: str
    message_id: str | None = None
    message_type: str | None = None
    sender: str | None = None
    recipients: tuple[str, ...] = ()
    bases: tuple[Basis, ...] = ()
    resource: str | None = None
    channel: str | None = None

    @property
    def disclosure(self) -> bool:
        return self.action in DISCLOSED

    @property
    def consultation(self) -> bool:
        return self.action in CONSULTED

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index, "at": self.at, "action": self.action, "actor": self.actor,
            "message_id": self.message_id, "message_type": self.message_type,
            "sender": self.sender, "recipients": list(self.recipients),
            "bases": [b.as_json() for b in self.bases], "resource": self.resource,
            "channel": self.channel,
        }


CSV_HEADER = ("index", "at", "action", "actor", "sender", "recipients", "message_type",
              "message_id", "decision", "rule", "legal_basis", "resource", "channel")


@dataclass(frozen=True, slots=True)
class DisclosureReport:
    """Every entry about one person, oldest first, and the log size it was read up to."""

    rows: tuple[Disclosure, ...]
    log_size: int
    pseudonyms: tuple[str, ...] = field(default=())

    @property
    def disclosures(self) -> int:
        return sum(1 for row in self.rows if row.disclosure)

    @property
    def consultations(self) -> int:
        return sum(1 for row in self.rows if row.consultation)

    def as_json(self) -> dict[str, Any]:
        return {
            "log_size": self.log_size, "pseudonyms": list(self.pseudonyms),
            "disclosures": self.disclosures, "consultations": self.consultations,
            "entries": [row.as_json() for row in self.rows],
        }

    def csv_rows(self) -> list[tuple[str, ...]]:
        """One line per entry and recipient basis, for a spreadsheet (``CSV_HEADER``)."""
        lines: list[tuple[str, ...]] = []
        for row in self.rows:
            common = (str(row.index), row.at, row.action, row.actor, row.sender or "",
                      " ".join(row.recipients), row.message_type or "", row.message_id or "")
            tail = (row.resource or "", row.channel or "")
            for basis in row.bases or (None,):
                why = ((basis.decision, basis.rule, basis.legal_basis) if basis
                       else ("", "", ""))
                lines.append((*common, *why, *tail))
        return lines


async def pseudonyms_of(
    keys: SubjectKeys, messages: MessageRepository, pseudonyms: Pseudonymiser
) -> tuple[str, ...]:
    """The pseudonyms the log may have used for this person.

    An entry's pseudonym is of the PNC ID when the event knew one, else of the name and date
    of birth. So beside the pseudonyms of what was asked, those of the person's own earlier
    messages (the same person by ``gateway.pipeline.consent.same_person``) count: a search by PNC ID
    also finds entries logged by name and date of birth, and the other way about.
    """
    found: list[str] = []

    def add(candidate: SubjectKeys) -> None:
        if candidate.pnc is None and candidate.name_dob is None:
            return
        name = pseudonyms.of(candidate)
        if name not in found:
            found.append(name)

    for part in _parts(keys):
        add(part)
    for involvement in await messages.about_person(keys, LINKED_MESSAGES):
        if same_person(keys, involvement.keys):
            for part in _parts(involvement.keys):
                add(part)
    return tuple(found)


def _parts(keys: SubjectKeys) -> Iterable[SubjectKeys]:
    if keys.pnc is not None:
        yield SubjectKeys(pnc=keys.pnc, name_dob=None)
    if keys.name_dob is not None:
        yield SubjectKeys(pnc=None, name_dob=keys.name_dob)


def _disclosure(entry: Mapping[str, Any], senders: Mapping[str, str]) -> Disclosure:
    details: Mapping[str, Any] = entry.get("details") or {}
    recipients = tuple(str(r) for r in entry.get("recipients", ()))
    bases: list[Basis] = []
    if isinstance(details.get("decisions"), Mapping):
        bases = [Basis.of(str(r), d) for r, d in details["decisions"].items()
                 if isinstance(d, Mapping)]
    elif isinstance(details.get("decision"), Mapping) and len(recipients) == 1:
        bases = [Basis.of(recipients[0], details["decision"])]
    message_id = entry.get("message_id")
    sender = details.get("from") or (senders.get(message_id) if message_id else None)
    resource = details.get("resource")
    channel = details.get("channel")
    return Disclosure(
        index=int(entry["index"]), at=str(entry.get("at", "")), action=str(entry["action"]),
        actor=str(entry.get("actor", "")), message_id=message_id,
        message_type=entry.get("message_type"), sender=str(sender) if sender else None,
        recipients=recipients, bases=tuple(bases),
        resource=str(resource) if resource is not None else None,
        channel=str(channel) if channel is not None else "api"
        if entry.get("action") == AuditAction.CONSULTED.value else None,
    )


async def disclosure_report(
    audit: AuditRepository,
    messages: MessageRepository,
    pseudonyms: Pseudonymiser,
    keys: SubjectKeys,
    *,
    keep: Callable[[Mapping[str, Any]], bool] = lambda _: True,
) -> DisclosureReport:
    """Every entry about the person ``keys`` names, oldest first (DPA 2018 s.62, s.45).

    An entry is about them when it carries one of their pseudonyms, or when it names one of
    their messages without a subject: a read of an inbox lists the messages it showed, not
    whom they were about, and reading their message is consulting their data."""
    wanted = await pseudonyms_of(keys, messages, pseudonyms)
    size = await audit.size()
    senders: dict[str, str] = {}
    theirs: set[str] = set()
    rows: list[Disclosure] = []
    async for entry in read_entries(audit, 0, size):
        details = entry.get("details") or {}
        if not isinstance(details, Mapping):
            details = {}
        if entry.get("subject") in wanted:
            if entry.get("message_id"):
                theirs.add(str(entry["message_id"]))
        elif not theirs.intersection(_messages_named(entry, details)):
            continue
        if not keep(entry):
            continue
        if entry.get("message_id") and details.get("from"):
            senders[str(entry["message_id"])] = str(details["from"])
        rows.append(_disclosure(entry, senders))
    return DisclosureReport(tuple(rows), size, wanted)


def _messages_named(entry: Mapping[str, Any], details: Mapping[str, Any]) -> set[str]:
    named = {str(m) for m in details.get("message_ids", ()) if isinstance(m, str)}
    if entry.get("message_id"):
        named.add(str(entry["message_id"]))
    return named
