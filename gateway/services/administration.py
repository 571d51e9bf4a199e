"""Running the directory: people, the keys they and their organisation's systems sign with,
the roles granted to them, and SPOC-list imports approved by a second operator person.

Each use case checks authority through ``gateway.pipeline.access`` (the one table), validates what
it was sent, and makes its change with the audit entry in the same transaction. Grants are
modelled on GOV.UK Notify (team members' permissions set by the service's own managers, a
separate platform-admin role) and X-Road's security-server roles.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import jwt

from gateway import keys
from gateway.domain.errors import (
    AccessDenied,
    ConfigurationError,
    Conflict,
    InvalidMessage,
    MalformedRequest,
    NotFound,
    Violation,
)
from gateway.domain.model import (
    Contact,
    Grant,
    IdentityProvider,
    Organisation,
    OrgKind,
    Person,
    Principal,
    Role,
    SignIn,
)
from gateway.pipeline import access
from gateway.pipeline.access import Action
from gateway.pipeline.audit import AuditLog
from gateway.pipeline.directory_import import ORG_CODE, parse_spoc_csv, plan
from gateway.services.directory import BOOTSTRAP, Directory
from gateway.storage.base import DirectoryImport

PERSON_ID = re.compile(r"[a-z0-9](?:[a-z0-9.-]{0,62}[a-z0-9])?")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,63}")
_PHONE = re.compile(r"\+?[0-9][0-9 ()-]{5,30}")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]{1,200}")
MAX_REASON_CHARS = 500
MAX_NAME_CHARS = 200
_PERSON_FIELDS = frozenset({"id", "name", "email", "sign_in", "keys"})
_PUBLIC_KEY_MEMBERS = {
    "OKP": frozenset({"kty", "crv", "x"}), "EC": frozenset({"kty", "crv", "x", "y"}),
}


def reason_from(body: Any, what: str) -> str:
    """The required ``reason`` of a grant, revocation or approval (audited)."""
    reason = body.get("reason") if isinstance(body, Mapping) else None
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON_CHARS:
        raise MalformedRequest(
            f"Say why you {what}: {{'reason': '…'}}, 1 to {MAX_REASON_CHARS} characters."
        )
    return reason.strip()


def public_key(raw: Any, pointer: str = "") -> dict[str, Any]:
    """A public signing key (RFC 7517 JWK, Ed25519 or P-256), with the RFC 7638 thumbprint
    as its ``kid``. A private key is refused: the gateway must never hold one of yours."""
    if not isinstance(raw, Mapping):
        raise InvalidMessage([Violation(pointer, "A key is a JSON Web Key object.")])
    if "d" in raw:
        raise InvalidMessage([Violation(
            f"{pointer}/d", "This is a private key; send only the public part (no 'd')."
        )])
    members = _PUBLIC_KEY_MEMBERS.get(str(raw.get("kty")))
    if members is None:
        raise InvalidMessage([Violation(f"{pointer}/kty", "kty must be OKP or EC.")])
    jwk: dict[str, Any] = {m: raw.get(m) for m in members}
    try:
        if not all(isinstance(jwk[m], str) and _BASE64URL.fullmatch(jwk[m])
                   for m in members - {"kty", "crv"}):
            raise ValueError("coordinates must be base64url")
        algorithm = keys.algorithm_for(jwk)
        jwt.PyJWK(dict(jwk), algorithm=algorithm)
    except (ValueError, ConfigurationError, jwt.PyJWKError, jwt.InvalidKeyError):
        raise InvalidMessage([Violation(
            pointer, "Not a usable public key: send an Ed25519 (OKP) or P-256 (EC) JWK."
        )]) from None
    return {**jwk, "kid": keys.thumbprint(jwk), "alg": algorithm, "use": "sig"}


@dataclass(frozen=True, slots=True)
class Administration:
    directory: Directory
    audit: AuditLog
    clock: Callable[[], datetime]

    def organisation(self, code: str) -> Organisation:
        org = self.directory.get(code)
        if org is None:
            raise NotFound(f"There is no organisation {code}.")
        return org

    def person(self, person_id: str) -> Person:
        person = self.directory.person(person_id)
        if person is None:
            raise NotFound(f"There is no person {person_id}.")
        return person

    def people_of(self, principal: Principal, code: str) -> list[Person]:
        self.organisation(code)
        access.authorise(principal, Action.VIEW_PEOPLE, code)
        return sorted(self.directory.people_of(code), key=lambda p: p.id)

    def person_view(self, person: Person) -> dict[str, Any]:
        return {
            **person.public_view(),
            "roles": sorted(r.value for r in self.directory.roles_of(person.id)),
            "grants": [g.as_dict() for g in self.directory.grants_of(person.id)],
        }

    def see_person(self, principal: Principal, person_id: str) -> Person:
        """A person's record: for themselves, or whoever may see their organisation's people."""
        person = self.person(person_id)
        if principal.person is None or principal.person.id != person.id:
            access.authorise(principal, Action.VIEW_PEOPLE, person.org_code)
        return person

    async def add_person(self, principal: Principal, code: str, body: Any) -> Person:
        org = self.organisation(code)
        access.authorise(principal, Action.MANAGE_PEOPLE, code)
        person = _person_from(org, body)
        for jwk in person.jwks:
            self._refuse_registered(jwk)
        await self.directory.change(self.directory.repository.add_person(
            person, principal.actor, self.clock(), self.audit))
        return person

    async def set_contact(self, principal: Principal, code: str, body: Any) -> Organisation:
        self.organisation(code)
        access.authorise(principal, Action.EDIT_CONTACT, code)
        await self.directory.change(self.directory.repository.set_contact(
            code, _contact_from(body), principal.actor, self.clock(), self.audit))
        return self.organisation(code)

    async def set_identity_provider(
        self, principal: Principal, code: str, body: Any
    ) -> Organisation:
        """Register the OpenID Provider the organisation's people sign in to the console
        with ({"issuer": …, "client_id": …}), or remove it (None); audited. Whoever may
        manage the organisation's people may: a provider vouches for exactly them."""
        self.organisation(code)
        access.authorise(principal, Action.MANAGE_PEOPLE, code)
        provider = None if body is None else _identity_provider_from(body)
        await self.directory.change(self.directory.repository.set_identity_provider(
            code, provider, principal.actor, self.clock(), self.audit))
        return self.organisation(code)

    async def add_person_key(self, principal: Principal, person_id: str, body: Any) -> Person:
        person = self.person(person_id)
        access.authorise(principal, Action.MANAGE_PEOPLE, person.org_code)
        jwk = public_key(body)
        self._refuse_registered(jwk)
        await self.directory.change(self.directory.repository.add_person_key(
            person.id, jwk, principal.actor, self.clock(), self.audit))
        return self.person(person_id)

    async def remove_person_key(self, principal: Principal, person_id: str, kid: str) -> Person:
        """A person may withdraw their own key (a lost laptop) at once; so may whoever
        manages their organisation's people."""
        person = self.person(person_id)
        if principal.person is None or principal.person.id != person.id:
            access.authorise(principal, Action.MANAGE_PEOPLE, person.org_code)
        await self.directory.change(self.directory.repository.remove_key(
            person.id, kid, principal.actor, self.clock(), self.audit))
        return self.person(person_id)

    async def remove_system_key(self, principal: Principal, code: str, kid: str) -> Organisation:
        self.organisation(code)
        access.authorise(principal, Action.REGISTER_SYSTEM_KEY, code)
        await self.directory.change(self.directory.repository.remove_key(
            code, kid, principal.actor, self.clock(), self.audit))
        return self.organisation(code)

    async def require_signed_messages(
        self, principal: Principal, code: str, body: Any
    ) -> Organisation:
        """``{"signed_messages_required": true}``: from now on the gateway refuses the
        organisation's unsigned messages (false accepts them again); audited. Whoever
        may register its systems' keys may, since those keys are what sign."""
        self.organisation(code)
        access.authorise(principal, Action.REGISTER_SYSTEM_KEY, code)
        required = body.get("signed_messages_required") if isinstance(body, Mapping) else None
        if not isinstance(required, bool):
            raise InvalidMessage([Violation(
                "/signed_messages_required",
                "Send {\"signed_messages_required\": true} or false.",
            )])
        await self.directory.change(self.directory.repository.set_signing_required(
            code, required, principal.actor, self.clock(), self.audit))
        return self.organisation(code)

    async def add_system_key(self, principal: Principal, code: str, body: Any) -> Organisation:
        self.organisation(code)
        access.authorise(principal, Action.REGISTER_SYSTEM_KEY, code)
        jwk = public_key(body)
        self._refuse_registered(jwk)
        await self.directory.change(self.directory.repository.add_system_key(
            code, jwk, principal.actor, self.clock(), self.audit))
        return self.organisation(code)

    async def grant(self, principal: Principal, person_id: str, body: Any) -> Grant:
        person = self.person(person_id)
        raw_role = body.get("role") if isinstance(body, Mapping) else None
        try:
            role = Role(raw_role) if isinstance(raw_role, str) else None
        except ValueError:
            role = None
        if role is None:
            names = ", ".join(r.value for r in Role if r is not Role.SYSTEM)
            raise MalformedRequest(f"Say which role to grant: {{'role': one of {names}}}.")
        access.check_grant(principal, person, self.organisation(person.org_code), role)
        reason = reason_from(body, "grant it")
        granted = Grant(
            id=str(uuid.uuid4()), person_id=person.id, role=role,
            granted_by=principal.actor, granted_at=self.clock(), reason=reason,
        )
        await self.directory.change(self.directory.repository.add_grant(granted, self.audit))
        return granted

    async def revoke(self, principal: Principal, grant_id: str, body: Any) -> Grant:
        existing = self.directory.grant(grant_id)
        if existing is None:
            raise NotFound(f"There is no grant {grant_id}.")
        person = self.person(existing.person_id)
        access.check_grant(principal, person, self.organisation(person.org_code), existing.role)
        reason = reason_from(body, "revoke it")
        if not existing.active:
            return existing
        return await self.directory.change(self.directory.repository.revoke_grant(
            grant_id, principal.actor, reason, self.clock(), self.audit))

    async def preview_import(self, principal: Principal, csv_text: str) -> dict[str, Any]:
        access.authorise(principal, Action.IMPORT_DIRECTORY)
        return plan(self.directory.all(), parse_spoc_csv(csv_text)).as_dict()

    async def propose_import(self, principal: Principal, csv_text: str) -> DirectoryImport:
        """Record an import for a second operator person to approve; nothing changes yet."""
        access.authorise(principal, Action.IMPORT_DIRECTORY)
        if principal.person is None:
            raise AccessDenied("Only a person proposes a directory import.")
        proposal = DirectoryImport(
            id=str(uuid.uuid4()), csv_text=csv_text,
            plan=plan(self.directory.all(), parse_spoc_csv(csv_text)).as_dict(),
            proposed_by=principal.person.id, proposed_at=self.clock(),
        )
        await self.directory.repository.propose_import(proposal, self.audit)
        return proposal

    async def approve_import(self, principal: Principal, import_id: str) -> DirectoryImport:
        """Apply a proposed import on a second operator person's approval, provided the
        directory has not moved since: the approver approves exactly what they were shown."""
        access.authorise(principal, Action.IMPORT_DIRECTORY)
        proposal = await self.directory.repository.get_import(import_id)
        if proposal is None:
            raise NotFound(f"There is no directory import {import_id}.")
        access.check_second_person(principal, proposal.proposed_by, "a directory import")
        assert principal.person is not None
        if proposal.approved_by is not None:
            raise Conflict(f"Import {import_id} was already applied.")
        changes = plan(self.directory.all(), parse_spoc_csv(proposal.csv_text))
        if changes.as_dict() != proposal.plan:
            raise Conflict(
                "The directory changed since this import was proposed; preview and propose "
                "it again."
            )
        return await self.directory.change(self.directory.repository.apply_import(
            import_id, changes.to_apply(), principal.person.id, self.clock(), self.audit))

    def _refuse_registered(self, jwk: Mapping[str, Any]) -> None:
        if self.directory.key(str(jwk["kid"])) is not None:
            raise Conflict("That key is already registered; every actor has keys of its own.")


