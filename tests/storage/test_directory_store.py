"""DirectoryStore on SQLite and PostgreSQL: every method, what it audits, the JSON and
timestamps it stores, and the guards in its writes (two racing revocations, grants or
import approvals: one wins, with one audit entry).

The races run twice on PostgreSQL: as the gateway runs it (SERIALIZABLE, where a conflict
aborts and reruns the loser, so even a read-then-write would pass), and at READ COMMITTED
with no rerun (``ReadCommitted``), where only a guard in the write itself keeps the second
change out."""

from __future__ import annotations

import asyncio
import functools
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

import pytest
from sqlalchemy import Connection, Engine, create_engine, insert, select, update

from gateway.domain.errors import AccessDenied, Conflict, NotFound
from gateway.domain.model import (
    ChannelSettings,
    Contact,
    DeliveryChannel,
    Grant,
    IdentityProvider,
    Organisation,
    OrgKind,
    Person,
    Role,
    SignIn,
)
from gateway.pipeline.audit import Pseudonymiser
from gateway.storage import migrations, schema
from gateway.storage.audit_log import AuditLogStore
from gateway.storage.base import DirectoryImport, DispatchPurpose
from gateway.storage.directory import DirectoryStore, edit_keys
from gateway.storage.engine import CommitObserver, Database, database_url

AT = datetime(2026, 12, 2, 10, 0, 0, 123456, tzinfo=UTC)
# The same moment an hour east: stored and read back as UTC.
AT_PLUS_ONE = datetime(2026, 12, 2, 11, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1)))
LATER = AT + timedelta(minutes=5)
KEY = {"kty": "EC", "crv": "P-256", "kid": "k1", "x": "eA", "y": "eQ"}
KEY2 = {**KEY, "kid": "k2"}

CJIT = Organisation(
    code="CJIT-NFK", kind=OrgKind.CJIT, name="Norfolk CJIT", area="Norfolk",
    spoc=Contact("Sam Spoc", phone="01603 000000", email="sam@cjit.example",
                 secure_email="sam@cjit.gcsx.example"),
    jwks=(KEY,), areas_served=("Norfolk", "Great Yarmouth"),
    delivery=ChannelSettings(DeliveryChannel.WEBHOOK, webhook_url="https://cjit.example/hook",
                             email_notices=False),
    identity_provider=IdentityProvider("https://login.cjit.example", "dipgw"),
)
POLICE = Organisation(code="POL-NFK", kind=OrgKind.POLICE, name="Norfolk Police",
                      area="Norfolk", spoc=Contact("Pat Police"))
JO = Person("cjit-nfk.jo", "CJIT-NFK", "Jo Bloggs", "jo@cjit.example",
            sign_in=SignIn("https://login.cjit.example", "jo"), jwks=(KEY2,))


T = TypeVar("T")


