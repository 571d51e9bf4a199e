"""One error hierarchy for the whole gateway.

Domain and storage code raise these; only ``gateway.http.problems`` turns them into
RFC 9457 problem documents with HTTP status codes, and only ``gateway.cli`` turns them
into a sentence and an exit code. No HTTP status appears here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class GatewayError(Exception):
    """Base of every error the gateway reports to a caller."""

    slug = "error"
    title = "Gateway error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def extensions(self) -> Mapping[str, Any]:
        """Extra members for the problem document (RFC 9457 section 3.2)."""
        return {}

    def diagnostics(self) -> str:
        """The explanation a person reads on a terminal."""
        return f"{self.title}: {self.detail}"


class ConfigurationError(GatewayError):
    slug = "configuration"
    title = "Invalid configuration"


class MalformedRequest(GatewayError):
    """The request could not be read as the JSON document it should be."""

    slug = "malformed-request"
    title = "Malformed request"


class UnsupportedMediaType(GatewayError):
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class PayloadTooLarge(GatewayError):
    slug = "payload-too-large"
    title = "Request body too large"


@dataclass(frozen=True, slots=True)
class Violation:
    """One thing wrong with a submitted document, located by an RFC 6901 JSON pointer."""

    pointer: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"pointer": self.pointer, "message": self.message}


class InvalidMessage(GatewayError):
    """The document breaks its schema or refers to things that do not exist."""

    slug = "invalid-message"
    title = "Invalid message"
    noun = "message"

    def __init__(self, violations: Sequence[Violation]) -> None:
        count = len(violations)
        super().__init__(f"The {self.noun} has {count} problem{'s' if count != 1 else ''}.")
        self.violations = tuple(violations)

    def extensions(self) -> Mapping[str, Any]:
        return {"errors": [v.as_dict() for v in self.violations]}

    def diagnostics(self) -> str:
        lines = [super().diagnostics()]
        lines += [f"  {v.pointer or '/'}: {v.message}" for v in self.violations]
        return "\n".join(lines)


class SignatureRefused(InvalidMessage):
    """The sender's signature (an SD-JWT, ``gateway.sdjwt``) is missing where its
    organisation must sign, or does not verify with a key registered to the sender."""

    slug = "invalid-signature"
    title = "Sender signature refused"
    noun = "signature"


class InvalidPolicy(InvalidMessage):
    """A policy document breaks the policy schema or names things that do not exist."""

    slug = "invalid-policy"
    title = "Invalid policy"
    noun = "policy"


class InvalidBatch(InvalidMessage):
    """A batch request is not ``{"messages": [envelope, ...]}`` with an allowed count."""

    slug = "invalid-batch"
    title = "Invalid batch"
    noun = "batch"


class AuthenticationFailed(GatewayError):
    """The caller could not be identified; the detail never says which check passed."""

    slug = "unauthenticated"
    title = "Authentication required"


class TokenReplayed(AuthenticationFailed):
    """The token's ``jti`` was used before (RFC 7519 section 4.1.7): each token is single-use."""

    def __init__(self) -> None:
        super().__init__("The token has already been used; sign a new one.")


class AccessDenied(GatewayError):
    slug = "forbidden"
    title = "Not allowed"


class PolicyRefused(GatewayError):
    """The sharing policy refused the message for every recipient."""

    slug = "refused-by-policy"
    title = "Refused by the sharing policy"

    def __init__(self, detail: str, answer: Mapping[str, Any]) -> None:
        super().__init__(detail)
        self.answer = answer

    def extensions(self) -> Mapping[str, Any]:
        # The receipt's "status" ("refused") would clash with the problem's HTTP status.
        answer = dict(self.answer)
        answer["message_status"] = answer.pop("status", None)
        return answer


class NotFound(GatewayError):
    slug = "not-found"
    title = "Not found"


class Conflict(GatewayError):
    """The change clashes with what is stored (an id already used, an approval already given,
    a directory that moved since the change was proposed)."""

    slug = "conflict"
    title = "Conflicts with the stored state"


class IdempotencyConflict(GatewayError):
    slug = "message-id-conflict"
    title = "Message id already used for different content"


class TryLater(GatewayError):
    """Nothing was done; the same request may succeed after ``retry_after_s`` seconds,
    answered with a ``Retry-After`` header (RFC 9110 section 10.2.3)."""

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s

    def extensions(self) -> Mapping[str, Any]:
        return {"retry_after_s": self.retry_after_s}


class RateLimited(TryLater):
    """Too many requests from one address or organisation; try again after a wait."""

    slug = "rate-limited"
    title = "Too many requests"


class RequestTimeout(GatewayError):
    """The request body did not arrive in time; the connection is closed."""

    slug = "request-timeout"
    title = "Request body not received in time"


class ServiceUnavailable(GatewayError):
    slug = "unavailable"
    title = "Service unavailable"


class Overloaded(TryLater):
    """Delivery is behind intake: new messages wait (``gateway.services.backpressure``)."""

    slug = "overloaded"
    title = "Not accepting new messages just now"
