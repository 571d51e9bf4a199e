"""The audit log's canonical JSON against the ``rfc8785`` package, and its fast path
(the standard library's encoder) against the reference serialiser it stands in for.

``rfc8785`` (PyPI, a pure-Python RFC 8785 implementation) is the independent oracle: the
tests that need it are skipped where it is not installed.
"""

from __future__ import annotations

import json
import math
import types
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.domain.model import Envelope
from gateway.pipeline.audit import AuditAction, AuditEvent, Pseudonymiser, entry_document
from gateway.pipeline.policy.document import load_text
from gateway.pipeline.policy.evaluate import evaluate
from gateway.pipeline.policy.facts import message_facts, purpose_of
from gateway.pipeline.policy.rules import ConsentState, Facts
from gateway.services.submission import acceptance_event
from gateway.storage.audit_log import AuditLogStore
from gateway.storage.base import PlannedDelivery, Submission
from gateway.storage.engine import open_database
from gateway.tlog import canonical
from gateway.tlog.canonical import (
    MAX_SAFE_INTEGER,
    CanonicalizationError,
    canonical_text,
    canonical_text_exact,
    canonicalize,
    stdlib_is_canonical,
)

ROOT = Path(__file__).resolve().parents[2]
RA1 = ROOT / "schemas/examples/ra1_notice/valid-out-of-area-norfolk-resident.json"
AT = datetime(2026, 3, 20, 9, 0, 0, 250000, tzinfo=UTC)


def _rfc8785() -> Any:
    return pytest.importorskip("rfc8785", reason="the rfc8785 package is the oracle")


# Characters chosen where the two paths could part: controls and the escapes of §3.2.2.2,
# DEL and U+2028 (literal in JCS), U+E000..U+FFFF and supplementary characters (whose
# UTF-16 order differs, §3.2.3), and surrogates (refused).
_TRICKY = st.sampled_from(
    ["\x00", "\x1f", "\b", "\t", "\n", "\f", "\r", '"', "\\", "/", "\x7f", "\x80", "é",
     "\u2028", "\ud7ff", "\ue000", "\uff61", "\ufb33", "\ufffd", "\uffff", "\U00010000",
     "\U0001f600", "\U0010ffff", "\ud800", "\udfff", "a", "A", "1"]
)
_text = st.text(_TRICKY, max_size=4) | st.text(max_size=6)
_ints = st.integers(-(2**53) - 2, 2**53 + 2) | st.sampled_from(
    [0, 1, -1, MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER, 2**53, -(2**53), 10**21, 2**64]
)
_floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, 3.0, 1e15, 1e16, 2.0**53, 1e21, 0.5, 1e-7, 5e-324]
)
_scalars = st.none() | st.booleans() | _ints | _floats | _text
json_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(_text, children, max_size=5)
    ),
    max_leaves=16,
)
# Mostly values the fast path takes: no floats, integers in range, BMP names.
_bmp_text = st.text(st.characters(max_codepoint=0xFFFF, exclude_categories=["Cs"]), max_size=6)
plain_values = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(_bmp_text, children, max_size=5)
    ),
    max_leaves=16,
)


def _refusals(rfc8785: Any) -> tuple[type[Exception], ...]:
    # A surrogate in a name fails its UTF-16 sort key before rfc8785's own check.
    return (rfc8785.CanonicalizationError, UnicodeEncodeError)


def _ours(value: object) -> bytes | None:
    try:
        return canonicalize(value)
    except CanonicalizationError:
        return None


