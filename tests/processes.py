"""A real gateway as a separate process, for the tests that need one (crash recovery, the
CLI, the adapters, the console's browser tests): a free port, the process on the run's
database (``tests.backends``) with the in-process transport, and waiting until
``/readyz`` says it is ready."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp

READY_WITHIN_S = 30.0


def free_port() -> int:
    """A port nothing listens on now (the OS's choice), for a process the test starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def gateway_env(data_dir: Path, port: int, database_url: str | None) -> dict[str, str]:
    """The environment of a ``dipgw serve`` on ``database_url`` (None: SQLite in
    ``data_dir``), with the in-process transport unless the caller adds a broker."""
    env = {**os.environ, "DIPGW_DATA_DIR": str(data_dir), "DIPGW_PORT": str(port)}
    env.pop("DIPGW_AMQP_URL", None)
    env.pop("DIPGW_DATABASE_URL", None)
    if database_url is not None:
        env["DIPGW_DATABASE_URL"] = database_url
    return env


@contextmanager
def gateway_process(
    data_dir: Path, port: int, database_url: str | None
) -> Iterator[subprocess.Popen[bytes]]:
    """``dipgw serve`` on ``database_url`` (None: SQLite in ``data_dir``) with the
    in-process transport, killed after."""
    env = gateway_env(data_dir, port, database_url)
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--log-level", "WARNING"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


async def wait_ready(url: str) -> None:
    """Until ``/readyz`` answers 200, for at most ``READY_WITHIN_S`` seconds."""
    deadline = time.monotonic() + READY_WITHIN_S
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url + "/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("the gateway did not become ready")


def wait_ready_blocking(url: str) -> None:
    """``wait_ready`` for synchronous fixtures."""
    deadline = time.monotonic() + READY_WITHIN_S
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as answer:  # noqa: S310
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.05)
    raise AssertionError("the gateway did not become ready")
