"""``/v1/audit``: signed checkpoints, verifier keys, proofs and offline-verifiable export.

Only the ``auditor`` role reads the log (keys excepted: anyone authenticated may fetch
them), and every read is itself logged as a consultation.
"""

from __future__ import annotations

import base64
import io
import json
import tarfile
import tempfile
from pathlib import Path

from aiohttp import web

from gateway import access
from gateway.audit import AuditAction, AuditEvent
from gateway.errors import MalformedRequest, NotFound
from gateway.http.body import query_int
from gateway.http.consultation import consulted
from gateway.http.context import principal_of
from gateway.http.services import SERVICES, Services
from gateway.model import Principal
from gateway.tlog.bundle import export_bundle
from gateway.tlog.canonical import MAX_SAFE_INTEGER
from gateway.tlog.merkle import consistency_proof, inclusion_proof

routes = web.RouteTableDef()

MAX_ENTRIES_PAGE = 1000


def _auditor(request: web.Request) -> Principal:
    principal = principal_of(request)
    access.authorise(principal, access.Action.READ_AUDIT)
    return principal


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


async def _latest(services: Services) -> tuple[int, str]:
    latest = await services.audit.checkpoint() or await services.checkpointer.integrate()
    if latest is None:
        raise NotFound("No checkpoint has been issued yet.")
    return latest


@routes.get("/v1/audit/checkpoint")
async def checkpoint(request: web.Request) -> web.Response:
    principal = _auditor(request)
    services = request.app[SERVICES]
    size, note = await _latest(services)
    await consulted(services, principal, "checkpoint", size=size)
    return web.Response(text=note, content_type="text/plain")


@routes.post("/v1/audit/checkpoint")
async def issue_checkpoint(request: web.Request) -> web.Response:
    """Sign a checkpoint now, covering every entry sequenced so far."""
    principal = _auditor(request)
    services = request.app[SERVICES]
    await consulted(services, principal, "checkpoint", on_demand=True)
    _, note = await services.checkpointer.integrate() or await _latest(services)
    return web.Response(text=note, content_type="text/plain")


@routes.get("/v1/audit/keys")
async def keys(request: web.Request) -> web.Response:
    principal_of(request)
    lines = request.app[SERVICES].audit_keys.verifier_keys()
    return web.Response(text="".join(f"{line}\n" for line in lines), content_type="text/plain")


async def _checkpoint_of_size(services: Services, size: int) -> str:
    found = await services.audit.checkpoint(size)
    if found is None:
        raise NotFound(
            f"No checkpoint of size {size} was issued; proofs are against signed sizes."
        )
    return found[1]


@routes.get("/v1/audit/proof/inclusion")
async def inclusion(request: web.Request) -> web.Response:
    principal = _auditor(request)
    services = request.app[SERVICES]
    latest_size, _ = await _latest(services)
    size = query_int(request, "size", default=latest_size)
    index = query_int(request, "index")
    note = await _checkpoint_of_size(services, size)
    if index >= size:
        raise MalformedRequest(f"Entry {index} is not in a tree of size {size}.")
    hashes = await services.audit.leaf_hashes(0, size)
    proof = inclusion_proof(index, size, hashes)
    await consulted(services, principal, "inclusion_proof", index=index, size=size)
    return web.json_response({
        "index": index, "size": size, "leaf_hash": _b64(hashes[index]),
        "proof": [_b64(h) for h in proof], "checkpoint": note,
    })


@routes.get("/v1/audit/proof/consistency")
async def consistency(request: web.Request) -> web.Response:
    principal = _auditor(request)
    services = request.app[SERVICES]
    old, new = query_int(request, "from"), query_int(request, "to")
    if not 0 < old <= new:
        raise MalformedRequest("Ask for 0 < from <= to.")
    old_note = await _checkpoint_of_size(services, old)
    new_note = await _checkpoint_of_size(services, new)
    hashes = await services.audit.leaf_hashes(0, new)
    proof = consistency_proof(old, new, hashes) if old < new else []
    await consulted(services, principal, "consistency_proof", old=old, new=new)
    return web.json_response({
        "from": old, "to": new, "proof": [_b64(h) for h in proof],
        "from_checkpoint": old_note, "to_checkpoint": new_note,
    })


@routes.get("/v1/audit/entries")
async def entries(request: web.Request) -> web.Response:
    principal = _auditor(request)
    services = request.app[SERVICES]
    # An index is a position in the log, and the consultation recording this read is an
    # audit entry: canonical JSON (RFC 8785) carries integers only up to 2**53 - 1.
    start = query_int(request, "from", default=0, maximum=MAX_SAFE_INTEGER)
    end = min(
        query_int(request, "to", default=start + 100, maximum=MAX_SAFE_INTEGER),
        start + MAX_ENTRIES_PAGE,
    )
    found = await services.audit.entries(start, end)
    await consulted(services, principal, "entries", start=start, end=start + len(found))
    return web.json_response(
        {"from": start, "entries": [json.loads(e) for e in found]}
    )


@routes.get("/v1/audit/export")
async def export(request: web.Request) -> web.Response:
    """A tar.gz bundle laid out as C2SP tlog-tiles: entries, tiles, every checkpoint.

    ``dipgw audit verify BUNDLE --public-key KEYFILE`` checks it with no gateway running.
    """
    principal = _auditor(request)
    services = request.app[SERVICES]
    await services.checkpointer.integrate()
    stored = await services.audit.checkpoints()
    if not stored:
        raise NotFound("No checkpoint has been issued yet.")
    head = stored[-1][0]
    start = query_int(request, "from", default=0)
    end = query_int(request, "to", default=head)
    if not 0 <= start < end <= head:
        raise MalformedRequest(f"Ask for 0 <= from < to <= {head} (the newest checkpoint).")
    await services.audit.record(AuditEvent(
        action=AuditAction.AUDIT_EXPORTED,
        at=services.clock(),
        actor=principal.actor,
        details={"from": start, "to": end, "checkpoint_size": head},
    ))
    all_entries = await services.audit.entries(0, head)
    with tempfile.TemporaryDirectory() as scratch:
        bundle = Path(scratch) / "bundle"
        export_bundle(
            bundle, all_entries, [note for _, note in stored],
            entry_range=None if (start, end) == (0, head) else (start, end),
        )
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w:gz") as tar:
            tar.add(bundle, arcname=f"dipgw-audit-{start}-{end}")
    return web.Response(
        body=archive.getvalue(),
        content_type="application/gzip",
        headers={"Content-Disposition":
                 f'attachment; filename="dipgw-audit-{start}-{end}.tar.gz"'},
    )
