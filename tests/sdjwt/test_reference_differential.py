"""Our SD-JWTs against the ``sd-jwt`` package, RFC 9901's reference implementation.

Both ways: what we issue and present, the reference verifies to the same claims; what the
reference issues (every member and element made disclosable with its ``SDObj``), we
verify to the same claims and present so that the reference still verifies it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import keys
from gateway.pipeline.redaction import redact
from gateway.sdjwt.disclosure import SdJwt, issue, present, verify

sd_jwt = pytest.importorskip("sd_jwt")
from jwcrypto.jwk import JWK  # noqa: E402  (installed with sd-jwt)
from sd_jwt.common import SDObj  # noqa: E402
from sd_jwt.issuer import SDJWTIssuer  # noqa: E402
from sd_jwt.verifier import SDJWTVerifier  # noqa: E402

TYP = "dipgw-envelope+sd-jwt"
EXAMPLES = sorted(Path(__file__).parents[2].glob("schemas/examples/*/valid*.json"))


def _reference_verifies(presentation: str, public: dict[str, Any]) -> dict[str, Any]:
    key = JWK.from_json(json.dumps(public))
    verified = SDJWTVerifier(presentation, lambda _iss, _header: key)
    claims: dict[str, Any] = verified.get_verified_payload()
    return claims


def _all_disclosable(value: Any) -> Any:
    """The reference issuer's input making every member and element disclosable."""
    if isinstance(value, dict):
        return {SDObj(name): _all_disclosable(member) for name, member in value.items()}
    if isinstance(value, list):
        return [SDObj(_all_disclosable(element)) for element in value]
    return value


@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256"])
@pytest.mark.parametrize("example", EXAMPLES[::3], ids=lambda p: p.parent.name)
def test_the_reference_verifies_what_we_issue_and_present(algorithm: str, example: Path) -> None:
    private = keys.generate(algorithm)
    public = keys.public_jwk(private)
    document = json.loads(example.read_text())
    issued = issue(document, private, typ=TYP)
    assert _reference_verifies(issued.serialise(), public) == document
    withheld = [f"/body/{name}" for name in list(document["body"])[::2]]
    shown = present(issued, ["/subject/date_of_birth", *withheld])
    assert _reference_verifies(shown.serialise(), public) == redact(
        document, ["/subject/date_of_birth", *withheld])


names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=5).filter(
    lambda n: n not in ("_sd", "_sd_alg", "..."))
values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(names, values, min_size=1, max_size=4))
def test_we_verify_what_the_reference_issues(document: dict[str, Any]) -> None:
    private = keys.generate("ES256")
    public = keys.public_jwk(private)
    reference = SDJWTIssuer(
        _all_disclosable(document), JWK.from_json(json.dumps(private)), sign_alg="ES256",
        extra_header_parameters={"typ": TYP, "kid": private["kid"]},
    )
    issued = SdJwt.parse(reference.sd_jwt_issuance)
    assert verify(issued, public, typ=TYP).claims == document
    first = next(iter(document))
    pointer = "/" + first.replace("~", "~0").replace("/", "~1")
    shown = present(issued, [pointer])
    assert verify(shown, public, typ=TYP).claims == redact(document, [pointer])
    assert _reference_verifies(shown.serialise(), public) == redact(document, [pointer])
