"""What the in-process tests of the administrator's and operator's pages share: a page's
text with its HTML entities decoded, and registering then removing a public key through
the console's key pages (a person's or an organisation's systems')."""

from __future__ import annotations

import html
import json
from typing import Any

from aiohttp.test_utils import TestClient

from gateway import keys


def text(page: str) -> str:
    return html.unescape(page)


async def register_key(client: TestClient[Any, Any], csrf: str, base: str) -> tuple[str, str]:
    """Offers ``{base}/keys/new`` a private key (refused, the form shown again), then its
    public half (registered, the holder's page saying so). Returns the refusal page's text
    and the key's id; the public key is ``keys.public_jwk`` of a fresh Ed25519 key."""
    path = base + "/keys/new"
    private = keys.generate("EdDSA")
    refused = await client.post(path, data={"csrf_token": csrf, "jwk": json.dumps(private)})
    assert refused.status == 200
    refusal = text(await refused.text())
    public = keys.public_jwk(private)
    added = await client.post(path, data={"csrf_token": csrf, "jwk": json.dumps(public)},
                              allow_redirects=False)
    assert added.status == 303, await added.text()
    kid = keys.thumbprint(public)
    page = text(await (await client.get(added.headers["Location"])).text())
    assert "The key has been registered" in page and kid in page
    again = await client.post(path, data={"csrf_token": csrf, "jwk": json.dumps(public)})
    assert "That key is already registered" in text(await again.text())
    return refusal, kid


async def remove_key(client: TestClient[Any, Any], csrf: str, base: str, kid: str) -> None:
    """Removes key ``kid`` through ``{base}/keys/{kid}/remove``: the question, a post without
    a CSRF token refused, then the removal."""
    remove = f"{base}/keys/{kid}/remove"
    assert "Remove this key?" in await (await client.get(remove)).text()
    assert (await client.post(remove, data={})).status == 400  # no CSRF token
    removed = await client.post(remove, data={"csrf_token": csrf}, allow_redirects=False)
    assert removed.status == 303