async def bootstrap_operator(
    directory: Directory,
    audit: AuditLog,
    operator_org: Organisation,
    body: Mapping[str, Any],
    at: datetime,
) -> Person:
    """The first operator person of a new installation, with ``directory_admin``.

    Run on the gateway's own host (``dipgw operator bootstrap``): access to the data
    directory is the root of trust, as the initial configuration of an X-Road security
    server is. Refused once anyone holds ``directory_admin``; after that, operators grant
    it to each other through the API.
    """
    if directory.holders_of(Role.DIRECTORY_ADMIN):
        raise Conflict("An operator already holds directory_admin; ask them to grant it.")
    existing = directory.get(operator_org.code)
    if existing is not None and existing.kind is not OrgKind.OPERATOR:
        raise Conflict(f"{operator_org.code} is a {existing.kind.value} organisation.")
    if existing is None:
        await directory.save([operator_org], at)
    person = _person_from(operator_org, body)
    if not person.jwks:
        raise InvalidMessage([Violation("/keys", "The first operator needs a public key.")])
    grant = Grant(str(uuid.uuid4()), person.id, Role.DIRECTORY_ADMIN, BOOTSTRAP, at,
                  "first operator of this installation")
    await directory.change(
        directory.repository.add_people([(person, (grant,))], BOOTSTRAP, at, audit))
    return person


