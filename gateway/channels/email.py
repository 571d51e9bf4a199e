"""Secure e-mail notices to an organisation's Single Point of Contact (SPOC).

When a CJIT's disengagement alert reaches the police or probation (H 4.11.3: the CJIT shares
the disengagement with them), their SPOC should see it at once. Besides the live stream,
the gateway e-mails a *notice* to the SPOC's secure e-mail address; a second kind of
notice says the alert was escalated (not acknowledged in time).

A notice carries **no personal data**: only a reference to fetch the message from the
gateway (message id, message type, organisation code, arrival time and the URLs). That is
enforced by construction: :class:`Notice` holds only those typed, pattern-checked fields,
and :func:`build_notice_email` renders nothing else.

Delivery (:class:`EmailNotifier`) uses the standard library's :mod:`smtplib` in a worker
thread and fails closed: the server must offer STARTTLS and present a certificate that
verifies (chain and host name) against the configured CA file or the system trust store,
otherwise nothing is sent. Every failure surfaces as :class:`NoticeNotSent`; neither the
notice body nor any e-mail address is logged or put in an error message (only the gateway
message id is logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from enum import StrEnum
from pathlib import Path
from urllib.parse import unquote, urlsplit

import structlog

from gateway.domain.errors import GatewayError
from gateway.domain.model import MessageType

log = structlog.get_logger(__name__)

DEFAULT_SUBMISSION_PORT = 587
DEFAULT_TIMEOUT_S = 30.0

# Same shape as the schemas' org_code (schemas/common.schema.json#/$defs/org_code).
_ORG_CODE = re.compile(r"[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*")
_ORG_CODE_MAX = 32
_MESSAGE_TYPE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
# A plain ASCII addr-spec: dot-atom local part @ a host name. No display names, comments,
# quoting, white space or line breaks, so nothing can be smuggled into a header.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDRESS = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@{_LABEL}(?:\.{_LABEL})*")
_ADDRESS_MAX = 254
_BASE_URL_MAX = 200
_HOST = re.compile(r"[A-Za-z0-9.:-]+")


class NoticeNotSent(GatewayError):
    """A notice could not be sent; nothing was sent in clear. The detail names no address."""

    slug = "notice-not-sent"
    title = "E-mail notice not sent"


def _is_address(value: object) -> bool:
    return (
        isinstance(value, str)
        and len(value) <= _ADDRESS_MAX
        and _ADDRESS.fullmatch(value) is not None
    )


def check_address(value: str, what: str = "e-mail address") -> str:
    """``value`` if it is a plain ASCII ``local@domain`` address; ``ValueError`` otherwise.

    The message does not repeat the value: addresses are personal-ish.
    """
    if not _is_address(value):
        raise ValueError(f"{what} must be a plain address like name@example.org")
    return value


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Where and how to submit notices. ``ca_file`` None means the system trust store."""

    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    # Name given in EHLO; None lets smtplib use this machine's fully qualified name.
    helo_name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not _HOST.fullmatch(self.host):
            raise ValueError("SMTP host must be a host name or IP address")
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise ValueError("SMTP port must be a whole number")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"SMTP port must be between 1 and 65535, not {self.port}")
        check_address(self.sender, "SMTP sender (DIPGW_SMTP_FROM)")
        if (self.username is None) != (self.password is None):
            raise ValueError("SMTP username and password must be given together")
        if self.username == "":
            raise ValueError("SMTP username must not be empty")
        if not self.timeout_s > 0:
            raise ValueError("SMTP timeout must be positive")
        if self.helo_name is not None and not _HOST.fullmatch(self.helo_name):
            raise ValueError("SMTP EHLO name must be a host name")

    @classmethod
    def from_url(
        cls,
        url: str,
        sender: str,
        ca_file: str | Path | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        helo_name: str | None = None,
    ) -> SmtpSettings:
        """Settings from ``smtp://[user:password@]host[:port]`` (port 587 if omitted).

        Only ``smtp://`` is accepted: the connection is always upgraded with STARTTLS.
        User and password may be percent-encoded. Raises ``ValueError`` naming what is
        wrong (never echoing the password).
        """
        if not isinstance(url, str) or not url.strip():
            raise ValueError("SMTP URL (DIPGW_SMTP_URL) is empty")
        try:
            parts = urlsplit(url.strip())
        except ValueError as error:
            raise ValueError(f"SMTP URL (DIPGW_SMTP_URL) cannot be read: {error}") from None
        if parts.scheme.lower() != "smtp":
            shown = parts.scheme or "none"
            raise ValueError(
                "SMTP URL (DIPGW_SMTP_URL) must start with smtp:// (STARTTLS is always "
                f"required); scheme was {shown!r}"
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(
                "SMTP URL (DIPGW_SMTP_URL) must be smtp://[user:password@]host[:port] "
                "with no path, query or fragment"
            )
        host = parts.hostname
        if not host:
            raise ValueError("SMTP URL (DIPGW_SMTP_URL) has no host")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(
                "SMTP URL (DIPGW_SMTP_URL) has a bad port: it must be a number from 1 to 65535"
            ) from None
        if port == 0:
            raise ValueError(
                "SMTP URL (DIPGW_SMTP_URL) has a bad port: it must be a number from 1 to 65535"
            )
        username = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password) if parts.password is not None else None
        if username is not None and password is None:
            raise ValueError("SMTP URL (DIPGW_SMTP_URL) has a user but no password")
        if username == "" and password is not None:
            raise ValueError("SMTP URL (DIPGW_SMTP_URL) has a password but no user")
        return cls(
            host=host,
            port=port if port is not None else DEFAULT_SUBMISSION_PORT,
            sender=sender,
            username=username,
            password=password,
            ca_file=Path(ca_file) if ca_file else None,
            timeout_s=timeout_s,
            helo_name=helo_name,
        )


