"""``/v1/audit``: signed checkpoints, verifier keys, proofs and offline-verifiable export.

Only the ``auditor`` role reads the log's entries (the entries, the export, the
disclosure report), and each such read is itself logged as a consultation. What a route
reads is built by a function here (``latest``, ``inclusion_of``, ``export_archive``,
``disclosures_of``) that the console's auditor pages call too, so the page and the API
answer from one copy.

Following the log is open wider (``access.Action.FOLLOW_AUDIT``: any organisation's
system, SPOC, IG lead or administrator, and auditors): ``GET /v1/audit/checkpoint``,
``/v1/audit/proof/consistency`` and ``/v1/audit/proof/inclusion`` answer signed tree heads
and SHA-256 hashes only. An agency's monitor (``dipgw audit monitor``) needs them to see
that the log never forks and that the entries its receipts name stay in it; without
them a receipt proves only what the gateway chose to show that one agency. Inclusion
proofs are answered for any index, not only entries about the caller's own messages: a
proof is the entry's leaf hash and sibling hashes, and an entry (an RFC 8785 document
with a time to the microsecond, random message ids and keyed pseudonyms) cannot be
recovered or confirmed from its hash, so a proof discloses neither the entry nor whom it
is about; restricting it would need the gateway to read the entry to decide, for no gain.

These hash-only reads are not logged as consultations. DPA 2018 s.62(1)(b) requires a
log of *consultation of personal data*; a checkpoint or proof holds none, and logging
each poll would grow the log without limit as monitors poll (each entry a new
checkpoint to poll). Reads that do disclose entries (entries, export, disclosures, a
message's receipt) are still logged before they are answered.
"""

from __future__ import annotations

import base64
import io
import json
import tarfile
import tempfile
from datetime import date
from pathlib import Path

from aiohttp import web

from gateway.domain.errors import MalformedRequest, NotFound
from gateway.domain.model import Principal
from gateway.http.body import query_int
from gateway.http.consent_actions import subject_keys
from gateway.http.consultation import consulted
from gateway.http.context import principal_of
from gateway.http.services import SERVICES, Services
from gateway.pipeline import access
from gateway.pipeline.audit import AuditAction, AuditEvent
from gateway.pipeline.consent import SubjectKeys
from gateway.services import audit_proofs
from gateway.services.disclosures import DisclosureReport, disclosure_report, pseudonymiser
from gateway.services.witnessing import cosigned_note
from gateway.tlog.bundle import export_bundle
from gateway.tlog.canonical import MAX_SAFE_INTEGER

routes = web.RouteTableDef()

MAX_ENTRIES_PAGE = 1000


def _auditor(request: web.Request) -> Principal:
    principal = principal_of(request)
    access.authorise(principal, access.Action.READ_AUDIT)
    return principal


def _follower(request: web.Request) -> Principal:
    principal = principal_of(request)
    access.authorise(principal, access.Action.FOLLOW_AUDIT, principal.org.code)
    return principal


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


async def cosigned(services: Services, size: int, note: str) -> str:
    """The signed checkpoint with the witnesses' cosignature lines kept for it appended
    (C2SP tlog-cosignature): still a valid signed note, which verifiers that know no
    witness read as before (``gateway.services.witnessing``)."""
    lines = (await services.audit.cosignatures(size)).get(size, [])
    return cosigned_note(note, lines) if lines else note


async def latest(services: Services) -> tuple[int, str]:
    """(size, cosigned note) of the newest checkpoint, signing the first one if none is yet."""
    found = await services.audit.checkpoint() or await services.checkpointer.integrate()
    if found is None:
        raise NotFound("No checkpoint has been issued yet.")
    return found[0], await cosigned(services, *found)


@routes.get("/v1/audit/checkpoint")
async def checkpoint(request: web.Request) -> web.Response:
    """The newest signed checkpoint; a hash-only read, not logged (module docstring)."""
    _follower(request)
    _, note = await latest(request.app[SERVICES])
    return web.Response(text=note, content_type="text/plain")


@routes.post("/v1/audit/checkpoint")
async def issue_checkpoint(request: web.Request) -> web.Response:
    """Sign a checkpoint now, covering every entry sequenced so far."""
    principal = _auditor(request)
    services = request.app[SERVICES]
    await consulted(services, principal, "checkpoint", on_demand=True)
    size, note = await services.checkpointer.integrate() or await latest(services)
    return web.Response(text=await cosigned(services, size, note), content_type="text/plain")


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
    return await cosigned(services, *found)


async def inclusion_of(
    services: Services, index: int, size: int | None = None,
) -> dict[str, object]:
    """RFC 9162 §2.1.3.1 inclusion proof of entry ``index`` in the signed checkpoint of
    ``size`` (the newest when None). Checking it is left to the reader: that is the point.
    Hashes only, so not logged as a consultation (module docstring)."""
    latest_size, _ = await latest(services)
    size = latest_size if size is None else size
    note = await _checkpoint_of_size(services, size)
    if index >= size:
        raise MalformedRequest(f"Entry {index} is not in a tree of size {size}.")
    leaf, proof = await audit_proofs.inclusion(services.audit, index, size)
    return {
        "index": index, "size": size, "leaf_hash": _b64(leaf),
        "proof": [_b64(h) for h in proof], "checkpoint": note,
    }


