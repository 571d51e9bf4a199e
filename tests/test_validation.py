"""Schema checks, as pure functions: every violation at once, each with an RFC 6901 pointer."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.errors import InvalidMessage
from gateway.pipeline.validation import SchemaSet, pointer
from tests.conftest import EXAMPLES, ROOT, example_files, load

SCHEMAS = SchemaSet.load(ROOT / "schemas")
RA1 = load(EXAMPLES / "ra1_notice" / "valid-out-of-area-norfolk-resident.json")


def pointers(document: object) -> list[str]:
    return [v.pointer for v in SCHEMAS.violations(document)]


def test_every_schema_declares_2020_12_and_a_versioned_id() -> None:
    for path in (ROOT / "schemas").glob("*.schema.json"):
        schema = json.loads(path.read_text())
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"].endswith(":1"), path.name


@pytest.mark.parametrize("path", example_files("valid*.json"), ids=lambda p: p.name)
def test_valid_examples_have_no_violations(path: Path) -> None:
    assert SCHEMAS.violations(load(path)) == []


@pytest.mark.parametrize("path", example_files("invalid*.json"), ids=lambda p: p.name)
def test_invalid_examples_report_exactly_their_violations(path: Path) -> None:
    expected = load(path.parent / "expected-errors.json")[path.name]
    assert sorted(pointers(load(path))) == sorted(expected)


def test_missing_fields_point_at_the_missing_member() -> None:
    document = copy.deepcopy(RA1)
    del document["sent_at"]
    del document["body"]["initial_assessment"]
    found = {v.pointer: v.message for v in SCHEMAS.violations(document)}
    assert found == {
        "/sent_at": "'sent_at' is required here.",
        "/body/initial_assessment": "'initial_assessment' is required here.",
    }


def test_unknown_fields_are_each_reported() -> None:
    document = copy.deepcopy(RA1)
    document["extra"] = 1
    document["body"]["a/b"] = 2
    assert sorted(pointers(document)) == ["/body/a~1b", "/extra"]


def test_times_need_a_zone_and_dates_must_exist() -> None:
    document = copy.deepcopy(RA1)
    document["sent_at"] = "2026-03-21T14:00:00"
    document["subject"]["date_of_birth"] = "1990-02-30"
    found = {v.pointer: v.message for v in SCHEMAS.violations(document)}
    assert "time zone" in found["/sent_at"]
    assert "YYYY-MM-DD" in found["/subject/date_of_birth"]


def test_an_unknown_type_is_reported_at_type_and_the_body_is_not_guessed() -> None:
    document = {**RA1, "type": "gossip"}
    assert pointers(document) == ["/type"]


def test_check_raises_with_every_violation() -> None:
    document = {**RA1, "route": "sideways", "to": []}
    with pytest.raises(InvalidMessage) as raised:
        SCHEMAS.check(document)
    assert [v.pointer for v in raised.value.violations] == ["/route", "/to"]


@given(st.lists(st.one_of(st.text(), st.integers(min_value=0, max_value=10**6)), max_size=6))
def test_pointer_round_trips_through_rfc_6901_unescaping(parts: list[str | int]) -> None:
    encoded = pointer(parts)
    tokens = encoded.split("/")[1:] if encoded else []
    decoded = [t.replace("~1", "/").replace("~0", "~") for t in tokens]
    assert decoded == [str(p) for p in parts]


mutations = st.sampled_from(["drop", "null", "number", "text", "bad-date", "extra"])


@given(
    st.sampled_from(example_files("valid*.json") + example_files("invalid*.json")),
    st.lists(st.tuples(mutations, st.integers(min_value=0, max_value=10**6)), max_size=4),
)
def test_fast_and_explaining_validators_agree(path: Path, changes: list[tuple[str, int]]) -> None:
    """The fast path may accept only what the explaining validator finds no fault with."""
    document = load(path)
    for kind, seed in changes:
        _mutate(document, kind, seed)
    assert SCHEMAS.is_valid(document) == (SCHEMAS.violations(document) == [])


def _mutate(document: dict[str, object], kind: str, seed: int) -> None:
    containers: list[dict[str, object]] = []
    stack: list[object] = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            containers.append(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    target = containers[seed % len(containers)]
    if not target:
        return
    key = sorted(target)[seed % len(target)]
    if kind == "drop":
        del target[key]
    elif kind == "null":
        target[key] = None
    elif kind == "number":
        target[key] = seed
    elif kind == "text":
        target[key] = "x" * (seed % 300)
    elif kind == "bad-date":
        target[key] = "2026-02-30T25:00:00"
    else:
        target[f"extra{seed}"] = True
