"""Read timeouts against a real server on a free port, with raw sockets: half-sent request
heads and dribbled bodies are cut off within their (here short) timeouts, while a normal
request on another connection is answered as usual. Also through ``dipgw serve``."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from gateway.app import create_app
from gateway.config import Settings
from gateway.http import server
from tests.backends import current_database_url, make_settings
from tests.conftest import EXAMPLES, bearer
from tests.processes import gateway_env

HEADER_TIMEOUT_S = 0.5
BODY_TIMEOUT_S = 0.5
# Slack for a loaded machine; every bound below is a timeout plus this, never a speed.
SLACK_S = 3.0

HALF_SENT = [
    b"",  # connected, nothing sent
    b"GET /v1/inb",  # half a request line
    b"GET /v1/inbox HTTP/1.1\r\nHost: 127.0.0.1\r\n",  # line and a header, no blank line
    b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl",
]


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[tuple[Settings, int]]:
    settings = make_settings(
        data_dir=tmp_path, relay_interval_s=0.05, port=0,
        header_timeout_s=HEADER_TIMEOUT_S, body_timeout_s=BODY_TIMEOUT_S,
    )
    runner = await server.start(create_app(settings), settings)
    port = runner.addresses[0][1]
    yield settings, port
    await runner.cleanup()


async def connect(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


async def received_until_closed(sock: socket.socket, bound_s: float) -> bytes:
    """What the server sent before closing, even if it closed with a reset (which it may,
    since the client is still sending): the kernel hands over received bytes first, where
    ``asyncio.StreamReader`` would raise and drop them."""
    loop = asyncio.get_running_loop()
    chunks = []
    async with asyncio.timeout(bound_s):
        while True:
            try:
                chunk = await loop.sock_recv(sock, 65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


async def test_a_hundred_half_sent_requests_are_closed_and_others_still_served(
    gateway: tuple[Settings, int],
) -> None:
    settings, port = gateway
    connections = []
    for n in range(100):
        sock = await connect(port)
        await asyncio.get_running_loop().sock_sendall(sock, HALF_SENT[n % len(HALF_SENT)])
        connections.append(sock)

    async with aiohttp.ClientSession() as session, session.get(
        f"http://127.0.0.1:{port}/v1/inbox", headers=bearer(settings, "CJIT-SFK")
    ) as response:
        assert response.status == 200

    answers = await asyncio.gather(
        *(received_until_closed(sock, HEADER_TIMEOUT_S + SLACK_S) for sock in connections)
    )
    assert answers == [b""] * 100  # closed without an answer: there was no request
    for sock in connections:
        sock.close()


async def test_a_head_sent_a_byte_at_a_time_is_cut_off(gateway: tuple[Settings, int]) -> None:
    _, port = gateway
    loop = asyncio.get_running_loop()
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 1000
    with await connect(port) as sock:

        async def dribble() -> None:
            with contextlib.suppress(OSError):  # until the server hangs up
                for byte in head:
                    await loop.sock_sendall(sock, bytes([byte]))
                    await asyncio.sleep(0.02)

        sender = asyncio.create_task(dribble())
        try:
            assert await received_until_closed(sock, HEADER_TIMEOUT_S + SLACK_S) == b""
            assert not sender.done()  # still sending: activity does not extend the time
        finally:
            sender.cancel()


async def test_an_idle_keep_alive_connection_is_closed_after_the_header_timeout(
    gateway: tuple[Settings, int],
) -> None:
    _, port = gateway
    with await connect(port) as sock:
        await asyncio.get_running_loop().sock_sendall(
            sock, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )
        answer = await received_until_closed(sock, HEADER_TIMEOUT_S + SLACK_S)
    assert answer.startswith(b"HTTP/1.1 200")


async def test_a_dribbled_body_is_answered_408_and_the_connection_closed(
    gateway: tuple[Settings, int],
) -> None:
    settings, port = gateway
    body = (EXAMPLES / "ra1_notice" / "valid-out-of-area-norfolk-resident.json").read_bytes()
    head = (
        "POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {bearer(settings, 'POL-SFK-IPS')['Authorization']}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    with await connect(port) as sock:
        await loop.sock_sendall(sock, head + body[:10])

        async def dribble() -> None:
            with contextlib.suppress(OSError):  # until the server hangs up
                for byte in body[10:]:
                    await loop.sock_sendall(sock, bytes([byte]))
                    await asyncio.sleep(0.05)

        sender = asyncio.create_task(dribble())
        try:
            # The body timeout, then at most as long again draining what is still coming.
            answer = await received_until_closed(sock, 2 * BODY_TIMEOUT_S + SLACK_S)
        finally:
            sender.cancel()
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 408 Request Timeout"
    headers, _, problem = rest.partition(b"\r\n\r\n")
    assert b"Connection: close" in headers
    assert json.loads(problem)["type"] == "urn:dipgw:problem:request-timeout"


async def test_a_body_sent_in_time_is_read(gateway: tuple[Settings, int]) -> None:
    settings, port = gateway
    envelope = json.loads(
        (EXAMPLES / "ra1_notice" / "valid-out-of-area-norfolk-resident.json").read_text()
    )
    async with aiohttp.ClientSession() as session, session.post(
        f"http://127.0.0.1:{port}/v1/messages", json=envelope,
        headers=bearer(settings, "POL-SFK-IPS"),
    ) as response:
        assert response.status == 202


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_dipgw_serve_applies_the_header_timeout(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **gateway_env(tmp_path, port, current_database_url()),
        "DIPGW_HEADER_TIMEOUT": str(HEADER_TIMEOUT_S),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--log-level", "WARNING"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                sock = await connect(port)
                break
            except OSError:
                assert time.monotonic() < deadline, "dipgw serve did not start listening"
                await asyncio.sleep(0.1)
        with sock:
            await asyncio.get_running_loop().sock_sendall(sock, HALF_SENT[2])
            assert await received_until_closed(sock, HEADER_TIMEOUT_S + SLACK_S) == b""
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_timeouts_reach_each_connection_handler() -> None:
    settings = replace(Settings(), header_timeout_s=7.0, body_timeout_s=3.0)
    assert server.handler_options(settings) == {"keepalive_timeout": 7.0, "lingering_time": 3.0}
    assert server.handler_options(Settings())["lingering_time"] == 10.0


async def test_serving_freezes_what_start_up_built_out_of_the_collector_s_reach() -> None:
    """``dipgw serve`` moves its long-lived start-up objects out of full collections,
    which otherwise stalled a request in twelve, and collects young objects less often
    (``gateway.http.server.freeze_startup_objects``)."""
    before, thresholds = gc.get_freeze_count(), gc.get_threshold()
    try:
        await server.freeze_startup_objects(aiohttp.web.Application())
        assert gc.get_freeze_count() > before
        assert gc.get_threshold()[0] == 50_000
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_serve_freezes_after_every_other_start_up_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[object] = []
    monkeypatch.setattr(server.web, "run_app",
                        lambda app, **_: started.extend(app.on_startup))
    app = aiohttp.web.Application()
    app.on_startup.append(lambda _: asyncio.sleep(0))
    loop = asyncio.new_event_loop()
    try:
        server.serve(app, Settings(), loop)
    finally:
        loop.close()
    assert started[-1] is server.freeze_startup_objects
