"""A real gateway process on the run's database (``tests.backends``), and the adapters run
as the commands an agency runs (``python -m adapters.…``), so interruption can be a real
SIGKILL."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.config import Settings
from gateway.services.directory import dev_key_path
from tests.backends import database_for_module, query
from tests.processes import free_port, gateway_env, wait_ready_blocking


@dataclass(frozen=True)
class Gateway:
    url: str
    settings: Settings
    log: Path

    def key(self, org: str) -> Path:
        return dev_key_path(self.settings.dev_keys_dir, org)

    def query(self, sql: str, **params: object) -> list[tuple[object, ...]]:
        """Rows of ``sql`` (named ``:params``) on the gateway's database."""
        return query(self.settings, sql, **params)

    def batch_logs(self, offset: int = 0) -> list[dict[str, object]]:
        """The gateway's ``batch_submitted`` log lines written after ``offset`` bytes."""
        with self.log.open("rb") as handle:
            handle.seek(offset)
            lines = handle.read().decode("utf-8", "replace").splitlines()
        return [json.loads(line) for line in lines if '"batch_submitted"' in line]

    def run(
        self, module: str, *args: str, org: str, url: str | None = None,
        key_file: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(module, *args, org=org, url=url, key_file=key_file),
            capture_output=True, text=True, timeout=300, env=adapter_env(), check=False,
        )

    def command(
        self, module: str, *args: str, org: str, url: str | None = None,
        key_file: Path | None = None,
    ) -> list[str]:
        """The adapter command an agency runs, as ``org`` against this gateway."""
        return [sys.executable, "-m", module, *args, "--org", org, "--url", url or self.url,
                "--key-file", str(key_file or self.key(org))]


def adapter_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("DIPGW_URL", "DIPGW_ORG", "DIPGW_KEY_FILE"):
        env.pop(name, None)
    return env


def start_gateway(settings: Settings) -> Iterator[Gateway]:
    port = free_port()
    log = settings.data_dir / "gateway.log"
    env = gateway_env(settings.data_dir, port, settings.database_url)
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve"], env=env,
            stdout=subprocess.DEVNULL, stderr=sink,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready_blocking(url)
        yield Gateway(url, settings, log)
    finally:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with database_for_module() as database_url:
        yield from start_gateway(Settings(data_dir=tmp_path_factory.mktemp("gateway"),
                                          database_url=database_url))


def write_csv(path: Path, header: Sequence[str], rows: Sequence[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, header)
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_report(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def wait_until(predicate: Callable[[], bool], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting")
