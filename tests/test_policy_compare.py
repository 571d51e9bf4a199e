"""What an IG lead's draft costs is paid once: comparing two policies over every situation
is remembered per pair of versions, and reading a policy text per text (a bad text is read,
and refused, every time)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.domain.errors import InvalidPolicy
from gateway.http import policy_actions
from gateway.http.services import SERVICES
from gateway.pipeline.policy.diff import Change, diff
from gateway.pipeline.policy.document import load_text
from gateway.pipeline.validation import SchemaSet
from gateway.services import policy as policy_service
from tests.conftest import ROOT

DEFAULT = (ROOT / "policies" / "dip-default.yaml").read_text(encoding="utf-8")


async def test_a_comparison_is_computed_once_per_pair_of_versions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    computed: list[tuple[str, str]] = []

    def counting_diff(before: Any, after: Any, cases: Any) -> list[Change]:
        computed.append((before.version, after.version))
        return diff(before, after, cases)

    monkeypatch.setattr(policy_actions, "diff", counting_diff)
    monkeypatch.setattr(policy_actions, "_COMPARED", type(policy_actions._COMPARED)())
    services: Any = SimpleNamespace(schemas=SchemaSet.load(ROOT / "schemas"))
    before = load_text(DEFAULT)
    ra1 = ("      type: ra1_notice\n      route: enforcement\n"
           "      sender: police\n      recipient: cjit\n")
    assert ra1 in DEFAULT
    after = load_text(DEFAULT.replace(ra1, ra1.replace("recipient: cjit",
                                                       "recipient: [cjit, probation]")))
    assert before.version != after.version
    first = await policy_actions.compare(services, before, after)
    again = await policy_actions.compare(services, before, after)
    assert first == again and first, "RA1s to probation are a change"
    assert computed == [(before.version, after.version)]
    await policy_actions.compare(services, after, before)
    assert len(computed) == 2


async def test_a_policy_text_is_read_once_and_a_bad_one_every_time(
    client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch,
) -> None:
    read: list[str] = []

    def counting_load(text: str) -> Any:
        read.append(text)
        return load_text(text)

    monkeypatch.setattr(policy_service, "load_text", counting_load)
    policies = client.app[SERVICES].policy
    draft = DEFAULT + "\n# An IG lead's draft.\n"
    first = policies.parse(draft)
    assert policies.parse(draft) is first
    assert len(read) == 1
    for _ in range(2):
        with pytest.raises(InvalidPolicy):
            policies.parse("rules: [")
    assert len(read) == 3
