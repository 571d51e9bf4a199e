"""The witness's HTTP front end (C2SP tlog-witness): ``POST /add-checkpoint``,
``GET /<origin hash>/checkpoint`` for monitors, and ``GET /`` (its verifier key).

Statuses and bodies are the protocol's, not the gateway's RFC 9457 problems: a cosignature
line on 200, ``<size>\\n`` as ``text/x.tlog.size`` on 409, a plain-text reason otherwise.
Refusals of a checkpoint signed by a known log (403 excepted) are logged as possible
evidence of the log's misbehaviour, as the spec allows.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import structlog
from aiohttp import web

from gateway.tlog.checkpoint import Checkpoint
from gateway.tlog.cosignature import Cosigner, with_cosignatures
from gateway.tlog.errors import MalformedCheckpoint, MalformedNote
from gateway.tlog.note import MAX_NOTE_BYTES, parse_signed_note
from gateway.tlog.witness import (
    SIZE_CONTENT_TYPE,
    AddCheckpoint,
    InconsistentCheckpoint,
    MalformedAddCheckpoint,
    SizeConflict,
    UnknownLog,
    UntrustedCheckpoint,
    WitnessedLogs,
    WitnessRefusal,
    decide,
    parse_add_checkpoint,
)
from gateway.witness.state import WitnessState

log = structlog.get_logger(__name__)

# Attempts at the compare-and-swap before answering 503: each lost race means another
# request advanced the log's state, and deciding again against it almost always ends in
# a 409 at once, so a third loss in a row means heavy contention, not a protocol outcome.
SWAP_ATTEMPTS = 3

# The one table from refusal to HTTP status (C2SP tlog-witness §add-checkpoint).
STATUS: dict[type[WitnessRefusal], int] = {
    MalformedAddCheckpoint: 400,
    UntrustedCheckpoint: 403,
    UnknownLog: 404,
    SizeConflict: 409,
    InconsistentCheckpoint: 422,
}


@dataclass(frozen=True)
class Witness:
    """What the server needs: its key, the logs it witnesses, its state and a clock."""

    cosigner: Cosigner
    logs: WitnessedLogs
    state: WitnessState
    clock: Callable[[], float] = time.time


WITNESS = web.AppKey("witness", Witness)


def _origin(request: AddCheckpoint) -> str:
    try:
        return Checkpoint.from_text(parse_signed_note(request.signed_checkpoint).text).origin
    except (MalformedNote, MalformedCheckpoint) as exc:
        raise MalformedAddCheckpoint(f"malformed add-checkpoint: {exc}") from exc


async def cosign(witness: Witness, body: bytes) -> str:
    """The cosignature line for a request body, after the decision and the stored swap;
    raises the :class:`WitnessRefusal` the spec names."""
    request = parse_add_checkpoint(body)
    origin = _origin(request)
    for _ in range(SWAP_ATTEMPTS):
        latest = await witness.state.latest(origin)
        outcome = decide(request, witness.logs, latest)
        cosignature = witness.cosigner.cosign(outcome.note_text, int(witness.clock()))
        # Kept with the log's signatures, as the monitoring endpoint serves it.
        stored = replace(outcome.latest, signed_checkpoint=with_cosignatures(
            outcome.latest.signed_checkpoint, [cosignature]))
        if await witness.state.compare_and_swap(latest, stored):
            log.info("witness_cosigned", origin=origin, size=outcome.checkpoint.size,
                     old_size=request.old_size)
            return cosignature.line()
    raise web.HTTPServiceUnavailable(text="the log's state changed repeatedly; retry\n")


def _refusal(refusal: WitnessRefusal) -> web.Response:
    status = STATUS[type(refusal)]
    if isinstance(refusal, SizeConflict):
        return web.Response(status=status, body=f"{refusal.latest_size}\n".encode("ascii"),
                            headers={"Content-Type": SIZE_CONTENT_TYPE})
    return web.Response(status=status, text=f"{refusal}\n", content_type="text/plain")


async def add_checkpoint(request: web.Request) -> web.Response:
    """C2SP tlog-witness §add-checkpoint."""
    witness = request.app[WITNESS]
    body = await request.read()
    try:
        line = await cosign(witness, body)
    except WitnessRefusal as refusal:
        if isinstance(refusal, InconsistentCheckpoint):
            log.warning("witness_refused_inconsistent_checkpoint", reason=str(refusal),
                        evidence=body.decode("utf-8", errors="replace"))
        else:
            log.info("witness_refused", status=STATUS[type(refusal)], reason=str(refusal))
        return _refusal(refusal)
    return web.Response(text=line, content_type="text/plain")


async def monitored_checkpoint(request: web.Request) -> web.Response:
    """C2SP tlog-witness §"Monitor Retrieval Mechanism": the latest checkpoint cosigned for
    the log whose origin's SHA-256 is the path's lowercase hex, with the log's signatures
    and this witness's cosignature; 404 if none was ever cosigned."""
    wanted = request.match_info["origin_hash"]
    for origin in request.app[WITNESS].logs.logs:
        if hashlib.sha256(origin.encode("utf-8")).hexdigest() == wanted:
            latest = await request.app[WITNESS].state.latest(origin)
            if latest is not None:
                return web.Response(text=latest.signed_checkpoint, content_type="text/plain")
    return web.Response(status=404, text="no checkpoint cosigned for that origin\n",
                        content_type="text/plain")


async def health(request: web.Request) -> web.Response:
    """The witness's name and verifier key, for a liveness probe and for operators."""
    return web.Response(text=f"{request.app[WITNESS].cosigner.verifier_key()}\n",
                        content_type="text/plain")


def create_witness_app(witness: Witness) -> web.Application:
    """The witness's aiohttp application (``web.run_app`` only in the command line)."""
    app = web.Application(client_max_size=MAX_NOTE_BYTES + 4096)
    app[WITNESS] = witness
    app.router.add_post("/add-checkpoint", add_checkpoint)
    app.router.add_get("/", health)
    app.router.add_get("/{origin_hash:[0-9a-f]{64}}/checkpoint", monitored_checkpoint)
    return app
