"""A typed client for agency systems, the CLI and the end-to-end tests.

Every request carries a fresh single-use token signed with the organisation's own
private key, since the gateway refuses a token it has seen before.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import aiohttp
import jwt

from gateway import keys
from gateway.domain.model import Role
from gateway.sdjwt.envelope import MEDIA_TYPE as SD_JWT_MEDIA_TYPE
from gateway.sdjwt.envelope import sign_envelope

DEFAULT_AUDIENCE = "urn:dipgw"


def issue_token(
    private_jwk: dict[str, Any],
    *,
    org_code: str,
    role: Role | None,
    audience: str,
    subject: str,
    ttl_s: int,
    now: datetime,
    token_id: str,
) -> str:
    """Sign a token as an organisation's system or person; what ``dipgw token`` and the
    client do. ``role`` narrows the caller to one role it holds; None acts in all of them."""
    alg = keys.algorithm_for(private_jwk)
    signing_key = jwt.PyJWK(private_jwk, algorithm=alg)
    issued = int(now.timestamp())
    claims = {
        "iss": org_code,
        "sub": subject,
        "aud": audience,
        "iat": issued,
        "exp": issued + ttl_s,
        "jti": token_id,
    }
    if role is not None:
        claims["role"] = role.value
    return jwt.encode(claims, signing_key.key, algorithm=alg, headers={"kid": private_jwk["kid"]})


@dataclass(frozen=True, slots=True)
class Credentials:
    """Signs tokens as an organisation's system or one of its people, for one gateway
    audience. ``role`` narrows the token to one role the signer holds (None: all of them);
    it can never add one — the gateway grants roles, tokens do not."""

    org_code: str
    private_jwk: Mapping[str, Any]
    role: Role | None = Role.SYSTEM
    subject: str = "system"
    audience: str = DEFAULT_AUDIENCE
    ttl_s: int = 300

    @classmethod
    def for_person(
        cls,
        org_code: str,
        person_id: str,
        private_jwk: Mapping[str, Any],
        *,
        role: Role | None = None,
        audience: str = DEFAULT_AUDIENCE,
        ttl_s: int = 300,
    ) -> Credentials:
        """A person's credentials: the token's ``sub`` is their directory id."""
        return cls(org_code, private_jwk, role, person_id, audience, ttl_s)

    def token(self) -> str:
        return issue_token(
            dict(self.private_jwk),
            org_code=self.org_code,
            role=self.role,
            audience=self.audience,
            subject=self.subject,
            ttl_s=self.ttl_s,
            now=datetime.now(UTC),
            token_id=str(uuid.uuid4()),
        )


class GatewayProblem(Exception):
    """The gateway answered with an RFC 9457 problem."""

    def __init__(self, status: int, problem: Mapping[str, Any]) -> None:
        self.status = status
        self.problem = problem
        super().__init__(f"{status} {problem.get('title', '')}: {problem.get('detail', '')}")

    @property
    def violations(self) -> list[dict[str, str]]:
        return list(self.problem.get("errors", []))


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class BatchResult:
    """One item of a batch: what ``POST /v1/messages`` would have answered for it."""

    index: int
    status: int
    body: Mapping[str, Any]
    replayed: bool = False


# The longest Retry-After the client waits out by itself; a longer one is raised.
MAX_RETRY_AFTER_S = 60


def retry_after_s(response: aiohttp.ClientResponse) -> int | None:
    """The wait a 429 or 503 asks for (RFC 9110 section 10.2.3, delay-seconds only; the
    gateway never sends a date), or None when the answer asks for none the client takes."""
    raw = response.headers.get("Retry-After", "")
    if response.status not in (429, 503) or not raw.isdigit() or not raw.isascii():
        return None
    seconds = int(raw)
    return seconds if seconds <= MAX_RETRY_AFTER_S else None


def _problem(response: aiohttp.ClientResponse, text: str) -> Mapping[str, Any]:
    """The RFC 9457 problem of an error answer; a body that is not one (a proxy's page, or
    something posing as the gateway) becomes one saying what came back."""
    try:
        body = json.loads(text) if text else {}
    except ValueError:
        body = None
    if isinstance(body, dict):
        return body
    return {"title": response.reason or "", "detail": text[:200]}


class GatewayClient:
    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout_s: float = 30.0,
        busy_retries: int = 60,
        sign_messages: bool = False,
    ) -> None:
        """``sign_messages``: send every message as its SD-JWT signed with the
        credentials' key (``gateway.sdjwt``), so each recipient can prove what this
        organisation sent without trusting the gateway."""
        self._base = base_url.rstrip("/")
        self._sign_messages = sign_messages
        self._busy_retries = busy_retries
        self._credentials = credentials
        self._own_session = session is None
        self._session = session or aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout_s)
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session:
            await self._session.close()

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._credentials.token()}"}

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        signed_body: str | None = None,
    ) -> Answer:
        """Any API call with a fresh token; problems are raised as ``GatewayProblem``.

        A 429 or 503 with ``Retry-After`` (rate limit, or delivery behind intake) did
        nothing, so the call is made again after the wait, up to ``busy_retries`` times
        (60 by default: about a minute of the gateway's 1 s waits, long enough for it to
        catch up after a broker outage), each with a fresh token. ``signed_body`` is
        sent instead of JSON, as ``application/sd-jwt``."""
        retries_left = self._busy_retries
        while True:
            headers = self._headers()
            if signed_body is not None:
                headers["Content-Type"] = SD_JWT_MEDIA_TYPE
            async with self._session.request(
                method, self._base + path, json=json_body, params=params,
                data=signed_body, headers=headers,
            ) as response:
                text = await response.text()
                if response.status < 400:
                    return Answer(response.status, json.loads(text) if text else {})
                wait_s = retry_after_s(response)
                if wait_s is None or retries_left == 0:
                    raise GatewayProblem(response.status, _problem(response, text))
            retries_left -= 1
            await asyncio.sleep(wait_s)

    async def download(self, path: str, params: Mapping[str, str] | None = None) -> bytes:
        """A binary resource (e.g. the audit export); problems are raised."""
        async with self._session.get(
            self._base + path, params=params, headers=self._headers()
        ) as response:
            if response.status >= 400:
                raise GatewayProblem(response.status,
                                     _problem(response, await response.text()))
            return await response.read()

    def _signed(self, envelope: Mapping[str, Any]) -> str:
        return sign_envelope(envelope, self._credentials.private_jwk)

    async def text(self, path: str, params: Mapping[str, str] | None = None) -> str:
        """A text resource (a signed checkpoint, the verifier keys); problems are raised."""
        return (await self.download(path, params)).decode("utf-8")

    async def send(self, envelope: Mapping[str, Any]) -> Answer:
        """Submit a message (signed, if the client signs); 202 and 200 answers are
        returned, problems raised."""
        if self._sign_messages:
            return await self.request("POST", "/v1/messages",
                                      signed_body=self._signed(envelope))
        return await self.request("POST", "/v1/messages", json_body=envelope)

    async def send_batch(self, envelopes: Sequence[Mapping[str, Any]]) -> list[BatchResult]:
        """Submit 1 to 500 messages under one token; each item's answer, in order.

        Items are answered, not raised; a problem with the batch as a whole is raised.
        """
        items = [self._signed(e) for e in envelopes] if self._sign_messages else list(envelopes)
        answer = await self.request("POST", "/v1/messages/batch", json_body={"messages": items})
        return [
            BatchResult(
                index=int(item["index"]),
                status=int(item["status"]),
                body=item["body"],
                replayed=bool(item.get("replayed", False)),
            )
            for item in answer.body["results"]
        ]

    async def decide(self, envelope: Mapping[str, Any]) -> Answer:
        return await self.request("POST", "/v1/policy/decide", json_body=envelope)

    async def status(self, message_id: str) -> Mapping[str, Any]:
        return (await self.request("GET", f"/v1/messages/{message_id}")).body

    async def receipt(self, message_id: str, size: int | None = None) -> Mapping[str, Any]:
        """The audit receipt (``gateway.tlog.receipt``) of this organisation's part in a
        message, proved in the newest signed checkpoint or in the one of ``size``."""
        params = {"size": str(size)} if size is not None else None
        return (await self.request("GET", f"/v1/messages/{message_id}/receipt",
                                   params=params)).body

    async def checkpoint(self) -> str:
        """The newest signed checkpoint (C2SP signed note)."""
        return await self.text("/v1/audit/checkpoint")

    async def consistency_proof(self, old_size: int, new_size: int) -> Mapping[str, Any]:
        """RFC 9162 §2.1.4 proof between two signed checkpoint sizes."""
        return (await self.request("GET", "/v1/audit/proof/consistency", params={
            "from": str(old_size), "to": str(new_size)})).body

    async def inclusion_proof(self, index: int, size: int) -> Mapping[str, Any]:
        """RFC 9162 §2.1.3 proof of entry ``index`` in the signed checkpoint of ``size``."""
        return (await self.request("GET", "/v1/audit/proof/inclusion", params={
            "index": str(index), "size": str(size)})).body

    async def inbox(self, limit: int = 50) -> list[Mapping[str, Any]]:
        answer = await self.request("GET", "/v1/inbox", params={"limit": str(limit)})
        return list(answer.body["messages"])

    async def acknowledge(self, message_id: str) -> Mapping[str, Any]:
        return (await self.request("POST", f"/v1/inbox/{message_id}/ack")).body

    async def directory(self) -> list[Mapping[str, Any]]:
        return list((await self.request("GET", "/v1/directory")).body["organisations"])

    async def stream(self, last_event_id: int | None = None) -> AsyncIterator[Mapping[str, Any]]:
        """Yield inbox items as the gateway pushes them (server-sent events)."""
        headers = self._headers()
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        async with self._session.get(
            self._base + "/v1/inbox/stream",
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        ) as response:
            if response.status >= 400:
                raise GatewayProblem(response.status, json.loads(await response.text()))
            data: list[str] = []
            async for raw in response.content:
                line = raw.decode("utf-8").rstrip("\r\n")
                if line.startswith("data:"):
                    data.append(line[5:].lstrip())
                elif not line and data:
                    yield json.loads("\n".join(data))
                    data = []
