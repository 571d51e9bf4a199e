"""Throughput and latency of the whole gateway against the raw broker path, in one run.

Superseded by bench/cost_per_message.py, which measures every figure of the cost-per-message
issue beside its baseline (it imports ``raw_broker`` from here); kept for
bench/against_revision.py's comparisons with earlier revisions.

(a) baseline: aio-pika publishing the same RA1 payloads with publisher confirms to a
    quorum queue, hundreds in flight, and a consumer acking them;
(b) gateway: concurrent HTTP clients submitting valid RA1 notices, each with a fresh
    single-use JWT, through validation, decision, outbox and RabbitMQ to the recipient's
    inbox, observed on the recipient's server-sent event stream.

Prints messages/s accepted and delivered, submit-to-inbox latency p50/p95/p99, and the
ratio (b)/(a). Needs RabbitMQ (DIPGW_TEST_AMQP_URL, default amqp://guest:guest@127.0.0.1:5672/).

    .venv/bin/python bench/broker_vs_gateway.py --messages 2000 --clients 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway import keys  # noqa: E402
from gateway.client import Credentials, GatewayClient  # noqa: E402
from gateway.services.directory import dev_key_path  # noqa: E402
from gateway.transport.topology import Topology  # noqa: E402

RA1 = json.loads(
    (ROOT / "schemas/examples/ra1_notice/valid-out-of-area-norfolk-resident.json").read_text()
)
SENDER, RECIPIENT = RA1["from"], RA1["to"][0]


@dataclass
class Result:
    name: str
    messages: int
    accepted_per_s: float
    delivered_per_s: float
    latencies_ms: list[float]

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def line(self) -> str:
        return (
            f"{self.name:<10} {self.messages:>7} {self.accepted_per_s:>12.0f} "
            f"{self.delivered_per_s:>13.0f} {self.percentile(50):>9.1f} "
            f"{self.percentile(95):>9.1f} {self.percentile(99):>9.1f}"
        )


def payload() -> bytes:
    return json.dumps({**RA1, "message_id": str(uuid.uuid4())}).encode()


async def raw_broker(url: str, messages: int, in_flight: int) -> Result:
    queue_name = f"bench.raw.{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect_robust(url)
    async with connection:
        publisher = await connection.channel(publisher_confirms=True, on_return_raises=True)
        consumer = await connection.channel()
        await consumer.set_qos(prefetch_count=200)
        queue = await consumer.declare_queue(
            queue_name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        sent_at: dict[str, float] = {}
        latencies: list[float] = []
        done = asyncio.Event()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            latencies.append((time.perf_counter() - sent_at[message.message_id or ""]) * 1000)
            await message.ack()
            if len(latencies) == messages:
                done.set()

        await queue.consume(on_message)
        gate = asyncio.Semaphore(in_flight)
        start = time.perf_counter()

        async def publish_one() -> None:
            async with gate:
                message_id = str(uuid.uuid4())
                sent_at[message_id] = time.perf_counter()
                await publisher.default_exchange.publish(
                    aio_pika.Message(
                        payload(), message_id=message_id,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key=queue_name,
                    mandatory=True,
                )

        await asyncio.gather(*(publish_one() for _ in range(messages)))
        accepted = time.perf_counter() - start
        await asyncio.wait_for(done.wait(), 300)
        delivered = time.perf_counter() - start
        await consumer.queue_delete(queue_name)
    return Result("raw-amqp", messages, messages / accepted, messages / delivered, latencies)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def gateway(url: str, messages: int, clients: int) -> Result:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as data:
        data_dir = Path(data)
        port = free_port()
        env = {**os.environ, "DIPGW_DATA_DIR": data, "DIPGW_PORT": str(port),
               "DIPGW_AMQP_URL": url, "DIPGW_AMQP_PREFIX": prefix}
        server = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--log-level", "WARNING"],
            env=env, cwd=ROOT, stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            await _wait_ready(base)
            return await _drive(base, data_dir, messages, clients)
        finally:
            server.terminate()
            server.wait(timeout=30)
            await _delete_topology(url, prefix)


async def _wait_ready(base: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            try:
                async with session.get(base + "/readyz") as response:
                    if response.status == 200 and (await response.json())["status"] == "ready":
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("gateway did not become ready")


def _credentials(data_dir: Path, org: str) -> Credentials:
    return Credentials(org, keys.read_private(dev_key_path(data_dir / "dev-keys", org)))


async def _drive(base: str, data_dir: Path, messages: int, clients: int) -> Result:
    submitted: dict[str, float] = {}
    latencies: list[float] = []
    all_in = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=clients + 4)
    async with aiohttp.ClientSession(connector=connector) as session:
        receiver = GatewayClient(base, _credentials(data_dir, RECIPIENT), session=session)
        sender = GatewayClient(base, _credentials(data_dir, SENDER), session=session)

        async def watch() -> None:
            async for item in receiver.stream():
                started = submitted.get(item["message_id"])
                if started is not None:
                    latencies.append((time.perf_counter() - started) * 1000)
                    if len(latencies) == messages:
                        all_in.set()
                        return

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.5)
        remaining = iter(range(messages))
        start = time.perf_counter()

        async def client() -> None:
            for _ in remaining:
                document = {**RA1, "message_id": str(uuid.uuid4())}
                submitted[document["message_id"]] = time.perf_counter()
                await sender.send(document)

        await asyncio.gather(*(client() for _ in range(clients)))
        accepted = time.perf_counter() - start
        await asyncio.wait_for(all_in.wait(), 300)
        delivered = time.perf_counter() - start
        watcher.cancel()
    return Result("gateway", messages, messages / accepted, messages / delivered, latencies)


async def _delete_topology(url: str, prefix: str) -> None:
    from gateway.services.directory import DEMO_ORGANISATIONS

    topology = Topology(prefix=prefix)
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        for org in DEMO_ORGANISATIONS:
            await channel.queue_delete(topology.queue(org.code))
            await channel.queue_delete(topology.dead_letter_queue(org.code))
        await channel.exchange_delete(topology.exchange)
        await channel.exchange_delete(topology.dead_letter_exchange)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=32, help="concurrent HTTP clients")
    parser.add_argument("--in-flight", type=int, default=256, help="raw path publishes in flight")
    args = parser.parse_args()
    url = os.environ.get("DIPGW_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")

    raw = await raw_broker(url, args.messages, args.in_flight)
    gw = await gateway(url, args.messages, args.clients)
    print(f"{'path':<10} {'msgs':>7} {'accepted/s':>12} {'delivered/s':>13} "
          f"{'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9}")
    for result in (raw, gw):
        print(result.line())
    print(f"ratio gateway/raw: accepted {gw.accepted_per_s / raw.accepted_per_s:.3f}, "
          f"delivered {gw.delivered_per_s / raw.delivered_per_s:.3f}")
    slower = statistics.median(gw.latencies_ms) / statistics.median(raw.latencies_ms)
    print(f"median latency gateway/raw: {slower:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
