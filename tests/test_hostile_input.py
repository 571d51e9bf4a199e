"""Hostile and malformed input: always a clear 4xx problem (never a 5xx), and never any
change to what is stored; a message delivered earlier stays in its recipient's inbox."""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from gateway.config import Settings
from gateway.domain.errors import MalformedRequest
from gateway.pipeline.validation import parse_document
from tests.conftest import EXAMPLES, bearer, load, table_counts

SENDER = "POL-SFK-IPS"
RECIPIENT = "CJIT-NFK"
RA1 = EXAMPLES / "ra1_notice" / "valid-out-of-area-norfolk-resident.json"  # POL-SFK-IPS → CJIT-NFK
DIR_TRANSFER = EXAMPLES / "dir_transfer" / "valid-enforcement-suffolk-to-norfolk.json"
MIB = 1024 * 1024
CHUNK = 64 * 1024


def fresh(path: Any = RA1, **changes: Any) -> dict[str, Any]:
    document = load(path)
    document["message_id"] = str(uuid.uuid4())
    document.update(changes)
    return document


def encoded(document: Any) -> bytes:
    return json.dumps(document).encode("utf-8")


async def recipient_inbox(client: TestClient[Any, Any], settings: Settings) -> list[Any]:
    response = await client.get("/v1/inbox?limit=500", headers=bearer(settings, RECIPIENT))
    assert response.status == 200
    messages: list[Any] = (await response.json())["messages"]
    return messages


class Baseline:
    """What is stored before a hostile request, to compare with afterwards."""

    def __init__(self, counts: dict[str, int], inbox: list[Any], earlier: dict[str, Any]) -> None:
        self.counts = counts
        self.inbox = inbox
        self.earlier = earlier

    async def assert_intact(self, client: TestClient[Any, Any], settings: Settings) -> None:
        assert table_counts(settings) == self.counts
        inbox = await recipient_inbox(client, settings)
        assert inbox == self.inbox
        mine = [m for m in inbox if m["message_id"] == self.earlier["message_id"]]
        assert len(mine) == 1
        assert mine[0]["envelope"] == self.earlier


@pytest.fixture
async def baseline(client: TestClient[Any, Any], settings: Settings) -> Baseline:
    """A message sent and delivered before the hostile request."""
    earlier = fresh()
    response = await client.post("/v1/messages", json=earlier, headers=bearer(settings, SENDER))
    assert response.status == 202
    for _ in range(200):
        inbox = await recipient_inbox(client, settings)
        if any(m["message_id"] == earlier["message_id"] for m in inbox):
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the earlier message was never delivered")
    await asyncio.sleep(0.1)  # let the relay settle, so counts cannot move on their own
    return Baseline(table_counts(settings), await recipient_inbox(client, settings), earlier)


async def assert_problem(response: Any, status: int, slug: str | None = None) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    problem: dict[str, Any] = json.loads(await response.text())
    assert problem["status"] == status
    assert problem["type"].startswith("urn:dipgw:problem:")
    if slug is not None:
        assert problem["type"] == f"urn:dipgw:problem:{slug}"
    assert isinstance(problem["title"], str) and problem["title"]
    assert isinstance(problem["detail"], str) and problem["detail"]
    return problem


async def post_raw(
    client: TestClient[Any, Any],
    settings: Settings,
    data: Any,
    content_type: str | None = "application/json",
    path: str = "/v1/messages",
) -> Any:
    headers = bearer(settings, SENDER)
    skip: list[str] = []
    if content_type is None:
        skip.append("Content-Type")
    else:
        headers["Content-Type"] = content_type
    return await client.post(path, data=data, headers=headers, skip_auto_headers=skip)


# --- malformed JSON → 400 -------------------------------------------------------------

VALID_BYTES = encoded(load(RA1))

