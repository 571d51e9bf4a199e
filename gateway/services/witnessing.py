"""Asking witnesses to cosign the audit log's checkpoints (C2SP tlog-witness, client side).

After the checkpointer signs a checkpoint, and every interval while a witness lags behind
the newest one, the leader sends each configured witness ``add-checkpoint``: the old size
is the newest size that witness cosigned here (0 at first), with the RFC 9162 consistency
proof from it read from the stored tiles (``gateway.services.audit_proofs``). A 409 says
which size the witness holds; the request is made once more from that size. A returned
line is kept only if it is a valid cosignature (C2SP tlog-cosignature) of exactly that
checkpoint by the configured key, so a witness can add evidence but never noise.

Witnesses must never hold up the log: requests run in the background with a timeout, and
a failure is logged and counted (``dipgw_witness_requests``) for the operator, the
checkpoint standing without that cosignature until the witness answers. A witness that
reports a size beyond the log's own is evidence of a split view (someone showed it
another tree under this log's key) and is logged as an error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import aiohttp
import structlog
from prometheus_client import Counter

from gateway.domain.errors import ConfigurationError
from gateway.periodic import Periodic
from gateway.services import audit_proofs
from gateway.services.leadership import Leadership
from gateway.storage.base import AuditRepository
from gateway.tlog.cosignature import (
    CosignerVerifier,
    parse_cosignature_line,
    parse_cosignature_lines,
    parse_cosigner_key,
    with_cosignatures,
)
from gateway.tlog.errors import MalformedNote
from gateway.tlog.note import parse_signed_note
from gateway.tlog.witness import (
    SIZE_CONTENT_TYPE,
    AddCheckpoint,
    MalformedAddCheckpoint,
    parse_size_body,
)

log = structlog.get_logger(__name__)

# Outcomes counted per witness: a closed set, so the series stay bounded.
OUTCOMES = ("cosigned", "refused", "unreachable", "invalid-response", "ahead-of-log")
# Requests to one witness for one checkpoint: the first, and one more after a 409.
ATTEMPTS = 2


@dataclass(frozen=True)
class WitnessEndpoint:
    """A configured witness: its cosigner key and its submission prefix."""

    verifier: CosignerVerifier
    url: str

    @property
    def key(self) -> str:
        """The witness's verifier key string: how its rows and its counter are named."""
        return self.verifier.key_string()


def parse_witnesses(text: str, source: str) -> tuple[WitnessEndpoint, ...]:
    """The witnesses file: ``<verifier key> <URL>`` a line, ``#`` comments and blank lines
    allowed; a malformed key, a URL that is not http(s) or a witness named twice stops
    start-up (fail closed: a witness silently dropped is a quorum silently lost)."""
    found: list[WitnessEndpoint] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ConfigurationError(
                f"{source} line {number}: expected '<witness verifier key> <URL>'")
        try:
            verifier = parse_cosigner_key(parts[0])
        except MalformedNote as exc:
            raise ConfigurationError(f"{source} line {number}: {exc}") from None
        url = parts[1].rstrip("/")
        if not url.startswith(("https://", "http://")):
            raise ConfigurationError(f"{source} line {number}: the URL must be http(s)")
        if any(w.verifier.name == verifier.name for w in found):
            raise ConfigurationError(f"{source} line {number}: {verifier.name} named twice")
        found.append(WitnessEndpoint(verifier, url))
    return tuple(found)


def read_witnesses(path: Path | None) -> tuple[WitnessEndpoint, ...]:
    """The witnesses named in ``DIPGW_WITNESSES`` (none when unset)."""
    if path is None:
        return ()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read the witnesses file {path}: {exc}") from None
    return parse_witnesses(text, str(path))


def cosigned_note(signed_note: str, lines: Sequence[str]) -> str:
    """The signed checkpoint with the stored cosignature lines appended (a valid note)."""
    return with_cosignatures(signed_note, [parse_cosignature_line(x) for x in lines])


