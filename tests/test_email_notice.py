"""E-mail notices to a SPOC: sent only over verified STARTTLS, and carrying no personal data."""

from __future__ import annotations

import email
import email.policy
import json
import string
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.channels.email import (
    EmailNotifier,
    Notice,
    NoticeKind,
    NoticeNotSent,
    SmtpSettings,
    build_notice_email,
    notice_subject,
)
from tests.smtp_support import (
    PASSWORD,
    USERNAME,
    SmtpServer,
    TlsMaterial,
    free_port,
    make_tls_material,
    run_smtp_server,
)

# Fixtures smtp_server, smtp_server_plain and tls_material.
pytest_plugins = ["tests.smtp_support"]

ROOT = Path(__file__).resolve().parents[1]
ALERT_EXAMPLES = sorted((ROOT / "schemas" / "examples" / "disengagement_alert").glob("valid*.json"))
SENDER = "dipgw-notices@gateway.example"
SPOC = "spoc@suffolk-cjit.secure.example"
BASE_URL = "https://dipgw.example.gov.uk"
FIXED_NOW = datetime(2026, 3, 16, 16, 21, 30, tzinfo=UTC)


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def notice_for(alert: dict[str, Any], kind: NoticeKind = NoticeKind.DELIVERED) -> Notice:
    """What the gateway knows of a delivered alert, reduced to what a notice may say."""
    return Notice(
        kind=kind,
        message_id=alert["message_id"],
        message_type=alert["type"],
        org_code=alert["to"][0],
        arrived_at=datetime.fromisoformat(alert["sent_at"]),
        gateway_base_url=BASE_URL,
    )


def personal_values(node: Any) -> set[str]:
    """Every string in an alert's subject and body (names, dates of birth, PNC ids,
    addresses, phone numbers, case notes ...), with enum-like codes left out."""
    found: set[str] = set()
    if isinstance(node, dict):
        for value in node.values():
            found |= personal_values(value)
    elif isinstance(node, list):
        for value in node:
            found |= personal_values(value)
    elif isinstance(node, str) and not all(c in string.ascii_lowercase + "_" for c in node):
        found.add(node)
    return found


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def smtp_settings(server: SmtpServer, tls: TlsMaterial | None, **kwargs: Any) -> SmtpSettings:
    return SmtpSettings.from_url(
        server.url(kwargs.pop("host", "localhost"), login=kwargs.pop("login", False)),
        SENDER,
        ca_file=tls.ca_file if tls else None,
        timeout_s=5.0,
        helo_name="gateway.test",
        **kwargs,
    )


@pytest.mark.parametrize("example", ALERT_EXAMPLES, ids=lambda path: path.stem)
async def test_alert_notice_arrives_over_starttls_with_reference_and_no_personal_data(
    example: Path, smtp_server: SmtpServer, tls_material: TlsMaterial
) -> None:
    alert = load(example)
    notice = notice_for(alert)
    notifier = EmailNotifier(smtp_settings(smtp_server, tls_material), clock=lambda: FIXED_NOW)

    await notifier.send(SPOC, notice)

    [received] = smtp_server.received
    assert received.tls
    assert received.mail_from == SENDER
    assert received.rcpt_tos == (SPOC,)
    message = parse(received.content)
    assert message["To"] == SPOC
    assert message["From"] == SENDER
    assert message["Subject"] == (
        f"[dipgw] disengagement_alert awaiting acknowledgement — ref {alert['message_id']}"
    )
    # A long Message-ID is folded onto its own line; unfolding leaves the leading space.
    assert message["Message-ID"].strip() == (
        f"<dipgw.delivered.{alert['message_id']}@gateway.example>"
    )
    assert message["Date"].datetime == FIXED_NOW
    assert message["Auto-Submitted"] == "auto-generated"
    text = message.get_content()
    assert message.get_content_type() == "text/plain"
    assert f"{BASE_URL}/v1/messages/{alert['message_id']}" in text
    assert f"{BASE_URL}/v1/inbox" in text
    assert alert["to"][0] in text
    assert "within 24 hours" in text

    # The raw bytes are 7-bit plain text, so looking for the values in them is meaningful.
    assert b"Content-Transfer-Encoding: 7bit" in received.content
    subject_fields = alert["subject"]
    for key in ("given_name", "family_name", "date_of_birth", "pnc_id"):
        if key in subject_fields:
            assert subject_fields[key].encode() not in received.content, key
    # Everything else from the alert must be absent once the notice's own fields (which a
    # body date may happen to be part of, e.g. the arrival day) are taken out.
    scrubbed = [received.content.decode("ascii"), text, message["Subject"]]
    for own in (notice.arrived_at_text, notice.message_id, notice.org_code, BASE_URL):
        scrubbed = [part.replace(own, "") for part in scrubbed]
    leaked = {
        value
        for value in personal_values({"subject": alert["subject"], "body": alert["body"]})
        if any(value in part for part in scrubbed)
    }
    assert leaked == set()


