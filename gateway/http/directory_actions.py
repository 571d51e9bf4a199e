"""What ``/v1/directory/{code}/delivery`` and ``/v1/directory/imports`` do beyond one
``Administration`` call, in one place: the API's routes and the console's administrator and
operator pages both call these, so the authority checks, the channel's validation and the
transport following the directory after a change have one copy."""

from __future__ import annotations

from typing import Any

from gateway.channels.choice import parse_channel
from gateway.domain.errors import NotFound
from gateway.domain.model import Organisation, Principal
from gateway.http.services import Services
from gateway.pipeline import access
from gateway.storage.base import DirectoryImport

# Imports listed as waiting for approval: more than a handful at once is itself a problem.
PENDING_SHOWN = 50


def delivery_of(services: Services, principal: Principal, code: str) -> Organisation:
    """The organisation whose delivery channel the caller may see (the organisation itself
    or the operator); ``NotFound`` before ``AccessDenied``, as the API answers."""
    org = services.administration.organisation(code)
    access.authorise(principal, access.Action.VIEW_DELIVERY, code)
    return org


async def choose_delivery(
    services: Services, principal: Principal, code: str, body: Any
) -> Organisation:
    """Choose how messages reach an organisation (pull, amqp, webhook or mesh), audited;
    the transport follows the new choice at once (``Directory.follow``)."""
    services.administration.organisation(code)
    access.authorise(principal, access.Action.CHOOSE_DELIVERY, code)
    channel = parse_channel(body, production=services.settings.is_production)
    return await services.directory.set_channel(
        code, channel, principal.actor, services.clock(), services.audit,
    )


async def find_import(
    services: Services, principal: Principal, import_id: str
) -> DirectoryImport:
    """A proposed (or applied) SPOC-list import, for operator people only."""
    access.authorise(principal, access.Action.IMPORT_DIRECTORY)
    proposal = await services.directory.repository.get_import(import_id)
    if proposal is None:
        raise NotFound(f"There is no directory import {import_id}.")
    return proposal


async def pending_imports(
    services: Services, principal: Principal, limit: int = PENDING_SHOWN
) -> list[DirectoryImport]:
    """Imports proposed and not yet approved, newest first, for operator people only: the
    second operator finds what waits for them without being sent its reference."""
    access.authorise(principal, access.Action.IMPORT_DIRECTORY)
    return await services.directory.repository.pending_imports(limit)


async def approve_import(
    services: Services, principal: Principal, import_id: str
) -> DirectoryImport:
    """A second operator person applies a proposed import, as it was previewed; the
    transport then follows the directory (new organisations get their queues)."""
    return await services.administration.approve_import(principal, import_id)
