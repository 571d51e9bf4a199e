"""Sender-signed envelopes through the real app: signed by the agency client, checked by
the gateway against the directory, presented to each recipient for exactly its share,
and checked again by the recipient with the sender's key alone (``dipgw verify-message``).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway import keys
from gateway.cli import main
from gateway.client import GatewayClient, GatewayProblem
from gateway.config import Settings
from gateway.domain.model import Role
from gateway.pipeline.redaction import redact
from gateway.sdjwt.disclosure import SdJwt, SdJwtError, issue
from gateway.sdjwt.envelope import ENVELOPE_TYP, check_received, sign_envelope
from gateway.services.directory import dev_key_path
from tests.conftest import AgencyFactory, bearer, credentials, example_files, load
from tests.test_messages_end_to_end import wait_for_inbox

# One example of every type; then the one whose recipients see different redactions.
ONE_OF_EACH = list({p.parent.name: p for p in example_files("valid*.json")}.values())
SPLIT = next(p for p in example_files("valid*.json")
             if p.name == "valid-missed-rob-with-clinical-fields-for-redaction.json")


def _signing(client: TestClient[Any, Any], settings: Settings, org: str) -> GatewayClient:
    return GatewayClient(str(client.make_url("")), credentials(settings, org),
                         session=client.session, sign_messages=True)


def _public_key(settings: Settings, org: str) -> dict[str, Any]:
    return keys.public_jwk(keys.read_private(dev_key_path(settings.dev_keys_dir, org)))


async def _received(agency: AgencyFactory, document: dict[str, Any]) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    for code in document["to"]:
        found = await wait_for_inbox(agency(code), document["message_id"])
        assert len(found) == 1
        items.append(found[0])
    return {code: item for code, item in zip(document["to"], items, strict=True)}


def _altered(envelope: dict[str, Any]) -> list[dict[str, Any]]:
    """The received envelope with one field changed, each way a middle could change it."""
    changes = []
    for name in ("sent_at", "route"):
        forged = copy.deepcopy(envelope)
        forged[name] = "2020-01-01T00:00:00Z" if name == "sent_at" else "enforcement" \
            if envelope["route"] != "enforcement" else "proactive_engagement"
        changes.append(forged)
    forged = copy.deepcopy(envelope)
    forged["subject"]["family_name"] = forged["subject"]["family_name"] + "x"
    changes.append(forged)
    body_field = next(iter(envelope["body"]))
    forged = copy.deepcopy(envelope)
    forged["body"][body_field] = "forged"
    changes.append(forged)
    forged = copy.deepcopy(envelope)
    forged["body"]["added_by_the_middle"] = True
    changes.append(forged)
    forged = copy.deepcopy(envelope)
    del forged["body"][body_field]
    changes.append(forged)
    return changes


@pytest.mark.parametrize("path", ONE_OF_EACH, ids=lambda p: p.parent.name)
async def test_every_type_signed_reaches_each_recipient_verifiable_and_tamper_evident(
    path: Path, client: TestClient[Any, Any], settings: Settings, agency: AgencyFactory
) -> None:
    document = load(path)
    sender = _signing(client, settings, document["from"])
    answer = await sender.send(document)
    assert answer.status == 202
    decisions = {r["code"]: r["decision"] for r in answer.body["recipients"]}
    public = _public_key(settings, document["from"])
    for code, item in (await _received(agency, document)).items():
        assert item["envelope"] == redact(document, decisions[code]["redactions"])
        checked = check_received(item["envelope"], item["sender_signature"], public)
        assert checked.signed == item["envelope"]
        for forged in _altered(item["envelope"]):
            with pytest.raises(SdJwtError):
                check_received(forged, item["sender_signature"], public)


async def test_recipients_with_different_redactions_each_verify_their_own_share(
    client: TestClient[Any, Any], settings: Settings, agency: AgencyFactory,
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    document = load(SPLIT)
    answer = await _signing(client, settings, document["from"]).send(document)
    decisions = {r["code"]: r["decision"] for r in answer.body["recipients"]}
    assert decisions["POL-SFK-IPS"]["redactions"] != decisions["PRB-EOE"]["redactions"]
    received = await _received(agency, document)
    police = received["POL-SFK-IPS"]
    assert "clinical_summary" not in police["envelope"]["body"]
    checked = check_received(police["envelope"], police["sender_signature"],
                             _public_key(settings, document["from"]))
    assert checked.withheld >= 1
    # The police's presentation cannot be made to carry what was withheld from it.
    with_clinical = copy.deepcopy(police["envelope"])
    with_clinical["body"]["clinical_summary"] = document["body"]["clinical_summary"]
    with pytest.raises(SdJwtError, match="clinical_summary"):
        check_received(with_clinical, police["sender_signature"],
                       _public_key(settings, document["from"]))
    probation = received["PRB-EOE"]

    # Offline, as a recipient would: the inbox item and the sender's JWKS as files.
    key_file = tmp_path / "sender.jwks"
    jwks = await client.get(f"/v1/directory/{document['from']}/keys",
                            headers=bearer(settings, "POL-SFK-IPS"))
    key_file.write_text(json.dumps(await jwks.json()))
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps([police, probation]))
    bad.write_text(json.dumps({**police, "envelope": with_clinical}))
    env = {"DIPGW_DATA_DIR": str(settings.data_dir)}
    assert main(["verify-message", str(good), "--public-key", str(key_file)], env) == 0
    assert "withheld from you" in capsys.readouterr().out
    assert main(["verify-message", str(bad), "--public-key", str(key_file)], env) == 1
    assert "NOT VERIFIED" in capsys.readouterr().out


async def test_an_unsigned_message_fails_verification_offline(
    client: TestClient[Any, Any], settings: Settings, agency: AgencyFactory,
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    document = load(ONE_OF_EACH[0])
    await agency(document["from"]).send(document)
    item = (await _received(agency, document))[document["to"][0]]
    assert "sender_signature" not in item
    (tmp_path / "item.json").write_text(json.dumps(item))
    (tmp_path / "key.jwk").write_text(json.dumps(_public_key(settings, document["from"])))
    code = main(["verify-message", str(tmp_path / "item.json"),
                 "--public-key", str(tmp_path / "key.jwk")], {})
    assert code == 1
    assert "no sender signature" in capsys.readouterr().out


async def _post_signed(client: TestClient[Any, Any], settings: Settings, org: str,
                       signed: str) -> Any:
    return await client.post("/v1/messages", data=signed, headers={
        **bearer(settings, org), "Content-Type": "application/sd-jwt"})


async def test_a_signature_by_another_organisations_key_is_refused(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    """The attack: a member signs with a key the directory holds for someone else, or
    for no one. Authority comes from the directory, never from the JWS header."""
    document = load(ONE_OF_EACH[0])
    other_org = keys.read_private(dev_key_path(settings.dev_keys_dir, "CJIT-CAM"))
    unregistered = keys.generate()
    for key in (other_org, unregistered):
        response = await _post_signed(client, settings, document["from"],
                                      sign_envelope(document, key))
        assert response.status == 422
        problem = await response.json()
        assert problem["type"].endswith("invalid-signature")
        assert "not registered" in problem["errors"][0]["message"]


async def test_an_altered_or_partly_disclosed_submission_is_refused(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    document = load(ONE_OF_EACH[0])
    private = keys.read_private(dev_key_path(settings.dev_keys_dir, document["from"]))
    signed = SdJwt.parse(sign_envelope(document, private))
    withheld = SdJwt(signed.jws, signed.disclosures[1:]).serialise()
    forged_disclosure = issue({"from": "POL-NFK-NOR"}, private, typ=ENVELOPE_TYP)
    swapped = SdJwt(signed.jws, (*signed.disclosures, *forged_disclosure.disclosures))
    for body in (withheld, swapped.serialise(), "not an sd-jwt", signed.jws + "~"):
        response = await _post_signed(client, settings, document["from"], body)
        assert response.status == 422, body[:40]
        assert (await response.json())["type"].endswith("invalid-signature")


async def test_an_organisation_that_must_sign_has_unsigned_messages_refused(
    client: TestClient[Any, Any], settings: Settings, agency: AgencyFactory
) -> None:
    document = load(ONE_OF_EACH[0])
    sender = document["from"]
    outsider = await client.put(f"/v1/directory/{sender}/signing",
                                json={"signed_messages_required": True},
                                headers=bearer(settings, "CJIT-CAM", Role.ORG_ADMIN))
    assert outsider.status == 403
    bad = await client.put(f"/v1/directory/{sender}/signing", json={"required": "yes"},
                           headers=bearer(settings, sender, Role.ORG_ADMIN))
    assert bad.status == 422
    switched = await client.put(f"/v1/directory/{sender}/signing",
                                json={"signed_messages_required": True},
                                headers=bearer(settings, sender, Role.ORG_ADMIN))
    assert switched.status == 200
    assert (await switched.json())["signed_messages_required"] is True

    with pytest.raises(GatewayProblem) as refused:
        await agency(sender).send(document)
    assert refused.value.status == 422
    assert refused.value.problem["type"].endswith("invalid-signature")
    assert "must sign" in refused.value.violations[0]["message"]
    answer = await _signing(client, settings, sender).send(document)
    assert answer.status == 202


async def test_a_signed_batch_and_a_signed_resubmission(
    client: TestClient[Any, Any], settings: Settings, agency: AgencyFactory
) -> None:
    documents = [load(p) for p in ONE_OF_EACH if load(p)["from"] == "CJIT-SFK"][:2]
    signer = _signing(client, settings, "CJIT-SFK")
    results = await signer.send_batch(documents)
    assert [r.status for r in results] == [202] * len(documents)
    again = await signer.send(documents[0])
    assert again.status == 202
    public = _public_key(settings, "CJIT-SFK")
    for document in documents:
        for item in (await _received(agency, document)).values():
            check_received(item["envelope"], item["sender_signature"], public)


async def test_the_log_binds_the_signed_message_each_recipient_holds(
    client: TestClient[Any, Any], settings: Settings, agency: AgencyFactory
) -> None:
    """The sender's receipt names the document's hash and its JWS's; every recipient's
    presentation carries that same JWS, so each can find its message in the log."""
    import base64
    import hashlib

    from gateway.sdjwt.envelope import sender_jws_sha256

    document = load(SPLIT)
    signer = _signing(client, settings, document["from"])
    await signer.send(document)
    receipt = await signer.receipt(document["message_id"])
    entry = json.loads(base64.b64decode(receipt["entry"]))
    assert entry["action"] == "message.accepted"
    details = entry["details"]
    canonical = json.dumps({**document, "message_id": document["message_id"].lower()},
                           sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert details["content_sha256"] == hashlib.sha256(canonical.encode()).hexdigest()
    for item in (await _received(agency, document)).values():
        assert sender_jws_sha256(item["sender_signature"]) == details["sender_jws_sha256"]