async def register_oversight_body(
    directory: Directory, audit: AuditLog, oversight: Organisation, at: datetime
) -> bool:
    """Add the programme's oversight body to a production directory (``dipgw oversight
    add``); False if it is there already.

    Only an oversight body's people can hold ``auditor`` (``gateway.pipeline.access``),
    and a SPOC list never creates one, so without this a production installation had no
    one who could read or export the audit log. Run on the gateway's own host, as the
    operator's bootstrap is; its people are then added, and granted ``auditor``, by an
    operator through the API or console. Refused for a code another kind holds.
    """
    if oversight.kind is not OrgKind.OVERSIGHT:
        raise InvalidMessage([Violation("/kind", "Only an oversight body is added this way.")])
    if not ORG_CODE.match(oversight.code):
        raise InvalidMessage([Violation(
            "/code", f"{oversight.code!r} is not an organisation code such as DIP-ASSURE.")])
    existing = directory.get(oversight.code)
    if existing is not None:
        if existing.kind is not OrgKind.OVERSIGHT:
            raise Conflict(f"{oversight.code} is a {existing.kind.value} organisation.")
        return False
    return await directory.change(
        directory.repository.add_organisation(oversight, BOOTSTRAP, at, audit))


def _person_from(org: Organisation, body: Any) -> Person:
    if not isinstance(body, Mapping):
        raise MalformedRequest("Send {'name': …, 'email': …} and optionally id, sign_in, keys.")
    problems: list[Violation] = [
        Violation(f"/{name}", f"'{name}' is not a field of a person.")
        for name in sorted(set(body) - _PERSON_FIELDS)
    ]
    name, email = body.get("name"), body.get("email")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS:
        problems.append(Violation("/name", f"The person's name, 1 to {MAX_NAME_CHARS} characters."))
    if not isinstance(email, str) or not _EMAIL.fullmatch(email):
        problems.append(
            Violation("/email", "A work e-mail address such as jo.bloggs@cjit.example.")
        )
        email = ""
    person_id = body.get("id", _default_id(org.code, email))
    if not isinstance(person_id, str) or not PERSON_ID.fullmatch(person_id):
        problems.append(Violation(
            "/id", "An id of 1 to 64 lower-case letters, digits, '.' and '-', such as "
            "cjit-sfk.jo.bloggs."
        ))
    sign_in = _sign_in(body.get("sign_in"), problems)
    raw_keys = body.get("keys", [])
    jwks: list[dict[str, Any]] = []
    if not isinstance(raw_keys, list) or len(raw_keys) > 5:
        problems.append(Violation("/keys", "A list of at most 5 public keys."))
    else:
        for index, raw in enumerate(raw_keys):
            try:
                jwks.append(public_key(raw, f"/keys/{index}"))
            except InvalidMessage as exc:
                problems += exc.violations
    if problems:
        raise InvalidMessage(problems)
    assert isinstance(name, str) and isinstance(person_id, str)
    return Person(person_id, org.code, name.strip(), email, sign_in, tuple(jwks))


