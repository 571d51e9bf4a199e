"""The handbook's timescales (gateway.domain.timescales): named when missed, never a refusal."""

from __future__ import annotations

import copy
import uuid
from datetime import date, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.timescales import breaches, is_working_day, working_days_after
from gateway.services.directory import DEMO_ORGANISATIONS
from tests.conftest import EXAMPLES, AgencyFactory, example_files, load
from tests.test_messages_end_to_end import wait_for_inbox

ORGS = {o.code: o for o in DEMO_ORGANISATIONS}
ALERT = "disengagement_alert/valid-statutory-failed-to-attend-initial.json"
DIR = "dir_transfer/valid-enforcement-suffolk-to-norfolk.json"
OUTCOME = "assessment_outcome/valid-drr-written-consent-suffolk.json"
REFERRAL = "proactive_referral/valid-negative-test-worker-told-in-custody-suffolk.json"


def example(name: str, **body: Any) -> dict[str, Any]:
    document = copy.deepcopy(load(EXAMPLES / name))
    document["message_id"] = str(uuid.uuid4())
    document["body"].update(body)
    return document


def pointers(document: dict[str, Any]) -> list[str]:
    return [b.pointer for b in breaches(document, ORGS)]


def test_every_valid_example_keeps_the_handbooks_timescales() -> None:
    """The examples show good practice: none reports a missed timescale."""
    late = {p.name: pointers(load(p)) for p in example_files("valid*.json")}
    assert {name: found for name, found in late.items() if found} == {}


def test_outreach_more_than_24_hours_after_disengagement_is_named() -> None:
    on_time = example(ALERT, occurred_at="2026-03-02T10:00:00Z",
                      assertive_outreach_started_at="2026-03-03T10:00:00Z")
    late = example(ALERT, occurred_at="2026-03-02T10:00:00Z",
                   assertive_outreach_started_at="2026-03-03T16:00:00+00:00")
    assert pointers(on_time) == []
    [breach] = breaches(late, ORGS)
    assert breach.pointer == "/body/assertive_outreach_started_at"
    assert "30.0 hours" in breach.detail and breach.handbook.startswith("H 4.1.3")


def test_five_working_days_skip_weekends_and_bank_holidays() -> None:
    # Assessed Tuesday 22 December 2026: Christmas Day (Fri) and Boxing Day substitute
    # (Mon 28) are bank holidays, so the fifth working day is Thursday 31 December.
    assert working_days_after(date(2026, 12, 22), 5) == date(2026, 12, 31)
    assert not is_working_day(date(2026, 12, 28))
    dir_transfer = example(DIR, assessment={**load(EXAMPLES / DIR)["body"]["assessment"],
                                            "date": "2026-12-22"},
                           follow_up_appointment={
                               **load(EXAMPLES / DIR)["body"]["follow_up_appointment"],
                               "at": "2026-12-31T10:00:00Z"})
    dir_transfer["sent_at"] = "2026-12-22T15:00:00Z"
    assert pointers(dir_transfer) == []
    dir_transfer["body"]["follow_up_appointment"]["at"] = "2027-01-04T10:00:00Z"
    assert pointers(dir_transfer) == ["/body/follow_up_appointment/at"]


def test_a_follow_up_assessment_after_five_working_days_is_named() -> None:
    # Assessed Tuesday 12 May 2026 in London: the fifth working day is Tuesday 19 May.
    follow_up = {"at": "2026-05-19T16:00:00+01:00", "organisation": "CJIT-SFK",
                 "place": {"name": "Suffolk CJIT, Ipswich office"}}
    outcome = example(OUTCOME, outcome="follow_up_required", follow_up=follow_up)
    assert pointers(outcome) == []
    outcome["body"]["follow_up"]["at"] = "2026-05-20T09:00:00+01:00"
    [breach] = breaches(outcome, ORGS)
    assert breach.pointer == "/body/follow_up/at" and breach.limit == "5 working days"
    assert "2026-05-19" in breach.detail


def test_a_dir_sent_after_the_follow_up_is_named() -> None:
    document = example(DIR)
    document["sent_at"] = document["body"]["follow_up_appointment"]["at"]
    assert "/sent_at" in pointers(document)


def test_police_appointment_locally_and_out_of_area() -> None:
    # Local (Suffolk police, Suffolk CJIT): 24 hours or the end of the next working day.
    friday = example(REFERRAL, referred_at="2026-03-06T17:00:00Z", worker_informed_in_custody=False,
                     appointment={"at": "2026-03-09T17:00:00Z", "organisation": "CJIT-SFK",
                                  "place": {"name": "Suffolk CJIT, Ipswich office"}})
    assert pointers(friday) == []
    friday["body"]["appointment"]["at"] = "2026-03-10T09:00:00Z"
    assert pointers(friday) == ["/body/appointment/at"]
    # Out of area (Suffolk police, Norfolk CJIT): 48 hours, or the next working day when
    # they end on a weekend.
    away = example(REFERRAL, cjit="CJIT-NFK", referred_at="2026-03-05T12:00:00Z",
                   worker_informed_in_custody=False,
                   appointment={"at": "2026-03-09T16:00:00Z", "organisation": "CJIT-NFK",
                                "place": {"name": "Norfolk CJIT, Norwich hub"}})
    assert pointers(away) == []  # 48 hours end on Saturday: Monday counts
    away["body"]["referred_at"] = "2026-03-02T12:00:00Z"
    away["body"]["appointment"]["at"] = "2026-03-04T13:00:00Z"
    assert pointers(away) == ["/body/appointment/at"]


@given(st.dates(min_value=date(2025, 1, 1), max_value=date(2030, 12, 31)),
       st.integers(min_value=1, max_value=15))
def test_working_days_after_counts_exactly_the_working_days(start: date, count: int) -> None:
    end = working_days_after(start, count)
    assert end > start and is_working_day(end)
    between = [start + timedelta(days=n) for n in range(1, (end - start).days + 1)]
    assert sum(is_working_day(day) for day in between) == count


async def test_a_late_alert_is_delivered_and_names_its_breach(agency: AgencyFactory) -> None:
    """Refusing a late alert would only add delay: it is accepted and delivered, and both
    the sender's answer and the recipient's inbox name the breach."""
    alert = example(ALERT, occurred_at="2026-03-02T10:00:00Z",
                    assertive_outreach_started_at="2026-03-04T10:00:00Z")
    answer = await agency(alert["from"]).send(alert)
    assert answer.status == 202
    [breach] = answer.body["timescale_breaches"]
    assert breach["pointer"] == "/body/assertive_outreach_started_at"
    assert breach["limit"] == "24 hours"
    for code in alert["to"]:
        [item] = await wait_for_inbox(agency(code), alert["message_id"])
        assert item["timescale_breaches"] == [breach]
    on_time = example(ALERT)
    assert (await agency(on_time["from"]).send(on_time)).body["timescale_breaches"] == []


async def test_asking_for_a_decision_names_the_breach_too(agency: AgencyFactory) -> None:
    alert = example(ALERT, occurred_at="2026-03-02T10:00:00Z",
                    assertive_outreach_started_at="2026-03-04T10:00:00Z")
    sender = agency(alert["from"])
    answer = await sender.request("POST", "/v1/policy/decide", json_body=alert)
    assert [b["pointer"] for b in answer.body["timescale_breaches"]] == [
        "/body/assertive_outreach_started_at"]
