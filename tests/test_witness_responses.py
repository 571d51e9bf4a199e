"""What a witness answers is kept only if it is the configured key's valid cosignature of
that very checkpoint: an impostor's line under the witness's name, a cosignature of another
checkpoint or garbage is counted as ``invalid-response`` and never stored or served."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.config import Settings
from gateway.domain.model import Role
from gateway.http.services import SERVICES
from gateway.tlog.cosignature import Cosigner
from gateway.tlog.note import parse_signed_note
from gateway.tlog.witness import parse_add_checkpoint
from tests.backends import make_settings
from tests.conftest import AgencyFactory, bearer
from tests.test_witnessed_checkpoints import ORIGIN, VALID

NAME = "witness1.test/w"
WITNESS = Cosigner(NAME, Ed25519PrivateKey.from_private_bytes(b"\x0a" * 32))
IMPOSTOR = Cosigner(NAME, Ed25519PrivateKey.from_private_bytes(b"\x0b" * 32))


def another_checkpoint(text: str) -> str:
    origin, size, rest = text.split("\n", 2)
    return f"{origin}\n{int(size) + 1}\n{rest}"


Answer = Callable[[str], str]

ANSWERS: dict[str, Answer] = {
    "impostor key under the witness's name": lambda text: IMPOSTOR.cosign(text, 1).line(),
    "the witness's cosignature of another checkpoint":
        lambda text: WITNESS.cosign(another_checkpoint(text), 1).line(),
    "garbage": lambda text: "hello\n",
}


@pytest.fixture(params=sorted(ANSWERS))
async def fake_witness(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    answer = ANSWERS[request.param]

    async def add_checkpoint(http: web.Request) -> web.Response:
        signed = parse_add_checkpoint(await http.read()).signed_checkpoint
        return web.Response(text=answer(parse_signed_note(signed).text))

    app = web.Application()
    app.router.add_post("/add-checkpoint", add_checkpoint)
    server = TestServer(app)
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
def settings(tmp_path: Path, fake_witness: str) -> Settings:
    listed = tmp_path / "witnesses.txt"
    listed.write_text(f"{WITNESS.verifier_key()} {fake_witness}\n", encoding="utf-8")
    return make_settings(data_dir=tmp_path, relay_interval_s=0.05, audit_origin=ORIGIN,
                         witnesses_file=listed, witness_timeout_s=2.0)


async def test_a_bad_answer_is_never_kept(
    client: TestClient[Any, Any], settings: Settings, agency: AgencyFactory,
) -> None:
    services = client.server.app[SERVICES]
    await agency(VALID[0]["from"]).send(VALID[0])
    signed = await services.checkpointer.integrate()
    await services.witnessing.settle()
    assert signed is not None
    assert await services.audit.cosignatures() == {}
    invalid = services.metrics.registry.get_sample_value(
        "dipgw_witness_requests_total", {"witness": NAME, "outcome": "invalid-response"})
    assert invalid is not None and invalid > 0
    served = await client.get("/v1/audit/checkpoint",
                              headers=bearer(settings, "DIP-ASSURE", Role.AUDITOR))
    assert NAME not in await served.text()
