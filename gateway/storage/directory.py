"""The directory: organisations, their people, the keys they sign with, the grants those
people hold, and SPOC-list imports approved by a second person. SQLAlchemy Core, one set
of queries for SQLite and PostgreSQL; every change is audited in its own transaction
(DPA 2018 s.62), as ``DirectoryRepository`` says.

Where a change depends on what is stored (a grant still active, an import not yet
approved, the keys as they were read), the condition is part of the write itself (an
``UPDATE ... WHERE <condition> RETURNING``, or an insert that a unique index refuses), so
two gateway processes on one PostgreSQL cannot both succeed: the loser's write finds no
row and it answers as a caller arriving second always did. On SQLite, where one operation
runs at a time, outcomes are those of ``gateway.storage.sqlite.SqliteDirectory``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Connection, Row, Table, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from gateway.domain.errors import AccessDenied, Conflict, NotFound
from gateway.domain.model import (
    ChannelSettings,
    Contact,
    Grant,
    IdentityProvider,
    Organisation,
    OrgKind,
    Person,
    Role,
    SignIn,
)
from gateway.pipeline.audit import AuditAction, AuditEvent, AuditLog
from gateway.storage import schema
from gateway.storage.base import DirectoryImport, DirectoryRepository, DispatchPurpose
from gateway.storage.engine import Database
from gateway.storage.rows import insert_ignoring_duplicates, json_text

_organisations = schema.organisations
_people = schema.people
_grants = schema.grants
_imports = schema.directory_imports

_GRANT_COLUMNS = (
    _grants.c.id, _grants.c.person_id, _grants.c.role, _grants.c.granted_by,
    _grants.c.granted_at, _grants.c.reason, _grants.c.revoked_at, _grants.c.revoked_by,
    _grants.c.revocation_reason,
)
_IMPORT_COLUMNS = (
    _imports.c.id, _imports.c.csv_text, _imports.c.plan_json, _imports.c.proposed_by,
    _imports.c.proposed_at, _imports.c.approved_by, _imports.c.approved_at,
)
# What a SPOC-list import or ``upsert`` changes of an organisation already listed; its
# delivery channel, keys and identity provider are its own and stay.
_IMPORTED_COLUMNS = ("kind", "name", "area", "spoc_json", "updated_at", "areas_served_json")

# Where keys are kept: a person's (people.id) and an organisation's systems'
# (organisations.code), as (table, key column).
KeyHolder = tuple[Table, Column[str]]
_PERSON_KEYS: KeyHolder = (_people, _people.c.id)
_SYSTEM_KEYS: KeyHolder = (_organisations, _organisations.c.code)

Jwks = list[dict[str, Any]]
# A result row of any width (Row is generic in its column types).
AnyRow = Row[*tuple[Any, ...]]


class DirectoryStore(DirectoryRepository):
    """``DirectoryRepository`` on ``gateway.storage.engine.Database``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def all(self) -> list[Organisation]:
        def read(conn: Connection) -> list[Organisation]:
            rows = conn.execute(select(_organisations).order_by(_organisations.c.code))
            return [_organisation(row) for row in rows]

        return await self._db.transaction(read)

    async def upsert(self, organisations: Sequence[Organisation], at: datetime) -> None:
        def write(conn: Connection) -> None:
            _upsert_organisations(conn, organisations, at)

        await self._db.transaction(write)

    async def add_organisation(
        self, org: Organisation, actor: str, at: datetime, audit: AuditLog
    ) -> bool:
        def write(conn: Connection) -> bool:
            if not insert_ignoring_duplicates(conn, _organisations, _organisation_row(org, at)):
                return False
            audit.append(conn, AuditEvent(
                action=AuditAction.DIRECTORY_UPDATED, at=at, actor=actor,
                details={"added": {org.code: org.kind.value}},
            ))
            return True

        return await self._db.transaction(write)

    async def set_channel(
        self, code: str, channel: ChannelSettings, actor: str, at: datetime, audit: AuditLog
    ) -> None:
        def write(conn: Connection) -> None:
            _update_organisation(
                conn, code, delivery_json=json_text(channel.as_dict()), updated_at=at)
            # Pushes still owed follow the new choice at once, not at their next retry.
            conn.execute(
                update(schema.dispatches)
                .where(
                    schema.dispatches.c.recipient == code,
                    schema.dispatches.c.purpose == DispatchPurpose.DELIVERY.value,
                    schema.dispatches.c.done_at.is_(None),
                )
                .values(next_attempt_at=at)
            )
            audit.append(conn, AuditEvent(
                action=AuditAction.DIRECTORY_UPDATED, at=at, actor=actor,
                details={"delivery_channel": {code: channel.as_dict()}},
            ))

        await self._db.transaction(write)

    async def set_signing_required(
        self, code: str, required: bool, actor: str, at: datetime, audit: AuditLog
    ) -> None:
        def write(conn: Connection) -> None:
            _update_organisation(conn, code, signed_messages_required=required, updated_at=at)
            audit.append(conn, AuditEvent(
                action=AuditAction.DIRECTORY_UPDATED, at=at, actor=actor,
                details={"signed_messages_required": {code: required}},
            ))

        await self._db.transaction(write)

    async def set_identity_provider(
        self, code: str, provider: IdentityProvider | None, actor: str, at: datetime,
        audit: AuditLog,
    ) -> None:
        def write(conn: Connection) -> None:
            _update_organisation(
                conn, code,
                identity_provider_json=json_text(provider.as_dict()) if provider else None,
                updated_at=at,
            )
            audit.append(conn, AuditEvent(
                action=AuditAction.DIRECTORY_UPDATED, at=at, actor=actor,
                details={"identity_provider": {code: provider.as_dict() if provider else None}},
            ))

        await self._db.transaction(write)

    async def set_contact(
        self, code: str, contact: Contact, actor: str, at: datetime, audit: AuditLog
    ) -> None:
        def write(conn: Connection) -> None:
            _update_organisation(conn, code, spoc_json=json_text(contact.as_dict()), updated_at=at)
            audit.append(conn, AuditEvent(
                action=AuditAction.DIRECTORY_UPDATED, at=at, actor=actor,
                details={"contact": {code: contact.as_dict()}},
            ))

        await self._db.transaction(write)

    async def people(self) -> list[Person]:
        def read(conn: Connection) -> list[Person]:
            rows = conn.execute(select(_people).order_by(_people.c.id))
            return [
                Person(
                    id=row.id, org_code=row.org_code, name=row.name, email=row.email,
                    sign_in=(SignIn(row.sign_in_issuer, row.sign_in_subject)
                             if row.sign_in_issuer and row.sign_in_subject else None),
                    jwks=tuple(json.loads(row.jwks_json)),
                )
                for row in rows
            ]

        return await self._db.transaction(read)

    async def grants(self) -> list[Grant]:
        def read(conn: Connection) -> list[Grant]:
            rows = conn.execute(
                select(*_GRANT_COLUMNS).order_by(_grants.c.granted_at, _grants.c.id))
            return [_grant(row) for row in rows]

        return await self._db.transaction(read)

    async def add_person(self, person: Person, actor: str, at: datetime, audit: AuditLog) -> None:
        await self._db.transaction(lambda conn: _insert_person(conn, person, actor, at, audit))

    async def add_people(
        self, people: Sequence[tuple[Person, Sequence[Grant]]], actor: str, at: datetime,
        audit: AuditLog,
    ) -> None:
        def write(conn: Connection) -> None:
            for person, grants in people:
                _insert_person(conn, person, actor, at, audit)
                for grant in grants:
                    _insert_grant(conn, grant, audit)

        await self._db.transaction(write)

    async def add_person_key(
        self, person_id: str, jwk: Mapping[str, Any], actor: str, at: datetime, audit: AuditLog
    ) -> None:
        def write(conn: Connection) -> None:
            if edit_keys(conn, _PERSON_KEYS, person_id, lambda jwks: [*jwks, dict(jwk)]) is None:
                raise NotFound(f"There is no person {person_id}.")
            audit.append(conn, AuditEvent(
                action=AuditAction.PERSON_KEY_ADDED, at=at, actor=actor,
                details={"person": person_id, "kid": str(jwk.get("kid"))},
            ))

        await self._db.transaction(write)

    async def add_system_key(
        self, org_code: str, jwk: Mapping[str, Any], actor: str, at: datetime, audit: AuditLog
    ) -> None:
        def write(conn: Connection) -> None:
            if edit_keys(conn, _SYSTEM_KEYS, org_code, lambda jwks: [*jwks, dict(jwk)]) is None:
                raise NotFound(f"There is no organisation {org_code}.")
            audit.append(conn, AuditEvent(
                action=AuditAction.SYSTEM_KEY_ADDED, at=at, actor=actor,
                details={"organisation": org_code, "kid": str(jwk.get("kid"))},
            ))

        await self._db.transaction(write)

    async def remove_key(
        self, holder: str, kid: str, actor: str, at: datetime, audit: AuditLog
    ) -> None:
        def write(conn: Connection) -> None:
            def without(jwks: Jwks) -> Jwks:
                return [k for k in jwks if k.get("kid") != kid]

            removed = any(
                edit_keys(conn, keys, holder, without) for keys in (_PERSON_KEYS, _SYSTEM_KEYS)
            )
            if not removed:
                raise NotFound(f"{holder} has no key {kid}.")
            audit.append(conn, AuditEvent(
                action=AuditAction.KEY_REMOVED, at=at, actor=actor,
                details={"holder": holder, "kid": kid},
            ))

        await self._db.transaction(write)

    async def add_grant(self, grant: Grant, audit: AuditLog) -> None:
        await self._db.transaction(lambda conn: _insert_grant(conn, grant, audit))

    async def revoke_grant(
        self, grant_id: str, by: str, reason: str, at: datetime, audit: AuditLog
    ) -> Grant:
        def write(conn: Connection) -> Grant:
            revoked = conn.execute(
                update(_grants)
                .where(_grants.c.id == grant_id, _grants.c.revoked_at.is_(None))
                .values(revoked_at=at, revoked_by=by, revocation_reason=reason)
                .returning(*_GRANT_COLUMNS)
            ).first()
            if revoked is None:
                # Unknown, or revoked already (perhaps a moment ago by another process):
                # the grant as it stands, with no second entry.
                row = conn.execute(
                    select(*_GRANT_COLUMNS).where(_grants.c.id == grant_id)).first()
                if row is None:
                    raise NotFound(f"There is no grant {grant_id}.")
                return _grant(row)
            grant = _grant(revoked)
            audit.append(conn, AuditEvent(
                action=AuditAction.GRANT_REVOKED, at=at, actor=by,
                details={"grant": grant.id, "person": grant.person_id,
                         "role": grant.role.value, "reason": reason},
            ))
            return grant

        return await self._db.transaction(write)

    async def propose_import(self, proposal: DirectoryImport, audit: AuditLog) -> None:
        def write(conn: Connection) -> None:
            conn.execute(insert(_imports).values(
                id=proposal.id, csv_text=proposal.csv_text,
                plan_json=json_text(dict(proposal.plan)), proposed_by=proposal.proposed_by,
                proposed_at=proposal.proposed_at,
            ))
            audit.append(conn, AuditEvent(
                action=AuditAction.DIRECTORY_IMPORT_PROPOSED, at=proposal.proposed_at,
                actor=proposal.proposed_by,
                details={"import": proposal.id,
                         "added": [o["code"] for o in proposal.plan.get("added", [])],
                         "changed": [c["code"] for c in proposal.plan.get("changed", [])]},
            ))

        await self._db.transaction(write)

    async def get_import(self, import_id: str) -> DirectoryImport | None:
        def read(conn: Connection) -> DirectoryImport | None:
            row = conn.execute(select(*_IMPORT_COLUMNS).where(_imports.c.id == import_id)).first()
            return _directory_import(row) if row else None

        return await self._db.transaction(read)

    async def pending_imports(self, limit: int) -> list[DirectoryImport]:
        def read(conn: Connection) -> list[DirectoryImport]:
            rows = conn.execute(
                select(*_IMPORT_COLUMNS)
                .where(_imports.c.approved_by.is_(None))
                .order_by(_imports.c.proposed_at.desc())
                .limit(limit)
            )
            return [_directory_import(row) for row in rows]

        return await self._db.transaction(read)

    async def apply_import(
        self,
        import_id: str,
        organisations: Sequence[Organisation],
        approver: str,
        at: datetime,
        audit: AuditLog,
    ) -> DirectoryImport:
        def write(conn: Connection) -> DirectoryImport:
            # The two-person rule and "not applied yet" are both in the write (as
            # PolicyVersionRepository.approve keeps them), so a second approver racing,
            # or the proposer approving from another process, finds no row to approve.
            approved = conn.execute(
                update(_imports)
                .where(
                    _imports.c.id == import_id,
                    _imports.c.approved_by.is_(None),
                    _imports.c.proposed_by != approver,
                )
                .values(approved_by=approver, approved_at=at)
                .returning(*_IMPORT_COLUMNS)
            ).first()
            if approved is None:
                proposal = conn.execute(
                    select(*_IMPORT_COLUMNS).where(_imports.c.id == import_id)).first()
                if proposal is not None and proposal.approved_by is None:
                    # Worded as gateway.pipeline.access.check_second_person words it.
                    raise AccessDenied("A directory import needs a second person: its "
                                       "author cannot approve it.")
                raise Conflict(f"Import {import_id} is unknown or already applied.")
            _upsert_organisations(conn, organisations, at)
            audit.append(conn, AuditEvent(
                action=AuditAction.DIRECTORY_UPDATED, at=at, actor=approver,
                details={"import": import_id,
                         "applied": sorted(o.code for o in organisations)},
            ))
            return _directory_import(approved)

        return await self._db.transaction(write)


