"""What ``POST /v1/policy/decide`` does, in one place: the decision the gateway would take
on a document, with the consultation that working out its recipients is. The API's route
and the console's "Check before sending" page both call it, so the preview a person sees is
the API's answer, logged as the API logs it."""

from __future__ import annotations

from typing import Any

from gateway.domain.errors import GatewayError
from gateway.domain.model import Principal
from gateway.http.consultation import consulted
from gateway.http.services import Services
from gateway.pipeline.consent import SubjectKeys
from gateway.services.submission import Assessment


async def assess_and_log(
    services: Services, principal: Principal, document: Any, channel: str | None = None
) -> Assessment:
    """The decision the gateway would take, without storing or sending anything.

    A message without ``to`` has its recipients worked out from the gateway's records (the
    CJIT its history shows managing the person, the sender of the message it answers), so
    the answer discloses DIP history about that person even though nothing is sent. That
    read is logged as a consultation (DPA 2018 s.62(1)(b)) before answering, whether the
    answer is a decision or a refusal: "no one can be found" says something too.
    ``channel`` names where the request came from (the console's pages), as the
    console's other consultations do.
    """
    details: dict[str, Any] = {"channel": channel} if channel else {}
    resolving = (
        isinstance(document, dict)
        and not document.get("to")
        and services.schemas.is_valid(document)
    )
    try:
        assessment = await services.submissions.assess(principal, document)
    except GatewayError as refused:
        if resolving:
            await consulted(
                services, principal, "recipient_resolution",
                subject=SubjectKeys.of(document["subject"]), type=document["type"],
                refused=refused.slug, **details,
            )
        raise
    if resolving:
        await consulted(
            services, principal, "recipient_resolution",
            subject=SubjectKeys.of(document["subject"]), type=document["type"],
            resolved=dict(assessment.resolved_by), **details,
        )
    return assessment
