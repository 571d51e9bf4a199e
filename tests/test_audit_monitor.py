"""``dipgw audit monitor`` (``gateway.monitor``) against an honest gateway, a forked one
(a stand-in gateway presenting checkpoints signed with the real key over another tree)
and a log missing a held receipt's entry: it passes only the first, and alerts on the
others with a non-zero exit, a structured log line and a metric."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import uuid
from hashlib import sha256
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from gateway.client import GatewayClient
from gateway.config import Settings
from gateway.http.services import SERVICES
from gateway.monitor import AlertKind, check_once, monitor
from gateway.tlog.bundle import sign_checkpoint
from gateway.tlog.checkpoint import Checkpoint
from gateway.tlog.merkle import leaf_hash
from gateway.tlog.note import parse_signed_note
from gateway.tlog.receipt import AuditReceipt, parse_receipt, parse_verifier_keys
from tests.backends import database_env
from tests.conftest import EXAMPLES, AgencyFactory, credentials, load

RA1 = load(sorted((EXAMPLES / "ra1_notice").glob("valid*.json"))[0])
SENDER = RA1["from"]


async def _sent_with_receipt(agency: AgencyFactory, receipts: Path) -> AuditReceipt:
    """Send a message and keep its proved receipt, and its 202's pending one, in
    ``receipts``."""
    document = {**RA1, "message_id": str(uuid.uuid4())}
    answer = await agency(SENDER).send(document)
    receipts.mkdir(exist_ok=True)
    (receipts / f"{document['message_id']}.pending.json").write_text(
        json.dumps(answer.body["receipt"]))
    proved = await agency(SENDER).receipt(document["message_id"])
    (receipts / f"{document['message_id']}.json").write_text(json.dumps(proved))
    return parse_receipt(proved)


async def _cli(url: str, settings: Settings, tmp_path: Path) -> tuple[int, str]:
    """``dipgw audit monitor --once`` in its own process, as an agency runs it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "audit", "monitor", "--once", "--org", SENDER,
        "--url", url, "--public-key", str(tmp_path / "keys.txt"),
        "--state", str(tmp_path / "state"), "--receipts", str(tmp_path / "receipts"),
        "--metrics-file", str(tmp_path / "metrics.prom"),
        env={**os.environ, "DIPGW_DATA_DIR": str(settings.data_dir), **database_env(settings)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, (out + err).decode()


def _alert_gauge(metrics: str, kind: AlertKind) -> int:
    line = next(x for x in metrics.splitlines()
                if x.startswith(f'dipgw_audit_monitor_alert{{kind="{kind.value}"}}'))
    return int(line.split()[-1])


async def test_the_monitor_passes_an_honest_gateway_and_advances_its_state(
    client: TestClient[Any, Any], agency: AgencyFactory, settings: Settings, tmp_path: Path,
) -> None:
    receipts = tmp_path / "receipts"
    await _sent_with_receipt(agency, receipts)
    keys_text = await agency(SENDER).text("/v1/audit/keys")
    (tmp_path / "keys.txt").write_text(keys_text)
    keys, state = parse_verifier_keys(keys_text), tmp_path / "state"

    first = await check_once(agency(SENDER), keys, state, receipts)
    assert first.passed, first.alerts
    assert first.receipts_checked == 2
    # More entries, a newer checkpoint: consistent, and the receipts proved in it again.
    await _sent_with_receipt(agency, receipts)
    await client.app[SERVICES].checkpointer.integrate()
    second = await check_once(agency(SENDER), keys, state, receipts)
    assert second.passed, second.alerts
    assert second.checkpoint and first.checkpoint
    assert second.checkpoint.size > first.checkpoint.size
    assert second.previous_size == first.checkpoint.size

    code, output = await _cli(str(client.make_url("")), settings, tmp_path)
    assert code == 0, output
    metrics = (tmp_path / "metrics.prom").read_text()
    assert all(_alert_gauge(metrics, kind) == 0 for kind in AlertKind)
    assert "dipgw_audit_monitor_receipts_checked 4" in metrics


def _forked_gateway(note: str, proof: list[bytes]) -> web.Application:
    """A stand-in gateway answering one checkpoint and one consistency proof."""
    async def checkpoint(_: web.Request) -> web.Response:
        return web.Response(text=note, content_type="text/plain")

    async def consistency(request: web.Request) -> web.Response:
        return web.json_response({
            "from": int(request.query["from"]), "to": int(request.query["to"]),
            "proof": [base64.b64encode(h).decode() for h in proof]})

    app = web.Application()
    app.router.add_get("/v1/audit/checkpoint", checkpoint)
    app.router.add_get("/v1/audit/proof/consistency", consistency)
    return app


async def test_the_monitor_alerts_on_a_forked_checkpoint_signed_with_the_real_key(
    client: TestClient[Any, Any], agency: AgencyFactory, settings: Settings, tmp_path: Path,
) -> None:
    await _sent_with_receipt(agency, tmp_path / "receipts")
    keys_text = await agency(SENDER).text("/v1/audit/keys")
    (tmp_path / "keys.txt").write_text(keys_text)
    keys, state = parse_verifier_keys(keys_text), tmp_path / "state"
    assert (await check_once(agency(SENDER), keys, state, None)).passed
    seen = Checkpoint.from_text(parse_signed_note(state.read_text()).text)
    signer = client.app[SERVICES].audit_keys.current
    other_root = sha256(b"another tree").digest()

    forks = {
        "same size, other root": Checkpoint(seen.origin, seen.size, other_root),
        "smaller": Checkpoint(seen.origin, seen.size - 1, other_root),
        "larger, inconsistent": Checkpoint(seen.origin, seen.size + 5, other_root),
    }
    for name, forked in forks.items():
        note = sign_checkpoint(forked, [signer])
        server = TestServer(_forked_gateway(note, [other_root, other_root]))
        await server.start_server()
        try:
            with capture_logs() as logged:
                async with GatewayClient(str(server.make_url("")),
                                         credentials(settings, SENDER)) as forked_gateway:
                    outcome = await monitor(forked_gateway, keys, state, once=True,
                                            metrics_file=tmp_path / "m.prom")
            assert [a.kind for a in outcome.alerts] == [AlertKind.FORK], name
            assert any(e["event"] == "audit_monitor_alert" and e["kind"] == "fork"
                       for e in logged), name
            assert _alert_gauge((tmp_path / "m.prom").read_text(), AlertKind.FORK) == 1
            # The state is not advanced past a fork: the alert stays until someone looks.
            assert Checkpoint.from_text(parse_signed_note(state.read_text()).text) == seen
            code, output = await _cli(str(server.make_url("")), settings, tmp_path)
            assert code == 1, (name, output)
            assert "ALERT: fork" in output, output
        finally:
            await server.close()


async def test_the_monitor_alerts_when_a_held_receipt_s_entry_is_missing(
    client: TestClient[Any, Any], agency: AgencyFactory, settings: Settings, tmp_path: Path,
) -> None:
    receipts = tmp_path / "receipts"
    genuine = await _sent_with_receipt(agency, receipts)
    keys_text = await agency(SENDER).text("/v1/audit/keys")
    (tmp_path / "keys.txt").write_text(keys_text)
    assert genuine.entry is not None
    # What the agency was told the log holds at that index, which the log does not hold.
    claimed = genuine.entry.replace(b"message.accepted", b"message.withdrawn")
    (receipts / "missing.json").write_text(AuditReceipt(
        genuine.origin, genuine.index, leaf_hash(claimed), claimed).to_text())

    outcome = await check_once(agency(SENDER), parse_verifier_keys(keys_text),
                               tmp_path / "state", receipts)
    assert [a.kind for a in outcome.alerts] == [AlertKind.MISSING_ENTRY]
    assert "missing.json" in outcome.alerts[0].detail
    code, output = await _cli(str(client.make_url("")), settings, tmp_path)
    assert code == 1 and "ALERT: missing_entry" in output, output
    assert _alert_gauge((tmp_path / "metrics.prom").read_text(), AlertKind.MISSING_ENTRY) == 1
