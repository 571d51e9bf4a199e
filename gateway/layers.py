"""The gateway's layers, lowest first, written once: the story of a message.

A module may import modules of its own layer and of the layers below it, never of a layer
above: pure rules know nothing of storage, storage nothing of the services that own
transactions, and no service anything of the HTTP, console or command-line front ends.
``tests/test_layers.py`` holds every module to this order and finds no import cycle
between packages.

The folders follow the layers: each package sits in one layer, and each module in the
layer of the longest name listed that contains it.
"""

from __future__ import annotations

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # Transparency-log primitives (RFC 6962, C2SP): no gateway import at all.
    ("tlog", ("gateway.tlog",)),
    # The values and errors every layer speaks.
    ("domain", ("gateway.domain",)),
    # Process plumbing with no rules: key files, metrics, periodic jobs, logging, limits.
    ("support", (
        "gateway.keys", "gateway.keyfiles", "gateway.metrics", "gateway.periodic",
        "gateway.logs", "gateway.ratelimit", "gateway.layers",
    )),
    # Sender-signed envelopes (IETF SD-JWT): what the client signs and recipients check.
    ("sdjwt", ("gateway.sdjwt",)),
    # The agency client and its audit-log monitor: what an agency system imports, so
    # nothing of the server.
    ("client", ("gateway.client", "gateway.monitor")),
    # Pure rules, in the order ``gateway.pipeline`` states.
    ("pipeline", ("gateway.pipeline",)),
    # Rows in and out, one query module per aggregate; a service composes them into one
    # transaction through a repository's ``unit_of_work``.
    ("storage", ("gateway.storage",)),
    # Moving committed messages between processes, and pushing them to agencies.
    ("transport", ("gateway.transport",)),
    ("channels", ("gateway.channels",)),
    # Settings read once at start (they name the channels' own settings).
    ("config", ("gateway.config",)),
    # Use cases: each one unit of work with its audit entry inside it.
    ("services", ("gateway.services",)),
    # Front ends.
    ("http", ("gateway.http",)),
    ("console", ("gateway.console",)),
    # The C2SP witness server, run apart from the gateway: it shares only tlog and support.
    ("witness", ("gateway.witness",)),
    # The composition root, which builds every part from its settings, and the command line.
    ("app", ("gateway.app", "gateway.cli", "gateway.__main__")),
)


def layer_of(module: str) -> int:
    """The position in ``LAYERS`` of a module's layer; ``KeyError`` for one not placed."""
    best: tuple[int, int] | None = None
    for position, (_, names) in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and (
                best is None or len(name) > best[0]
            ):
                best = (len(name), position)
    if best is None:
        raise KeyError(f"{module} is in no layer of gateway.layers.LAYERS")
    return best[1]
