"""Redaction removes exactly what the pointers name, never anything else."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gateway.pipeline.redaction import redact
from gateway.pipeline.validation import pointer

keys = st.text(min_size=1, max_size=5)
documents = st.dictionaries(
    keys,
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5)),
        lambda children: st.dictionaries(keys, children, max_size=4),
        max_leaves=12,
    ),
    max_size=5,
)


def paths(node: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    if isinstance(node, dict):
        for key, child in node.items():
            found.append((*prefix, key))
            found += paths(child, (*prefix, key))
    return found


@given(documents, st.data())
def test_redacting_a_member_removes_it_and_keeps_the_rest(doc: dict[str, Any], data: Any) -> None:
    all_paths = paths(doc)
    if not all_paths:
        assert redact(doc, ["/missing"]) == doc
        return
    target = data.draw(st.sampled_from(all_paths))

    result = redact(doc, [pointer(target)])

    remaining = set(paths(result))
    assert target not in remaining
    kept = {p for p in all_paths if p[: len(target)] != target}
    assert remaining == kept


@given(documents)
def test_redaction_never_changes_its_input(doc: dict[str, Any]) -> None:
    before = repr(doc)
    redact(doc, [pointer(p) for p in paths(doc)])
    assert repr(doc) == before


def test_absent_and_array_members() -> None:
    doc = {"body": {"risks": ["a", "b"], "n": 1}}
    assert redact(doc, ["/body/risks/0", "/body/none/x", "/nothing"]) == {
        "body": {"risks": ["b"], "n": 1}
    }