class WitnessFailure(Exception):
    """One witness request did not end in a kept cosignature; ``outcome`` says why."""

    def __init__(self, outcome: str, detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome


class Witnessing:
    """Gets the newest checkpoint cosigned by every configured witness, in the background."""

    def __init__(
        self,
        witnesses: Sequence[WitnessEndpoint],
        audit: AuditRepository,
        leadership: Leadership,
        requests: Counter,
        *,
        timeout_s: float,
        interval_s: float,
        clock: Callable[[], datetime],
    ) -> None:
        self._witnesses = tuple(witnesses)
        self._audit = audit
        self._leadership = leadership
        self._requests = requests
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._locks = {w.key: asyncio.Lock() for w in self._witnesses}
        self._pending: set[asyncio.Task[None]] = set()
        self._periodic = Periodic("witness-catch-up", leadership.guard(self.catch_up),
                                  interval_s)
        for witness in self._witnesses:
            for outcome in OUTCOMES:
                requests.labels(witness=witness.verifier.name, outcome=outcome)

    def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def checkpoint_signed(self) -> None:
        """The checkpointer's hook: ask the witnesses now, never waiting for them."""
        self._ask_in_background()

    def _ask_in_background(self) -> asyncio.Task[None] | None:
        if not self._witnesses or self._session is None:
            return None
        task = asyncio.create_task(self._catch_up_logged(), name="witness-cosign")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task

    async def _catch_up_logged(self) -> None:
        try:
            await self.catch_up()
        except Exception:
            # A background request must never take anything down with it; the periodic
            # catch-up tries again.
            log.exception("witness_catch_up_failed")

    async def settle(self) -> None:
        """Ask now and wait for the answers at most the request timeout (they go on in the
        background after it): for an export, whose newest checkpoint was signed a moment
        ago. Failures are counted and logged as in the background, never raised."""
        task = self._ask_in_background()
        if task is not None:
            await asyncio.wait({task}, timeout=self._timeout.total)

    async def catch_up(self) -> None:
        """Ask every witness behind the newest checkpoint to cosign it."""
        newest = await self._audit.checkpoint()
        if newest is None:
            return
        size, note = newest
        await asyncio.gather(*(self._ask(w, size, note) for w in self._witnesses))

    async def _ask(self, witness: WitnessEndpoint, size: int, note: str) -> None:
        async with self._locks[witness.key]:
            old = await self._audit.cosigned_size(witness.key)
            if old >= size:
                return
            try:
                line = await self._request(witness, old, size, note)
            except WitnessFailure as failure:
                self._count(witness, failure.outcome)
                event = log.error if failure.outcome == "ahead-of-log" else log.warning
                event("witness_cosignature_failed", witness=witness.verifier.name,
                      url=witness.url, size=size, outcome=failure.outcome,
                      detail=str(failure))
                return
            await self._audit.add_cosignature(witness.key, size, line, self._clock())
            self._count(witness, "cosigned")
            log.info("witness_cosigned", witness=witness.verifier.name, size=size)

    def _count(self, witness: WitnessEndpoint, outcome: str) -> None:
        self._requests.labels(witness=witness.verifier.name, outcome=outcome).inc()

    async def _request(self, witness: WitnessEndpoint, old: int, size: int, note: str) -> str:
        """The kept cosignature line (no newline) after at most ``ATTEMPTS`` requests."""
        for _ in range(ATTEMPTS):
            try:
                proof = tuple(await audit_proofs.consistency(self._audit, old, size))
            except LookupError as exc:
                raise WitnessFailure(
                    "refused", f"no consistency proof from size {old}: {exc!r}") from None
            body = AddCheckpoint(old, proof, note).to_body()
            status, content_type, answer = await self._post(witness, body)
            if status == 200:
                return self._kept_line(witness, note, answer)
            if status == 409 and content_type == SIZE_CONTENT_TYPE:
                try:
                    old = parse_size_body(answer)
                except MalformedAddCheckpoint as exc:
                    raise WitnessFailure("invalid-response", str(exc)) from None
                if old > size:
                    raise WitnessFailure(
                        "ahead-of-log", f"the witness holds size {old}, beyond the log's "
                        f"{size}: it was shown another tree under this log's key")
                if old == size:
                    raise WitnessFailure(
                        "refused", f"the witness holds size {size} already but this "
                        "gateway kept no cosignature of it")
                continue
            raise WitnessFailure("refused", f"HTTP {status}: "
                                 f"{answer[:200].decode('utf-8', errors='replace').strip()}")
        raise WitnessFailure("refused", f"still in conflict after {ATTEMPTS} requests")

    async def _post(self, witness: WitnessEndpoint, body: bytes) -> tuple[int, str, bytes]:
        if self._session is None:
            raise WitnessFailure("unreachable", "witnessing is not started")
        try:
            async with self._session.post(
                f"{witness.url}/add-checkpoint", data=body,
                headers={"Content-Type": "text/plain; charset=utf-8"},
            ) as response:
                return response.status, response.content_type, await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise WitnessFailure("unreachable", repr(exc)) from None

    @staticmethod
    def _kept_line(witness: WitnessEndpoint, note: str, answer: bytes) -> str:
        """The witness's own valid cosignature of ``note`` among the returned lines;
        lines by other keys are ignored, as the spec tells clients."""
        text = parse_signed_note(note).text
        try:
            lines = parse_cosignature_lines(answer.decode("utf-8"))
        except (UnicodeDecodeError, MalformedNote) as exc:
            raise WitnessFailure("invalid-response", f"not cosignature lines: {exc}") from None
        for cosignature in lines:
            if witness.verifier.verify(text, cosignature):
                return cosignature.line()[:-1]
        raise WitnessFailure("invalid-response",
                             "no valid cosignature of this checkpoint by the configured key")