def _upsert_organisations(
    conn: Connection, organisations: Sequence[Organisation], at: datetime
) -> None:
    """Add or update organisations in one ``INSERT ... ON CONFLICT (code) DO UPDATE``
    (SQLite and PostgreSQL spell it alike); an existing one keeps its delivery channel,
    keys and identity provider, which are changed only by their own audited edits."""
    if not organisations:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(_organisations)
    statement = statement.on_conflict_do_update(
        index_elements=[_organisations.c.code],
        set_={name: statement.excluded[name] for name in _IMPORTED_COLUMNS},
    )
    conn.execute(statement, [_organisation_row(org, at) for org in organisations])


def _organisation_row(org: Organisation, at: datetime) -> dict[str, Any]:
    return {
        "code": org.code,
        "kind": org.kind.value,
        "name": org.name,
        "area": org.area,
        "spoc_json": json_text(org.spoc.as_dict()),
        "jwks_json": json_text(list(org.jwks)),
        "updated_at": at,
        "areas_served_json": json_text(list(org.areas_served)),
        "delivery_json": json_text(org.delivery.as_dict()),
        "identity_provider_json": (
            json_text(org.identity_provider.as_dict()) if org.identity_provider else None),
        "signed_messages_required": org.signed_messages_required,
    }


def edit_keys(
    conn: Connection, holder_keys: KeyHolder, holder: str, edit: Callable[[Jwks], Jwks],
) -> bool | None:
    """Apply ``edit`` to a holder's JWKs: None if there is no such holder, else whether the
    keys changed (and were written).

    The JWKs are one JSON text, edited here rather than in SQL (PostgreSQL's jsonb would
    reorder the canonical text, and SQLite's JSON functions differ), so the write is a
    compare-and-set: it replaces only the text that was read. Should another transaction
    have changed the keys in between (possible only below SERIALIZABLE, where PostgreSQL
    would otherwise abort and rerun this one), no key is lost: ``Conflict`` asks the
    caller to try again.
    """
    table, key = holder_keys
    jwks_json = table.c.jwks_json
    stored = conn.execute(select(jwks_json).where(key == holder)).scalar_one_or_none()
    if stored is None:
        return None
    jwks: Jwks = json.loads(stored)
    edited = edit(jwks)
    if edited == jwks:
        return False
    written = conn.execute(
        update(table).where(key == holder, jwks_json == stored)
        .values(jwks_json=json_text(edited)).returning(key)
    ).first()
    if written is None:
        raise Conflict(f"The keys of {holder} changed while this change was made; try again.")
    return True