MALFORMED: dict[str, bytes] = {
    "empty": b"",
    "whitespace-only": b"   \n\t ",
    "truncated": VALID_BYTES[: len(VALID_BYTES) // 2],
    "truncated-one-byte-short": VALID_BYTES[:-1],
    "trailing-garbage": VALID_BYTES + b"garbage",
    "two-documents": VALID_BYTES + VALID_BYTES,
    "nan-literal": VALID_BYTES.replace(b'"schema_version": "1"', b'"schema_version": NaN'),
    "infinity-literal": b'{"a": Infinity}',
    "minus-infinity-literal": b'{"a": -Infinity}',
    "bare-nan": b"NaN",
    "invalid-utf8": VALID_BYTES.replace(b"Kerry-Ann", b"Kerry\xff\xfeAnn"),
    "overlong-utf8": b'{"a": "\xc0\xaf"}',
    "utf16": json.dumps(load(RA1)).encode("utf-16"),
    "utf8-bom": b"\xef\xbb\xbf" + VALID_BYTES,
    "single-quotes": b"{'type': 'ra1_notice'}",
    "trailing-comma": b'{"type": "ra1_notice",}',
    "comment": b'{"type": "ra1_notice" /* hi */}',
    "nul-byte": b'{"a": 1}\x00',
    "unescaped-control-char": b'{"a": "line\nbreak"}',
    "unterminated-string": b'{"a": "',
    "deep-arrays-10000": b"[" * 10_000 + b"]" * 10_000,
    "deep-arrays-unclosed": b"[" * 200_000,
    "deep-objects-unclosed": b'{"a":' * 100_000,
}


@pytest.mark.parametrize("name", list(MALFORMED), ids=list(MALFORMED))
async def test_malformed_json_is_400(
    name: str, baseline: Baseline, client: TestClient[Any, Any], settings: Settings
) -> None:
    response = await post_raw(client, settings, MALFORMED[name])
    await assert_problem(response, 400, "malformed-request")
    await baseline.assert_intact(client, settings)


@pytest.mark.parametrize("name", ["truncated", "nan-literal", "invalid-utf8", "deep-arrays-10000"])
async def test_malformed_json_is_400_on_the_policy_dry_run_too(
    name: str, baseline: Baseline, client: TestClient[Any, Any], settings: Settings
) -> None:
    response = await post_raw(client, settings, MALFORMED[name], path="/v1/policy/decide")
    await assert_problem(response, 400, "malformed-request")
    await baseline.assert_intact(client, settings)


def nested_objects(levels: int, leaf: Any) -> Any:
    for _ in range(levels):
        leaf = {"a": leaf}
    return leaf


async def test_forty_levels_of_objects_inside_body_is_400(
    baseline: Baseline, client: TestClient[Any, Any], settings: Settings
) -> None:
    document = fresh()
    document["body"]["notes"] = nested_objects(40, "deep")
    response = await post_raw(client, settings, encoded(document))
    problem = await assert_problem(response, 400, "malformed-request")
    assert str(settings.max_json_depth) in problem["detail"]
    await baseline.assert_intact(client, settings)


async def test_nesting_at_the_limit_is_not_a_parse_error(
    baseline: Baseline, client: TestClient[Any, Any], settings: Settings
) -> None:
    # Depth exactly max_json_depth parses; the schema then refuses the unknown field.
    document = fresh()
    document["body"]["notes"] = nested_objects(settings.max_json_depth - 2, "deep")
    response = await post_raw(client, settings, encoded(document))
    await assert_problem(response, 422, "invalid-message")
    await baseline.assert_intact(client, settings)


async def test_integer_literal_with_thousands_of_digits_is_400(
    baseline: Baseline, client: TestClient[Any, Any], settings: Settings
) -> None:
    raw = VALID_BYTES.replace(b'"schema_version": "1"', b'"schema_version": ' + b"9" * 5000)
    response = await post_raw(client, settings, raw)
    await assert_problem(response, 400, "malformed-request")
    await baseline.assert_intact(client, settings)


async def test_lone_surrogate_escape_in_a_string_is_a_4xx(
    baseline: Baseline, client: TestClient[Any, Any], settings: Settings
) -> None:
    raw = VALID_BYTES.replace(b'"Kerry-Ann"', b'"Kerry\\ud800Ann"')
    assert raw != VALID_BYTES
    response = await post_raw(client, settings, raw)
    assert 400 <= response.status < 500, await response.text()
    await assert_problem(response, response.status)
    await baseline.assert_intact(client, settings)


# --- media type → 415 -------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        None,
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/jsonx",
        "text/json",
    ],
    ids=lambda c: c or "no-content-type",
)
async def test_wrong_content_type_is_415(
    content_type: str | None,
    baseline: Baseline,
    client: TestClient[Any, Any],
    settings: Settings,
) -> None:
    # A valid document: only the media type is wrong.
    response = await post_raw(client, settings, encoded(fresh()), content_type)
    await assert_problem(response, 415, "unsupported-media-type")
    await baseline.assert_intact(client, settings)


