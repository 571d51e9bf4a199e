"""The gateway refuses whatever its schemas refuse, and reads ``pattern`` as ECMA-262 does.

JSON Schema 2020-12 patterns are ECMA-262 regular expressions: ``$`` is the end of the
input. Python's ``re`` also lets ``$`` match before a final newline, so the explaining
validator once passed ``"2012/118822R\\n"`` as a PNC ID, and a document jsonschema-rs refused
but jsonschema found no fault with was accepted. Both are checked here, for messages,
consent requests and policy files.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from gateway.config import Settings
from gateway.domain.errors import InvalidMessage, InvalidPolicy
from gateway.http.consent_actions import REQUEST_SCHEMA
from gateway.pipeline.policy.document import load_text
from gateway.pipeline.validation import SchemaSet, ecma_regex, explain
from tests.conftest import EXAMPLES, ROOT, bearer, example_files, load

SCHEMAS = SchemaSet.load(ROOT / "schemas")
RA1 = load(EXAMPLES / "ra1_notice" / "valid-out-of-area-norfolk-resident.json")
ASSESSMENT = load(EXAMPLES / "assessment_outcome" / "valid-drr-written-consent-suffolk.json")
POSTCODE = "/body/assessment/place/postcode"
VALID = example_files("valid*.json")


def refused_at(document: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(InvalidMessage) as refused:
        SCHEMAS.check(document)
    return {v.pointer: v.message for v in refused.value.violations}


def test_a_pnc_id_with_a_trailing_newline_is_refused_at_its_pointer() -> None:
    document = copy.deepcopy(RA1)
    assert document["subject"]["pnc_id"] == "2012/118822R"
    document["subject"]["pnc_id"] = "2012/118822R\n"
    found = refused_at(document)
    assert list(found) == ["/subject/pnc_id"]
    assert "expected form" in found["/subject/pnc_id"]


def test_a_postcode_with_a_trailing_newline_is_refused_at_its_pointer() -> None:
    """The postcode pattern is reached through a $ref into common.schema.json."""
    document = copy.deepcopy(ASSESSMENT)
    assert json.dumps(document).count('"postcode"') == 1
    document["body"]["assessment"]["place"]["postcode"] = "NR3 1HG\n"
    assert list(refused_at(document)) == [POSTCODE]


def test_a_consent_request_pnc_id_with_a_trailing_newline_is_refused() -> None:
    subject: dict[str, Any] = {**RA1["subject"], "pnc_id": "2012/118822R\n"}
    subject.pop("custody_record_number")
    request = {
        "subject": subject,
        "form": "written",
        "provision": {"type": "permit", "actor_roles": ["cjit"]},
        "information_given": "Told who will see the assessment and why.",
    }
    assert [v.pointer for v in explain(REQUEST_SCHEMA.iter_errors(request), ())] == [
        "/subject/pnc_id"
    ]
    subject["pnc_id"] = "2012/118822R"
    assert list(REQUEST_SCHEMA.iter_errors(request)) == []


def test_a_policy_name_with_a_trailing_newline_is_refused() -> None:
    text = (ROOT / "policies" / "dip-default.yaml").read_text(encoding="utf-8")
    name = re.search(r"^policy: *(\S+)$", text, re.MULTILINE)
    assert name is not None
    broken = text.replace(name.group(0), f'policy: "{name.group(1)}\\n"', 1)
    with pytest.raises(InvalidPolicy) as refused:
        load_text(broken)
    assert [v.pointer for v in refused.value.violations] == ["/policy"]


async def test_http_refuses_trailing_newlines_with_422_and_pointers(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    for document, where in (
        ({**RA1, "subject": {**RA1["subject"], "pnc_id": "2012/118822R\n"}},
         "/subject/pnc_id"),
        (_with_postcode(ASSESSMENT, "NR3 1HG\n"), POSTCODE),
    ):
        response = await client.post(
            "/v1/messages", json=document, headers=bearer(settings, document["from"])
        )
        assert response.status == 422
        problem = await response.json()
        assert [e["pointer"] for e in problem["errors"]] == [where]


def _with_postcode(document: dict[str, Any], postcode: str) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    changed["body"]["assessment"]["place"]["postcode"] = postcode
    return changed


def _patterns(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            yield node["pattern"]
        for value in node.values():
            yield from _patterns(value)
    elif isinstance(node, list):
        for value in node:
            yield from _patterns(value)


SCHEMA_FILES = [
    *sorted((ROOT / "schemas").rglob("*.schema.json")), ROOT / "policies" / "policy.schema.json"
]
PATTERNS = sorted(
    {p for path in SCHEMA_FILES for p in _patterns(json.loads(path.read_text(encoding="utf-8")))}
)


def test_every_schema_pattern_is_seen() -> None:
    assert len(PATTERNS) >= 10
    assert all(p.startswith("^") and p.endswith("$") for p in PATTERNS)


@st.composite
def near_misses(draw: st.DrawFn) -> tuple[str, str]:
    """A pattern and a string that matches it, perhaps with a newline or more around it."""
    pattern = draw(st.sampled_from(PATTERNS))
    text = draw(st.from_regex(re.compile(pattern.removesuffix("$") + r"\Z"), fullmatch=True))
    before = draw(st.sampled_from(["", "", "\n", "x"]))
    after = draw(st.sampled_from(["", "\n", "\n\n", "\r\n", " ", "x", "\u2028"]))
    return pattern, before + text + after


@given(near_misses())
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_schema_patterns_match_as_in_ecma_262(case: tuple[str, str]) -> None:
    """Python (as the gateway compiles it) and jsonschema-rs agree on every schema pattern."""
    pattern, text = case
    expected = jsonschema_rs.validator_for({"pattern": pattern}).is_valid(text)
    assert bool(ecma_regex(pattern).search(text)) == expected
    assert expected == (re.fullmatch(pattern.removeprefix("^").removesuffix("$"), text)
                        is not None)


@pytest.mark.filterwarnings("ignore:Possible nested set:FutureWarning")
@given(st.text(alphabet="ab$[]\\^\n", max_size=12), st.text(alphabet="ab$\n[]", max_size=6))
def test_dollar_is_the_end_of_input_only_outside_classes_and_escapes(
    pattern: str, text: str
) -> None:
    try:
        expected = jsonschema_rs.validator_for({"pattern": pattern}).is_valid(text)
    except (ValueError, jsonschema_rs.ValidationError):
        return  # not an ECMA-262 regex
    try:
        compiled = ecma_regex(pattern)
    except re.error:
        return
    assert bool(compiled.search(text)) == expected


def test_a_refusal_the_explanation_cannot_account_for_is_still_a_refusal() -> None:
    """jsonschema-rs decides: with an explaining validator that finds nothing, the
    document is refused all the same, with jsonschema-rs's own finding."""
    blind = replace(SCHEMAS, validators={
        name: Draft202012Validator({}) for name in SCHEMAS.validators
    })
    document = copy.deepcopy(RA1)
    document["subject"]["pnc_id"] = "not a PNC ID"
    assert blind.violations(document) == []
    with pytest.raises(InvalidMessage) as refused:
        blind.check(document)
    [violation] = refused.value.violations
    assert violation.pointer == "/subject/pnc_id"
    assert "'pattern'" in violation.message
    assert "not a PNC ID" not in violation.message  # the value itself is not echoed


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _leaves(value, (*path, index))
    else:
        yield path


