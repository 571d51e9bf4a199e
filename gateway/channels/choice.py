"""Which channel a message takes to its recipient, and whether the SPOC gets an e-mail.

Pure: reads the directory entry only. The transport always brings a message to the
gateway's own store first; from there a pull or AMQP organisation has it at once, and a
webhook or MESH organisation is owed a push that the dispatcher retries until it lands.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from gateway.domain.errors import InvalidMessage, Violation
from gateway.domain.model import (
    PUSH_CHANNELS,
    ChannelSettings,
    DeliveryChannel,
    MessageType,
    Organisation,
)

# The SPOC must act on these within 24 hours (H 4.1.3), so they are worth an e-mail.
NOTIFIED_TYPES = frozenset({MessageType.DISENGAGEMENT_ALERT.value})
_MESH_MAILBOX = re.compile(r"^[A-Z0-9]{3,20}$")
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_FIELDS = ("channel", "webhook_url", "mesh_mailbox", "email_notices")


class InvalidChannel(InvalidMessage):
    slug = "invalid-delivery-channel"
    title = "Invalid delivery channel"
    noun = "delivery channel"


def parse_channel(raw: Any, *, production: bool) -> ChannelSettings:
    """A channel choice from a request body; every problem reported at once."""
    if not isinstance(raw, Mapping):
        raise InvalidChannel([Violation("", "Send an object such as {\"channel\": \"pull\"}.")])
    problems = [Violation(f"/{key}", f"Unknown field {key!r}.") for key in raw
                if key not in _FIELDS]
    channel = raw.get("channel")
    if channel not in DeliveryChannel.__members__.values():
        problems.append(Violation("/channel", "channel must be one of "
                                  f"{', '.join(c.value for c in DeliveryChannel)}."))
    for key in ("webhook_url", "mesh_mailbox"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            problems.append(Violation(f"/{key}", f"{key} must be a string."))
    if not isinstance(raw.get("email_notices", True), bool):
        problems.append(Violation("/email_notices", "email_notices must be true or false."))
    if problems:
        raise InvalidChannel(problems)
    settings = ChannelSettings(
        channel=DeliveryChannel(str(channel)),
        webhook_url=raw.get("webhook_url"),
        mesh_mailbox=raw.get("mesh_mailbox"),
        email_notices=raw.get("email_notices", True),
    )
    found = channel_problems(settings, production=production)
    if found:
        raise InvalidChannel([Violation("", problem) for problem in found])
    return settings


def push_target(org: Organisation | None) -> tuple[str, str] | None:
    """(channel, target) when the organisation is pushed to, else None (it reads)."""
    if org is None or org.delivery.channel not in PUSH_CHANNELS:
        return None
    settings = org.delivery
    target = (
        settings.webhook_url if settings.channel is DeliveryChannel.WEBHOOK
        else settings.mesh_mailbox
    )
    return (settings.channel.value, target) if target else None


def notice_address(org: Organisation | None, message_type: str) -> str | None:
    """The SPOC's secure e-mail for a notice about this message, if one is owed."""
    if org is None or message_type not in NOTIFIED_TYPES or not org.delivery.email_notices:
        return None
    return org.spoc.secure_email


NoticeRule = Callable[[str, str], str | None]
"""(recipient code, message type) → the SPOC address owed an e-mail notice, if any."""


def notice_rule(organisation: Callable[[str], Organisation | None], enabled: bool) -> NoticeRule:
    """Who gets e-mailed about what: nobody when the gateway has no mail server."""
    if not enabled:
        return lambda _recipient, _message_type: None
    return lambda recipient, message_type: notice_address(organisation(recipient), message_type)


def channel_problems(settings: ChannelSettings, *, production: bool) -> list[str]:
    """Everything wrong with a channel choice, in words an IG lead can act on."""
    problems: list[str] = []
    if settings.channel is DeliveryChannel.WEBHOOK:
        problems += _webhook_problems(settings.webhook_url, production=production)
    elif settings.webhook_url is not None:
        problems.append("webhook_url is only for the webhook channel.")
    if settings.channel is DeliveryChannel.MESH:
        if not settings.mesh_mailbox or not _MESH_MAILBOX.match(settings.mesh_mailbox):
            problems.append("The MESH channel needs mesh_mailbox, a MESH mailbox id such as "
                            "X26ABC123 (capital letters and digits).")
    elif settings.mesh_mailbox is not None:
        problems.append("mesh_mailbox is only for the mesh channel.")
    return problems


def _webhook_problems(url: str | None, *, production: bool) -> list[str]:
    if not url:
        return ["The webhook channel needs webhook_url, the HTTPS address to POST to."]
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if not port_ok:
        return [f"webhook_url {url!r} is not a URL with a valid port."]
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return [f"webhook_url {url!r} must be an https:// URL."]
    if parts.username or parts.password:
        return ["webhook_url must not carry credentials; the gateway signs each request."]
    if parts.scheme == "http" and (production or parts.hostname not in _LOCAL_HOSTS):
        return [f"webhook_url {url!r} must use https:// (plain http only to localhost in "
                "development)."]
    return []