async def test_json_with_charset_parameter_is_accepted(
    baseline: Baseline, client: TestClient[Any, Any], settings: Settings
) -> None:
    document = fresh()
    response = await post_raw(
        client, settings, encoded(document), "application/json; charset=utf-8"
    )
    assert response.status == 202


# --- size → 413 -------------------------------------------------------------------------


def oversized(settings: Settings) -> bytes:
    document = fresh()
    document["body"]["padding"] = "x" * (settings.max_body_bytes + 1024)
    raw = encoded(document)
    assert len(raw) > settings.max_body_bytes
    return raw


async def test_body_over_one_mib_with_content_length_is_413(
    baseline: Baseline, client: TestClient[Any, Any], settings: Settings
) -> None:
    assert settings.max_body_bytes == MIB
    response = await post_raw(client, settings, oversized(settings))
    await assert_problem(response, 413, "payload-too-large")
    await baseline.assert_intact(client, settings)


async def test_body_over_one_mib_chunked_is_413(
    baseline: Baseline, client: TestClient[Any, Any], settings: Settings
) -> None:
    raw = oversized(settings)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), CHUNK):
            yield raw[start : start + CHUNK]

    response = await post_raw(client, settings, chunks())
    assert response.request_info.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in response.request_info.headers
    await assert_problem(response, 413, "payload-too-large")
    await baseline.assert_intact(client, settings)