# --------------------------------------------------------------------------- the notice


class NoticeKind(StrEnum):
    DELIVERED = "delivered"  # a message is waiting for acknowledgement
    ESCALATED = "escalated"  # it was not acknowledged within the configured time


def _check_base_url(value: object) -> str:
    if not isinstance(value, str) or len(value) > _BASE_URL_MAX or not value.isascii():
        raise ValueError(f"gateway base URL must be an ASCII URL of at most {_BASE_URL_MAX} chars")
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise ValueError("gateway base URL must not contain white space or control characters")
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError for a bad port
    except ValueError:
        raise ValueError("gateway base URL cannot be read") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("gateway base URL must be an http(s) URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("gateway base URL must not carry a user or password")
    if parts.query or parts.fragment:
        raise ValueError("gateway base URL must not have a query or fragment")
    return value.rstrip("/")


@dataclass(frozen=True, slots=True)
class Notice:
    """Everything a notice may say: a reference to a message, never its content.

    Each field is checked on construction, so a value that could carry personal data
    (a name, a date of birth, free text) cannot be put in: the message id must be a UUID,
    the type and organisation code must match their simple patterns, the time must be a
    timezone-aware datetime, and the base URL a plain http(s) URL without query.
    """

    kind: NoticeKind
    message_id: str
    message_type: str
    org_code: str
    arrived_at: datetime
    gateway_base_url: str

    def __post_init__(self) -> None:
        try:
            kind = NoticeKind(self.kind)
        except ValueError:
            raise ValueError("notice kind must be 'delivered' or 'escalated'") from None
        if not isinstance(self.message_id, str) or not _UUID.fullmatch(self.message_id):
            raise ValueError("notice message id must be a UUID")
        if not isinstance(self.message_type, str) or not _MESSAGE_TYPE.fullmatch(
            self.message_type
        ):
            raise ValueError("notice message type must match [a-z][a-z0-9_]{0,63}")
        if (
            not isinstance(self.org_code, str)
            or len(self.org_code) > _ORG_CODE_MAX
            or not _ORG_CODE.fullmatch(self.org_code)
        ):
            raise ValueError("notice organisation code must look like CJIT-SFK")
        if not isinstance(self.arrived_at, datetime) or self.arrived_at.utcoffset() is None:
            raise ValueError("notice time must be a timezone-aware datetime")
        base = _check_base_url(self.gateway_base_url)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "message_id", self.message_id.lower())
        object.__setattr__(self, "message_type", str(self.message_type))
        object.__setattr__(self, "org_code", str(self.org_code))
        object.__setattr__(self, "gateway_base_url", base)

    @property
    def message_url(self) -> str:
        return f"{self.gateway_base_url}/v1/messages/{self.message_id}"

    @property
    def inbox_url(self) -> str:
        return f"{self.gateway_base_url}/v1/inbox"

    @property
    def acknowledge_url(self) -> str:
        return f"{self.gateway_base_url}/v1/inbox/{self.message_id}/ack"

    @property
    def arrived_at_text(self) -> str:
        return self.arrived_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def notice_subject(notice: Notice) -> str:
    if notice.kind is NoticeKind.ESCALATED:
        return (
            f"[dipgw] ESCALATED: {notice.message_type} not acknowledged in time"
            f" \N{EM DASH} ref {notice.message_id}"
        )
    return (
        f"[dipgw] {notice.message_type} awaiting acknowledgement"
        f" \N{EM DASH} ref {notice.message_id}"
    )


