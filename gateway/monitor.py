"""``dipgw audit monitor``: an agency's watch on the gateway's audit log.

A receipt (``gateway.tlog.receipt``) proves an entry was in one signed checkpoint. It
proves nothing if the gateway later shows other parties a different log: a *fork* (two
signed trees of which neither extends the other) or a log cut back. The monitor closes
that gap the way Certificate Transparency monitors do (RFC 9162 §8.3): it follows the
gateway's signed checkpoints and, for each new one,

1. checks it is signed by a trusted verifier key (C2SP signed-note) and names the
   origin seen before;
2. checks it extends the last checkpoint it saw: never smaller, the same root at the
   same size, and otherwise an RFC 9162 §2.1.4.2 consistency proof from the gateway
   (``GET /v1/audit/proof/consistency``) verified here, with ``gateway.tlog.merkle``;
3. checks every receipt the agency holds (``--receipts DIR``, ``*.json``) is still
   included: a receipt proved in the newest checkpoint is verified offline, any other
   covered by it is proved again there (``GET /v1/audit/proof/inclusion``).

The last checkpoint that passed is kept in ``--state FILE``, replaced atomically, and is
only advanced when every check passed, so an alert stays raised until someone looks.
An alert is a structured log line (``audit_monitor_alert``), a gauge in the
``--metrics-file`` (Prometheus textfile-collector format, written atomically) and a
non-zero exit. Nothing here imports the server: agencies run it beside their systems.
"""

from __future__ import annotations

import asyncio
import base64
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import structlog

from gateway.client import GatewayProblem
from gateway.tlog.checkpoint import Checkpoint, open_checkpoint
from gateway.tlog.errors import TlogError
from gateway.tlog.merkle import leaf_hash, verify_consistency, verify_inclusion
from gateway.tlog.note import Verifier
from gateway.tlog.receipt import AuditReceipt, parse_receipt, verify_receipt

log = structlog.get_logger(__name__)


class AlertKind(StrEnum):
    """What the monitor alerts on; each is one gauge in the metrics file."""

    SIGNATURE = "signature"  # a checkpoint not validly signed by a trusted key
    FORK = "fork"  # inconsistent with the last checkpoint seen: smaller, other root, bad proof
    MISSING_ENTRY = "missing_entry"  # a held receipt's entry is not in the newest tree
    RECEIPT = "receipt"  # a held receipt does not parse or verify on its own


@dataclass(frozen=True)
class Alert:
    kind: AlertKind
    detail: str


# A gateway that answers 400 or 404 to a proof between sizes it signed denies its own
# log: evidence, unlike a refused token or an unreachable gateway, which are raised.
_DENIALS = (400, 404)


class LogSource(Protocol):
    """The gateway's audit routes as the monitor reads them (``GatewayClient`` is one)."""

    async def checkpoint(self) -> str: ...

    async def consistency_proof(self, old_size: int, new_size: int) -> Mapping[str, Any]: ...

    async def inclusion_proof(self, index: int, size: int) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Outcome:
    """One check of the log: the checkpoint it saw, and what it alerted on."""

    checkpoint: Checkpoint | None
    receipts_checked: int = 0
    alerts: tuple[Alert, ...] = ()
    previous_size: int | None = None

    @property
    def passed(self) -> bool:
        return not self.alerts


def _hashes(answer: Mapping[str, Any], what: str) -> list[bytes]:
    proof = answer.get("proof")
    if not isinstance(proof, list):
        raise TlogError(f"the gateway's {what} answer has no proof list")
    out = []
    for value in proof:
        if not isinstance(value, str):
            raise TlogError(f"the gateway's {what} holds a hash that is not base64 text")
        try:
            out.append(base64.b64decode(value, validate=True))
        except ValueError as exc:
            raise TlogError(f"the gateway's {what} holds a hash that is not base64") from exc
    return out


def read_state(path: Path) -> str | None:
    """The last signed checkpoint that passed, or None on the first run."""
    try:
        return path.read_text(encoding="utf-8") or None
    except FileNotFoundError:
        return None


