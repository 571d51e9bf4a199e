"""NHS MESH: sending a message to an organisation's MESH mailbox and tracking it.

Some organisations (treatment providers on the health side) receive their messages
through NHS MESH rather than from the gateway's own inbox API. The gateway sends each
message from its own MESH mailbox to theirs (``MeshMailbox.send``) and later polls MESH's
tracking (``MeshMailbox.tracking``) until the recipient has downloaded and acknowledged it.

``mesh-client`` is synchronous (``requests``), so every call runs in a worker thread
through ``asyncio.to_thread``. One ``MeshMailbox`` (and so one ``MeshClient``) serves one
gateway mailbox; a lock makes its calls one at a time, because a ``requests`` session and
mesh-client's authentication nonce counter are not safe to share between threads.

Every failure to talk to MESH - connection refused, time-outs, TLS failures, HTTP errors,
MESH's own error answers - comes out as ``MeshUnavailable`` with a sentence saying what
failed. Payloads hold personal data: nothing here logs or quotes them, and ``subject``
must never carry personal data either (MESH shows it to operators and in tracking).
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TypeVar, cast
from urllib.parse import urlsplit

import requests
import structlog
import urllib3.exceptions
from mesh_client import MeshClient, MeshError

from gateway.domain.errors import ConfigurationError, GatewayError
from gateway.storage.delivery import CLAIM_LEASE

log = structlog.get_logger(__name__)

T = TypeVar("T")

# Header values travel as HTTP headers (Mex-LocalID, Mex-Subject): printable ASCII only.
_HEADER_SAFE = re.compile(r"^[\x20-\x7e]*$")
_MAX_LOCAL_ID = 255
_MAX_SUBJECT = 500
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_DEFAULT_TIMEOUT_S = 60.0
_ERRNO_REASON = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


class MeshUnavailable(GatewayError):
    """MESH could not be reached, or refused or failed the request.

    ``status`` is MESH's HTTP status when it answered at all. ``retryable`` says whether
    trying the same request later may succeed (network trouble, 5xx, 429) or will not
    until someone fixes something (credentials, unknown recipient, certificates).
    """

    slug = "mesh-unavailable"
    title = "MESH unavailable"

    def __init__(self, detail: str, *, status: int | None = None, retryable: bool = True) -> None:
        super().__init__(detail)
        self.status = status
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class MeshSettings:
    """How the gateway reaches its own MESH mailbox.

    ``client_cert``/``client_key`` are the mailbox's TLS client certificate (MESH uses
    mutual TLS); ``ca_file`` is the CA bundle that signs the MESH server's certificate
    (``None``: mesh-client's bundled NHS bundle for the known INT/DEP/LIVE hosts, otherwise
    the system/certifi store). ``workflow_id`` is sent with every message.
    """

    url: str
    mailbox: str
    password: str = field(repr=False)
    shared_key: str = field(repr=False)
    workflow_id: str
    client_cert: Path | None = None
    client_key: Path | None = None
    ca_file: Path | None = None
    timeout_s: float = _DEFAULT_TIMEOUT_S
    max_retries: int = 3
    max_chunk_size: int = 75 * 1024 * 1024
    application_name: str = "dipgw"

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ConfigurationError(f"DIPGW_MESH_URL must be an https:// URL, not {self.url!r}")
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
            raise ConfigurationError(
                "DIPGW_MESH_URL must use https:// (plain http is only for a local sandbox)"
            )
        for name, value in (
            ("DIPGW_MESH_MAILBOX", self.mailbox),
            ("DIPGW_MESH_PASSWORD", self.password),
            ("DIPGW_MESH_SHARED_KEY", self.shared_key),
            ("DIPGW_MESH_WORKFLOW_ID", self.workflow_id),
        ):
            if not value:
                raise ConfigurationError(f"{name} must be set when DIPGW_MESH_URL is set")
        if not _HEADER_SAFE.match(self.mailbox) or " " in self.mailbox:
            raise ConfigurationError("DIPGW_MESH_MAILBOX must be a MESH mailbox id")
        if (self.client_cert is None) != (self.client_key is None):
            raise ConfigurationError(
                "DIPGW_MESH_CLIENT_CERT and DIPGW_MESH_CLIENT_KEY must be set together"
            )
        if self.timeout_s <= 0:
            raise ConfigurationError("the MESH time-out must be positive")
        if self.max_retries < 0:
            raise ConfigurationError("the MESH retry count must not be negative")
        # A push is leased to the process sending it for CLAIM_LEASE; a send that could
        # outlast the lease could be claimed and sent again by another process meanwhile.
        longest_send_s = self.timeout_s * (self.max_retries + 1)
        if longest_send_s >= CLAIM_LEASE.total_seconds():
            raise ConfigurationError(
                f"DIPGW_MESH_TIMEOUT_SECONDS is {self.timeout_s:g}: with {self.max_retries} "
                f"retries a send could take {longest_send_s:g} s, not less than the "
                f"{CLAIM_LEASE.total_seconds():g} s a claimed push is leased for; set it "
                f"below {CLAIM_LEASE.total_seconds() / (self.max_retries + 1):g}"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MeshSettings | None:
        """Settings from ``DIPGW_MESH_*`` variables; ``None`` when MESH is not configured."""
        env = os.environ if env is None else env
        url = env.get("DIPGW_MESH_URL", "")
        if not url:
            return None

        def path(name: str) -> Path | None:
            value = env.get(name, "")
            return Path(value) if value else None

        timeout_raw = env.get("DIPGW_MESH_TIMEOUT_SECONDS", "")
        try:
            timeout_s = float(timeout_raw) if timeout_raw else _DEFAULT_TIMEOUT_S
        except ValueError:
            raise ConfigurationError(
                f"DIPGW_MESH_TIMEOUT_SECONDS must be a number, not {timeout_raw!r}"
            ) from None
        return cls(
            url=url,
            mailbox=env.get("DIPGW_MESH_MAILBOX", ""),
            password=env.get("DIPGW_MESH_PASSWORD", ""),
            shared_key=env.get("DIPGW_MESH_SHARED_KEY", ""),
            workflow_id=env.get("DIPGW_MESH_WORKFLOW_ID", ""),
            client_cert=path("DIPGW_MESH_CLIENT_CERT"),
            client_key=path("DIPGW_MESH_CLIENT_KEY"),
            ca_file=path("DIPGW_MESH_CA_FILE"),
            timeout_s=timeout_s,
        )


class MeshTrackingState(StrEnum):
    """What MESH's tracking says about a sent message, reduced to what the gateway acts on.

    ``accepted``: MESH holds it in the recipient's inbox, not yet acknowledged (this
    includes ``uploading``, a chunked message not yet complete). ``acknowledged``: the
    recipient downloaded it and acknowledged it - delivered. ``failed``: MESH gave up
    (``undeliverable``, ``error``, or a tracking record that is not a success), so the
    recipient will never get it. ``unknown``: MESH has no tracking for that id from this
    mailbox (never sent from here, or tracking has expired), or a status text this
    module does not know; ``MeshTracking.raw_status`` keeps MESH's own words.
    """

    ACCEPTED = "accepted"
    ACKNOWLEDGED = "acknowledged"
    FAILED = "failed"
    UNKNOWN = "unknown"


_STATES: Mapping[str, MeshTrackingState] = {
    "uploading": MeshTrackingState.ACCEPTED,
    "accepted": MeshTrackingState.ACCEPTED,
    "acknowledged": MeshTrackingState.ACKNOWLEDGED,
    "undeliverable": MeshTrackingState.FAILED,
    "undelivered": MeshTrackingState.FAILED,
    "error": MeshTrackingState.FAILED,
    "failed": MeshTrackingState.FAILED,
    "rejected": MeshTrackingState.FAILED,
    "expired": MeshTrackingState.FAILED,
}


@dataclass(frozen=True, slots=True)
class MeshTracking:
    """One reading of MESH's tracking for a message the gateway sent."""

    message_id: str
    state: MeshTrackingState
    raw_status: str
    local_id: str | None = None
    recipient: str | None = None
    status_timestamp: str | None = None
    description: str | None = None

    @property
    def acknowledged(self) -> bool:
        return self.state is MeshTrackingState.ACKNOWLEDGED

    @property
    def final(self) -> bool:
        """Nothing more will happen to the message: stop polling."""
        return self.state in (MeshTrackingState.ACKNOWLEDGED, MeshTrackingState.FAILED)