def _identity_provider_from(body: Any) -> IdentityProvider:
    """An OpenID Provider's issuer (an https URL without query or fragment, OIDC
    Discovery 1.0 section 2) and the client id it gave the gateway. A client secret is
    never accepted here: it belongs in the gateway's configuration."""
    if not isinstance(body, Mapping):
        raise MalformedRequest("Send {'issuer': 'https://…', 'client_id': '…'}.")
    problems = [Violation(f"/{k}", f"'{k}' is not a field of an identity provider.")
                for k in sorted(set(body) - {"issuer", "client_id"})]
    issuer, client_id = body.get("issuer"), body.get("client_id")
    parts = urlsplit(issuer) if isinstance(issuer, str) else None
    if (parts is None or parts.scheme != "https" or not parts.hostname or parts.query
            or parts.fragment or len(str(issuer)) > 300):
        problems.append(Violation(
            "/issuer", "The provider's issuer: an https:// URL without query or fragment."))
    if not (isinstance(client_id, str) and 0 < len(client_id) <= 255 and client_id.strip()):
        problems.append(Violation("/client_id", "The client id the provider gave the gateway."))
    if problems:
        raise InvalidMessage(problems)
    assert isinstance(issuer, str) and isinstance(client_id, str)
    return IdentityProvider(issuer, client_id)