async def test_escalation_notice_says_so(
    smtp_server: SmtpServer, tls_material: TlsMaterial
) -> None:
    alert = load(ALERT_EXAMPLES[0])
    notifier = EmailNotifier(smtp_settings(smtp_server, tls_material))

    await notifier.send(SPOC, notice_for(alert, NoticeKind.ESCALATED))

    [received] = smtp_server.received
    message = parse(received.content)
    assert message["Subject"].startswith("[dipgw] ESCALATED: disengagement_alert")
    assert message["Subject"].endswith(f"ref {alert['message_id']}")
    assert "has NOT" in message.get_content()
    assert message["Message-ID"].strip().startswith(f"<dipgw.escalated.{alert['message_id']}@")


async def test_login_after_starttls(smtp_server: SmtpServer, tls_material: TlsMaterial) -> None:
    settings_ = smtp_settings(smtp_server, tls_material, login=True)
    assert settings_.username == USERNAME
    assert settings_.password == PASSWORD
    assert PASSWORD not in repr(settings_)

    await EmailNotifier(settings_).send(SPOC, notice_for(load(ALERT_EXAMPLES[0])))

    [received] = smtp_server.received
    assert received.tls
    assert received.authenticated_as == USERNAME


async def test_wrong_password_is_not_sent(
    smtp_server: SmtpServer, tls_material: TlsMaterial
) -> None:
    url = f"smtp://{USERNAME}:wrong@localhost:{smtp_server.port}"
    notifier = EmailNotifier(
        SmtpSettings.from_url(url, SENDER, tls_material.ca_file, helo_name="gateway.test")
    )
    with pytest.raises(NoticeNotSent, match="rejected the login"):
        await notifier.send(SPOC, notice_for(load(ALERT_EXAMPLES[0])))
    assert smtp_server.received == []


