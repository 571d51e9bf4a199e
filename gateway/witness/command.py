"""``dipgw witness keygen`` and ``dipgw witness serve``: what the command line delegates to."""

from __future__ import annotations

import sys
from pathlib import Path

from aiohttp import web

from gateway.witness.files import new_key_file, read_cosigner, read_logs
from gateway.witness.server import WITNESS, Witness, create_witness_app
from gateway.witness.state import WitnessState


def keygen(out: Path, name: str) -> str:
    """Make a witness key file and return its verifier key (the gateway operator's line)."""
    return new_key_file(out, name).verifier_key()


def build(key: Path, name: str, logs: Path, state: Path) -> web.Application:
    """The witness application from its files (every one checked before serving)."""
    return create_witness_app(Witness(read_cosigner(key, name), read_logs(logs),
                                      WitnessState(state)))


def serve(key: Path, name: str, logs: Path, state: Path, host: str, port: int) -> None:
    """Run the witness until interrupted."""
    app = build(key, name, logs, state)
    witness = app[WITNESS]
    print(f"dipgw witness {witness.cosigner.verifier_key()} on http://{host}:{port}, "
          f"witnessing {', '.join(sorted(witness.logs.logs))}", file=sys.stderr)
    web.run_app(app, host=host, port=port, print=None)