class ReadCommitted:
    """A ``Database`` on PostgreSQL at its default READ COMMITTED isolation, running each
    function once (PostgreSQL manual, "Transaction Isolation", 13.2.1: a second UPDATE of
    a row waits for the first to commit, then re-checks its WHERE on the row as updated).
    What it proves is that the guard is the write, not the isolation level."""

    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        self._engine: Engine = create_engine(
            database_url(url), isolation_level="READ COMMITTED", pool_size=8, max_overflow=0)
        self._executor = ThreadPoolExecutor(max_workers=8)

    async def open(self) -> None:
        migrations.upgrade(self._engine)

    async def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._engine.dispose()

    def observe_commits(self, observer: CommitObserver) -> None:
        raise NotImplementedError("ReadCommitted measures no commits; it only runs races")

    async def transaction(self, fn: Callable[[Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, functools.partial(self._run, fn))

    def _run(self, fn: Callable[[Connection], T]) -> T:
        with self._engine.begin() as conn:
            return fn(conn)


@pytest.fixture
async def read_committed(postgres_url: str) -> AsyncIterator[ReadCommitted]:
    db = ReadCommitted(postgres_url)
    await db.open()
    try:
        yield db
    finally:
        await db.close()


@pytest.fixture
def log(database: Database) -> AuditLogStore:
    return AuditLogStore(database, Pseudonymiser(b"k" * 32))


async def entries(log: AuditLogStore) -> list[dict[str, Any]]:
    return [json.loads(entry) for entry in await log.entries(0, await log.size())]


async def actions(log: AuditLogStore) -> list[str]:
    return [entry["action"] for entry in await entries(log)]


@pytest.fixture
async def store(database: Database) -> DirectoryStore:
    directory = DirectoryStore(database)
    await directory.upsert([CJIT, POLICE], AT)
    return directory


def _grant(grant_id: str = "g1", role: Role = Role.IG_LEAD) -> Grant:
    return Grant(grant_id, JO.id, role, "pol-nfk.admin", AT_PLUS_ONE, "covering leave")


def exactly(message: str) -> str:
    """A ``match`` pattern for this message and nothing else: errors read as before."""
    return f"^{re.escape(message)}$"


def assert_utc(moment: datetime | None) -> None:
    assert moment is not None and moment.tzinfo is UTC


# Organisations


async def test_organisations_round_trip_with_their_json(store: DirectoryStore) -> None:
    assert await store.all() == [CJIT, POLICE]


async def test_upsert_updates_what_a_list_says_and_keeps_the_rest(
    store: DirectoryStore, database: Database, log: AuditLogStore,
) -> None:
    listed = Organisation(
        code="CJIT-NFK", kind=OrgKind.CJIT, name="Norfolk & Waveney CJIT", area="Norfolk",
        spoc=Contact("Alex New"), areas_served=("Waveney",),
    )
    await store.upsert([listed], AT_PLUS_ONE + timedelta(hours=1))
    (cjit, _) = await store.all()
    assert (cjit.name, cjit.spoc, cjit.areas_served) == (
        listed.name, listed.spoc, listed.areas_served)
    # Its channel, keys and identity provider are changed only by their own edits.
    assert (cjit.delivery, cjit.jwks, cjit.identity_provider) == (
        CJIT.delivery, CJIT.jwks, CJIT.identity_provider)
    updated_at = await database.transaction(lambda conn: conn.execute(
        select(schema.organisations.c.updated_at)
        .where(schema.organisations.c.code == "CJIT-NFK")).scalar_one())
    assert_utc(updated_at)
    assert updated_at == AT + timedelta(hours=1)
    await store.upsert([], AT)
    assert await actions(log) == []


async def test_set_channel_retimes_pushes_still_owed(
    store: DirectoryStore, database: Database, log: AuditLogStore,
) -> None:
    def owe(conn: Connection) -> None:
        conn.execute(insert(schema.messages).values(
            message_id="m1", type="ra1_notice", sender="POL-NFK", route="enforcement",
            content_hash="sha256:0", document_json="{}", received_at=AT, submitted_by="POL-NFK"))
        conn.execute(insert(schema.deliveries).values(
            message_id="m1", recipient="CJIT-NFK", position=0, permitted=True,
            decision_json="{}"))
        conn.execute(insert(schema.dispatches), [
            {"message_id": "m1", "recipient": "CJIT-NFK", "channel": "webhook",
             "purpose": purpose, "target": "https://cjit.example/hook", "created_at": AT,
             "next_attempt_at": AT + timedelta(hours=1)}
            for purpose in (DispatchPurpose.DELIVERY.value, DispatchPurpose.NOTICE.value)
        ])

    await database.transaction(owe)
    pull = ChannelSettings(DeliveryChannel.PULL)
    await store.set_channel("CJIT-NFK", pull, "operator.ann", LATER, log)
    assert (await store.all())[0].delivery == pull
    due = await database.transaction(lambda conn: {
        row.purpose: row.next_attempt_at for row in conn.execute(
            select(schema.dispatches.c.purpose, schema.dispatches.c.next_attempt_at))})
    assert due == {"delivery": LATER, "notice": AT + timedelta(hours=1)}
    (entry,) = await entries(log)
    assert (entry["action"], entry["actor"], entry["details"]) == (
        "directory.updated", "operator.ann", {"delivery_channel": {"CJIT-NFK": pull.as_dict()}})
    with pytest.raises(NotFound, match=exactly("There is no organisation NOPE.")):
        await store.set_channel("NOPE", pull, "operator.ann", LATER, log)


async def test_set_identity_provider_and_remove_it(
    store: DirectoryStore, database: Database, log: AuditLogStore,
) -> None:
    provider = IdentityProvider("https://idp.police.example", "gateway")
    await store.set_identity_provider("POL-NFK", provider, "operator.ann", LATER, log)
    assert (await store.all())[1].identity_provider == provider
    await store.set_identity_provider("POL-NFK", None, "operator.ann", LATER, log)
    assert (await store.all())[1].identity_provider is None
    stored = await database.transaction(lambda conn: conn.execute(
        select(schema.organisations.c.identity_provider_json)
        .where(schema.organisations.c.code == "POL-NFK")).scalar_one())
    assert stored is None
    assert [e["details"] for e in await entries(log)] == [
        {"identity_provider": {"POL-NFK": provider.as_dict()}},
        {"identity_provider": {"POL-NFK": None}},
    ]
    with pytest.raises(NotFound):
        await store.set_identity_provider("NOPE", None, "operator.ann", LATER, log)


async def test_set_contact(
    store: DirectoryStore, log: AuditLogStore,
) -> None:
    contact = Contact("Kim New", secure_email="kim@police.pnn.example")
    await store.set_contact("POL-NFK", contact, "pol-nfk.admin", LATER, log)
    assert (await store.all())[1].spoc == contact
    assert [e["details"] for e in await entries(log)] == [
        {"contact": {"POL-NFK": contact.as_dict()}}]
    with pytest.raises(NotFound):
        await store.set_contact("NOPE", contact, "pol-nfk.admin", LATER, log)
    assert len(await entries(log)) == 1


# People and keys


async def test_a_person_round_trips_and_is_audited(
    store: DirectoryStore, database: Database, log: AuditLogStore,
) -> None:
    plain = Person("pol-nfk.pat", "POL-NFK", "Pat", "pat@police.example")
    await store.add_person(JO, "cjit-nfk.admin", AT_PLUS_ONE, log)
    await store.add_person(plain, "pol-nfk.admin", AT, log)
    assert await store.people() == [JO, plain]
    created = await database.transaction(lambda conn: conn.execute(
        select(schema.people.c.created_at).where(schema.people.c.id == JO.id)).scalar_one())
    assert_utc(created)
    assert created == AT
    (first, _) = await entries(log)
    assert (first["action"], first["actor"], first["details"]) == (
        "person.added", "cjit-nfk.admin",
        {"person": JO.id, "organisation": "CJIT-NFK", "keys": ["k2"]})


async def test_a_taken_id_or_sign_in_identity_is_a_conflict(
    store: DirectoryStore, log: AuditLogStore,
) -> None:
    await store.add_person(JO, "cjit-nfk.admin", AT, log)
    with pytest.raises(Conflict, match=exactly(f"There is already a person {JO.id}.")):
        await store.add_person(JO, "cjit-nfk.admin", AT, log)
    other = Person("cjit-nfk.other", "CJIT-NFK", "Other", "o@cjit.example", sign_in=JO.sign_in)
    taken = "That sign-in identity already belongs to another person."
    with pytest.raises(Conflict, match=exactly(taken)):
        await store.add_person(other, "cjit-nfk.admin", AT, log)
    assert await store.people() == [JO]
    assert await actions(log) == ["person.added"]


async def test_keys_are_added_to_people_and_systems_and_removed(
    store: DirectoryStore, log: AuditLogStore,
) -> None:
    await store.add_person(JO, "cjit-nfk.admin", AT, log)
    third = {**KEY, "kid": "k3"}
    await store.add_person_key(JO.id, third, "cjit-nfk.admin", AT, log)
    await store.add_system_key("POL-NFK", KEY, "pol-nfk.admin", AT, log)
    assert (await store.people())[0].jwks == (KEY2, third)
    assert (await store.all())[1].jwks == (KEY,)

    await store.remove_key(JO.id, "k2", "cjit-nfk.jo", AT, log)
    await store.remove_key("POL-NFK", "k1", "pol-nfk.admin", AT, log)
    assert (await store.people())[0].jwks == (third,)
    assert (await store.all())[1].jwks == ()

    assert [(e["action"], e["details"]) for e in (await entries(log))[1:]] == [
        ("person.key_added", {"person": JO.id, "kid": "k3"}),
        ("system.key_added", {"organisation": "POL-NFK", "kid": "k1"}),
        ("key.removed", {"holder": JO.id, "kid": "k2"}),
        ("key.removed", {"holder": "POL-NFK", "kid": "k1"}),
    ]


async def test_keys_of_unknown_holders_or_kids_are_not_found(
    store: DirectoryStore, log: AuditLogStore,
) -> None:
    with pytest.raises(NotFound, match=exactly("There is no person nobody.")):
        await store.add_person_key("nobody", KEY, "x", AT, log)
    with pytest.raises(NotFound, match=exactly("There is no organisation NOPE.")):
        await store.add_system_key("NOPE", KEY, "x", AT, log)
    with pytest.raises(NotFound, match=exactly("POL-NFK has no key k9.")):
        await store.remove_key("POL-NFK", "k9", "x", AT, log)
    with pytest.raises(NotFound, match=exactly("nobody has no key k1.")):
        await store.remove_key("nobody", "k1", "x", AT, log)
    assert await actions(log) == []


async def test_a_key_edit_writes_only_over_the_keys_it_read(
    store: DirectoryStore, database: Database,
) -> None:
    """The compare-and-set: keys changed between the read and the write (another process,
    below SERIALIZABLE) are not overwritten."""
    organisations = schema.organisations

    def racing(conn: Connection) -> bool | None:
        def edit(jwks: list[dict[str, Any]]) -> list[dict[str, Any]]:
            conn.execute(update(organisations).where(organisations.c.code == "CJIT-NFK")
                         .values(jwks_json="[]"))
            return [*jwks, KEY2]

        return edit_keys(conn, (organisations, organisations.c.code), "CJIT-NFK", edit)

    with pytest.raises(Conflict, match=exactly(
            "The keys of CJIT-NFK changed while this change was made; try again.")):
        await database.transaction(racing)
    assert (await store.all())[0].jwks == (KEY,)


# Grants


async def test_grants_round_trip_with_aware_timestamps(
    store: DirectoryStore, log: AuditLogStore,
) -> None:
    await store.add_person(JO, "cjit-nfk.admin", AT, log)
    given = _grant()
    await store.add_grant(given, log)
    (stored,) = await store.grants()
    assert stored == given
    assert_utc(stored.granted_at)
    (_, entry) = await entries(log)
    assert (entry["action"], entry["actor"], entry["details"]) == (
        "grant.given", "pol-nfk.admin",
        {"grant": "g1", "person": JO.id, "role": "ig_lead", "reason": "covering leave"})


async def test_an_active_role_is_granted_once(
    store: DirectoryStore, log: AuditLogStore,
) -> None:
    await store.add_person(JO, "cjit-nfk.admin", AT, log)
    await store.add_grant(_grant("g1"), log)
    with pytest.raises(Conflict, match=exactly(f"{JO.id} already holds ig_lead.")):
        await store.add_grant(_grant("g2"), log)
    await store.add_grant(_grant("g3", Role.AUDITOR), log)
    await store.revoke_grant("g1", "pol-nfk.admin", "back from leave", LATER, log)
    await store.add_grant(_grant("g4"), log)
    assert [(g.id, g.active) for g in await store.grants()] == [
        ("g1", False), ("g3", True), ("g4", True)]
    assert await actions(log) == [
        "person.added", "grant.given", "grant.given", "grant.revoked", "grant.given"]


async def test_revocation_is_recorded_once(
    store: DirectoryStore, log: AuditLogStore,
) -> None:
    await store.add_person(JO, "cjit-nfk.admin", AT, log)
    await store.add_grant(_grant(), log)
    revoked = await store.revoke_grant("g1", "pol-nfk.admin", "back from leave", LATER, log)
    assert (revoked.revoked_at, revoked.revoked_by, revoked.revocation_reason) == (
        LATER, "pol-nfk.admin", "back from leave")
    assert_utc(revoked.revoked_at)
    again = await store.revoke_grant("g1", "someone.else", "again", LATER + timedelta(1), log)
    assert again == revoked == (await store.grants())[0]
    with pytest.raises(NotFound, match=exactly("There is no grant g9.")):
        await store.revoke_grant("g9", "pol-nfk.admin", "no", LATER, log)
    (*_, entry) = await entries(log)
    assert (entry["action"], entry["actor"], entry["details"]) == (
        "grant.revoked", "pol-nfk.admin",
        {"grant": "g1", "person": JO.id, "role": "ig_lead", "reason": "back from leave"})
    assert await actions(log) == ["person.added", "grant.given", "grant.revoked"]


# Directory imports


def _proposal(import_id: str, proposed_at: datetime = AT) -> DirectoryImport:
    return DirectoryImport(
        id=import_id, csv_text="code,name\nPOL-SFK,Suffolk Police\n",
        plan={"added": [{"code": "POL-SFK", "name": "Suffolk Police"}],
              "changed": [{"code": "CJIT-NFK", "fields": ["name"]}], "unchanged": 1},
        proposed_by="operator.ann", proposed_at=proposed_at,
    )


SUFFOLK = Organisation("POL-SFK", OrgKind.POLICE, "Suffolk Police", "Suffolk", Contact("Lee"))


async def test_an_import_is_proposed_listed_and_applied(
    store: DirectoryStore, log: AuditLogStore,
) -> None:
    older, newer = _proposal("i1", AT_PLUS_ONE), _proposal("i2", LATER)
    await store.propose_import(older, log)
    await store.propose_import(newer, log)
    fetched = await store.get_import("i1")
    assert fetched == older
    assert fetched is not None and fetched.plan == older.plan
    assert_utc(fetched.proposed_at)
    assert await store.get_import("i9") is None
    assert await store.pending_imports(10) == [newer, older]
    assert await store.pending_imports(1) == [newer]

    applied = await store.apply_import("i1", [SUFFOLK], "operator.bo", LATER, log)
    assert (applied.approved_by, applied.approved_at) == ("operator.bo", LATER)
    assert_utc(applied.approved_at)
    assert applied == await store.get_import("i1")
    assert await store.pending_imports(10) == [newer]
    assert [o.code for o in await store.all()] == ["CJIT-NFK", "POL-NFK", "POL-SFK"]
    assert [(e["action"], e["actor"], e["details"]) for e in await entries(log)] == [
        ("directory.import_proposed", "operator.ann",
         {"import": "i1", "added": ["POL-SFK"], "changed": ["CJIT-NFK"]}),
        ("directory.import_proposed", "operator.ann",
         {"import": "i2", "added": ["POL-SFK"], "changed": ["CJIT-NFK"]}),
        ("directory.updated", "operator.bo", {"import": "i1", "applied": ["POL-SFK"]}),
    ]


async def test_an_import_is_applied_once_and_not_by_its_proposer(
    store: DirectoryStore, log: AuditLogStore,
) -> None:
    await store.propose_import(_proposal("i1"), log)
    with pytest.raises(AccessDenied, match=exactly(
            "A directory import needs a second person: its author cannot approve it.")):
        await store.apply_import("i1", [SUFFOLK], "operator.ann", LATER, log)
    await store.apply_import("i1", [SUFFOLK], "operator.bo", LATER, log)
    for approver in ("operator.cy", "operator.ann"):
        with pytest.raises(Conflict, match=exactly("Import i1 is unknown or already applied.")):
            await store.apply_import("i1", [SUFFOLK], approver, LATER, log)
    with pytest.raises(Conflict, match=exactly("Import i9 is unknown or already applied.")):
        await store.apply_import("i9", [SUFFOLK], "operator.bo", LATER, log)
    assert await actions(log) == ["directory.import_proposed", "directory.updated"]


# Races: one change wins, with one entry; the rest answer as a caller arriving second.


async def _stores(db: Database) -> tuple[DirectoryStore, AuditLogStore]:
    store, log = DirectoryStore(db), AuditLogStore(db, Pseudonymiser(b"k" * 32))
    await store.upsert([CJIT, POLICE], AT)
    await store.add_person(JO, "cjit-nfk.admin", AT, log)
    return store, log


async def race_revocations(db: Database) -> None:
    store, log = await _stores(db)
    await store.add_grant(_grant(), log)
    outcomes = await asyncio.gather(*(
        store.revoke_grant("g1", f"admin.{n}", f"reason {n}", LATER, log) for n in range(6)
    ))
    assert len(set(outcomes)) == 1
    assert outcomes[0].revoked_by in {f"admin.{n}" for n in range(6)}
    assert await actions(log) == ["person.added", "grant.given", "grant.revoked"]


async def race_grants(db: Database) -> None:
    store, log = await _stores(db)
    outcomes = await asyncio.gather(
        *(store.add_grant(_grant(f"g{n}"), log) for n in range(6)), return_exceptions=True)
    assert sum(outcome is None for outcome in outcomes) == 1
    assert all(isinstance(o, Conflict) for o in outcomes if o is not None)
    assert len(await store.grants()) == 1
    assert await actions(log) == ["person.added", "grant.given"]


async def race_import_approvals(db: Database) -> None:
    store, log = await _stores(db)
    await store.propose_import(_proposal("i1"), log)
    outcomes = await asyncio.gather(*(
        store.apply_import("i1", [SUFFOLK], f"operator.{n}", LATER, log) for n in range(6)
    ), return_exceptions=True)
    applied = [o for o in outcomes if isinstance(o, DirectoryImport)]
    assert len(applied) == 1
    assert all(isinstance(o, Conflict) for o in outcomes if o not in applied)
    assert await store.get_import("i1") == applied[0]
    assert await actions(log) == [
        "person.added", "directory.import_proposed", "directory.updated"]


RACES = [race_revocations, race_grants, race_import_approvals]


@pytest.mark.parametrize("race", RACES)
async def test_racing_changes_succeed_once(
    database: Database, race: Callable[[Database], Awaitable[None]],
) -> None:
    await race(database)


@pytest.mark.parametrize("race", RACES)
async def test_the_guard_is_the_write_not_the_isolation_level(
    read_committed: ReadCommitted, race: Callable[[Database], Awaitable[None]],
) -> None:
    await race(read_committed)