async def test_server_without_starttls_is_refused_and_nothing_is_sent(
    smtp_server_plain: SmtpServer, tls_material: TlsMaterial,
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    notifier = EmailNotifier(smtp_settings(smtp_server_plain, tls_material))
    notice = notice_for(load(ALERT_EXAMPLES[0]))

    with pytest.raises(NoticeNotSent, match="does not offer STARTTLS") as refused:
        await notifier.send(SPOC, notice)

    assert smtp_server_plain.received == []
    assert SPOC not in str(refused.value)
    logged = capsys.readouterr()
    logs = logged.out + logged.err + caplog.text
    assert "email_notice_not_sent" in logs and notice.message_id in logs
    assert SPOC not in logs and SENDER not in logs


async def test_untrusted_certificate_is_refused(smtp_server: SmtpServer) -> None:
    # No CA file: the system trust store does not know the test CA.
    notifier = EmailNotifier(smtp_settings(smtp_server, None))

    with pytest.raises(NoticeNotSent, match="certificate not trusted"):
        await notifier.send(SPOC, notice_for(load(ALERT_EXAMPLES[0])))

    assert smtp_server.received == []


async def test_certificate_from_another_ca_is_refused(
    smtp_server: SmtpServer, tmp_path: Path
) -> None:
    other = make_tls_material(tmp_path / "other-ca")
    notifier = EmailNotifier(
        SmtpSettings.from_url(smtp_server.url("localhost"), SENDER, other.ca_file)
    )
    with pytest.raises(NoticeNotSent, match="certificate not trusted"):
        await notifier.send(SPOC, notice_for(load(ALERT_EXAMPLES[0])))
    assert smtp_server.received == []


async def test_certificate_for_another_host_name_is_refused(tmp_path: Path) -> None:
    material = make_tls_material(tmp_path / "tls", names=("mail.elsewhere.example",))
    with run_smtp_server(material) as server:
        notifier = EmailNotifier(smtp_settings(server, material, host="127.0.0.1"))
        with pytest.raises(NoticeNotSent, match="certificate not trusted"):
            await notifier.send(SPOC, notice_for(load(ALERT_EXAMPLES[0])))
        assert server.received == []


async def test_nothing_listening_is_a_clear_failure() -> None:
    notifier = EmailNotifier(
        SmtpSettings.from_url(f"smtp://127.0.0.1:{free_port()}", SENDER, timeout_s=2.0)
    )
    with pytest.raises(NoticeNotSent, match="could not talk to SMTP server"):
        await notifier.send(SPOC, notice_for(load(ALERT_EXAMPLES[0])))


async def test_bad_recipient_address_is_not_sent(
    smtp_server: SmtpServer, tls_material: TlsMaterial
) -> None:
    notifier = EmailNotifier(smtp_settings(smtp_server, tls_material))
    for bad in ("not an address", "a@b.example\r\nBcc: x@y.example", "Name <a@b.example>"):
        with pytest.raises(NoticeNotSent, match="recipient address") as refused:
            await notifier.send(bad, notice_for(load(ALERT_EXAMPLES[0])))
        assert bad not in str(refused.value)
    assert smtp_server.received == []


# --------------------------------------------------------------------------- settings


def test_smtp_url_is_parsed() -> None:
    parsed = SmtpSettings.from_url("smtp://user%40corp:p%3Ass@mail.example:2525", SENDER, "ca.pem")
    assert (parsed.host, parsed.port, parsed.username, parsed.password) == (
        "mail.example", 2525, "user@corp", "p:ss",
    )
    assert parsed.ca_file == Path("ca.pem")
    assert SmtpSettings.from_url("smtp://mail.example", SENDER).port == 587
    assert SmtpSettings.from_url("smtp://mail.example/", SENDER).ca_file is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty"),
        ("smtps://mail.example:465", "must start with smtp://"),
        ("http://mail.example", "must start with smtp://"),
        ("mail.example:587", "must start with smtp://"),
        ("smtp://", "no host"),
        ("smtp://:587", "no host"),
        ("smtp://user:pw@:587", "no host"),
        ("smtp://mail.example:port", "bad port"),
        ("smtp://mail.example:70000", "bad port"),
        ("smtp://mail.example:0", "bad port"),
        ("smtp://mail.example:-1", "bad port"),
        ("smtp://user@mail.example", "no password"),
        ("smtp://mail.example/relay", "no path"),
        ("smtp://mail.example?x=1", "no path"),
    ],
)
def test_bad_smtp_url_is_a_clear_value_error(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as refused:
        SmtpSettings.from_url(url, SENDER)
    assert "DIPGW_SMTP_URL" in str(refused.value)


def test_secret_is_not_echoed_in_url_errors() -> None:
    with pytest.raises(ValueError) as refused:
        SmtpSettings.from_url("smtp://user:s3cret@mail.example:nope", SENDER)
    assert "s3cret" not in str(refused.value)


def test_bad_sender_is_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match="DIPGW_SMTP_FROM"):
        SmtpSettings.from_url("smtp://mail.example", "not-an-address")


# --------------------------------------------------------------------------- the notice


@pytest.mark.parametrize(
    "changes",
    [
        {"message_id": "Daniel Hartley"},
        {"message_id": "urn:uuid:001aa06e-2c59-4520-ac27-01da57e63a63"},
        {"message_id": "001aa06e-2c59-4520-ac27-01da57e63a63\n"},
        {"message_type": "Daniel Hartley 1989-06-14"},
        {"message_type": "disengagement_alert\nBcc: x@y.example"},
        {"org_code": "09/482731K"},
        {"org_code": "cjit-sfk"},
        {"arrived_at": datetime(2026, 3, 16, 16, 20)},  # naive
        {"arrived_at": "1989-06-14"},
        {"gateway_base_url": "https://gw.example/?name=Daniel"},
        {"gateway_base_url": "https://user:pw@gw.example"},
        {"gateway_base_url": "ftp://gw.example"},
        {"gateway_base_url": "https://gw.example/a b"},
        {"kind": "reminder"},
    ],
)
def test_notice_takes_only_its_typed_fields(changes: dict[str, Any]) -> None:
    values: dict[str, Any] = {
        "kind": NoticeKind.DELIVERED,
        "message_id": "001aa06e-2c59-4520-ac27-01da57e63a63",
        "message_type": "disengagement_alert",
        "org_code": "CJIT-SFK",
        "arrived_at": FIXED_NOW,
        "gateway_base_url": BASE_URL,
    } | changes
    with pytest.raises(ValueError):
        Notice(**values)