def tracking_from_response(message_id: str, response: Mapping[str, object]) -> MeshTracking:
    """Read a MESH tracking answer (v2 ``status``/``status_success``, or v1 ``status``)."""
    raw_status = _text(response.get("status")) or ""
    state = _STATES.get(raw_status.strip().lower(), MeshTrackingState.UNKNOWN)
    success = response.get("status_success", response.get("statusSuccess"))
    if success is False or (isinstance(success, str) and success.upper() == "ERROR"):
        state = MeshTrackingState.FAILED
    return MeshTracking(
        message_id=_text(response.get("message_id")) or message_id,
        state=state,
        raw_status=raw_status,
        local_id=_text(response.get("local_id", response.get("localId"))),
        recipient=_text(response.get("recipient")),
        status_timestamp=_text(response.get("status_timestamp", response.get("statusTimestamp"))),
        description=_text(
            response.get("status_description")
            or response.get("statusDescription")
            or response.get("failureDiagnostic")
        ),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


class MeshMailbox:
    """The gateway's own MESH mailbox: send to other mailboxes, track what was sent."""

    def __init__(self, settings: MeshSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._closed = False
        for name, file in (
            ("DIPGW_MESH_CLIENT_CERT", settings.client_cert),
            ("DIPGW_MESH_CLIENT_KEY", settings.client_key),
            ("DIPGW_MESH_CA_FILE", settings.ca_file),
        ):
            if file is not None and not file.is_file():
                raise ConfigurationError(f"{name} {str(file)!r} is not a file")
        cert: tuple[str, str] | None = None
        if settings.client_cert is not None and settings.client_key is not None:
            cert = (str(settings.client_cert), str(settings.client_key))
        try:
            self._client = MeshClient(
                settings.url,
                settings.mailbox,
                settings.password,
                shared_key=settings.shared_key.encode("utf-8"),
                cert=cert,
                verify=str(settings.ca_file) if settings.ca_file is not None else None,
                max_chunk_size=settings.max_chunk_size,
                max_retries=settings.max_retries,
                timeout=settings.timeout_s,
                application_name=settings.application_name,
            )
        except (OSError, ssl.SSLError) as error:
            # Loading the client certificate, key or CA file happens here.
            raise ConfigurationError(
                f"cannot load the MESH TLS files for mailbox {settings.mailbox}: "
                f"{type(error).__name__}: {error.strerror or error}"
            ) from None

    @property
    def mailbox(self) -> str:
        return self.settings.mailbox

    async def check(self) -> None:
        """Handshake with MESH: proves it is reachable and accepts this mailbox's credentials."""
        handshake = cast(Callable[[], object], self._client.handshake)
        await self._call("the handshake", handshake)

    async def send(
        self,
        recipient_mailbox: str,
        payload: bytes,
        *,
        local_id: str,
        subject: str | None = None,
        content_type: str = "application/octet-stream",
    ) -> str:
        """Send ``payload`` to ``recipient_mailbox``; returns MESH's message id.

        ``local_id`` is the gateway's message id, which the recipient sees (Mex-LocalID)
        and tracking reports, so both sides can correlate. ``subject`` must not carry
        personal data. MESH does not de-duplicate: a send whose answer was lost (time-out)
        may still have created a message, so callers should reconcile by ``local_id``
        before sending the same message again.
        """
        if not payload:
            raise ValueError("MESH does not accept an empty message")
        _check_header("recipient_mailbox", recipient_mailbox, 100)
        if " " in recipient_mailbox:
            raise ValueError("recipient_mailbox must be a MESH mailbox id")
        _check_header("local_id", local_id, _MAX_LOCAL_ID)
        _check_header("content_type", content_type, 255)
        if subject is not None:
            _check_header("subject", subject, _MAX_SUBJECT)
        workflow_id = self.settings.workflow_id

        def send() -> str:
            if subject is None:
                return self._client.send_message(
                    recipient_mailbox,
                    payload,
                    workflow_id=workflow_id,
                    local_id=local_id,
                    content_type=content_type,
                )
            return self._client.send_message(
                recipient_mailbox,
                payload,
                workflow_id=workflow_id,
                local_id=local_id,
                content_type=content_type,
                subject=subject,
            )

        message_id = await self._call("sending a message", send)
        log.info(
            "mesh.sent",
            mailbox=self.mailbox,
            recipient=recipient_mailbox,
            mesh_message_id=message_id,
            local_id=local_id,
            size=len(payload),
        )
        return message_id

    async def tracking(self, mesh_message_id: str) -> MeshTracking:
        """MESH's tracking for a message this mailbox sent."""
        _check_header("mesh_message_id", mesh_message_id, 100)

        def track() -> Mapping[str, object]:
            return cast(Mapping[str, object], self._client.track_message(mesh_message_id))

        try:
            response = await self._call("tracking a message", track)
        except MeshUnavailable as error:
            if error.status == 404:
                return MeshTracking(
                    message_id=mesh_message_id,
                    state=MeshTrackingState.UNKNOWN,
                    raw_status="",
                    description="MESH has no tracking for this message id from this mailbox",
                )
            raise
        return tracking_from_response(mesh_message_id, response)

    async def close(self) -> None:
        """Close the HTTP session; further calls raise ``MeshUnavailable``. Idempotent."""
        if self._closed:
            return
        self._closed = True
        close = cast(Callable[[], None], self._client.close)

        def locked_close() -> None:
            with self._lock:
                close()

        await asyncio.to_thread(locked_close)

    async def __aenter__(self) -> MeshMailbox:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _call(self, operation: str, call: Callable[[], T]) -> T:
        if self._closed:
            raise MeshUnavailable(f"MESH mailbox {self.mailbox} is closed", retryable=False)

        def locked() -> T:
            with self._lock:
                return call()

        try:
            return await asyncio.to_thread(locked)
        except MeshUnavailable:
            raise
        except Exception as error:  # translated below; never re-raised raw
            raise self._translate(operation, error) from None

    def _translate(self, operation: str, error: Exception) -> MeshUnavailable:
        """One sentence about what failed, without payloads, passwords or raw exceptions."""
        where = f"MESH at {self.settings.url} (mailbox {self.mailbox})"
        if isinstance(error, MeshError):
            reason = _short(str(error.args[0]) if error.args else "no reason given")
            return MeshUnavailable(f"{where} refused {operation}: {reason}", retryable=False)
        if isinstance(error, requests.HTTPError):
            status = error.response.status_code if error.response is not None else None
            hint = ""
            if status in (401, 403):
                hint = " - check the mailbox id, password, shared key and client certificate"
            elif status == 404:
                hint = " - not found"
            retryable = status is None or status >= 500 or status in (408, 425, 429)
            return MeshUnavailable(
                f"{where} answered HTTP {status} to {operation}{hint}",
                status=status,
                retryable=retryable,
            )
        if isinstance(error, requests.exceptions.SSLError | ssl.SSLError):
            return MeshUnavailable(
                f"TLS with {where} failed during {operation}: {_reason(error)}",
                retryable=False,
            )
        if isinstance(error, urllib3.exceptions.NewConnectionError):
            # urllib3 files "could not connect" under its time-out errors: say what it is.
            return MeshUnavailable(f"cannot connect to {where} for {operation}: {_reason(error)}")
        if isinstance(error, requests.Timeout | TimeoutError | urllib3.exceptions.TimeoutError):
            return MeshUnavailable(
                f"{where} did not answer {operation} within {self.settings.timeout_s:g} s"
            )
        if isinstance(
            error,
            requests.ConnectionError | urllib3.exceptions.HTTPError | ConnectionError,
        ):
            return MeshUnavailable(f"cannot connect to {where} for {operation}: {_reason(error)}")
        if isinstance(error, requests.RequestException | ValueError | OSError):
            return MeshUnavailable(
                f"{where} failed {operation}: {type(error).__name__}: {_reason(error)}"
            )
        return MeshUnavailable(
            f"{where} failed {operation}: unexpected {type(error).__name__}", retryable=False
        )


def _check_header(name: str, value: str, max_length: int) -> None:
    if not value:
        raise ValueError(f"{name} must not be empty")
    if len(value) > max_length or not _HEADER_SAFE.match(value):
        raise ValueError(f"{name} must be printable ASCII of at most {max_length} characters")


def _reason(error: BaseException) -> str:
    """The innermost operating-system reason (e.g. 'Connection refused'), else a summary."""
    match = _ERRNO_REASON.search(str(error))
    if match:
        return match.group(1).strip()
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        cause = cause.__cause__ or cause.__context__
    return _short(type(error).__name__)


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
