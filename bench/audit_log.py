"""The audit log's speed: appends per second while the gateway is under load, and offline
verification of a large exported bundle, each beside a baseline from the same run.

    .venv/bin/python bench/audit_log.py --messages 2000 --entries 1000000

(a) a gateway (embedded transport) takes --messages RA1 notices from 32 concurrent HTTP
    clients; audit entries appended per second are counted from its database, beside the
    messages per second accepted (the log appends several entries per message: acceptance,
    disclosure, and a consultation for each inbox read);
(b) a bundle of --entries synthetic audit entries (about the size of real ones) is written
    as C2SP tlog-tiles and verified offline with ``verify_bundle``, beside the raw SHA-256
    leaf-hashing rate of the same entries (the floor any verifier must pay).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import broker_vs_gateway as load  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from gateway.tlog.bundle import write_bundle  # noqa: E402
from gateway.tlog.canonical import canonicalize  # noqa: E402
from gateway.tlog.note import Signer  # noqa: E402
from gateway.tlog.verify import verify_bundle  # noqa: E402


def audit_size(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM audit_entries").fetchone()[0])


async def appends_under_load(messages: int, clients: int) -> None:
    with tempfile.TemporaryDirectory() as data:
        port = load.free_port()
        env = {**os.environ, "DIPGW_DATA_DIR": data, "DIPGW_PORT": str(port)}
        env.pop("DIPGW_AMQP_URL", None)
        server = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--log-level", "WARNING"],
            env=env, cwd=ROOT, stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            await load._wait_ready(base)
            before = audit_size(Path(data) / "dipgw.sqlite3")
            start = time.perf_counter()
            result = await load._drive(base, Path(data), messages, clients)
            elapsed = time.perf_counter() - start
            appended = audit_size(Path(data) / "dipgw.sqlite3") - before
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"(a) under load: {result.accepted_per_s:,.0f} messages/s accepted, "
          f"{appended / elapsed:,.0f} audit appends/s "
          f"({appended / messages:.1f} entries per message, {appended} in {elapsed:.1f} s)")


def synthetic_entries(count: int) -> list[bytes]:
    return [
        canonicalize({
            "index": i, "action": "message.delivered", "at": "2026-11-23T12:00:00.000000Z",
            "actor": "gateway", "message_id": f"00000000-0000-4000-8000-{i:012d}",
            "message_type": "ra1_notice", "recipients": ["CJIT-NFK"],
            "subject": f"psn:{i:032x}",
            "details": {"decision": {"decision": "permit", "rule": "ra1-statutory"}},
        })
        for i in range(count)
    ]


def verification(count: int) -> None:
    entries = synthetic_entries(count)
    start = time.perf_counter()
    for entry in entries:
        hashlib.sha256(b"\x00" + entry).digest()
    hashing = time.perf_counter() - start
    signer = Signer("bench.dipgw/audit", Ed25519PrivateKey.generate())
    sizes = sorted({count // 4, count // 2, count})
    with tempfile.TemporaryDirectory() as scratch:
        bundle = Path(scratch) / "bundle"
        start = time.perf_counter()
        write_bundle(bundle, entries, sizes, [signer])
        written = time.perf_counter() - start
        start = time.perf_counter()
        report = verify_bundle(bundle, [signer.verifier_key()])
        verified = time.perf_counter() - start
    assert report.size == count
    print(f"(b) offline verification of {count:,} entries: {verified:.2f} s "
          f"({count / verified:,.0f} entries/s); bundle written in {written:.2f} s")
    print(f"    baseline, SHA-256 leaf hashes alone: {count / hashing:,.0f} entries/s; "
          f"verification costs {verified / hashing:.1f}x the bare hashing")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--entries", type=int, default=1_000_000)
    args = parser.parse_args()
    await appends_under_load(args.messages, args.clients)
    verification(args.entries)


if __name__ == "__main__":
    asyncio.run(main())