def notice_text(notice: Notice) -> str:
    """The plain-text body: ASCII only, made of fixed text and the notice's fields."""
    alert = notice.message_type == MessageType.DISENGAGEMENT_ALERT.value
    if notice.kind is NoticeKind.ESCALATED:
        opening = [
            f"ESCALATION: a {notice.message_type} message for {notice.org_code} has NOT",
            "been acknowledged within the time allowed. Please act on it now.",
        ]
    else:
        opening = [
            f"A {notice.message_type} message for {notice.org_code} is waiting for you",
            "at the DIP secure messaging gateway.",
        ]
    if alert:
        opening += [
            "",
            "A disengagement alert must be acted on by the Single Point of Contact",
            "within 24 hours of its arrival.",
        ]
    lines = [
        *opening,
        "",
        f"Reference (message id): {notice.message_id}",
        f"Message type:           {notice.message_type}",
        f"Organisation:           {notice.org_code}",
        f"Arrived at (UTC):       {notice.arrived_at_text}",
        "",
        "What to do:",
        "1. Sign in to the gateway with your organisation's usual client or SPOC console.",
        "2. Fetch the message:",
        f"   {notice.message_url}",
        "   or open your organisation's inbox:",
        f"   {notice.inbox_url}",
        "3. Acknowledge it in the gateway once you have read it (POST",
        f"   {notice.acknowledge_url}),",
        "   so the sender can see it has been received.",
        "",
        "This e-mail deliberately contains no personal details: the message itself can",
        "only be read in the gateway. Do not reply to this e-mail; it is sent",
        "automatically and replies are not read.",
    ]
    return "\n".join(lines) + "\n"


def build_notice_email(
    notice: Notice, *, sender: str, to_address: str, sent_at: datetime
) -> EmailMessage:
    """The e-mail for ``notice``: a pure function of its arguments.

    The Message-ID is derived from the kind and the gateway message id, so a retried
    notice is recognisably the same e-mail. Raises ``ValueError`` for a bad address or a
    naive ``sent_at``.
    """
    if not isinstance(notice, Notice):
        raise TypeError("build_notice_email takes a Notice")
    check_address(sender, "sender address")
    check_address(to_address, "recipient address")
    if sent_at.utcoffset() is None:
        raise ValueError("sent_at must be a timezone-aware datetime")
    domain = sender.rsplit("@", 1)[1]
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to_address
    message["Subject"] = notice_subject(notice)
    message["Date"] = format_datetime(sent_at.astimezone(UTC))
    message["Message-ID"] = f"<dipgw.{notice.kind.value}.{notice.message_id}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    message["X-Auto-Response-Suppress"] = "All"
    message.set_content(notice_text(notice), charset="us-ascii", cte="7bit")
    return message


# --------------------------------------------------------------------------- sending


def _utcnow() -> datetime:
    return datetime.now(UTC)


