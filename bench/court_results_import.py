"""Court result import end to end, against sending the same rows one by one, in one run.

(a) adapter: ``python -m adapters.court_results`` on a generated N-row list, timed from
    start to exit (reading, mapping, journal, ``POST /v1/messages/batch``, report);
(b) baseline: the same rows mapped the same way, sent one message per request through
    ``POST /v1/messages`` (a fresh single-use token each), ``--clients`` requests in flight.

Each side gets its own gateway process on embedded defaults (SQLite, in-process transport)
in a fresh temporary directory. Prints rows/s for both and the ratio (a)/(b).

    .venv/bin/python bench/court_results_import.py --rows 10000
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.court_results.mapping import map_results  # noqa: E402
from adapters.envelopes import ImportContext  # noqa: E402
from adapters.sources import parse_csv  # noqa: E402
from gateway import keys  # noqa: E402
from gateway.client import Credentials, GatewayClient  # noqa: E402
from gateway.config import Settings  # noqa: E402
from gateway.services.directory import dev_key_path  # noqa: E402
from tests.adapters.court_lists import court_list  # noqa: E402
from tests.processes import free_port  # noqa: E402

COURT = "CRT-IPS-MC"


def cpu_seconds(pid: int) -> float:
    """A process's user and system CPU so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def gateway(data_dir: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {**os.environ, "DIPGW_DATA_DIR": str(data_dir), "DIPGW_PORT": str(port)}
    env.pop("DIPGW_AMQP_URL", None)
    env.pop("DIPGW_DATABASE_URL", None)
    process = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(400):
            try:
                with urllib.request.urlopen(url + "/readyz", timeout=1):  # noqa: S310
                    break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.05)
        yield url, process.pid
    finally:
        process.kill()
        process.wait()


def adapter_run(rows: int, text: str, work: Path,
                batch_size: int, concurrency: int) -> tuple[float, float]:
    """Rows/s, and the gateway's CPU per row in microseconds while the adapter ran."""
    data_dir = work / "adapter-gateway"
    listing = work / "results.csv"
    listing.write_text(text, encoding="utf-8")
    with gateway(data_dir) as (url, pid):
        key = dev_key_path(Settings(data_dir=data_dir).dev_keys_dir, COURT)
        cpu_before = cpu_seconds(pid)
        started = time.perf_counter()
        done = subprocess.run(  # noqa: S603 - the adapter this repository ships
            [sys.executable, "-m", "adapters.court_results", str(listing), "--org", COURT,
             "--url", url, "--key-file", str(key), "--batch-size", str(batch_size),
             "--concurrency", str(concurrency)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False,
        )
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(pid) - cpu_before
    if done.returncode != 0:
        raise SystemExit(f"the adapter failed ({done.returncode}):\n{done.stderr}")
    return rows / elapsed, cpu / rows * 1e6


async def one_by_one(url: str, credentials: Credentials, text: str, clients: int) -> float:
    ctx = ImportContext(COURT, "2026-05-19T17:00:00+00:00", hashlib.sha256(b"x").hexdigest())
    envelopes = [m.envelope for m in map_results(parse_csv(text).rows, ctx) if m.envelope]
    queue = list(reversed(envelopes))
    async with GatewayClient(url, credentials) as client:
        async def sender() -> None:
            while queue:
                answer = await client.send(queue.pop())
                assert answer.status == 202

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(clients)))
        return len(envelopes) / (time.perf_counter() - started)


def baseline_run(text: str, work: Path, clients: int) -> float:
    data_dir = work / "baseline-gateway"
    with gateway(data_dir) as (url, _):
        credentials = Credentials(
            COURT, keys.read_private(dev_key_path(Settings(data_dir=data_dir).dev_keys_dir,
                                                  COURT)))
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(one_by_one(url, credentials, text, clients))


def measure(rows: int, batch_size: int = 250, concurrency: int = 4,
            clients: int = 16) -> tuple[float, float, float]:
    """Both sides on a fresh N-row list, each on its own fresh gateway: the adapter's
    rows/s end to end, the gateway's CPU microseconds per row while it ran, and the
    one-by-one baseline's rows/s (what bench/cost_per_message.py imports)."""
    text = court_list(rows, invalid_every=0).text
    with tempfile.TemporaryDirectory(prefix="dipgw-bench-") as work:
        adapter, cpu_per_row = adapter_run(rows, text, Path(work), batch_size, concurrency)
        baseline = baseline_run(text, Path(work), clients)
    return adapter, cpu_per_row, baseline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--clients", type=int, default=16,
                        help="baseline requests in flight (default 16)")
    args = parser.parse_args()
    adapter, cpu_per_row, baseline = measure(
        args.rows, args.batch_size, args.concurrency, args.clients)
    print(f"rows: {args.rows:,} on {os.cpu_count()} CPUs")
    print(f"(a) adapter, POST /v1/messages/batch (batch {args.batch_size}, "
          f"{args.concurrency} in flight), end to end: {adapter:,.0f} rows/s; "
          f"gateway CPU {cpu_per_row:,.0f} us/row")
    print(f"(b) one by one, POST /v1/messages ({args.clients} in flight): "
          f"{baseline:,.0f} rows/s")
    print(f"ratio (a)/(b): {adapter / baseline:.2f}")


if __name__ == "__main__":
    main()