@routes.get("/v1/audit/proof/inclusion")
async def inclusion(request: web.Request) -> web.Response:
    _follower(request)
    services = request.app[SERVICES]
    size = query_int(request, "size") if "size" in request.query else None
    index = query_int(request, "index")
    return web.json_response(await inclusion_of(services, index, size))


@routes.get("/v1/audit/proof/consistency")
async def consistency(request: web.Request) -> web.Response:
    """RFC 9162 §2.1.4 proof between two signed sizes; hash-only, not logged."""
    _follower(request)
    services = request.app[SERVICES]
    old, new = query_int(request, "from"), query_int(request, "to")
    if not 0 < old <= new:
        raise MalformedRequest("Ask for 0 < from <= to.")
    old_note = await _checkpoint_of_size(services, old)
    new_note = await _checkpoint_of_size(services, new)
    proof = await audit_proofs.consistency(services.audit, old, new)
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


async def export_archive(
    services: Services, principal: Principal, start: int | None, end: int | None,
    **details: object,
) -> tuple[str, bytes]:
    """(file name, tar.gz bytes) of a bundle laid out as C2SP tlog-tiles: entries, tiles,
    every checkpoint; entries ``start`` to ``end`` (the whole log when both are None),
    the export itself logged first (``details`` say the channel when it is not the API).

    ``dipgw audit verify BUNDLE --public-key KEYFILE`` checks it with no gateway running
    (with ``--from``/``--to`` for a range; ``--witness KEYFILE --quorum N`` for the
    witnesses' cosignatures of its newest checkpoint, which the export waits for up to
    ``DIPGW_WITNESS_TIMEOUT_SECONDS``).
    """
    await services.checkpointer.integrate()
    # The newest checkpoint was just signed: give the witnesses their timeout to cosign it.
    await services.witnessing.settle()
    stored = await services.audit.checkpoints()
    if not stored:
        raise NotFound("No checkpoint has been issued yet.")
    head = stored[-1][0]
    start = 0 if start is None else start
    end = head if end is None else end
    if not 0 <= start < end <= head:
        raise MalformedRequest(f"Ask for 0 <= from < to <= {head} (the newest checkpoint).")
    await services.audit.record(AuditEvent(
        action=AuditAction.AUDIT_EXPORTED,
        at=services.clock(),
        actor=principal.actor,
        details={"from": start, "to": end, "checkpoint_size": head, **details},
    ))
    all_entries = await services.audit.entries(0, head)
    lines = await services.audit.cosignatures()
    with tempfile.TemporaryDirectory() as scratch:
        bundle = Path(scratch) / "bundle"
        export_bundle(
            bundle, all_entries,
            [cosigned_note(note, lines.get(size, [])) for size, note in stored],
            entry_range=None if (start, end) == (0, head) else (start, end),
        )
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w:gz") as tar:
            tar.add(bundle, arcname=f"dipgw-audit-{start}-{end}")
    return f"dipgw-audit-{start}-{end}.tar.gz", archive.getvalue()


@routes.get("/v1/audit/export")
async def export(request: web.Request) -> web.Response:
    """A tar.gz bundle laid out as C2SP tlog-tiles (``export_archive``)."""
    principal = _auditor(request)
    services = request.app[SERVICES]
    start = query_int(request, "from") if "from" in request.query else None
    end = query_int(request, "to") if "to" in request.query else None
    name, body = await export_archive(services, principal, start, end)
    return web.Response(
        body=body,
        content_type="application/gzip",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def disclosures_of(
    services: Services, principal: Principal, keys: SubjectKeys, **details: object,
) -> DisclosureReport:
    """Every disclosure and consultation about a person (DPA 2018 s.62;
    ``gateway.services.disclosures``), the read logged as a consultation about that person
    (their pseudonym, never the PNC ID or name searched for) before it is answered."""
    report = await disclosure_report(
        services.audit, services.messages, pseudonymiser(services.settings), keys)
    await consulted(services, principal, "disclosures", message_ids=(), subject=keys,
                    found=len(report.rows), **details)
    return report


@routes.get("/v1/audit/disclosures")
async def disclosures(request: web.Request) -> web.Response:
    """The disclosure report for one person: ``?pnc_id=…``, or ``?given_name=…&family_name=…
    &date_of_birth=YYYY-MM-DD``; what a subject access request or the ICO asks for."""
    principal = _auditor(request)
    services = request.app[SERVICES]
    query = {k: request.query.get(k, "").strip() for k in (
        "pnc_id", "given_name", "family_name", "date_of_birth")}
    if query["date_of_birth"] and not _is_date(query["date_of_birth"]):
        raise MalformedRequest("'date_of_birth' must be a date, YYYY-MM-DD.")
    keys = subject_keys(query)
    if keys is None:
        raise MalformedRequest(
            "Say whose disclosures: ?pnc_id=…, or ?given_name=…&family_name=…&date_of_birth=…")
    report = await disclosures_of(services, principal, keys)
    return web.json_response(report.as_json())


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10
