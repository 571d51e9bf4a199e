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

from gateway.tlog.errors import CanonicalizationError

__all__ = ["MAX_SAFE_INTEGER", "CanonicalizationError", "canonical_text", "canonicalize"]

MAX_SAFE_INTEGER = 2**53 - 1

_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
_ESCAPES = {chr(c): f"\\u{c:04x}" for c in range(0x20)} | _SHORT_ESCAPES
_TRANSLATION = str.maketrans(_ESCAPES)
_SURROGATE = re.compile("[\ud800-\udfff]")


def _string(value: str, where: str) -> str:
    """RFC 8785 §3.2.2.2 string serialisation."""
    # A regex scan, not a Python loop over characters: every audit append runs this.
    if not value.isascii() and _SURROGATE.search(value):
        raise CanonicalizationError(f"lone surrogate in string at {where}")
    return '"' + value.translate(_TRANSLATION) + '"'


def _integer(value: int, where: str) -> str:
    if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        raise CanonicalizationError(f"integer {value} at {where} is outside ±(2**53 - 1)")
    return str(value)


def _float(value: float, where: str) -> str:
    if not math.isfinite(value):
        raise CanonicalizationError(f"non-finite number {value!r} at {where}")
    if not value.is_integer():
        raise CanonicalizationError(f"non-integral number {value!r} at {where}: entries carry none")
    return _integer(int(value), where)


def _serialize(value: object, where: str, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_string(value, where))
    elif isinstance(value, int):
        out.append(_integer(value, where))
    elif isinstance(value, float):
        out.append(_float(value, where))
    elif isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise CanonicalizationError(f"non-string object key {key!r} at {where}")
        out.append("{")
        for i, key in enumerate(
            sorted(value, key=lambda k: k.encode("utf-16-be", "surrogatepass"))
        ):
            if i:
                out.append(",")
            out.append(_string(key, where))
            out.append(":")
            _serialize(value[key], f"{where}.{key}", out)
        out.append("}")
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _serialize(item, f"{where}[{i}]", out)
        out.append("]")
    else:
        raise CanonicalizationError(f"unsupported type {type(value).__name__} at {where}")


def canonical_text(value: object) -> str:
    """RFC 8785 canonical JSON text of ``value`` (dict/list/tuple/str/int/bool/None)."""
    out: list[str] = []
    _serialize(value, "$", out)
    return "".join(out)


def canonicalize(value: object) -> bytes:
    """RFC 8785 canonical JSON of ``value`` as UTF-8 bytes (§3.2.4), ready to log."""
    return canonical_text(value).encode("utf-8")
