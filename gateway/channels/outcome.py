"""What a channel reports back about one push."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from gateway.storage.base import Dispatch


@dataclass(frozen=True, slots=True)
class Sent:
    """The push landed. ``detail`` goes into the status history (no personal data);
    ``external_ref`` is the far side's id for it (e.g. the MESH message id)."""

    detail: str
    external_ref: str | None = None


class SendFailed(Exception):
    """The push did not land and is retried; the message says why, without personal data."""


class ChannelSender(Protocol):
    channel: str

    async def send(self, dispatch: Dispatch, now: datetime) -> Sent: ...
