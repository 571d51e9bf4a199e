"""Logs carry ids and types, never a person's details."""

from __future__ import annotations

import json

import structlog
from structlog.testing import capture_logs

from gateway.logs import REDACTED, redact_personal_data
from tests.conftest import EXAMPLES, AgencyFactory, load
from tests.test_messages_end_to_end import wait_for_inbox

RA1 = load(EXAMPLES / "ra1_notice" / "valid-out-of-area-norfolk-resident.json")


async def test_sending_and_receiving_logs_no_personal_data(agency: AgencyFactory) -> None:
    with capture_logs() as logged:
        await agency(RA1["from"]).send(RA1)
        await wait_for_inbox(agency(RA1["to"][0]), RA1["message_id"])

    text = json.dumps(logged, default=str)
    assert RA1["message_id"] in text
    subject = RA1["subject"]
    for value in (subject["given_name"], subject["family_name"], subject["date_of_birth"]):
        assert value not in text
    assert any(entry.get("message_type") == "ra1_notice" for entry in logged)


def test_redaction_processor_masks_personal_fields_wherever_they_appear() -> None:
    event = redact_personal_data(
        None,
        "info",
        {"event": "x", "subject": {"given_name": "A"}, "extra": {"nested": {"pnc_id": "1"}}},
    )
    assert event["subject"] == REDACTED
    assert event["extra"]["nested"]["pnc_id"] == REDACTED


def test_processor_is_installed_by_configure() -> None:
    from gateway import logs

    logs.configure(json_output=True)
    assert redact_personal_data in structlog.get_config()["processors"]