def _set(document: Any, path: tuple[Any, ...], value: Any) -> None:
    for part in path[:-1]:
        document = document[part]
    document[path[-1]] = value


def _get(document: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        document = document[part]
    return document


edits = st.one_of(
    st.tuples(st.just("suffix"), st.sampled_from(["\n", "\r\n", " ", "\t", "\u2028", "x"])),
    st.tuples(st.just("prefix"), st.sampled_from(["\n", " ", "x"])),
    st.tuples(st.just("replace"), st.one_of(
        st.text(max_size=20), st.integers(), st.none(), st.booleans(),
    )),
)


@given(st.sampled_from(VALID), st.lists(st.tuples(st.integers(0, 10**6), edits), max_size=3))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_whatever_jsonschema_rs_refuses_the_gateway_refuses(
    path: Path, changes: list[tuple[int, tuple[str, Any]]]
) -> None:
    document = load(path)
    for seed, (kind, value) in changes:
        leaves = list(_leaves(document))
        where = leaves[seed % len(leaves)]
        old = _get(document, where)
        if kind == "replace":
            _set(document, where, value)
        elif isinstance(old, str):
            _set(document, where, old + value if kind == "suffix" else value + old)
    body_validator = SCHEMAS.fast.get(str(document.get("type")))
    refused_by_rs = not SCHEMAS.fast["envelope"].is_valid(document) or (
        body_validator is not None and not body_validator.is_valid(document["body"])
    )
    if refused_by_rs:
        with pytest.raises(InvalidMessage) as refused:
            SCHEMAS.check(document)
        assert refused.value.violations
    else:
        assert SCHEMAS.check(document) is document
    # The explanation agrees as well: it finds a fault exactly when jsonschema-rs does.
    assert (SCHEMAS.violations(document) != []) == refused_by_rs
