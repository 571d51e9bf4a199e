"""Shared fixtures: a real gateway app on a temporary directory, and agencies that use it
through the same client library an agency system would (``gateway.client``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from gateway import keys
from gateway.app import create_app
from gateway.client import Credentials, GatewayClient
from gateway.config import Settings
from gateway.domain.model import Role
from gateway.services.directory import dev_key_path, find_person_key
from tests.backends import counts, database_for_each_test, drop_template, make_settings

# `make test` spreads the suite over several processes on a shared machine: how long
# Hypothesis takes to generate or run an example then says how busy the machine is, not
# whether the code is right. Its timing checks are off; every property still runs all of
# its examples (a run failed on "Input generation is slow" with the CPUs busy).
hypothesis_settings.register_profile(
    "dipgw", deadline=None, suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.load_profile("dipgw")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "schemas" / "examples"


def example_files(pattern: str) -> list[Path]:
    return sorted(EXAMPLES.glob(f"*/{pattern}"))


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


@pytest.fixture(autouse=True)
def _database_for_each_test() -> Iterator[None]:
    """On PostgreSQL runs, each test's own database, dropped when it ends
    (``tests.backends``)."""
    with database_for_each_test():
        yield


@pytest.fixture(scope="session", autouse=True)
def _template_database() -> Iterator[None]:
    yield
    drop_template()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(data_dir=tmp_path, relay_interval_s=0.05)


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings) -> TestClient[Any, Any]:
    test_client: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    return test_client


AgencyFactory = Callable[..., GatewayClient]


@pytest.fixture
async def agency(
    client: TestClient[Any, Any], settings: Settings
) -> AsyncIterator[AgencyFactory]:
    """``agency("CJIT-SFK")`` is a GatewayClient signing fresh tokens as that organisation."""

    def make(org: str, role: Role = Role.SYSTEM) -> GatewayClient:
        return GatewayClient(
            str(client.make_url("")),
            credentials(settings, org, role),
            session=client.session,
        )

    yield make


# The demo person of an organisation who holds each role (gateway.services.directory.demo_people).
DEMO_PERSON_SUFFIX = {
    Role.SPOC: "spoc", Role.IG_LEAD: "ig-lead", Role.ORG_ADMIN: "admin",
    Role.AUDITOR: "auditor", Role.DIRECTORY_ADMIN: "operator",
}
OVERSIGHT = "DIP-ASSURE"
OPERATOR = "DIPGW-OPS"


def credentials(settings: Settings, org: str, role: Role = Role.SYSTEM) -> Credentials:
    """The organisation's system, or for any other role the demo person of ``org`` granted
    it, signing tokens narrowed to that role. Auditors exist only in the oversight body and
    operators only in the operator, so for those two roles ``org`` is not used."""
    if role is Role.SYSTEM:
        return Credentials(
            org_code=org,
            private_jwk=keys.read_private(dev_key_path(settings.dev_keys_dir, org)),
            role=role,
            audience=settings.audience,
        )
    if role in (Role.AUDITOR, Role.DIRECTORY_ADMIN):
        org = OVERSIGHT if role is Role.AUDITOR else OPERATOR
    return person_credentials(settings, f"{org.lower()}.{DEMO_PERSON_SUFFIX[role]}", role)


def person_credentials(
    settings: Settings, person_id: str, role: Role | None = None
) -> Credentials:
    """A demo person's credentials, signed with their own development key."""
    found = find_person_key(settings.dev_keys_dir, person_id)
    assert found is not None, f"no demo person {person_id}"
    org, path = found
    return Credentials.for_person(
        org, person_id, keys.read_private(path), role=role, audience=settings.audience
    )


def person_bearer(settings: Settings, person_id: str, role: Role | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {person_credentials(settings, person_id, role).token()}"}


def bearer(settings: Settings, org: str, role: Role = Role.SYSTEM) -> dict[str, str]:
    """Headers with a fresh token, for raw requests that bypass the client library."""
    return {"Authorization": f"Bearer {credentials(settings, org, role).token()}"}


def table_counts(settings: Settings) -> dict[str, int]:
    """Row counts of every stored table, to prove a refused request changed nothing.

    The audit log is left out: it rightly grows with every read (consultations)."""
    return counts(settings)
