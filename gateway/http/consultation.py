"""Logging every read of personal data as a consultation (DPA 2018 s.62(1)(b))."""

from __future__ import annotations

from gateway.domain.model import Principal
from gateway.http.services import Services
from gateway.pipeline.audit import AuditAction, AuditEvent
from gateway.pipeline.consent import SubjectKeys


async def consulted(
    services: Services,
    principal: Principal,
    resource: str,
    *,
    message_ids: tuple[str, ...] = (),
    subject: SubjectKeys | None = None,
    **details: object,
) -> None:
    """Record who read what and when, in a transaction of its own, before answering."""
    await services.audit.record(consultation(
        services, principal, resource, message_ids=message_ids, subject=subject, **details))


def consultation(
    services: Services,
    principal: Principal,
    resource: str,
    *,
    message_ids: tuple[str, ...] = (),
    subject: SubjectKeys | None = None,
    **details: object,
) -> AuditEvent:
    """The audit entry of a read (``consulted``), for a caller that records it itself."""
    return AuditEvent(
        action=AuditAction.CONSULTED,
        at=services.clock(),
        actor=principal.actor,
        message_id=message_ids[0] if len(message_ids) == 1 else None,
        subject=subject,
        details={
            "resource": resource,
            "roles": sorted(role.value for role in principal.roles),
            **({"message_ids": list(message_ids)} if len(message_ids) > 1 else {}),
            **details,
        },
    )
