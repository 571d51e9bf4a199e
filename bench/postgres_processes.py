"""Accepted messages/s with 1, 2 and 3 gateway processes on PostgreSQL, against raw
aio-pika on the same broker, in one run (issue 13).

(a) baseline: aio-pika publishing with publisher confirms to a quorum queue, persistent
    messages of the gateway's stored document size (the RA1 example's canonical JSON, as
    the gateway publishes it), ``--clients`` publishers each waiting for its confirm
    before the next, and a consumer acking them;
(b) N gateways: ``dipgw serve`` N times on one fresh PostgreSQL database, one RabbitMQ
    prefix and shared system keys (``dipgw keys init``, DIPGW_SECRETS_DIR), started as
    tests/test_multiprocess.py starts them (the first migrates the database and writes the
    demo keys the others use); ``--clients`` HTTP clients spread round-robin over the
    processes' own ports, each submitting valid RA1 notices signed with the police
    custody suite's demo key (gateway.client, a fresh single-use JWT each).

Each round runs (a) and then (b) for every N, each after ``--warmup`` seconds of the same
load, for ``--seconds``; rounds interleave so a machine that slows down slows all alike.
Prints accepted msg/s (min/median/max over ``--rounds``), the gateway processes' CPU
seconds per accepted message (utime+stime from /proc/PID/stat over the window), the
machine's busy share of all CPUs, and each median's ratio to the raw median. Every
configuration gets a fresh database and prefix, dropped and deleted afterwards.

Needs PostgreSQL (DIPGW_TEST_POSTGRES_URL, default postgresql://postgres@127.0.0.1:5432/
postgres) and RabbitMQ (DIPGW_TEST_AMQP_URL, default amqp://guest:guest@127.0.0.1:5672/):

    .venv/bin/python bench/postgres_processes.py --seconds 30 --rounds 3 --clients 32
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.client import GatewayClient, GatewayProblem  # noqa: E402
from gateway.config import Settings  # noqa: E402
from gateway.storage.rows import json_text  # noqa: E402
from tests.backends import query  # noqa: E402
from tests.conftest import EXAMPLES, credentials, load  # noqa: E402
from tests.processes import free_port, gateway_env  # noqa: E402
from tests.rabbitmq_support import delete_topology  # noqa: E402
from tests.test_multiprocess import database, keys_init, started, until_ready  # noqa: E402

RA1 = load(EXAMPLES / "ra1_notice" / "valid-out-of-area-norfolk-resident.json")
SENDER = RA1["from"]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STOP_WITHIN_S = 20.0


def document() -> dict[str, object]:
    return {**RA1, "message_id": str(uuid.uuid4())}


def payload() -> bytes:
    """What the gateway publishes for an unredacted delivery: the stored document text."""
    return json_text(document()).encode("utf-8")


def process_cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15 (proc(5)).
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # without guest time, which user time already counts
    return total - idle, total


@dataclass
class Tally:
    """What the clients did; ``accepted`` counts answers received, whenever sent."""

    accepted: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def refuse(self, why: str) -> None:
        self.refused[why] = self.refused.get(why, 0) + 1


# One client: sends until its tally says stop, counting what it gets accepted.
Client = Callable[[Tally], Coroutine[Any, Any, None]]


@dataclass
class Window:
    """One configuration, one round: the measured window after the warm-up."""

    accepted: int
    seconds: float
    # Over the window, for the gateways (empty for raw): "cpu", the processes' CPU
    # seconds; "commits" and "rollbacks", their database's transactions.
    counted: dict[str, float]
    busy: float  # the machine's busy share of all its CPUs over the window
    refused: dict[str, int]

    @property
    def per_s(self) -> float:
        return self.accepted / self.seconds

    def per_message(self, counter: str) -> float | None:
        if counter not in self.counted or not self.accepted:
            return None
        return self.counted[counter] / self.accepted


async def measure(
    clients: list[Client], warmup_s: float, seconds: float,
    counters: Callable[[], dict[str, float]] | None,
) -> Window:
    """Run the clients for the warm-up, then count what they get accepted for ``seconds``,
    and how far ``counters`` moved meanwhile."""
    tally = Tally()
    tasks = [asyncio.create_task(client(tally)) for client in clients]
    try:
        await asyncio.sleep(warmup_s)
        _check(tasks)
        count, refused = tally.accepted, dict(tally.refused)
        before = await asyncio.to_thread(counters) if counters else {}
        busy_before, total_before = machine_ticks()
        started_at = time.perf_counter()
        await asyncio.sleep(seconds)
        elapsed = time.perf_counter() - started_at
        busy_after, total_after = machine_ticks()
        after = await asyncio.to_thread(counters) if counters else {}
        accepted = tally.accepted - count
        _check(tasks)
        tally.stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), STOP_WITHIN_S)
    finally:
        for task in tasks:
            task.cancel()
    in_window = {why: n - refused.get(why, 0) for why, n in tally.refused.items()
                 if n > refused.get(why, 0)}
    return Window(
        accepted=accepted, seconds=elapsed,
        counted={name: after[name] - before[name] for name in before},
        busy=(busy_after - busy_before) / max(1, total_after - total_before),
        refused=in_window,
    )


def _check(tasks: list[asyncio.Task[None]]) -> None:
    """A client that stopped before it was told to stops the bench with its error."""
    for task in tasks:
        if task.done():
            task.result()
            raise RuntimeError("a client stopped before the end of the window")


async def raw_broker(url: str, clients: int, warmup_s: float, seconds: float) -> Window:
    """(a): ``clients`` publishers, each publishing and waiting for its confirm."""
    queue_name = f"bench.raw.{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect_robust(url)
    async with connection:
        publisher = await connection.channel(publisher_confirms=True, on_return_raises=True)
        consumer = await connection.channel()
        await consumer.set_qos(prefetch_count=200)
        queue = await consumer.declare_queue(
            queue_name, durable=True, arguments={"x-queue-type": "quorum"})
        try:
            async def acknowledge(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                await message.ack()

            tag = await queue.consume(acknowledge)

            async def client(tally: Tally) -> None:
                while not tally.stop.is_set():
                    await publisher.default_exchange.publish(
                        aio_pika.Message(
                            payload(), message_id=str(uuid.uuid4()),
                            content_type="application/json",
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        routing_key=queue_name, mandatory=True,
                    )
                    tally.accepted += 1

            window = await measure([client] * clients, warmup_s, seconds, None)
            await queue.cancel(tag)
            return window
        finally:
            await consumer.queue_delete(queue_name)


async def gateways(
    url: str, processes: int, clients: int, warmup_s: float, seconds: float,
    secrets: Path, folder: Path,
) -> tuple[Window, float]:
    """(b): ``processes`` gateways on a fresh database and prefix; the window and the mean
    size of the payloads the gateway stored for delivery."""
    prefix = f"bench-{uuid.uuid4().hex[:10]}"
    data = folder / "data"
    ports = [free_port() for _ in range(processes)]
    serve = [sys.executable, "-m", "gateway.cli", "serve", "--log-level", "WARNING"]
    async with database() as database_url:
        settings = Settings(data_dir=data, database_url=database_url)
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=clients + 4),
            timeout=aiohttp.ClientTimeout(total=60))
        try:
            with ExitStack() as running:
                servers: list[subprocess.Popen[bytes]] = []
                for n, port in enumerate(ports, start=1):
                    env = {**gateway_env(data, port, database_url), "DIPGW_ENV": "development",
                           "DIPGW_AMQP_URL": url, "DIPGW_AMQP_PREFIX": prefix,
                           "DIPGW_SECRETS_DIR": str(secrets)}
                    log = folder / f"gateway-{n}.log"
                    process = running.enter_context(started(serve, env, log))
                    servers.append(process)
                    await until_ready(session, f"http://127.0.0.1:{port}", process, log)
                running.callback(_stop, servers)  # before ``started`` kills what is left
                police = credentials(settings, SENDER)
                senders = [GatewayClient(f"http://127.0.0.1:{port}", police, session=session)
                           for port in ports]

                def client_for(sender: GatewayClient) -> Client:
                    async def client(tally: Tally) -> None:
                        while not tally.stop.is_set():
                            try:
                                await sender.send(document())
                            except GatewayProblem as problem:
                                tally.refuse(str(problem.status))
                            except (aiohttp.ClientError, TimeoutError):
                                # Counted, not fatal: the broker and database are shared
                                # with other work, which may restart them.
                                tally.refuse("conn")
                                await asyncio.sleep(0.1)
                            else:
                                tally.accepted += 1
                    return client

                def counters() -> dict[str, float]:
                    cpu = sum(process_cpu_s(p.pid) for p in servers)
                    ((commits, rollbacks),) = query(
                        settings, "SELECT xact_commit, xact_rollback FROM pg_stat_database "
                        "WHERE datname = current_database()")
                    return {"cpu": cpu, "commits": commits, "rollbacks": rollbacks}

                window = await measure(
                    [client_for(senders[i % processes]) for i in range(clients)],
                    warmup_s, seconds, counters)
            (size,) = query(settings, "SELECT AVG(OCTET_LENGTH(payload_json)) FROM deliveries")[0]
            return window, float(size or 0)
        finally:
            await session.close()
            await delete_topology(url, prefix)


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each gateway and wait for it (``started`` SIGKILLs any still running)."""
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + STOP_WITHIN_S
    for process in processes:
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, deadline - time.monotonic()))