def write_atomically(path: Path, text: str) -> None:
    """Write a file whole or not at all (a temporary file beside it, then ``os.replace``),
    so a monitor killed mid-write never leaves a torn state or metrics file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _consistency_alert(
    previous: Checkpoint, newest: Checkpoint, proof: Sequence[bytes] | None,
) -> Alert | None:
    if newest.origin != previous.origin:
        return Alert(AlertKind.FORK, f"origin changed from {previous.origin!r} to "
                                     f"{newest.origin!r}")
    if newest.size < previous.size:
        return Alert(AlertKind.FORK, f"checkpoint size {newest.size} is smaller than the "
                                     f"{previous.size} seen before (a cut-back log)")
    if newest.size == previous.size:
        if newest.root_hash != previous.root_hash:
            return Alert(AlertKind.FORK, f"two signed roots for size {newest.size}: "
                                         f"{previous.root_hash.hex()} and "
                                         f"{newest.root_hash.hex()}")
        return None
    try:
        verify_consistency(previous.size, newest.size, previous.root_hash, newest.root_hash,
                           proof or [])
    except TlogError as exc:
        return Alert(AlertKind.FORK, f"checkpoint {newest.size} is not consistent with "
                                     f"checkpoint {previous.size}: {exc}")
    return None


async def _receipt_alert(
    source: LogSource, verifiers: Sequence[Verifier], path: Path, newest: Checkpoint,
) -> Alert | None:
    """None when the receipt in ``path`` is included in ``newest`` (or not yet covered by
    any checkpoint); else the alert saying why not."""
    try:
        receipt: AuditReceipt = parse_receipt(path.read_bytes())
        if receipt.inclusion is not None:
            verify_receipt(receipt, verifiers)
    except (OSError, TlogError) as exc:
        return Alert(AlertKind.RECEIPT, f"{path.name}: {exc}")
    if receipt.origin is not None and receipt.origin != newest.origin:
        return Alert(AlertKind.RECEIPT, f"{path.name}: a receipt of log {receipt.origin!r}, "
                                        f"not {newest.origin!r}")
    leaf = receipt.entry_hash if receipt.entry is None else leaf_hash(receipt.entry)
    if receipt.index >= newest.size:
        if receipt.inclusion is not None and receipt.inclusion.size > newest.size:
            return Alert(AlertKind.MISSING_ENTRY, f"{path.name}: entry {receipt.index} was "
                         f"signed into a tree of size {receipt.inclusion.size}, the newest "
                         f"checkpoint has {newest.size}")
        return None
    try:
        answer = await source.inclusion_proof(receipt.index, newest.size)
        verify_inclusion(receipt.index, newest.size, leaf, _hashes(answer, "inclusion proof"),
                         newest.root_hash)
    except TlogError as exc:
        return Alert(AlertKind.MISSING_ENTRY,
                     f"{path.name}: entry {receipt.index} is not in checkpoint "
                     f"{newest.size}: {exc}")
    except GatewayProblem as problem:
        if problem.status not in _DENIALS:
            raise
        return Alert(AlertKind.MISSING_ENTRY, f"{path.name}: the gateway cannot prove entry "
                     f"{receipt.index} in checkpoint {newest.size}: {problem}")
    return None


async def check_once(
    source: LogSource, verifiers: Sequence[Verifier], state_file: Path,
    receipts_dir: Path | None = None,
) -> Outcome:
    """One pass of the checks in the module docstring; advances the state only when all
    of them pass. Errors reaching the gateway propagate: they are no evidence of a fork."""
    note = await source.checkpoint()
    try:
        newest = open_checkpoint(note, verifiers).checkpoint
    except TlogError as exc:
        return Outcome(None, alerts=(Alert(AlertKind.SIGNATURE,
                                           f"the newest checkpoint: {exc}"),))
    alerts: list[Alert] = []
    previous_note = read_state(state_file)
    previous = None
    if previous_note is not None:
        # The state file holds a note this monitor verified before; a key since removed
        # from --public-key must not let it be read back unchecked.
        try:
            previous = open_checkpoint(previous_note, verifiers).checkpoint
        except TlogError as exc:
            alerts.append(Alert(AlertKind.SIGNATURE, f"the state file's checkpoint: {exc}"))
    if previous is not None:
        proof = None
        if previous.size and newest.size > previous.size:
            try:
                proof = _hashes(await source.consistency_proof(previous.size, newest.size),
                                "consistency proof")
            except TlogError as exc:
                alerts.append(Alert(AlertKind.FORK, str(exc)))
            except GatewayProblem as problem:
                if problem.status not in _DENIALS:
                    raise
                alerts.append(Alert(AlertKind.FORK, f"the gateway gives no consistency proof "
                                    f"from {previous.size} to {newest.size}: {problem}"))
        if not alerts:
            found = _consistency_alert(previous, newest, proof)
            alerts += [found] if found else []
    checked = 0
    if receipts_dir is not None:
        for path in sorted(receipts_dir.glob("*.json")):
            checked += 1
            found = await _receipt_alert(source, verifiers, path, newest)
            alerts += [found] if found else []
    if not alerts:
        write_atomically(state_file, note)
    return Outcome(newest, checked, tuple(alerts),
                   previous.size if previous is not None else None)


def metrics_text(outcome: Outcome, now: float) -> str:
    """The outcome in the Prometheus text exposition format (textfile collector)."""
    raised = {alert.kind for alert in outcome.alerts}
    lines = [
        "# HELP dipgw_audit_monitor_alert 1 when the last check raised this alert.",
        "# TYPE dipgw_audit_monitor_alert gauge",
        *(f'dipgw_audit_monitor_alert{{kind="{kind.value}"}} {int(kind in raised)}'
          for kind in AlertKind),
        "# HELP dipgw_audit_monitor_checkpoint_size Tree size of the newest checkpoint seen.",
        "# TYPE dipgw_audit_monitor_checkpoint_size gauge",
        f"dipgw_audit_monitor_checkpoint_size "
        f"{outcome.checkpoint.size if outcome.checkpoint else 0}",
        "# HELP dipgw_audit_monitor_receipts_checked Receipts checked by the last run.",
        "# TYPE dipgw_audit_monitor_receipts_checked gauge",
        f"dipgw_audit_monitor_receipts_checked {outcome.receipts_checked}",
        "# HELP dipgw_audit_monitor_last_run_timestamp_seconds When the last check ran.",
        "# TYPE dipgw_audit_monitor_last_run_timestamp_seconds gauge",
        f"dipgw_audit_monitor_last_run_timestamp_seconds {now:.3f}",
    ]
    return "\n".join(lines) + "\n"


def report(outcome: Outcome, metrics_file: Path | None) -> None:
    """Log the outcome (one line per alert) and write the metrics file."""
    for alert in outcome.alerts:
        log.error("audit_monitor_alert", kind=alert.kind.value, detail=alert.detail)
    if outcome.passed and outcome.checkpoint is not None:
        log.info("audit_monitor_ok", size=outcome.checkpoint.size,
                 previous_size=outcome.previous_size, receipts=outcome.receipts_checked)
    if metrics_file is not None:
        write_atomically(metrics_file, metrics_text(outcome, time.time()))


async def monitor(
    source: LogSource, verifiers: Sequence[Verifier], state_file: Path, *,
    receipts_dir: Path | None = None, metrics_file: Path | None = None,
    interval_s: float = 60.0, once: bool = False,
) -> Outcome:
    """Check once, or every ``interval_s`` until an alert; the last outcome. Following
    stops at the first alert: a forked log cannot be followed further without someone
    deciding which side to trust (fail closed)."""
    while True:
        outcome = await check_once(source, verifiers, state_file, receipts_dir)
        report(outcome, metrics_file)
        if once or not outcome.passed:
            return outcome
        await asyncio.sleep(interval_s)


def describe(alerts: Sequence[Alert]) -> str:
    """The first alert as the sentence the command line prints."""
    first = alerts[0]
    more = f" (and {len(alerts) - 1} more)" if len(alerts) > 1 else ""
    return f"{first.kind.value}: {first.detail}{more}"