def test_notice_has_no_room_for_anything_else() -> None:
    notice = notice_for(load(ALERT_EXAMPLES[0]))
    with pytest.raises(TypeError):
        Notice(**{**_fields(notice), "subject": {"given_name": "Daniel"}})
    with pytest.raises((AttributeError, TypeError)):  # slots: no __dict__ to put it in
        notice.extra = "Daniel"  # type: ignore[attr-defined]


def _fields(notice: Notice) -> dict[str, Any]:
    return {
        "kind": notice.kind,
        "message_id": notice.message_id,
        "message_type": notice.message_type,
        "org_code": notice.org_code,
        "arrived_at": notice.arrived_at,
        "gateway_base_url": notice.gateway_base_url,
    }


# The body of a notice, rendered for distinctive reference values that are then swapped for
# placeholders: every generated notice must be exactly this text with its own values put in.
_REF_ID = "00000000-0000-4000-8000-00000000abcd"
_REF_ORG = "ZZREF-ORG9"
_REF_TYPE = "zzref_type"
_REF_BASE = "https://zzref-base.example:8443/zzref-path"
_REF_AT = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)


def _skeleton(kind: NoticeKind, message_type: str) -> tuple[str, str]:
    notice = Notice(kind, _REF_ID, message_type, _REF_ORG, _REF_AT, _REF_BASE)
    message = build_notice_email(notice, sender=SENDER, to_address=SPOC, sent_at=_REF_AT)
    text, subject = message.get_content(), message["Subject"]
    swaps = [
        (_REF_BASE, "{base}"), (_REF_ID, "{id}"), (_REF_ORG, "{org}"), (message_type, "{type}"),
        ("2001-02-03T04:05:06Z", "{at}"),
    ]
    for value, placeholder in swaps:
        assert value in text
        text = text.replace(value, placeholder)
        subject = subject.replace(value, placeholder)
    return text, subject


org_codes = st.from_regex(r"\A[A-Z][A-Z0-9]{0,5}(-[A-Z0-9]{1,5}){0,3}\Z")
message_types = st.one_of(
    st.just("disengagement_alert"), st.from_regex(r"\A[a-z][a-z0-9_]{0,30}\Z")
)
base_urls = st.builds(
    lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
    st.sampled_from(["https", "http"]),
    st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\.[a-z]{2,6}){1,3}\Z"),
    st.sampled_from(["", ":8443", ":443"]),
    st.sampled_from(["", "/", "/dipgw", "/a/b/"]),
)
notices = st.builds(
    Notice,
    kind=st.sampled_from(NoticeKind),
    message_id=st.uuids().map(str),
    message_type=message_types,
    org_code=org_codes,
    arrived_at=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ).map(lambda moment: moment.replace(microsecond=0)),
    gateway_base_url=base_urls,
)


@settings(max_examples=150, deadline=None)
@given(notice=notices, sent_at=st.datetimes(timezones=st.just(UTC)))
def test_any_notice_says_only_the_allowed_fields(notice: Notice, sent_at: datetime) -> None:
    message = build_notice_email(notice, sender=SENDER, to_address=SPOC, sent_at=sent_at)
    alert = notice.message_type == "disengagement_alert"
    text, subject = _skeleton(notice.kind, "disengagement_alert" if alert else _REF_TYPE)
    values = {
        "{base}": notice.gateway_base_url, "{id}": notice.message_id, "{org}": notice.org_code,
        "{type}": notice.message_type,
        "{at}": notice.arrived_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
        subject = subject.replace(placeholder, value)
    assert message.get_content() == text
    assert message["Subject"] == subject == notice_subject(notice)
    assert set(message.keys()) == {
        "From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted",
        "X-Auto-Response-Suppress", "Content-Type", "Content-Transfer-Encoding", "MIME-Version",
    }
    assert message["Message-ID"] == f"<dipgw.{notice.kind}.{notice.message_id}@gateway.example>"
    raw = message.as_bytes()
    assert raw.isascii()
    assert notice.message_id.encode() in raw
    assert uuid.UUID(notice.message_id)


def test_arrival_time_is_given_in_utc() -> None:
    notice = Notice(
        NoticeKind.DELIVERED, str(uuid.uuid4()), "disengagement_alert", "CJIT-SFK",
        datetime(2026, 6, 1, 9, 0, tzinfo=UTC) + timedelta(hours=0), BASE_URL,
    )
    text = build_notice_email(
        notice, sender=SENDER, to_address=SPOC, sent_at=FIXED_NOW
    ).get_content()
    assert "2026-06-01T09:00:00Z" in text
