"""Serving the app over TCP with bounded read times, against slow-request attacks.

A client that opens a connection and sends half a request line, or headers a byte at a
time ("slowloris", CVE-2007-6750), must not hold the connection for ever. aiohttp has no
option by that name. What bounds the wait for a request head is its keep-alive timer
(read in aiohttp 3.14's ``web_protocol.RequestHandler``): it is armed when a connection
opens and again after every response, bytes of an unfinished head do not re-arm it, and
when it fires while the connection still waits for a complete head, the connection is
closed. So ``keepalive_timeout`` is set to the header timeout: it bounds the time from
connection or last response to a complete request head (Go's ``ReadHeaderTimeout``) and
is also the idle keep-alive time (Apache's ``KeepAliveTimeout``, 5 s by default). Nothing
here reaches into aiohttp's private parts; ``tests/test_read_timeouts.py`` holds whichever
aiohttp is installed to that behaviour with real sockets.

The body is bounded in ``gateway.http.body.read_json`` (408, then the connection closes);
a body nobody reads, because the request was refused first, is drained for at most
``lingering_time`` and then the connection closes, so a dribbled body holds a connection
for at most the body timeout plus ``lingering_time``.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
from typing import Any

from aiohttp import web

from gateway.config import Settings
from gateway.domain.errors import ConfigurationError

# aiohttp's own default: how long an unread request body is drained after the answer.
_MAX_LINGERING_S = 10.0


def handler_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for each connection's ``web.RequestHandler``.

    They travel through ``web.run_app`` or ``web.AppRunner``, and aiohttp quietly drops
    every one of them (falling back to its defaults, with a log line) if any is unknown to
    its handler, so each is checked against the installed aiohttp here, at start-up.
    """
    options: dict[str, Any] = {
        "keepalive_timeout": settings.header_timeout_s,
        "lingering_time": min(_MAX_LINGERING_S, settings.body_timeout_s),
    }
    unknown = set(options) - set(inspect.signature(web.RequestHandler).parameters)
    if unknown:
        raise ConfigurationError(
            f"This aiohttp's request handler takes no {', '.join(sorted(unknown))}: "
            "the read timeouts cannot be applied."
        )
    return options


async def start(app: web.Application, settings: Settings) -> web.AppRunner:
    """Set up ``app`` and listen on ``settings.host`` and ``settings.port``; the caller
    ends it with ``await runner.cleanup()``."""
    runner = web.AppRunner(app, **handler_options(settings))
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.port).start()
    return runner


async def freeze_startup_objects(app: web.Application) -> None:
    """Keep the garbage collector off the request path.

    Everything built at start-up (schemas and their validators, the policy, the directory,
    templates: hundreds of thousands of objects that live as long as the process) is moved
    out of its reach (``gc.freeze``, as the Python docs advise for long-running servers),
    so a full collection walks only what requests made; and the youngest generation is
    collected after 50,000 allocations rather than 700, as a request that reads 500
    messages allocates far more than that, nearly all of it freed by reference counting.
    Measured with ``bench/console.py`` (500 waiting messages, same machine): the inbox
    page's p95 went from 94 ms (a 65 ms full collection every twelfth read) to 45 ms, its
    p50 from 38 to 37 ms. Freezing alone halved the p95 but raised the p50 to 50 ms (full
    collections came more often)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)


def serve(
    app: web.Application, settings: Settings, loop: asyncio.AbstractEventLoop
) -> None:
    """Run until interrupted, as ``dipgw serve`` does. The start-up hook that freezes the
    process's long-lived objects runs after every other (the services are built by then)."""
    app.on_startup.append(freeze_startup_objects)
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        print=None,
        access_log=None,
        loop=loop,
        **handler_options(settings),
    )
