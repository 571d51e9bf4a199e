"""Helpers for tests that need a real service (RabbitMQ) rather than an in-process stand-in.

Use the ``rabbitmq_url`` fixture (``from tests.services import rabbitmq_url  # noqa: F401``):
it yields the broker's AMQP URL, skips the test when no broker answers, and fails it
instead when ``DIPGW_REQUIRE_SERVICES=1`` (CI, ``make test`` on a prepared machine).
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
START_HINT = "start it with deploy/dev/ensure-services.sh (or: rabbitmq-server -detached)"


def amqp_url() -> str:
    return os.environ.get("DIPGW_TEST_AMQP_URL", DEFAULT_AMQP_URL)


def services_required() -> bool:
    return os.environ.get("DIPGW_REQUIRE_SERVICES") == "1"


def require_rabbitmq() -> str:
    """The broker's URL if it accepts a TCP connection; otherwise skip (or fail) the test."""
    url = amqp_url()
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
    try:
        with socket.create_connection((host, port), timeout=3):
            pass
    except OSError as exc:
        message = f"RabbitMQ is not reachable at {host}:{port} ({exc}); {START_HINT}"
        if services_required():
            pytest.fail(f"{message} [DIPGW_REQUIRE_SERVICES=1]")
        pytest.skip(message)
    return url


@pytest.fixture
def rabbitmq_url() -> str:
    return require_rabbitmq()
