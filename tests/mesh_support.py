"""A local NHS MESH: mesh-sandbox (a FastAPI app on PyPI) run as a subprocess.

The sandbox runs under uvicorn on a free loopback port, plain HTTP, with:

- ``AUTH_MODE=full``: every request must carry a valid ``NHSMESH`` HMAC token made
  from the mailbox id, its password and ``SHARED_KEY``, as real MESH requires;
- ``STORE_MODE=file`` with ``MAILBOXES_DATA_DIR`` a temporary directory: each
  upper-case directory in it is a mailbox (the sandbox gives such mailboxes the
  password ``password``; the packaged ``X26ABC1``-``3`` exist too). Messages are kept
  in memory and written under that directory.

Use the ``mesh_sandbox`` fixture (import ``mesh_sandbox_fixture`` into a test module),
or ``run_mesh_sandbox`` directly.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mesh_client import MeshClient

from gateway.channels.mesh import MeshSettings

SHARED_KEY = "dipgw-sandbox-shared-key"
SANDBOX_PASSWORD = "password"  # what mesh-sandbox gives every mailbox made from a directory
SENDER_MAILBOX = "DIPGWOT001"  # the gateway's own mailbox
RECIPIENT_MAILBOX = "TPROVOT001"  # a treatment provider's mailbox
WORKFLOW_ID = "DIPGW_MESSAGE"
STARTUP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class MeshSandbox:
    url: str
    shared_key: str
    sender_mailbox: str
    sender_password: str
    recipient_mailbox: str
    recipient_password: str
    workflow_id: str
    data_dir: Path

    def sender_settings(self, **overrides: Any) -> MeshSettings:
        values: dict[str, Any] = {
            "url": self.url,
            "mailbox": self.sender_mailbox,
            "password": self.sender_password,
            "shared_key": self.shared_key,
            "workflow_id": self.workflow_id,
            "timeout_s": 10.0,
            "max_retries": 1,
            **overrides,
        }
        return MeshSettings(**values)

    @contextlib.contextmanager
    def recipient_client(self) -> Iterator[MeshClient]:
        """mesh-client as the recipient organisation would use it (synchronous)."""
        client = MeshClient(
            self.url,
            self.recipient_mailbox,
            self.recipient_password,
            shared_key=self.shared_key.encode(),
            max_retries=0,
            timeout=10,
        )
        try:
            yield client
        finally:
            client.close()  # type: ignore[no-untyped-call]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1) as response:  # noqa: S310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _start(directory: Path, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "ENV": "local",
        "AUTH_MODE": "full",
        "STORE_MODE": "file",
        "MAILBOXES_DATA_DIR": str(directory),
        "SHARED_KEY": SHARED_KEY,
        "PYTHONWARNINGS": "ignore",
    }
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "mesh_sandbox.api:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=directory.parent,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return process, url


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextlib.contextmanager
def run_mesh_sandbox(workdir: Path) -> Iterator[MeshSandbox]:
    """Start mesh-sandbox with a sender and a recipient mailbox; stop it on exit."""
    directory = workdir / "mailboxes"
    for mailbox in (SENDER_MAILBOX, RECIPIENT_MAILBOX):
        (directory / mailbox / "in").mkdir(parents=True, exist_ok=True)
    log_path = workdir / "mesh-sandbox.log"

    for _attempt in range(3):  # another process may take the free port before uvicorn does
        process, url = _start(directory, log_path)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while process.poll() is None and time.monotonic() < deadline:
            if _answers(url):
                break
            time.sleep(0.1)
        if process.poll() is None and _answers(url):
            break
        _stop(process)
    else:
        log = log_path.read_text(encoding="utf-8", errors="replace")[-4000:]
        raise RuntimeError(f"mesh-sandbox did not start; its log ends:\n{log}")

    try:
        yield MeshSandbox(
            url=url,
            shared_key=SHARED_KEY,
            sender_mailbox=SENDER_MAILBOX,
            sender_password=SANDBOX_PASSWORD,
            recipient_mailbox=RECIPIENT_MAILBOX,
            recipient_password=SANDBOX_PASSWORD,
            workflow_id=WORKFLOW_ID,
            data_dir=directory,
        )
    finally:
        _stop(process)


@pytest.fixture(scope="session", name="mesh_sandbox")
def mesh_sandbox_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshSandbox]:
    with run_mesh_sandbox(tmp_path_factory.mktemp("mesh")) as sandbox:
        yield sandbox