def _contact_from(body: Any) -> Contact:
    """A SPOC contact: name, and optionally phone, e-mail and secure e-mail."""
    if not isinstance(body, Mapping):
        raise MalformedRequest("Send {'name': …, 'phone': …, 'email': …, 'secure_email': …}.")
    problems = [Violation(f"/{k}", f"'{k}' is not a field of a contact.")
                for k in sorted(set(body) - {"name", "phone", "email", "secure_email"})]
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS:
        problems.append(Violation("/name", f"Who to contact, 1 to {MAX_NAME_CHARS} characters."))
    phone = body.get("phone")
    if phone is not None and not (isinstance(phone, str) and _PHONE.fullmatch(phone)):
        problems.append(Violation("/phone", "A telephone number such as 01603 000 202."))
    for field in ("email", "secure_email"):
        value = body.get(field)
        if value is not None and not (isinstance(value, str) and _EMAIL.fullmatch(value)):
            problems.append(Violation(f"/{field}", "An e-mail address."))
    if problems:
        raise InvalidMessage(problems)
    assert isinstance(name, str)
    return Contact(name.strip(), phone, body.get("email"), body.get("secure_email"))


def _default_id(org_code: str, email: str) -> str:
    local = re.sub(r"[^a-z0-9.-]+", "-", email.split("@", 1)[0].lower()).strip(".-")
    return f"{org_code.lower()}.{local}"[:64].rstrip(".-")


def _sign_in(raw: Any, problems: list[Violation]) -> SignIn | None:
    if raw is None:
        return None
    issuer = raw.get("issuer") if isinstance(raw, Mapping) else None
    subject = raw.get("subject") if isinstance(raw, Mapping) else None
    if not (isinstance(issuer, str) and issuer.startswith("https://") and len(issuer) <= 300):
        problems.append(Violation("/sign_in/issuer", "The identity provider's https:// issuer."))
        return None
    if not (isinstance(subject, str) and 0 < len(subject) <= 255):
        problems.append(Violation("/sign_in/subject", "The person's subject at that provider."))
        return None
    return SignIn(issuer, subject)
