"""RFC 8785 JSON Canonicalization Scheme (JCS) for audit-log entries.

Implements §3.2: no whitespace; object members sorted by the UTF-16 code units of
their names (§3.2.3); strings escaped as ECMAScript ``JSON.stringify`` does
(§3.2.2.2: ``\\"``, ``\\\\``, ``\\b \\f \\n \\r \\t``, other controls as lowercase
``\\u00xx``, everything else literal); UTF-8 output (§3.2.4). Numbers (§3.2.2.3) are
restricted to what audit entries carry: integers within ±(2**53 - 1), and floats
only when integral and in that range (serialised like the integer, ``-0.0`` as ``0``).
Non-finite or fractional numbers, non-string keys and lone surrogates are refused.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from json.encoder import encode_basestring

from gateway.tlog.errors import CanonicalizationError

__all__ = ["MAX_SAFE_INTEGER", "CanonicalizationError", "canonical_text", "canonicalize"]

MAX_SAFE_INTEGER = 2**53 - 1

# The standard library's JSON string quoting (C-accelerated) escapes exactly as §3.2.2.2
# asks: ``\"``, ``\\``, ``\b \f \n \r \t``, other controls as lowercase ``\u00xx``, all
# else literal. Lone surrogates, which it would pass through, are refused before it.
_quote = encode_basestring
_SURROGATE = re.compile("[\ud800-\udfff]")


def _string(value: str) -> str:
    """RFC 8785 §3.2.2.2 string serialisation."""
    # A regex scan, not a Python loop over characters: every audit append runs this.
    if not value.isascii() and _SURROGATE.search(value):
        raise CanonicalizationError(f"lone surrogate in string {value!r}")
    return _quote(value)


def _integer(value: int) -> str:
    if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        raise CanonicalizationError(f"integer {value} is outside ±(2**53 - 1)")
    return str(value)


def _float(value: float) -> str:
    if not math.isfinite(value):
        raise CanonicalizationError(f"non-finite number {value!r}")
    if not value.is_integer():
        raise CanonicalizationError(f"non-integral number {value!r}: entries carry none")
    return _integer(int(value))


def _utf16(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def _member_order(value: Mapping[object, object]) -> list[str]:
    names: list[str] = []
    for key in value:
        if not isinstance(key, str):
            raise CanonicalizationError(f"non-string object key {key!r}")
        names.append(key)
    # For ASCII names UTF-16 code-unit order is plain string order, which is cheaper.
    if all(name.isascii() for name in names):
        return sorted(names)
    return sorted(names, key=_utf16)


def _serialize(value: object, out: list[str]) -> None:
    # Exact type checks first: audit entries are plain dicts, lists and strings, and this
    # runs on every append (bool before int, since bool is an int).
    kind = type(value)
    if kind is str:
        out.append(_string(value))  # type: ignore[arg-type]
    elif kind is dict:
        _object(value, out)  # type: ignore[arg-type]
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, int):
        out.append(_integer(value))
    elif isinstance(value, float):
        out.append(_float(value))
    elif isinstance(value, Mapping):
        _object(value, out)
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _serialize(item, out)
        out.append("]")
    else:
        raise CanonicalizationError(f"unsupported type {type(value).__name__}")


def _object(value: Mapping[object, object], out: list[str]) -> None:
    out.append("{")
    for i, key in enumerate(_member_order(value)):
        if i:
            out.append(",")
        out.append(_string(key))
        out.append(":")
        _serialize(value[key], out)
    out.append("}")


def canonical_text(value: object) -> str:
    """RFC 8785 canonical JSON text of ``value`` (dict/list/tuple/str/int/bool/None)."""
    out: list[str] = []
    _serialize(value, out)
    return "".join(out)


def canonicalize(value: object) -> bytes:
    """RFC 8785 canonical JSON of ``value`` as UTF-8 bytes (§3.2.4), ready to log."""
    return canonical_text(value).encode("utf-8")
