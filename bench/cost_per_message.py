"""What a message costs the gateway, each figure beside a baseline measured in the same run.

The successor of bench/broker_vs_gateway.py: every figure of the issue's "Targets", each
round measuring the gateway and its baseline back to back, so a machine that slows down
slows both. With ``--rounds N`` (default 3) the summary gives min / median / max of each.

Every gateway is ``python -m gateway.cli serve`` in a fresh temporary DIPGW_DATA_DIR:
"embedded" is its defaults (SQLite, in-process transport: no DIPGW_AMQP_URL, no
DIPGW_DATABASE_URL), "RabbitMQ" adds DIPGW_AMQP_URL and a unique DIPGW_AMQP_PREFIX whose
queues and exchanges are deleted afterwards. A process's CPU is utime+stime from
/proc/PID/stat, read just before and just after the timed window.

The load (section ``load``, figures 1-3). ``--clients`` (48) concurrent HTTP clients send
``--messages`` RA1 notices (schemas/examples/ra1_notice/valid-out-of-area-norfolk-resident
.json, a fresh message_id each) to ``POST /v1/messages``, each with its own single-use JWT
minted by gateway.client.Credentials *before* the window, on one plain aiohttp session,
after ``--warmup-messages`` untimed ones. A 429 or 503 with Retry-After is honoured: the
client waits that long and sends again with a fresh token; they are counted. The
recipient's ``GET /v1/inbox/stream`` (server-sent events) is open throughout.

1. Gateway CPU per accepted and delivered message, RabbitMQ: the gateway process's CPU
   from the first request to the moment the last message is seen on the stream, divided
   by ``--messages`` (what it spent refusing requests with 503 included). Baseline: a
   bare aiohttp handler (on uvloop, as ``dipgw serve`` runs) answering 202 after reading
   the body, in its own subprocess, sent the same bodies with the same Authorization
   headers under the same load; its CPU per request.
   Targets: at most 0.8 ms, at most 10x the bare handler. Embedded is shown as context.
   Context too: raw aio-pika publishing the same payloads with publisher confirms to a
   quorum queue (bench/broker_vs_gateway.py's ``raw_broker``, ``--in-flight`` pending),
   with its CPU per message (this process publishes and consumes); and the *floor*: a
   handler given the same requests that only verifies the token with PyJWT, parses the
   JSON and checks the schema (``serve_floor``). The floor plus raw aio-pika's CPU is what
   any gateway on this stack spends per message before it stores or decides anything.
2. Accepted msg/s: ``--messages`` over the time from the first request to the last 202,
   RabbitMQ and embedded, one process. Target at least 1000. Baseline: the bare handler's
   requests/s under the same load. The Retry-After answers are listed.
3. Delivery lag: for each message, the time from its 202 answer to its event on the
   stream; p99 over the load, RabbitMQ and embedded. Target at most 1 s. Baseline: raw
   aio-pika's publish-to-consume p99 in the same run. Also how many accepted messages
   were not yet on the stream when the last 202 came, and how long after it the last
   one arrived (the backlog's drain).

Round trips (section ``roundtrip``, figure 4). One message at a time, ``--round-trips``
times after three untimed: submit, see it as the recipient, acknowledge it with
``POST /v1/inbox/{id}/ack``; p50 of the time from before the submission to the ack's
answer. Seen by polling (``GET /v1/inbox`` again and again until it is listed) or on the
stream; embedded and RabbitMQ; gateway.client.GatewayClient (a fresh token per request,
as an agency's system sends, signed before the timed window). Baseline: the NHS MESH
sandbox (tests/mesh_support.py) in the same round: mesh_client sends from one mailbox,
the recipient lists its inbox until the message is there, downloads and acknowledges it.
Targets: SSE at most 0.5x MESH, polling at most 0.75x.

Court results (section ``import``, figure 5): bench/court_results_import.py's ``measure``:
``python -m adapters.court_results`` on a generated ``--rows`` list, process start to exit,
rows/s (target at least 2000); baseline the same rows one message per request.

PostgreSQL (section ``postgres``, figure 6, only with ``--postgres`` or ``--only``, slow):
bench/postgres_processes.py's ``gateways``: accepted msg/s with 1 and with 2 gateway
processes on one fresh database and RabbitMQ, ``--clients`` clients, ``--pg-warmup`` then
``--pg-seconds``; the 1-process figure is the baseline of the 2-process one.

Needs RabbitMQ (DIPGW_TEST_AMQP_URL, default amqp://guest:guest@127.0.0.1:5672/), and
PostgreSQL for ``--postgres`` (DIPGW_TEST_POSTGRES_URL). The whole run, about 10 minutes:

    .venv/bin/python bench/cost_per_message.py --rounds 3
    .venv/bin/python bench/cost_per_message.py --rounds 1 --only roundtrip
    .venv/bin/python bench/cost_per_message.py --rounds 3 --postgres
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.broker_vs_gateway import raw_broker  # noqa: E402
from bench.court_results_import import cpu_seconds  # noqa: E402
from gateway import keys  # noqa: E402
from gateway.client import Credentials, GatewayClient  # noqa: E402
from gateway.config import Settings  # noqa: E402
from gateway.services.directory import dev_key_path  # noqa: E402
from tests.processes import free_port, gateway_env  # noqa: E402
from tests.rabbitmq_support import delete_topology  # noqa: E402

RA1 = json.loads(
    (ROOT / "schemas/examples/ra1_notice/valid-out-of-area-norfolk-resident.json").read_text()
)
SENDER, RECIPIENT = RA1["from"], RA1["to"][0]
SECTIONS = ("load", "roundtrip", "import", "postgres")
READY_WITHIN_S = 60.0
DELIVERED_WITHIN_S = 300.0


# ---------------------------------------------------------------------------------------
# Processes: the gateway, the bare handler


@dataclass
class Server:
    base: str
    pid: int
    data_dir: Path | None = None

    def credentials(self, org: str) -> Credentials:
        assert self.data_dir is not None, "the bare handler has no keys"
        key_file = dev_key_path(Settings(data_dir=self.data_dir).dev_keys_dir, org)
        return Credentials(org, keys.read_private(key_file))


@contextlib.asynccontextmanager
async def running(argv: list[str], env: dict[str, str], log: Path,
                  port: int) -> AsyncIterator[tuple[str, int]]:
    """A server process until ``/readyz`` says ready, then SIGTERM (SIGKILL after 30 s)."""
    with log.open("wb") as sink:
        process = subprocess.Popen(  # noqa: S603 - this repository's own servers
            argv, env=env, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        await _until_ready(base, process, log)
        yield base, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _until_ready(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_WITHIN_S
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(base + "/readyz") as response:
                    if response.status == 200 and (await response.json())["status"] == "ready":
                        return
            await asyncio.sleep(0.05)
    tail = log.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"{base} did not become ready (exit {process.poll()}); log:\n{tail}")


@contextlib.asynccontextmanager
async def gateway(work: Path, amqp_url: str | None) -> AsyncIterator[Server]:
    """``dipgw serve`` in a fresh data directory: embedded defaults, or RabbitMQ on a unique
    prefix whose topology is deleted afterwards."""
    name = f"{'rabbitmq' if amqp_url else 'embedded'}-{uuid.uuid4().hex[:8]}"
    data_dir = work / name
    port = free_port()
    env = gateway_env(data_dir, port, None)  # neither DIPGW_AMQP_URL nor DIPGW_DATABASE_URL
    prefix = f"bench-{uuid.uuid4().hex[:10]}"
    if amqp_url:
        env |= {"DIPGW_AMQP_URL": amqp_url, "DIPGW_AMQP_PREFIX": prefix}
    argv = [sys.executable, "-m", "gateway.cli", "serve", "--log-level", "WARNING"]
    try:
        async with running(argv, env, work / f"{name}.log", port) as (base, pid):
            yield Server(base, pid, data_dir)
    finally:
        if amqp_url:
            await delete_topology(amqp_url, prefix)


@contextlib.asynccontextmanager
async def bare_handler(work: Path) -> AsyncIterator[Server]:
    """This file run as ``--bare-server PORT`` (see ``serve_bare``)."""
    port = free_port()
    argv = [sys.executable, str(Path(__file__).resolve()), "--bare-server", str(port)]
    async with running(argv, dict(os.environ), work / "bare.log", port) as (base, pid):
        yield Server(base, pid)


@contextlib.asynccontextmanager
async def floor_handler(work: Path, data_dir: Path) -> AsyncIterator[Server]:
    """This file run as ``--floor-server PORT DATA_DIR`` (see ``serve_floor``)."""
    port = free_port()
    argv = [sys.executable, str(Path(__file__).resolve()), "--floor-server", str(port),
            str(data_dir)]
    async with running(argv, dict(os.environ), work / "floor.log", port) as (base, pid):
        yield Server(base, pid)


def serve_floor(port: int, data_dir: Path) -> None:
    """The floor of figure 1: the work any gateway must do on a message before it stores
    anything, and nothing else. The bare handler, plus: verify the token with PyJWT
    (EdDSA signature, expiry) against the sender's public key from ``data_dir``'s
    development keys, parse the body and check it against the message schemas with the
    gateway's own ``SchemaSet``. No single-use record, policy, storage or delivery: what
    the gateway costs above this is what its own design costs."""
    import jwt

    from gateway.pipeline.validation import SchemaSet

    schemas = SchemaSet.load(ROOT / "schemas")
    sender = keys.read_private(dev_key_path(Settings(data_dir=data_dir).dev_keys_dir, SENDER))
    public = jwt.PyJWK(keys.public_jwk(sender)).key

    def check(authorization: str, body: bytes) -> None:
        jwt.decode(authorization.removeprefix("Bearer "), public, algorithms=["EdDSA"],
                   options={"verify_aud": False, "require": ["exp", "jti"]})
        schemas.check(json.loads(body))

    _serve_202(port, check)


def serve_bare(port: int) -> None:
    """The baseline of figure 1: aiohttp on uvloop (as ``dipgw serve``), 202 to every
    ``POST /v1/messages`` once its body is read, and nothing else."""
    _serve_202(port, lambda _authorization, _body: None)


def _serve_202(port: int, check: Callable[[str, bytes], None]) -> None:
    """aiohttp on uvloop answering ``POST /v1/messages`` 202 once ``check`` (given the
    Authorization header and the body) returns, and ``/readyz``."""
    from aiohttp import web

    answer = json.dumps({"message_id": str(uuid.uuid4()), "status": "accepted"}).encode()

    async def accept(request: web.Request) -> web.Response:
        check(request.headers.get("Authorization", ""), await request.read())
        return web.Response(body=answer, status=202, content_type="application/json")

    async def ready(request: web.Request) -> web.Response:
        return web.json_response({"status": "ready"})

    app = web.Application()
    app.router.add_post("/v1/messages", accept)
    app.router.add_get("/readyz", ready)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None,
                loop=uvloop.new_event_loop())


# ---------------------------------------------------------------------------------------
# Clients: the recipient's stream, the load driver


def fresh_document() -> dict[str, object]:
    return {**RA1, "message_id": str(uuid.uuid4())}


def message_id_of(data_line: bytes) -> str:
    """The message id of one ``data:`` line of the stream, without parsing the whole
    envelope (the item's keys come in a fixed order; JSON otherwise)."""
    marker = b'"message_id": "'
    at = data_line.find(marker)
    if at >= 0:
        start = at + len(marker)
        return data_line[start:data_line.index(b'"', start)].decode()
    return str(json.loads(data_line[5:])["message_id"])


class Watcher:
    """The recipient's ``GET /v1/inbox/stream``, noting when each message first arrives."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.open = asyncio.Event()
        self._pending: set[str] = set()
        self._all_in = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, session: aiohttp.ClientSession, base: str, token: str) -> None:
        self._task = asyncio.create_task(self._read(session, base, token))
        opened = asyncio.create_task(self.open.wait())
        await asyncio.wait({self._task, opened}, timeout=30,
                           return_when=asyncio.FIRST_COMPLETED)
        opened.cancel()
        if self._task.done():
            self._task.result()
        await asyncio.sleep(0.3)  # the stream subscribes after its first write

    async def _read(self, session: aiohttp.ClientSession, base: str, token: str) -> None:
        async with session.get(
            base + "/v1/inbox/stream", headers={"Authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        ) as response:
            if response.status != 200:
                raise RuntimeError(f"stream: {response.status} {await response.text()}")
            self.open.set()
            async for line in response.content:
                if line.startswith(b"data:"):
                    now = time.perf_counter()
                    message_id = message_id_of(line)
                    self.arrived.setdefault(message_id, now)
                    self._pending.discard(message_id)
                    if not self._pending:
                        self._all_in.set()

    async def until_arrived(self, message_ids: Iterable[str], timeout_s: float) -> None:
        self._pending = set(message_ids) - self.arrived.keys()
        self._all_in.clear()
        if self._pending:
            waiting = asyncio.create_task(self._all_in.wait())
            assert self._task is not None
            await asyncio.wait({waiting, self._task}, timeout=timeout_s,
                               return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            if self._task.done():
                self._task.result()
                raise RuntimeError("the stream ended")
            if self._pending:
                raise RuntimeError(f"{len(self._pending)} messages not on the stream after "
                                   f"{timeout_s:g} s")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


@dataclass(frozen=True)
class Item:
    message_id: str
    body: bytes
    token: str


def mint(credentials: Credentials, count: int) -> list[Item]:
    """``count`` submissions, each with a fresh message id and its own single-use token."""
    items = []
    for _ in range(count):
        document = fresh_document()
        items.append(Item(str(document["message_id"]), json.dumps(document).encode(),
                          credentials.token()))
    return items


def retry_after(response: aiohttp.ClientResponse) -> float | None:
    if response.status not in (429, 503) or "Retry-After" not in response.headers:
        return None
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except ValueError:  # an HTTP date: wait a second
        return 1.0


@dataclass
class Load:
    """One timed load against one server."""

    messages: int
    accept_s: float  # first request to the last 202
    window_s: float  # first request to when every message was seen on the stream (or 202)
    cpu_s: float  # the server's CPU over the window
    client_cpu_s: float  # this process's, over the window
    retries: Counter[int] = field(default_factory=Counter)  # 429/503 answers honoured
    lags_ms: list[float] = field(default_factory=list)
    undelivered_at_stop: int = 0
    drain_s: float = 0.0

    @property
    def per_s(self) -> float:
        return self.messages / self.accept_s

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu_s / self.messages


async def send_all(session: aiohttp.ClientSession, base: str, items: Sequence[Item],
                   clients: int, fresh_token: Callable[[], str],
                   retries: Counter[int]) -> dict[str, float]:
    """``clients`` concurrent senders through ``items``; when each was answered 202."""
    accepted: dict[str, float] = {}
    queue = iter(items)
    url = base + "/v1/messages"

    async def sender() -> None:
        for item in queue:
            token = item.token
            while True:
                async with session.post(url, data=item.body, headers={
                    "Authorization": f"Bearer {token}", "Content-Type": "application/json",
                }) as response:
                    text = await response.read()
                    if response.status in (200, 202):
                        accepted[item.message_id] = time.perf_counter()
                        break
                    wait = retry_after(response)
                    if wait is None:
                        raise RuntimeError(f"POST /v1/messages: {response.status} "
                                           f"{text[:500].decode(errors='replace')}")
                    retries[response.status] += 1
                await asyncio.sleep(wait)
                token = fresh_token()

    await asyncio.gather(*(sender() for _ in range(clients)))
    return accepted


async def load(server: Server, items: Sequence[Item], warmup: Sequence[Item], clients: int,
               fresh_token: Callable[[], str], recipient: Credentials | None) -> Load:
    """``warmup`` untimed, then ``items`` timed; with ``recipient``, the window ends when
    every message is on the recipient's stream."""
    connector = aiohttp.TCPConnector(limit=clients + 4)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        watcher = Watcher() if recipient else None
        try:
            if watcher and recipient:
                await watcher.start(session, server.base, recipient.token())
            await send_all(session, server.base, warmup, clients, fresh_token, Counter())
            if watcher:
                await watcher.until_arrived((i.message_id for i in warmup), DELIVERED_WITHIN_S)
            retries: Counter[int] = Counter()
            cpu_before, client_before = cpu_seconds(server.pid), time.process_time()
            started = time.perf_counter()
            accepted = await send_all(session, server.base, items, clients, fresh_token,
                                      retries)
            stopped = max(accepted.values())
            if watcher:
                await watcher.until_arrived(accepted, DELIVERED_WITHIN_S)
            cpu_after, client_after = cpu_seconds(server.pid), time.process_time()
            ended = time.perf_counter()
        finally:
            if watcher:
                watcher.stop()
    result = Load(len(items), stopped - started, ended - started, cpu_after - cpu_before,
                  client_after - client_before, retries)
    if watcher:
        arrived = [watcher.arrived[i.message_id] for i in items]
        result.lags_ms = [1000 * (a - accepted[i.message_id]) for a, i in zip(arrived, items,
                                                                              strict=True)]
        result.undelivered_at_stop = sum(a > stopped for a in arrived)
        result.drain_s = max(0.0, max(arrived) - stopped)
    return result


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


# ---------------------------------------------------------------------------------------
# Figures: what each round adds, and the summary


@dataclass(frozen=True)
class Figure:
    label: str
    target: str
    unit: str  # how values are shown: a format spec
    met: Callable[[float | None, float | None], bool | None] = lambda value, ratio: None


FIGURES: dict[str, Figure] = {
    "cpu_rabbitmq": Figure("1 gateway CPU ms/msg, RabbitMQ (vs bare)", "<=0.8 ms, <=10x",
                           ".3f", lambda v, r: v is not None and r is not None
                           and v <= 0.8 and r <= 10),
    "cpu_embedded": Figure("  gateway CPU ms/msg, embedded (vs bare)", "context", ".3f"),
    "cpu_floor": Figure("  floor CPU ms/msg: token, JSON, schema only (vs bare)", "context",
                        ".3f"),
    "cpu_raw": Figure("  raw aio-pika CPU ms/msg, client side (vs bare)", "context", ".3f"),
    "cpu_over_floor": Figure("  gateway CPU ms/msg, RabbitMQ (vs floor)", "context", ".3f"),
    "rate_rabbitmq": Figure("2 accepted msg/s, RabbitMQ (vs bare)", ">=1000", ",.0f",
                            lambda v, r: v is not None and v >= 1000),
    "rate_embedded": Figure("2 accepted msg/s, embedded (vs bare)", ">=1000", ",.0f",
                            lambda v, r: v is not None and v >= 1000),
    "rate_raw": Figure("  accepted msg/s, RabbitMQ (vs raw aio-pika)", "context", ",.0f"),
    "busy_rabbitmq": Figure("2 429/503 answers honoured, RabbitMQ", "count", ",.0f"),
    "busy_embedded": Figure("2 429/503 answers honoured, embedded", "count", ",.0f"),
    "lag_rabbitmq": Figure("3 delivery lag p99 ms, RabbitMQ (vs raw)", "<=1000 ms", ",.0f",
                           lambda v, r: v is not None and v <= 1000),
    "lag_embedded": Figure("3 delivery lag p99 ms, embedded (vs raw)", "<=1000 ms", ",.0f",
                           lambda v, r: v is not None and v <= 1000),
    "left_rabbitmq": Figure("3 undelivered at load stop, RabbitMQ", "context", ",.0f"),
    "left_embedded": Figure("3 undelivered at load stop, embedded", "context", ",.0f"),
    "drain_rabbitmq": Figure("3 backlog drain s, RabbitMQ", "context", ".2f"),
    "drain_embedded": Figure("3 backlog drain s, embedded", "context", ".2f"),
    "rt_sse_embedded": Figure("4 round trip p50 ms, SSE, embedded (vs MESH)", "<=0.5x", ".1f",
                              lambda v, r: r is not None and r <= 0.5),
    "rt_sse_rabbitmq": Figure("4 round trip p50 ms, SSE, RabbitMQ (vs MESH)", "<=0.5x", ".1f",
                              lambda v, r: r is not None and r <= 0.5),
    "rt_poll_embedded": Figure("4 round trip p50 ms, polling, embedded (vs MESH)", "<=0.75x",
                               ".1f", lambda v, r: r is not None and r <= 0.75),
    "rt_poll_rabbitmq": Figure("4 round trip p50 ms, polling, RabbitMQ (vs MESH)", "<=0.75x",
                               ".1f", lambda v, r: r is not None and r <= 0.75),
    "import": Figure("5 court import rows/s (vs one by one)", ">=2000", ",.0f",
                     lambda v, r: v is not None and v >= 2000),
    "import_cpu": Figure("  gateway CPU us/row during the import", "context", ",.0f"),
    "pg_rate": Figure("6 PostgreSQL msg/s, 2 processes (vs 1)", "-", ",.1f"),
    "pg_cpu": Figure("  PostgreSQL CPU ms/msg, 2 processes (vs 1)", "context", ".2f"),
}


@dataclass
class Results:
    gateway: dict[str, list[float]] = field(default_factory=dict)
    baseline: dict[str, list[float]] = field(default_factory=dict)
    ratio: dict[str, list[float]] = field(default_factory=dict)

    def add(self, key: str, gateway: float, baseline: float | None = None) -> None:
        self.gateway.setdefault(key, []).append(gateway)
        if baseline is not None:
            self.baseline.setdefault(key, []).append(baseline)
            if baseline:
                self.ratio.setdefault(key, []).append(gateway / baseline)

    def table(self) -> str:
        def spread(values: list[float] | None, unit: str) -> str:
            if not values:
                return "-"
            if len(values) == 1:
                return format(values[0], unit)
            return " / ".join(format(v, unit) for v in
                              (min(values), statistics.median(values), max(values)))

        rows = [("figure", "target", "gateway", "baseline", "ratio", "met")]
        for key, figure in FIGURES.items():
            if key not in self.gateway:
                continue
            value = statistics.median(self.gateway[key])
            ratio = statistics.median(self.ratio[key]) if key in self.ratio else None
            met = figure.met(value, ratio)
            rows.append((figure.label, figure.target, spread(self.gateway[key], figure.unit),
                         spread(self.baseline.get(key), figure.unit),
                         "-" if ratio is None else f"{ratio:.2f}x",
                         "" if met is None else ("yes" if met else "NO")))
        widths = [max(len(row[c]) for row in rows) for c in range(6)]
        lines = [" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                 for row in rows]
        lines.insert(1, "-+-".join("-" * w for w in widths))
        return "\n".join(line.rstrip() for line in lines)


# ---------------------------------------------------------------------------------------
# Sections: one round of each


async def section_load(args: argparse.Namespace, work: Path, results: Results) -> None:
    """Figures 1-3: raw aio-pika, the embedded gateway, the bare handler and the RabbitMQ
    gateway, the last two with the same requests."""
    raw_cpu_before = time.process_time()
    raw = await raw_broker(args.amqp_url, args.messages, args.in_flight)
    # Publisher and consumer are both this process: the broker client's whole cost.
    raw_cpu_ms = 1000 * (time.process_time() - raw_cpu_before) / args.messages
    raw_p99 = raw.percentile(99)
    print(f"  raw aio-pika: {raw.accepted_per_s:,.0f} msg/s published with confirms, "
          f"publish-to-consume p99 {raw_p99:,.0f} ms, {raw_cpu_ms:.3f} ms CPU/msg "
          "(publish, confirm, consume, ack)", flush=True)

    loads: dict[str, Load] = {}
    bare: Load | None = None
    floor: Load | None = None
    for transport, url in (("embedded", None), ("rabbitmq", args.amqp_url)):
        async with gateway(work, url) as server:
            sender = server.credentials(SENDER)
            items = mint(sender, args.messages)
            warmup = mint(sender, args.warmup_messages)
            if transport == "rabbitmq":  # the bare handler gets these very requests first
                async with bare_handler(work) as handler:
                    bare = await load(handler, items, warmup, args.clients, sender.token,
                                      None)
                print(f"  bare aiohttp: {bare.per_s:,.0f} req/s, {bare.cpu_ms:.3f} ms CPU/req "
                      f"(client {1000 * bare.client_cpu_s / bare.messages:.3f})", flush=True)
                assert server.data_dir is not None
                async with floor_handler(work, server.data_dir) as handler:
                    floor = await load(handler, items, warmup, args.clients, sender.token,
                                       None)
                print(f"  floor (token, JSON, schema): {floor.per_s:,.0f} req/s, "
                      f"{floor.cpu_ms:.3f} ms CPU/req", flush=True)
            loads[transport] = done = await load(server, items, warmup, args.clients,
                                                 sender.token, server.credentials(RECIPIENT))
        print(f"  {transport}: {done.per_s:,.0f} msg/s accepted, {done.cpu_ms:.3f} ms CPU/msg "
              f"(client {1000 * done.client_cpu_s / done.messages:.3f}), lag p50 "
              f"{percentile(done.lags_ms, 50):,.0f} p99 {percentile(done.lags_ms, 99):,.0f} "
              f"ms, {done.undelivered_at_stop} undelivered at stop, drained in "
              f"{done.drain_s:.2f} s, retried {dict(done.retries) or 0}", flush=True)
    assert bare is not None and floor is not None
    results.add("cpu_floor", floor.cpu_ms, bare.cpu_ms)
    results.add("cpu_raw", raw_cpu_ms, bare.cpu_ms)
    results.add("cpu_over_floor", loads["rabbitmq"].cpu_ms, floor.cpu_ms)
    for transport, done in loads.items():
        results.add(f"cpu_{transport}", done.cpu_ms, bare.cpu_ms)
        results.add(f"rate_{transport}", done.per_s, bare.per_s)
        results.add(f"busy_{transport}", sum(done.retries.values()))
        results.add(f"lag_{transport}", percentile(done.lags_ms, 99), raw_p99)
        results.add(f"left_{transport}", done.undelivered_at_stop)
        results.add(f"drain_{transport}", done.drain_s)
    results.add("rate_raw", loads["rabbitmq"].per_s, raw.accepted_per_s)


class Minted:
    """Credentials whose tokens were signed before the timed window, as the issue asks:
    what is timed is the gateway's work, not the bench signing. Signs more on demand if
    a mode needs more than were minted (polling asks an unknown number of times)."""

    def __init__(self, credentials: Credentials, count: int) -> None:
        self._credentials = credentials
        self._tokens = [credentials.token() for _ in range(count)]

    def token(self) -> str:
        return self._tokens.pop() if self._tokens else self._credentials.token()


async def gateway_round_trips(server: Server, samples: int) -> dict[str, float]:
    """p50 ms of submit, see, acknowledge: by polling, then on the stream."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        trips = 2 * (samples + 3)
        sender = GatewayClient(server.base, Minted(server.credentials(SENDER), trips),  # type: ignore[arg-type]
                               session=session)
        receiver = GatewayClient(
            server.base, Minted(server.credentials(RECIPIENT), 20 * trips),  # type: ignore[arg-type]
            session=session)

        async def by_polling() -> float:
            document = fresh_document()
            started = time.perf_counter()
            await sender.send(document)
            while not any(m["message_id"] == document["message_id"]
                          for m in await receiver.inbox(limit=500)):
                pass
            await receiver.acknowledge(str(document["message_id"]))
            return 1000 * (time.perf_counter() - started)

        watcher = Watcher()
        await watcher.start(session, server.base, server.credentials(RECIPIENT).token())

        async def by_stream() -> float:
            document = fresh_document()
            started = time.perf_counter()
            await sender.send(document)
            await watcher.until_arrived([str(document["message_id"])], 30)
            await receiver.acknowledge(str(document["message_id"]))
            return 1000 * (time.perf_counter() - started)

        try:
            p50: dict[str, float] = {}
            for mode, once in (("poll", by_polling), ("sse", by_stream)):
                for _ in range(3):
                    await once()
                p50[mode] = statistics.median([await once() for _ in range(samples)])
        finally:
            watcher.stop()
    return p50


def mesh_round_trips(work: Path, samples: int) -> float:
    """p50 ms of the same round trip through the MESH sandbox, with mesh_client."""
    from mesh_client import MeshClient

    from tests.mesh_support import run_mesh_sandbox

    payload = json.dumps(RA1).encode()
    folder = work / f"mesh-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    with run_mesh_sandbox(folder) as sandbox, sandbox.recipient_client() as recipient:
        sender = MeshClient(sandbox.url, sandbox.sender_mailbox, sandbox.sender_password,
                            shared_key=sandbox.shared_key.encode(), max_retries=0, timeout=10)
        try:
            def once() -> float:
                started = time.perf_counter()
                mesh_id = sender.send_message(sandbox.recipient_mailbox, payload,
                                              workflow_id=sandbox.workflow_id)
                while mesh_id not in recipient.list_messages():
                    pass
                message = recipient.retrieve_message(mesh_id)
                try:
                    message.read()
                finally:
                    message.close()  # type: ignore[no-untyped-call]
                recipient.acknowledge_message(mesh_id)
                return 1000 * (time.perf_counter() - started)

            for _ in range(3):
                once()
            return statistics.median([once() for _ in range(samples)])
        finally:
            sender.close()  # type: ignore[no-untyped-call]


async def section_roundtrip(args: argparse.Namespace, work: Path, results: Results) -> None:
    """Figure 4: MESH, then the gateway embedded and on RabbitMQ, polling and SSE."""
    mesh = await asyncio.to_thread(mesh_round_trips, work, args.round_trips)
    print(f"  MESH sandbox: p50 {mesh:.1f} ms", flush=True)
    for transport, url in (("embedded", None), ("rabbitmq", args.amqp_url)):
        async with gateway(work, url) as server:
            p50 = await gateway_round_trips(server, args.round_trips)
        print(f"  {transport}: polling p50 {p50['poll']:.1f} ms, SSE p50 {p50['sse']:.1f} ms",
              flush=True)
        results.add(f"rt_poll_{transport}", p50["poll"], mesh)
        results.add(f"rt_sse_{transport}", p50["sse"], mesh)


def section_import(args: argparse.Namespace, results: Results) -> None:
    """Figure 5, by bench/court_results_import.py (it runs its own gateways)."""
    from bench import court_results_import

    adapter, cpu_per_row, one_by_one = court_results_import.measure(
        args.rows, args.batch_size, args.concurrency, args.import_clients)
    print(f"  adapter {adapter:,.0f} rows/s (gateway CPU {cpu_per_row:,.0f} us/row), "
          f"one by one {one_by_one:,.0f} rows/s", flush=True)
    results.add("import", adapter, one_by_one)
    results.add("import_cpu", cpu_per_row)


async def section_postgres(args: argparse.Namespace, work: Path, results: Results) -> None:
    """Figure 6, by bench/postgres_processes.py: 1 then 2 processes on PostgreSQL."""
    from bench import postgres_processes
    from tests.test_multiprocess import keys_init

    secrets = work / "pg-secrets"
    if not secrets.exists():
        keys_init(secrets)
    windows = {}
    for processes in (1, 2):
        folder = work / f"pg-{processes}-{uuid.uuid4().hex[:8]}"
        folder.mkdir()
        windows[processes], _ = await postgres_processes.gateways(
            args.amqp_url, processes, args.clients, args.pg_warmup, args.pg_seconds,
            secrets, folder)
        window = windows[processes]
        print(f"  {processes} process(es): {window.per_s:,.1f} msg/s, "
              f"{1000 * (window.per_message('cpu') or 0):.2f} ms CPU/msg, refused "
              f"{window.refused or 0}", flush=True)
    results.add("pg_rate", windows[2].per_s, windows[1].per_s)
    cpu = {n: w.per_message("cpu") for n, w in windows.items()}
    if cpu[1] is not None and cpu[2] is not None:
        results.add("pg_cpu", 1000 * cpu[2], 1000 * cpu[1])


def main() -> None:
    if sys.argv[1:2] == ["--bare-server"]:
        serve_bare(int(sys.argv[2]))
        return
    if sys.argv[1:2] == ["--floor-server"]:
        serve_floor(int(sys.argv[2]), Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", help=f"comma-separated sections: {', '.join(SECTIONS)} "
                        "(default: all but postgres)")
    parser.add_argument("--postgres", action="store_true", help="add the postgres section")
    parser.add_argument("--messages", type=int, default=2000, help="timed messages per load")
    parser.add_argument("--warmup-messages", type=int, default=200)
    parser.add_argument("--clients", type=int, default=48, help="concurrent HTTP clients")
    parser.add_argument("--in-flight", type=int, default=256,
                        help="raw aio-pika publishes pending (context of figure 1)")
    parser.add_argument("--round-trips", type=int, default=20, help="timed per mode")
    parser.add_argument("--rows", type=int, default=10_000, help="court results imported")
    parser.add_argument("--batch-size", type=int, default=250, help="the adapter's batches")
    parser.add_argument("--concurrency", type=int, default=4, help="the adapter's in flight")
    parser.add_argument("--import-clients", type=int, default=16,
                        help="one-by-one baseline requests in flight")
    parser.add_argument("--pg-seconds", type=float, default=15.0)
    parser.add_argument("--pg-warmup", type=float, default=5.0)
    parser.add_argument("--amqp-url", default=os.environ.get(
        "DIPGW_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    args = parser.parse_args()
    sections = (args.only.split(",") if args.only
                else [s for s in SECTIONS if s != "postgres" or args.postgres])
    if args.postgres and "postgres" not in sections:
        sections.append("postgres")
    if unknown := set(sections) - set(SECTIONS):
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}")
    if min(args.rounds, args.messages, args.clients, args.round_trips) < 1:
        parser.error("--rounds, --messages, --clients and --round-trips must be positive")

    # raw_broker deletes its queue under its consumer, which aiormq reports as a warning.
    logging.getLogger("aiormq").setLevel(logging.ERROR)
    results = Results()
    failed: list[str] = []
    started = time.monotonic()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; sections "
          f"{', '.join(sections)}; {args.rounds} round(s)", flush=True)
    with tempfile.TemporaryDirectory(prefix="dipgw-cost-") as folder, \
            asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        work = Path(folder)
        for round_number in range(1, args.rounds + 1):
            for section in (s for s in SECTIONS if s in sections):
                print(f"round {round_number}, {section}:", flush=True)
                section_started = time.monotonic()
                try:
                    if section == "load":
                        runner.run(section_load(args, work, results))
                    elif section == "roundtrip":
                        runner.run(section_roundtrip(args, work, results))
                    elif section == "import":
                        section_import(args, results)
                    else:
                        runner.run(section_postgres(args, work, results))
                except Exception:  # the other sections' figures are still worth printing
                    traceback.print_exc()
                    failed.append(f"round {round_number} {section}")
                print(f"  ({time.monotonic() - section_started:.0f} s)", flush=True)

    print(f"\n{args.clients} clients, {args.messages:,} timed messages per load, "
          f"{args.round_trips} round trips per mode, {args.rows:,} court rows; "
          f"{args.rounds} round(s) in {time.monotonic() - started:.0f} s; load average "
          f"{os.getloadavg()[0]:.2f}")
    print("gateway and baseline: min / median / max over the rounds; ratio: median of each "
          "round's gateway/baseline;\nmet: the median against the target\n")
    print(results.table())
    if failed:
        sys.exit(f"\nfailed (traceback above): {', '.join(failed)}")


if __name__ == "__main__":
    main()
