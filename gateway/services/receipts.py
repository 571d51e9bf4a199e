"""A message's audit receipt (``gateway.tlog.receipt``) for its sender or a recipient:
the log entry about its part in the message, and an RFC 9162 §2.1.3 inclusion proof of
that entry in a signed checkpoint, read from the stored tiles
(``gateway.services.audit_proofs``).

The sender's receipt proves the acceptance (or refusal) entry, which names every
recipient and decision; a recipient's proves its own delivery entry only, since the
acceptance would tell it who else received the message, which ``GET /v1/messages/{id}``
does not tell it either. Anyone else, and an unknown message, get the same ``NotFound``:
whether a message exists is itself not theirs to learn (deny by default).
"""

from __future__ import annotations

from gateway.domain.errors import MalformedRequest, NotFound
from gateway.services import audit_proofs
from gateway.services.checkpoints import Checkpointer
from gateway.services.witnessing import cosigned_note
from gateway.storage.base import AuditRepository, LoggedEntries, MessageRepository
from gateway.tlog.merkle import leaf_hash
from gateway.tlog.receipt import AuditReceipt, Inclusion


def _entry_for(logged: LoggedEntries | None, caller: str, message_id: str) -> int:
    """The index of the entry ``caller`` may hold a receipt for; NotFound otherwise."""
    unknown = NotFound(f"There is no message {message_id}.")
    if logged is None:
        raise unknown
    if caller == logged.sender:
        if logged.acceptance is None:
            raise unknown
        return logged.acceptance
    if caller in logged.recipients:
        delivered = logged.deliveries.get(caller)
        if delivered is None:
            raise NotFound(
                f"No delivery of {message_id} to {caller} is logged yet; ask again once "
                "it is in your inbox.")
        return delivered
    raise unknown


async def _covering_checkpoint(
    audit: AuditRepository, checkpointer: Checkpointer, index: int, size: int | None,
) -> tuple[int, str] | None:
    """The signed checkpoint to prove ``index`` in: the one of ``size`` when asked (a later
    one than a receipt holds, to re-prove it there), else the newest, integrating first when
    the newest does not yet cover ``index``. None when no signed checkpoint covers it (a
    standby process, whose leader integrates within its interval)."""
    if size is not None:
        found = await audit.checkpoint(size)
        if found is None:
            raise NotFound(
                f"No checkpoint of size {size} was issued; proofs are against signed sizes.")
        if index >= size:
            raise MalformedRequest(f"Entry {index} is not in a tree of size {size}.")
        return found
    found = await audit.checkpoint()
    if found is None or found[0] <= index:
        found = await checkpointer.integrate() or await audit.checkpoint()
    return found if found is not None and found[0] > index else None


async def message_receipt(
    messages: MessageRepository, audit: AuditRepository, checkpointer: Checkpointer,
    origin: str, message_id: str, caller: str, size: int | None = None,
) -> AuditReceipt:
    """The receipt of ``caller``'s entry about ``message_id`` (see the module docstring),
    proved in the signed checkpoint of ``size`` (the newest when None); pending, with no
    proof, when no signed checkpoint covers the entry yet."""
    index = _entry_for(await messages.logged_entries(message_id), caller, message_id)
    entries = await audit.entries(index, index + 1)
    if not entries:
        raise NotFound(f"There is no message {message_id}.")
    entry = entries[0]
    covering = await _covering_checkpoint(audit, checkpointer, index, size)
    inclusion = None
    if covering is not None:
        tree_size, note = covering
        _, proof = await audit_proofs.inclusion(audit, index, tree_size)
        # With the witnesses' cosignatures kept for it, so the receipt shows the
        # checkpoint was witnessed (``dipgw receipt verify --witness --quorum``).
        lines = (await audit.cosignatures(tree_size)).get(tree_size, [])
        inclusion = Inclusion(tree_size, tuple(proof), cosigned_note(note, lines) if lines
                              else note)
    return AuditReceipt(origin=origin, index=index, entry_hash=leaf_hash(entry), entry=entry,
                        inclusion=inclusion)
