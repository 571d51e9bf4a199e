"""The OpenAPI document and the router describe the same API."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator

from gateway.console import is_console_path
from gateway.http.openapi import document


def router_operations(client: TestClient[Any, Any]) -> set[tuple[str, str]]:
    operations = set()
    for route in client.server.app.router.routes():
        if route.method in ("HEAD", "OPTIONS"):
            continue
        info = route.resource.get_info() if route.resource else {}
        path = str(info.get("path") or info.get("formatter") or info.get("prefix"))
        # The web console's HTML pages and assets are not the API it describes.
        if is_console_path(path):
            continue
        operations.add((route.method.lower(), path))
    return operations


def documented_operations() -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in document()["paths"].items()
        for method in item
    }


async def test_every_route_is_documented_and_every_documented_route_exists(
    client: TestClient[Any, Any],
) -> None:
    assert router_operations(client) == documented_operations()


async def test_served_document_is_openapi_3_1_without_a_token(
    client: TestClient[Any, Any],
) -> None:
    response = await client.get("/openapi.json")
    assert response.status == 200
    served = await response.json()
    assert served["openapi"].startswith("3.1")
    for path, item in served["paths"].items():
        for method, operation in item.items():
            assert operation["summary"], (method, path)
            assert operation["responses"], (method, path)
            for parameter in operation.get("parameters", []):
                Draft202012Validator.check_schema(parameter["schema"])
            templated = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert templated == {
                part[1:-1] for part in path.split("/") if part.startswith("{")
            }, (method, path)