class EmailNotifier:
    """Sends notices over SMTP, only ever inside a verified STARTTLS session."""

    def __init__(
        self, settings: SmtpSettings, *, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self.settings = settings
        self._clock = clock

    async def send(self, to_address: str, notice: Notice) -> None:
        """Send ``notice`` to ``to_address``; raise :class:`NoticeNotSent` on any failure."""
        try:
            message = build_notice_email(
                notice,
                sender=self.settings.sender,
                to_address=to_address,
                sent_at=self._clock(),
            )
        except (TypeError, ValueError) as error:
            raise NoticeNotSent(f"notice not built: {error}") from error
        try:
            await asyncio.to_thread(self._send_sync, message, to_address)
        except NoticeNotSent as error:
            log.warning(
                "email_notice_not_sent",
                message_id=notice.message_id,
                kind=notice.kind.value,
                reason=error.detail,
            )
            raise
        log.info("email_notice_sent", message_id=notice.message_id, kind=notice.kind.value)

    def _tls_context(self) -> ssl.SSLContext:
        ca_file = self.settings.ca_file
        try:
            context = ssl.create_default_context(
                cafile=str(ca_file) if ca_file is not None else None
            )
        except (OSError, ssl.SSLError) as error:
            raise NoticeNotSent(
                f"could not load the CA file for the SMTP server: {error}"
            ) from error
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        # create_default_context already sets these; stated so no change can loosen them.
        context.check_hostname = True
        context.verify_mode = ssl.CERT_REQUIRED
        return context

    def _send_sync(self, message: EmailMessage, to_address: str) -> None:
        settings = self.settings
        server = f"{settings.host}:{settings.port}"
        context = self._tls_context()
        stage = "connect"
        smtp: smtplib.SMTP | None = None
        try:
            # Host given to the constructor, not to connect(): smtplib checks the
            # certificate against the host the SMTP object was constructed with.
            smtp = smtplib.SMTP(
                settings.host,
                settings.port,
                local_hostname=settings.helo_name,
                timeout=settings.timeout_s,
            )
            stage = "EHLO"
            code, _ = smtp.ehlo()
            if code != 250:
                raise NoticeNotSent(f"SMTP server {server} refused EHLO ({code})")
            if not smtp.has_extn("starttls"):
                raise NoticeNotSent(
                    f"SMTP server {server} does not offer STARTTLS; "
                    "refusing to send the notice in clear"
                )
            stage = "STARTTLS"
            smtp.starttls(context=context)
            stage = "EHLO after STARTTLS"
            code, _ = smtp.ehlo()
            if code != 250:
                raise NoticeNotSent(f"SMTP server {server} refused EHLO after STARTTLS ({code})")
            if settings.username is not None and settings.password is not None:
                stage = "login"
                smtp.login(settings.username, settings.password)
            stage = "send"
            refused = smtp.send_message(
                message, from_addr=settings.sender, to_addrs=[to_address]
            )
            if refused:
                raise NoticeNotSent(f"SMTP server {server} refused the recipient")
            stage = "QUIT"
            # The message was accepted; a failed goodbye does not undo that.
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.quit()
        except NoticeNotSent:
            raise
        except ssl.SSLCertVerificationError as error:
            raise NoticeNotSent(
                f"SMTP server {server} certificate not trusted: {error.verify_message}"
            ) from error
        except ssl.SSLError as error:
            raise NoticeNotSent(
                f"TLS with SMTP server {server} failed during {stage}: {error.reason}"
            ) from error
        except smtplib.SMTPRecipientsRefused as error:
            codes = sorted({code for code, _ in error.recipients.values()})
            raise NoticeNotSent(
                f"SMTP server {server} refused the recipient ({', '.join(map(str, codes))})"
            ) from error
        except smtplib.SMTPAuthenticationError as error:
            raise NoticeNotSent(
                f"SMTP server {server} rejected the login ({error.smtp_code})"
            ) from error
        except smtplib.SMTPResponseException as error:
            # The server's text is left out: it may echo an address.
            raise NoticeNotSent(
                f"SMTP server {server} answered {error.smtp_code} during {stage}"
            ) from error
        except smtplib.SMTPException as error:
            raise NoticeNotSent(
                f"SMTP with {server} failed during {stage}: {type(error).__name__}"
            ) from error
        except TimeoutError as error:
            raise NoticeNotSent(f"SMTP server {server} timed out during {stage}") from error
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise NoticeNotSent(
                f"could not talk to SMTP server {server} during {stage}: {reason}"
            ) from error
        finally:
            if smtp is not None:
                smtp.close()
