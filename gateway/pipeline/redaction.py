"""Removing fields a recipient may not see, by RFC 6901 pointer. No I/O."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def redact(document: Mapping[str, Any], pointers: Iterable[str]) -> dict[str, Any]:
    """A deep copy of ``document`` without the members the pointers name.

    Pointers to members that are absent are ignored: a redaction can only remove. With
    nothing to remove the copy is shallow: deep-copying every unredacted payload was the
    largest single cost of a bulk import, and payloads are only ever serialised.
    """
    pointers = list(pointers)
    if not pointers:
        return dict(document)
    result: dict[str, Any] = copy.deepcopy(dict(document))
    for ptr in pointers:
        tokens = [_unescape(t) for t in ptr.split("/")[1:]]
        if not tokens:
            continue
        parent: Any = result
        for token in tokens[:-1]:
            parent = _child(parent, token)
            if parent is None:
                break
        else:
            last = tokens[-1]
            if isinstance(parent, dict):
                parent.pop(last, None)
            elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
                del parent[int(last)]
    return result


def _child(node: Any, token: str) -> Any:
    if isinstance(node, dict):
        return node.get(token)
    if isinstance(node, list) and token.isdigit() and int(token) < len(node):
        return node[int(token)]
    return None