async def test_chunked_body_of_garbage_over_one_mib_is_413(
    baseline: Baseline, client: TestClient[Any, Any], settings: Settings
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(settings.max_body_bytes // CHUNK + 2):
            yield b"[" * CHUNK

    response = await post_raw(client, settings, chunks())
    await assert_problem(response, 413, "payload-too-large")
    await baseline.assert_intact(client, settings)


async def test_body_exactly_at_the_limit_is_read(
    baseline: Baseline, client: TestClient[Any, Any], settings: Settings
) -> None:
    document = fresh()
    raw = encoded(document)
    raw += b" " * (settings.max_body_bytes - len(raw))
    assert len(raw) == settings.max_body_bytes
    response = await post_raw(client, settings, raw)
    assert response.status == 202


# --- JSON that is not an envelope → 422 ---------------------------------------------------


@pytest.mark.parametrize(
    "raw", [b"[]", b"[1, 2, 3]", b'"ra1_notice"', b"42", b"-0.5", b"true", b"null", b"{}"],
    ids=["empty-array", "array", "string", "number", "float", "true", "null", "empty-object"],
)
async def test_json_that_is_not_an_envelope_is_422(
    raw: bytes, baseline: Baseline, client: TestClient[Any, Any], settings: Settings
) -> None:
    response = await post_raw(client, settings, raw)
    problem = await assert_problem(response, 422, "invalid-message")
    assert problem["errors"], "the violations are listed"
    assert all("pointer" in v and v["message"] for v in problem["errors"])
    await baseline.assert_intact(client, settings)


async def test_unknown_message_type_is_422_at_type(
    baseline: Baseline, client: TestClient[Any, Any], settings: Settings
) -> None:
    response = await post_raw(client, settings, encoded(fresh(type="ra9_unknown")))
    problem = await assert_problem(response, 422, "invalid-message")
    assert "/type" in [v["pointer"] for v in problem["errors"]]
    await baseline.assert_intact(client, settings)


@pytest.mark.parametrize("value", [None, 7, ["ra1_notice"], {"ra1_notice": 1}, ""])
async def test_message_type_of_the_wrong_shape_is_422_at_type(
    value: Any, baseline: Baseline, client: TestClient[Any, Any], settings: Settings
) -> None:
    response = await post_raw(client, settings, encoded(fresh(type=value)))
    problem = await assert_problem(response, 422, "invalid-message")
    assert "/type" in [v["pointer"] for v in problem["errors"]]
    await baseline.assert_intact(client, settings)


async def test_unknown_recipient_is_422_at_its_index(
    baseline: Baseline, client: TestClient[Any, Any], settings: Settings
) -> None:
    document = fresh(DIR_TRANSFER, to=["CJIT-NOWHERE"])
    response = await client.post(
        "/v1/messages", json=document, headers=bearer(settings, document["from"])
    )
    problem = await assert_problem(response, 422, "invalid-message")
    assert [v["pointer"] for v in problem["errors"]] == ["/to/0"]
    assert "CJIT-NOWHERE" in problem["errors"][0]["message"]
    await baseline.assert_intact(client, settings)


async def test_unknown_recipient_of_an_ra1_is_422_at_to_0(
    baseline: Baseline, client: TestClient[Any, Any], settings: Settings
) -> None:
    response = await post_raw(client, settings, encoded(fresh(to=["CJIT-NOWHERE"])))
    problem = await assert_problem(response, 422, "invalid-message")
    assert "/to/0" in [v["pointer"] for v in problem["errors"]]
    await baseline.assert_intact(client, settings)


async def test_unknown_recipients_are_all_reported(
    baseline: Baseline, client: TestClient[Any, Any], settings: Settings
) -> None:
    document = fresh(DIR_TRANSFER, to=["CJIT-NFK", "CJIT-NOWHERE", "CJIT-ELSEWHERE"])
    response = await client.post(
        "/v1/messages", json=document, headers=bearer(settings, document["from"])
    )
    problem = await assert_problem(response, 422, "invalid-message")
    assert [v["pointer"] for v in problem["errors"]] == ["/to/1", "/to/2"]
    await baseline.assert_intact(client, settings)


async def test_duplicate_recipient_is_422(
    baseline: Baseline, client: TestClient[Any, Any], settings: Settings
) -> None:
    response = await post_raw(client, settings, encoded(fresh(to=["CJIT-NFK", "CJIT-NFK"])))
    problem = await assert_problem(response, 422, "invalid-message")
    assert [v["pointer"] for v in problem["errors"]] == ["/to"]
    await baseline.assert_intact(client, settings)


async def test_reusing_the_earlier_message_id_for_other_content_is_refused(
    baseline: Baseline, client: TestClient[Any, Any], settings: Settings
) -> None:
    document = load(RA1)
    document["message_id"] = baseline.earlier["message_id"]
    document["subject"]["given_name"] = "Someone-Else"
    response = await post_raw(client, settings, encoded(document))
    await assert_problem(response, 409, "message-id-conflict")
    await baseline.assert_intact(client, settings)


# --- routing → 404 / 405 ----------------------------------------------------------------


# "/" is not among them: it sends a browser to the web console (gateway.console).
@pytest.mark.parametrize("path", ["/v1/nothing", "/v2/messages", "/v1/messages/x/y"])
async def test_unknown_route_is_404_problem(
    path: str, baseline: Baseline, client: TestClient[Any, Any], settings: Settings
) -> None:
    response = await client.get(path, headers=bearer(settings, SENDER))
    problem = await assert_problem(response, 404)
    assert path in problem["detail"]
    await baseline.assert_intact(client, settings)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_wrong_method_is_405_problem(
    method: str, baseline: Baseline, client: TestClient[Any, Any], settings: Settings
) -> None:
    response = await client.request(
        method, "/v1/messages", json=fresh(), headers=bearer(settings, SENDER)
    )
    problem = await assert_problem(response, 405)
    assert method in problem["detail"]
    assert "POST" in response.headers.get("Allow", "")
    await baseline.assert_intact(client, settings)


# --- query strings and headers ------------------------------------------------------------


@pytest.mark.parametrize(
    "limit",
    # The last two are digits to str.isdigit() that int() refuses.
    ["0", "-1", "1.5", "abc", "501", "", "1e3", "²", "9" * 5000],
    ids=["0", "-1", "1.5", "abc", "501", "empty", "1e3", "superscript-two", "5000-digits"],
)
async def test_bad_inbox_limit_is_400(
    limit: str, baseline: Baseline, client: TestClient[Any, Any], settings: Settings
) -> None:
    response = await client.get(
        "/v1/inbox", params={"limit": limit}, headers=bearer(settings, RECIPIENT)
    )
    await assert_problem(response, 400, "malformed-request")
    await baseline.assert_intact(client, settings)


@pytest.mark.parametrize(
    "value",
    ["abc", "-1", "1.0", "²", "9" * 5000, str(2**63)],
    ids=["letters", "negative", "decimal", "superscript-two", "5000-digits", "beyond-64-bits"],
)
async def test_stream_bad_last_event_id_is_400(
    value: str, baseline: Baseline, client: TestClient[Any, Any], settings: Settings
) -> None:
    headers = {**bearer(settings, RECIPIENT), "Last-Event-ID": value}
    response = await asyncio.wait_for(client.get("/v1/inbox/stream", headers=headers), 5)
    try:
        # Check the status before reading: a started stream's body never ends.
        assert response.status == 400
        await asyncio.wait_for(assert_problem(response, 400, "malformed-request"), 5)
    finally:
        response.close()
    await baseline.assert_intact(client, settings)


@pytest.mark.parametrize("address", [
    "/v1/messages/%00", "/v1/inbox/%00/ack", "/v1/inbox?type=%00", "/v1/inbox?%00=1",
    "/v1/consents?pnc_id=2026/0000001A%00",
])
async def test_a_nul_in_the_address_is_malformed_on_every_back_end(
    address: str, baseline: Baseline, client: TestClient[Any, Any], settings: Settings
) -> None:
    """PostgreSQL cannot hold or compare a text with a NUL in it: before this check a
    ``%00`` in a path reached the database there and answered 500 (SQLite answered 404)."""
    method = "POST" if address.endswith("/ack") else "GET"
    response = await client.request(method, address, headers=bearer(settings, RECIPIENT))
    assert response.status == 400
    problem = await assert_problem(response, 400)
    assert "NUL" in problem["detail"]
    await baseline.assert_intact(client, settings)


async def test_hostile_message_id_in_path_is_404(
    baseline: Baseline, client: TestClient[Any, Any], settings: Settings
) -> None:
    for message_id in ["' OR 1=1 --", "%00", "x" * 2000, "..%2F..%2Fetc"]:
        response = await client.get(
            f"/v1/messages/{message_id}", headers=bearer(settings, SENDER)
        )
        assert response.status in (400, 404)
        await assert_problem(response, response.status)
        ack = await client.post(
            f"/v1/inbox/{message_id}/ack", headers=bearer(settings, RECIPIENT)
        )
        assert ack.status in (400, 404)
    await baseline.assert_intact(client, settings)


# --- the pure parser, by property -------------------------------------------------------

MAX_DEPTH = 32


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


JSON_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | JSON_TEXT
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(JSON_TEXT, children, max_size=4),
    max_leaves=40,
)
JSONISH_BYTES = st.text(alphabet='[]{}":,0123456789.eE+-truefalsnNaIiy \\u\t\n', max_size=80).map(
    lambda s: s.encode("utf-8")
)


@given(st.binary(max_size=300) | JSONISH_BYTES)
@example(b"")
@example(b"NaN")
@example(b"[" * 5000)
@example(b'{"a": -Infinity}')
@example(b"\xff")
@example(b'"\\ud800"')
@example(b"1e999")
@hypothesis_settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_parse_document_returns_or_raises_malformed(raw: bytes) -> None:
    try:
        parse_document(raw, max_depth=MAX_DEPTH)
    except MalformedRequest as exc:
        assert exc.detail


@given(JSON_VALUES, st.booleans())
@hypothesis_settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_parse_document_round_trips_json(value: Any, ascii_only: bool) -> None:
    raw = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8")
    if depth(value) <= MAX_DEPTH:
        assert parse_document(raw, max_depth=MAX_DEPTH) == json.loads(raw)
    else:
        with pytest.raises(MalformedRequest):
            parse_document(raw, max_depth=MAX_DEPTH)


@given(JSON_VALUES, st.lists(st.booleans(), max_size=45))
@hypothesis_settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_parse_document_refuses_exactly_what_is_too_deep(value: Any, wrappers: list[bool]) -> None:
    for as_object in wrappers:
        value = {"k": value} if as_object else [value]
    raw = json.dumps(value).encode("utf-8")
    if depth(value) <= MAX_DEPTH:
        assert parse_document(raw, max_depth=MAX_DEPTH) == json.loads(raw)
    else:
        with pytest.raises(MalformedRequest):
            parse_document(raw, max_depth=MAX_DEPTH)


def test_parse_document_never_yields_nan() -> None:
    for raw in (b"NaN", b"[Infinity]", b'{"a": -Infinity}'):
        with pytest.raises(MalformedRequest):
            parse_document(raw, max_depth=MAX_DEPTH)
    value = parse_document(b"[1.5, -0.0]", max_depth=MAX_DEPTH)
    assert all(not math.isnan(v) for v in value)


@pytest.mark.parametrize("raw", [b"9" * 5000, b'{"a": [' + b"1" * 4301 + b"]}"])
def test_parse_document_refuses_huge_integer_literals(raw: bytes) -> None:
    with pytest.raises(MalformedRequest):
        parse_document(raw, max_depth=MAX_DEPTH)