def summary(label: str, windows: list[Window], raw_median: float) -> str:
    rates = [w.per_s for w in windows]
    def median_per_message(counter: str, scale: float, digits: int) -> str:
        values = [v for w in windows if (v := w.per_message(counter)) is not None]
        return f"{scale * statistics.median(values):.{digits}f}" if values else "-"

    busy = statistics.median(w.busy for w in windows)
    refused: dict[str, int] = {}
    for w in windows:
        for why, n in w.refused.items():
            refused[why] = refused.get(why, 0) + n
    shown_refused = ",".join(f"{n}x{why}" for why, n in sorted(refused.items())) or "0"
    return (f"{label:<12} {min(rates):>8.0f} {statistics.median(rates):>8.0f} "
            f"{max(rates):>8.0f} {median_per_message('cpu', 1000, 2):>10} "
            f"{median_per_message('commits', 1, 1):>10} "
            f"{median_per_message('rollbacks', 1, 1):>10} {busy:>5.0%} "
            f"{statistics.median(rates) / raw_median:>7.3f} {shown_refused:>7}")


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", default="1,2,3",
                        help="gateway process counts, comma-separated (default 1,2,3)")
    parser.add_argument("--clients", type=int, default=32,
                        help="concurrent clients (HTTP for the gateways, publishers for raw)")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=5.0, help="load before the window")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",")]
    if not counts or min(counts) < 1 or args.clients < 1 or args.rounds < 1:
        parser.error("--processes, --clients and --rounds must be positive")
    url = os.environ.get("DIPGW_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")

    raw: list[Window] = []
    gateway: dict[int, list[Window]] = {n: [] for n in counts}
    stored_size = 0.0
    with tempfile.TemporaryDirectory(prefix="dipgw-bench-") as folder:
        secrets = Path(folder) / "secrets"
        keys_init(secrets)
        for round_number in range(1, args.rounds + 1):
            raw.append(await raw_broker(url, args.clients, args.warmup, args.seconds))
            print(f"round {round_number}: raw-amqp {raw[-1].per_s:.0f} msg/s", flush=True)
            for n in counts:
                place = Path(folder) / f"round-{round_number}-{n}"
                place.mkdir()
                window, stored_size = await gateways(
                    url, n, args.clients, args.warmup, args.seconds, secrets, place)
                gateway[n].append(window)
                print(f"round {round_number}: {n} gateway(s) {window.per_s:.0f} msg/s, "
                      f"{1000 * (window.per_message('cpu') or 0):.2f} ms CPU/msg", flush=True)

    raw_median = statistics.median(w.per_s for w in raw)
    print(f"\n{args.clients} clients, {args.warmup:g} s warm-up, {args.seconds:g} s window, "
          f"{args.rounds} round(s), {os.cpu_count()} CPUs; payload {len(payload())} bytes "
          f"(gateway stored {stored_size:.0f})")
    print(f"{'path':<12} {'min/s':>8} {'median/s':>8} {'max/s':>8} {'CPU ms/msg':>10} "
          f"{'commit/msg':>10} {'rollbk/msg':>10} {'busy':>5} {'/raw':>7} {'refused':>7}")
    print(summary("raw-amqp", raw, raw_median))
    for n in counts:
        print(summary(f"{n} gateway{'s' if n > 1 else ''}", gateway[n], raw_median))
    print("per accepted message over the window (medians): CPU ms, the gateway processes' "
          "utime+stime;\ncommit and rollbk, their database's transactions (pg_stat_database, "
          "which lags by up to a second;\nthe gateway commits every transaction it completes, "
          "so a rollback is mostly a serialization\nfailure it retried); busy: the whole "
          "machine's CPUs; /raw: median accepted/s over raw-amqp's")


if __name__ == "__main__":
    asyncio.run(main())
