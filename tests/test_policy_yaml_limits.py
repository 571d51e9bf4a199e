"""Policy and cases YAML: duplicate keys, oversized files and alias bombs are refused,
each with its line, before any value is built; the shipped files still read as before."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.errors import InvalidPolicy
from gateway.pipeline.policy import document as policy_document
from gateway.pipeline.policy.cases import run_cases
from gateway.pipeline.policy.document import (
    MAX_EXPANDED_NODES,
    MAX_POLICY_BYTES,
    load_text,
    parse_text,
)
from tests.conftest import ROOT

POLICY = ROOT / "policies" / "dip-default.yaml"
CASES = ROOT / "policies" / "dip-default.cases.yaml"

# The classic "billion laughs": nine levels of nine aliases, 9**9 strings once expanded.
BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
)


def refused(text: str) -> list[tuple[str, str]]:
    with pytest.raises(InvalidPolicy) as raised:
        parse_text(text)
    return [(v.pointer, v.message) for v in raised.value.violations]


def test_the_bomb_is_a_few_hundred_bytes() -> None:
    assert len(BOMB.encode()) < 400
    assert "*h" in BOMB and BOMB.count("\n") == 9


def test_an_alias_bomb_is_refused_without_building_its_expansion(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Refused from the node graph: no Python value is constructed, and nothing walks
    an expanded structure (the check used to take seconds, which a test must not time)."""
    built: list[object] = []
    monkeypatch.setattr(
        yaml.SafeLoader, "construct_document", lambda self, node: built.append(node)
    )
    monkeypatch.setattr(
        policy_document, "check_structure",
        lambda *args, **kwargs: pytest.fail("walked a constructed document"),
    )
    [(where, message)] = refused(BOMB)
    assert built == []
    assert str(MAX_EXPANDED_NODES) in message
    assert re.search(r"at line \d", message)
    assert where.startswith("/")


def test_aliases_within_the_limit_are_expanded_as_yaml_says() -> None:
    text = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a]\nc: [*b, *b]\n"
    assert parse_text(text) == yaml.safe_load(text)
    assert parse_text(text)["c"][1][4] == ["x"] * 10


def test_the_shipped_policy_and_cases_read_as_before() -> None:
    """The cases file repeats its expectations by alias; it reads exactly as PyYAML would
    read it, and every case still passes."""
    for path in (POLICY, CASES):
        text = path.read_text(encoding="utf-8")
        assert "*" in text or path == POLICY
        assert parse_text(text) == yaml.safe_load(text)
    policy = load_text(POLICY.read_text(encoding="utf-8"))
    results = run_cases(policy, parse_text(CASES.read_text(encoding="utf-8")))
    assert results and all(r.passed for r in results)


def test_a_duplicate_key_is_refused_with_both_lines() -> None:
    text = "policy: first\nrules: []\npolicy: second\n"
    assert refused(text) == [(
        "/policy",
        "The key 'policy' at line 3 is already given at line 1: each key may appear once "
        "in a mapping.",
    )]


def test_every_duplicate_is_reported_at_once_with_its_pointer() -> None:
    text = (
        "policy: x\n"
        "rules:\n"
        "  - id: a\n"
        "    effect: permit\n"
        "    effect: forbid\n"
        "    when: {type: ra1_notice, type: court_outcome}\n"
    )
    found = refused(text)
    assert [where for where, _ in found] == ["/rules/0/effect", "/rules/0/when/type"]
    assert "line 5" in found[0][1] and "line 4" in found[0][1]
    assert "line 6" in found[1][1]


def test_keys_that_are_the_same_value_are_the_same_key() -> None:
    """YAML 1.1 reads 1 and 0x1 as the same integer: PyYAML kept only the last."""
    assert [where for where, _ in refused("facts:\n  1: a\n  0x1: b\n")] == ["/facts/1"]


def test_a_merge_may_still_be_overridden() -> None:
    """``<<`` merges are not duplicates: explicit keys override merged ones (YAML 1.1
    merge key type)."""
    text = "base: &b {effect: permit, reason: r}\nrule:\n  <<: *b\n  effect: forbid\n"
    assert parse_text(text)["rule"] == {"effect": "forbid", "reason": "r"}


keys = st.lists(st.sampled_from(["id", "effect", "reason", "when", "x-y", "1"]), max_size=8)


@given(keys)
def test_a_mapping_is_refused_exactly_when_a_key_repeats(names: list[str]) -> None:
    text = "".join(f"{json.dumps(name)}: {index}\n" for index, name in enumerate(names))
    if len(set(names)) == len(names):
        assert parse_text(text) == (dict(zip(names, range(len(names)), strict=True)) or None)
        return
    found = refused(text)
    repeated = [i for i, name in enumerate(names) if name in names[:i]]
    assert len(found) == len(repeated)
    for (where, message), index in zip(found_in_line_order(found), repeated, strict=True):
        assert where == "/" + names[index]
        assert f"at line {index + 1} is already given at line {names.index(names[index]) + 1}" \
            in message


def found_in_line_order(found: list[tuple[str, str]]) -> list[tuple[str, str]]:
    def line(item: tuple[str, str]) -> int:
        match = re.search(r"at line (\d+)", item[1])
        assert match is not None
        return int(match.group(1))

    return sorted(found, key=line)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_ordinary_documents_read_as_pyyaml_reads_them(value: Any) -> None:
    text = yaml.safe_dump(value)
    assert parse_text(text) == yaml.safe_load(text)


def test_a_file_over_the_size_limit_is_refused_saying_the_limit_and_line() -> None:
    line = "# " + "x" * 98 + "\n"
    text = "policy: x\n" + line * (MAX_POLICY_BYTES // len(line) + 1)
    [(where, message)] = refused(text)
    assert where == ""
    assert f"at most {MAX_POLICY_BYTES} bytes" in message
    # The first byte past the limit lies on this line (after the 10-byte first line).
    assert message.endswith(f"at line {(MAX_POLICY_BYTES - 10) // len(line) + 2}.")


def test_a_file_at_the_size_limit_is_read() -> None:
    text = "policy: x\n"
    text += "#" * (MAX_POLICY_BYTES - len(text) - 1) + "\n"
    assert len(text.encode()) == MAX_POLICY_BYTES
    assert parse_text(text) == {"policy": "x"}
