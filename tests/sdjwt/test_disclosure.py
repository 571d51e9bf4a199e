"""RFC 9901 issuing, presenting and verifying (gateway.sdjwt.disclosure).

The property that carries the design: for any JSON document and any redaction pointers,
the verified presentation is exactly what ``redact`` gives the recipient. Then each way
an SD-JWT can be altered is refused.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import keys
from gateway.pipeline.redaction import redact
from gateway.sdjwt.disclosure import SdJwt, SdJwtError, digest_of, issue, present, verify

TYP = "test+sd-jwt"
KEY = keys.generate("EdDSA")
PUBLIC = keys.public_jwk(KEY)

names = st.text(st.characters(codec="utf-8"), max_size=6).filter(
    lambda n: n not in ("_sd", "_sd_alg", "...")
)
scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=4),
    max_leaves=20,
)
documents = st.dictionaries(names, json_values, max_size=5)
tokens = names | st.integers(0, 4).map(str)
pointers = st.lists(tokens, min_size=0, max_size=4).map(
    lambda ts: "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in ts)
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _disclosure(parts: list[Any]) -> str:
    return _b64(json.dumps(parts).encode())


@settings(max_examples=150, deadline=None)
@given(documents, st.lists(pointers, max_size=5))
def test_a_verified_presentation_is_exactly_the_redacted_document(
    document: dict[str, Any], redactions: list[str]
) -> None:
    issued = issue(document, KEY, typ=TYP)
    assert verify(issued, PUBLIC, typ=TYP).claims == document
    shown = verify(present(issued, redactions), PUBLIC, typ=TYP)
    assert shown.claims == redact(document, redactions)


@settings(max_examples=50, deadline=None)
@given(documents)
def test_the_compact_form_round_trips(document: dict[str, Any]) -> None:
    issued = issue(document, KEY, typ=TYP)
    assert SdJwt.parse(issued.serialise()) == issued


def test_withheld_parts_are_counted_and_say_nothing_of_their_names() -> None:
    document = {"a": 1, "body": {"secret": "x", "kept": [1, 2]}}
    shown = present(issue(document, KEY, typ=TYP), ["/body/secret", "/body/kept/0"])
    verified = verify(shown, PUBLIC, typ=TYP)
    assert verified.claims == {"a": 1, "body": {"kept": [2]}}
    assert verified.withheld == 2
    assert "secret" not in base64.urlsafe_b64decode(shown.jws.split(".")[1] + "==").decode()


def test_withholding_a_member_withholds_everything_below_it() -> None:
    document = {"body": {"inner": {"deep": "x"}}, "b": 2}
    issued = issue(document, KEY, typ=TYP)
    shown = present(issued, ["/body"])
    assert len(shown.disclosures) == 1
    assert verify(shown, PUBLIC, typ=TYP).claims == {"b": 2}


def test_salts_are_fresh_so_equal_values_have_different_digests() -> None:
    first, second = issue({"a": 1}, KEY, typ=TYP), issue({"a": 1}, KEY, typ=TYP)
    assert first.disclosures != second.disclosures


def _issued() -> SdJwt:
    return issue({"name": "Ann", "body": {"x": [1, 2]}}, KEY, typ=TYP)


def test_an_altered_disclosure_is_refused() -> None:
    issued = _issued()
    forged = _disclosure(["salt", "name", "Bob"])
    altered = SdJwt(issued.jws, (forged, *issued.disclosures[1:]))
    with pytest.raises(SdJwtError, match="referenced by no digest"):
        verify(altered, PUBLIC, typ=TYP)


def test_an_added_disclosure_is_refused() -> None:
    issued = _issued()
    extra = SdJwt(issued.jws, (*issued.disclosures, _disclosure(["s", "admin", True])))
    with pytest.raises(SdJwtError, match="referenced by no digest"):
        verify(extra, PUBLIC, typ=TYP)


def test_a_disclosure_given_twice_is_refused() -> None:
    issued = _issued()
    twice = SdJwt(issued.jws, (*issued.disclosures, issued.disclosures[0]))
    with pytest.raises(SdJwtError, match="twice"):
        verify(twice, PUBLIC, typ=TYP)


def test_a_signature_by_another_key_is_refused() -> None:
    other = keys.generate("EdDSA")
    forged = issue({"name": "Ann"}, {**other, "kid": KEY["kid"]}, typ=TYP)
    with pytest.raises(SdJwtError, match="does not verify"):
        verify(forged, PUBLIC, typ=TYP)


@pytest.mark.parametrize("header", [{"typ": "JWT"}, {"typ": TYP, "kid": "other"}])
def test_the_wrong_typ_or_kid_is_refused(header: dict[str, str]) -> None:
    payload = json.dumps({"_sd_alg": "sha-256"}).encode()
    signing_key = jwt.PyJWK(KEY, algorithm="EdDSA").key
    token = jwt.PyJWS().encode(payload, signing_key, algorithm="EdDSA",
                               headers={"kid": KEY["kid"], **header})
    with pytest.raises(SdJwtError, match=r"typ|kid"):
        verify(SdJwt(token, ()), PUBLIC, typ=TYP)


def test_an_unsigned_jws_is_refused() -> None:
    header = _b64(json.dumps({"alg": "none", "typ": TYP, "kid": KEY["kid"]}).encode())
    body = _b64(json.dumps({"_sd_alg": "sha-256", "name": "Ann"}).encode())
    with pytest.raises(SdJwtError):
        verify(SdJwt(f"{header}.{body}.", ()), PUBLIC, typ=TYP)


def _signed(payload: dict[str, Any]) -> str:
    signing_key = jwt.PyJWK(KEY, algorithm="EdDSA").key
    return jwt.PyJWS().encode(json.dumps(payload).encode(), signing_key, algorithm="EdDSA",
                              headers={"typ": TYP, "kid": KEY["kid"]})


def test_a_claim_disclosed_over_a_plain_one_is_refused() -> None:
    disclosure = _disclosure(["salt", "name", "Bob"])
    token = _signed({"_sd_alg": "sha-256", "name": "Ann", "_sd": [digest_of(disclosure)]})
    with pytest.raises(SdJwtError, match="disclosed twice"):
        verify(SdJwt(token, (disclosure,)), PUBLIC, typ=TYP)


def test_a_digest_used_twice_is_refused() -> None:
    disclosure = _disclosure(["salt", "name", "Bob"])
    digest = digest_of(disclosure)
    token = _signed({"_sd_alg": "sha-256", "_sd": [digest], "b": {"_sd": [digest]}})
    with pytest.raises(SdJwtError, match="twice"):
        verify(SdJwt(token, (disclosure,)), PUBLIC, typ=TYP)


@pytest.mark.parametrize("parts", [["s", "_sd", 1], ["s", "...", 1], ["s"], [1, "n", 2]])
def test_malformed_disclosures_are_refused(parts: list[Any]) -> None:
    disclosure = _disclosure(parts)
    token = _signed({"_sd_alg": "sha-256", "_sd": [digest_of(disclosure)]})
    with pytest.raises(SdJwtError, match="disclosure"):
        verify(SdJwt(token, (disclosure,)), PUBLIC, typ=TYP)


def test_an_element_disclosure_in_a_member_place_is_refused() -> None:
    disclosure = _disclosure(["salt", "Bob"])
    token = _signed({"_sd_alg": "sha-256", "_sd": [digest_of(disclosure)]})
    with pytest.raises(SdJwtError, match="element"):
        verify(SdJwt(token, (disclosure,)), PUBLIC, typ=TYP)


def test_another_hash_algorithm_is_refused() -> None:
    with pytest.raises(SdJwtError, match="_sd_alg"):
        verify(SdJwt(_signed({"_sd_alg": "sha-512"}), ()), PUBLIC, typ=TYP)


def test_repeated_member_names_are_refused() -> None:
    signing_key = jwt.PyJWK(KEY, algorithm="EdDSA").key
    repeated = jwt.PyJWS().encode(b'{"_sd_alg":"sha-256","a":1,"a":2}', signing_key,
                                  algorithm="EdDSA", headers={"typ": TYP, "kid": KEY["kid"]})
    with pytest.raises(SdJwtError, match="repeats"):
        verify(SdJwt(repeated, ()), PUBLIC, typ=TYP)


@pytest.mark.parametrize("text", [
    "a.b.c",  # no trailing '~'
    "a.b.c~d~kb.jwt.x",  # a key binding JWT
    "a.b~",  # not a compact JWS
    "a.b.c~~",  # an empty disclosure
    "a.b.c~é~",  # not ASCII
])
def test_malformed_compact_forms_are_refused(text: str) -> None:
    with pytest.raises(SdJwtError):
        SdJwt.parse(text)


def test_a_document_using_reserved_names_cannot_be_signed() -> None:
    with pytest.raises(SdJwtError, match="_sd"):
        issue({"body": {"_sd": []}}, KEY, typ=TYP)


@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256"])
def test_both_registered_key_types_sign_and_verify(algorithm: str) -> None:
    key = keys.generate(algorithm)
    issued = issue({"a": [1, {"b": 2}]}, key, typ=TYP)
    assert verify(issued, keys.public_jwk(key), typ=TYP).claims == {"a": [1, {"b": 2}]}