def _float_beyond_entries(value: object) -> bool:
    """Whether ``value`` holds a finite float that is fractional or outside
    ±(2**53 - 1): RFC 8785 serialises it, the audit log refuses it (the module docstring
    of gateway.tlog.canonical)."""
    if isinstance(value, float):
        return math.isfinite(value) and not (
            value.is_integer() and abs(value) <= MAX_SAFE_INTEGER)
    if isinstance(value, dict):
        return any(_float_beyond_entries(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_float_beyond_entries(v) for v in value)
    return False


@settings(max_examples=300)
@given(json_values)
@example({"\U0001f600": 1, "\ufb33": 2, "\ue000": 3, "a": 4})
@example({"k": "\ud800"})
@example({"\udc00": 1})
@example([2**53 - 1, -(2**53 - 1), 3.0, -0.0])
def test_agrees_with_rfc8785(value: object) -> None:
    rfc8785 = _rfc8785()
    ours = _ours(value)
    try:
        expected = rfc8785.dumps(value)
    except _refusals(rfc8785):
        assert ours is None
        return
    if ours is None:
        assert _float_beyond_entries(value), "refused a value RFC 8785 serialises"
    else:
        assert ours == expected


@settings(max_examples=300)
@given(plain_values)
def test_plain_values_take_the_fast_path_and_agree_with_rfc8785(value: object) -> None:
    rfc8785 = _rfc8785()
    assert stdlib_is_canonical(value)
    try:
        expected = rfc8785.dumps(value)
    except _refusals(rfc8785):  # a lone surrogate from st.text()
        with pytest.raises(CanonicalizationError):
            canonicalize(value)
        return
    assert canonicalize(value) == expected


@settings(max_examples=300)
@given(json_values)
def test_fast_path_matches_the_reference(value: object) -> None:
    """Without the oracle: either path, the same text or the same refusal."""
    try:
        reference = canonical_text_exact(value)
    except CanonicalizationError as refused:
        for fast in (canonicalize, canonical_text):
            with pytest.raises(CanonicalizationError) as raised:
                fast(value)
            assert str(raised.value) == str(refused)
        return
    assert canonical_text(value) == reference
    assert canonicalize(value) == reference.encode("utf-8")


class Level(IntEnum):
    HIGH = 3


class Colour(StrEnum):
    RED = "red"


@pytest.mark.parametrize(
    "value",
    [
        1.0,  # Python writes 1.0, RFC 8785 1
        {"a": [0.0]},
        2**53,  # refused by the reference
        {1: "x"},  # the encoder would write "1"
        {"\U0001f600": 1, "\ufb33": 2},  # UTF-16 order differs from code point order
        [Level.HIGH],  # subclasses: the reference decides
        {Colour.RED: "x"},
        types.MappingProxyType({"a": 1}),  # a Mapping the encoder does not take
        [b"x"],
    ],
)
def test_values_the_fast_path_leaves_to_the_reference(value: object) -> None:
    assert not stdlib_is_canonical(value)


def test_fast_path_takes_bmp_names_controls_and_safe_integers() -> None:
    value = {"\uffff": "\x00\x1f\x7f\u2028", "\ue000": [True, None, MAX_SAFE_INTEGER],
             "é": (-MAX_SAFE_INTEGER, ""), "": {}}
    assert stdlib_is_canonical(value)
    assert canonical_text(value) == canonical_text_exact(value) == (
        '{"":{},"é":[-9007199254740991,""],"\ue000":[true,null,9007199254740991],'
        '"\uffff":"\\u0000\\u001f\x7f\u2028"}'
    )


def test_lone_surrogates_are_refused_on_the_fast_path_as_before() -> None:
    for value in ({"k": "x\ud800"}, {"\udfff": 1}, ["\ud83d\ude00"]):
        assert stdlib_is_canonical(value)  # the check leaves them to the encoding
        with pytest.raises(CanonicalizationError, match="lone surrogate"):
            canonicalize(value)
        with pytest.raises(CanonicalizationError, match="lone surrogate"):
            canonical_text(value)


PSEUDONYMS = Pseudonymiser(b"k" * 32)


def acceptance() -> AuditEvent:
    """The event the gateway logs for an accepted RA1 notice: the real decision of the
    default policy, through acceptance_event."""
    document = json.loads(RA1.read_text("utf-8"))
    envelope = Envelope.from_document(document)
    policy = load_text((ROOT / "policies/dip-default.yaml").read_text("utf-8"))
    found = message_facts(envelope.type.value, document["body"])
    decision = evaluate(policy, Facts(
        envelope.type.value, envelope.route.value, "police", "cjit", ConsentState.NONE,
        found, purpose_of(envelope.type.value, found),
    ))
    return acceptance_event(Submission(
        envelope=envelope,
        deliveries=(PlannedDelivery("CJIT-NFK", decision, envelope.document),),
        received_at=datetime(2026, 3, 20, 5, 31, 48, 120000, tzinfo=UTC),
        submitted_by="POL-SFK-IPS/custody-system",
    ))


def acceptance_entry() -> dict[str, Any]:
    return entry_document(acceptance(), 41, PSEUDONYMS)


async def test_audit_entries_take_the_fast_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A regression to the slow path for every entry fails here, without timing: the
    reference serialiser is made to fail, and entries are appended as the gateway does."""
    entry = acceptance_entry()
    assert stdlib_is_canonical(entry)
    expected = canonical_text_exact(entry).encode("utf-8")

    def slow(value: object) -> str:
        raise AssertionError("the reference serialiser ran for a plain audit entry")

    monkeypatch.setattr(canonical, "canonical_text_exact", slow)
    assert canonicalize(entry) == expected
    assert canonical_text(entry).encode("utf-8") == expected
    db = open_database(None, tmp_path / "dipgw.sqlite3")
    await db.open()
    try:
        store = AuditLogStore(db, PSEUDONYMS)
        consulted = AuditEvent(AuditAction.CONSULTED, AT, "CJIT-NFK/worker-7",
                               message_id=entry["message_id"], recipients=("CJIT-NFK",),
                               details={"purpose": "case review"})
        assert [await store.record(e) for e in (acceptance(), consulted)] == [0, 1]
        logged = await store.entries(0, 2)
    finally:
        await db.close()
    monkeypatch.undo()
    assert logged == [canonical_text_exact(json.loads(e)).encode("utf-8") for e in logged]
    assert json.loads(logged[0]) == {**entry, "index": 0}


def test_an_audit_entry_agrees_with_rfc8785() -> None:
    rfc8785 = _rfc8785()
    entry = acceptance_entry()
    assert canonicalize(entry) == rfc8785.dumps(entry)
    document = json.loads(RA1.read_text("utf-8"))
    assert canonicalize(document) == rfc8785.dumps(document)
