"""A message's status is derived from its history (accepted → delivered → acknowledged)."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.domain.model import MessageStatus, StatusEvent, overall_status, recipient_status

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
A, D, K, R = (
    MessageStatus.ACCEPTED,
    MessageStatus.DELIVERED,
    MessageStatus.ACKNOWLEDGED,
    MessageStatus.REFUSED,
)


def history(*steps: tuple[MessageStatus, str | None]) -> tuple[StatusEvent, ...]:
    return tuple(StatusEvent(status, NOW, recipient) for status, recipient in steps)


def test_status_is_the_least_advanced_recipients() -> None:
    h = history((A, None), (D, "X"), (D, "Y"), (K, "X"))
    assert recipient_status(h, "X") is K
    assert recipient_status(h, "Y") is D
    assert overall_status(h, ("X", "Y")) is D
    assert overall_status((*h, StatusEvent(K, NOW, "Y")), ("X", "Y")) is K


def test_undelivered_recipient_keeps_the_message_accepted() -> None:
    h = history((A, None), (D, "X"))
    assert overall_status(h, ("X", "Y")) is A


def test_refusals() -> None:
    assert overall_status(history((R, None)), ("X",)) is R
    partly = history((A, None), (R, "Y"), (D, "X"))
    assert overall_status(partly, ("X", "Y")) is D
    assert recipient_status(partly, "Y") is R