def _insert_person(
    conn: Connection, person: Person, actor: str, at: datetime, audit: AuditLog
) -> None:
    """Insert a person and audit it; ``Conflict`` if the id or sign-in identity is taken."""
    sign_in = person.sign_in
    # The primary key and UNIQUE (sign_in_issuer, sign_in_subject) refuse a taken
    # id or identity in the insert itself; which one refused is read afterwards.
    inserted = insert_ignoring_duplicates(conn, _people, {
        "id": person.id, "org_code": person.org_code, "name": person.name,
        "email": person.email,
        "sign_in_issuer": sign_in.issuer if sign_in else None,
        "sign_in_subject": sign_in.subject if sign_in else None,
        "jwks_json": json_text(list(person.jwks)), "created_at": at,
    })
    if not inserted:
        if conn.execute(select(_people.c.id).where(_people.c.id == person.id)).first():
            raise Conflict(f"There is already a person {person.id}.")
        raise Conflict("That sign-in identity already belongs to another person.")
    audit.append(conn, AuditEvent(
        action=AuditAction.PERSON_ADDED, at=at, actor=actor,
        details={"person": person.id, "organisation": person.org_code,
                 "keys": [str(k.get("kid")) for k in person.jwks]},
    ))


def _insert_grant(conn: Connection, grant: Grant, audit: AuditLog) -> None:
    """Insert a grant and audit it; ``Conflict`` if the person already holds the role."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    # The partial unique index grants_active (one active grant of a role per
    # person) is the guard: an insert it refuses is skipped, not an error that
    # would abort a PostgreSQL transaction. A repeated grant id still fails loudly.
    statement = (
        dialect.insert(_grants)
        .values(id=grant.id, person_id=grant.person_id, role=grant.role.value,
                granted_by=grant.granted_by, granted_at=grant.granted_at,
                reason=grant.reason)
        .on_conflict_do_nothing(
            index_elements=[_grants.c.person_id, _grants.c.role],
            index_where=_grants.c.revoked_at.is_(None),
        )
        .returning(_grants.c.id)
    )
    if conn.execute(statement).first() is None:
        raise Conflict(f"{grant.person_id} already holds {grant.role.value}.")
    audit.append(conn, AuditEvent(
        action=AuditAction.GRANT_GIVEN, at=grant.granted_at, actor=grant.granted_by,
        details={"grant": grant.id, "person": grant.person_id,
                 "role": grant.role.value, "reason": grant.reason},
    ))


def _update_organisation(conn: Connection, code: str, **values: Any) -> None:
    """One audited edit of an organisation's own settings: a single UPDATE, so the last
    of two racing edits wins whole and each is audited; ``NotFound`` for an unknown one."""
    updated = conn.execute(
        update(_organisations).where(_organisations.c.code == code).values(**values)
        .returning(_organisations.c.code)
    ).first()
    if updated is None:
        raise NotFound(f"There is no organisation {code}.")


def _organisation(row: AnyRow) -> Organisation:
    provider = row.identity_provider_json
    return Organisation(
        code=row.code,
        kind=OrgKind(row.kind),
        name=row.name,
        area=row.area,
        spoc=Contact(**json.loads(row.spoc_json)),
        jwks=tuple(json.loads(row.jwks_json)),
        areas_served=tuple(json.loads(row.areas_served_json)),
        delivery=ChannelSettings.from_dict(json.loads(row.delivery_json)),
        identity_provider=IdentityProvider.from_dict(json.loads(provider) if provider else None),
        signed_messages_required=bool(row.signed_messages_required),
    )


def _grant(row: AnyRow) -> Grant:
    return Grant(
        id=row.id, person_id=row.person_id, role=Role(row.role), granted_by=row.granted_by,
        granted_at=row.granted_at, reason=row.reason, revoked_at=row.revoked_at,
        revoked_by=row.revoked_by, revocation_reason=row.revocation_reason,
    )


def _directory_import(row: AnyRow) -> DirectoryImport:
    return DirectoryImport(
        id=row.id, csv_text=row.csv_text, plan=json.loads(row.plan_json),
        proposed_by=row.proposed_by, proposed_at=row.proposed_at,
        approved_by=row.approved_by, approved_at=row.approved_at,
    )
