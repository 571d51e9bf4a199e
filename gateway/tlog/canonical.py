"""RFC 8785 JSON Canonicalization Scheme (JCS) for audit-log entries.

Implements §3.2: no whitespace; object members sorted by the UTF-16 code units of
their names (§3.2.3); strings escaped as ECMAScript ``JSON.stringify`` does
(§3.2.2.2: ``\\"``, ``\\\\``, ``\\b \\f \\n \\r \\t``, other controls as lowercase
``\\u00xx``, everything else literal); UTF-8 output (§3.2.4). Numbers (§3.2.2.3) are
restricted to what audit entries carry: integers within ±(2**53 - 1), and floats
only when integral and in that range (serialised like the integer, ``-0.0`` as ``0``).
Non-finite or fractional numbers, non-string keys and lone surrogates are refused.

Two ways to the same text. :func:`canonical_text_exact` serialises member by member in
Python and is the reference. :func:`canonical_text` and :func:`canonicalize` first ask
:func:`stdlib_is_canonical`, in one pass over the value, whether the standard library's
encoder (C-accelerated) with ``ensure_ascii=False, sort_keys=True,
separators=(",", ":"), allow_nan=False`` writes exactly the RFC 8785 text; if so they use
it (an audit entry in about 0.6 of the time, bench/canonical_json.py), else the
reference. It does when the value is made only of ``dict`` whose names are ``str`` with
no character above U+FFFF, ``list``, ``tuple``, ``str``, ``int`` within ±(2**53 - 1),
``True``, ``False`` and ``None`` (exact types, ``type(x) is ...``), because then:

* §3.2.1, whitespace: with those separators and no indent the encoder emits none.
* §3.2.2.1, literals: the encoder writes ``null``, ``true``, ``false``.
* §3.2.2.2, strings: the encoder quotes names and values with ``encode_basestring``
  (``ensure_ascii=False``), the function the reference quotes with (``_quote`` below, whose
  escaping is §3.2.2.2's), so the two escape alike by construction. A surrogate, which
  I-JSON (RFC 7493 §2.1, required by §3.1) excludes and the reference refuses, the
  encoder copies through; everything it adds is ASCII, so its text holds a surrogate
  exactly when the value does: ``canonical_text`` looks for one in the text and
  ``canonicalize`` fails to encode it as UTF-8, and either then hands the value to the
  reference, which refuses it as before, with the same error.
* §3.2.2.3, numbers: an integer of magnitude within 2**53 - 1 is an exact IEEE 754
  double, and ECMAScript's Number::toString writes an integral double below 10**21 as
  its plain decimal digits, which is ``int.__repr__``, the encoder's. Floats, which
  Python writes otherwise (``3.0``, ``1e+16``), are left to the reference, as are
  integers outside the range (which it refuses).
* §3.2.3, sorting: ``sort_keys`` sorts an object's members (recursively, object by object)
  by name in code-point order, the names being distinct; JCS sorts by UTF-16 code units.
  A name with no character above U+FFFF (nor any surrogate, refused anyway) is its own
  UTF-16 code-unit sequence, so the two orders agree (a prefix sorts first in both). A
  name with a supplementary character sends the value to the reference: its leading
  surrogate (D800-DBFF) sorts below U+E000..U+FFFF in UTF-16 though its code point is
  above them.
* §3.2.4, UTF-8: both encode the same text with ``str.encode("utf-8")``.

Exact types, because the encoder and the reference part over subclasses and other
containers (a ``float`` subclass, a ``dict`` subclass's own ``items``, a ``Mapping`` that
is not a ``dict``, an ``int`` subclass's ``__str__``): those go to the reference, which
serialises or refuses them as it always has. tests/tlog/test_canonical_differential.py
compares both paths with each other and with the ``rfc8785`` package over generated
values, and checks that an audit entry takes the fast path.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from json import JSONEncoder
from json.encoder import encode_basestring

from gateway.tlog.errors import CanonicalizationError

__all__ = [
    "MAX_SAFE_INTEGER",
    "CanonicalizationError",
    "canonical_text",
    "canonical_text_exact",
    "canonicalize",
    "stdlib_is_canonical",
]

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


def canonical_text_exact(value: object) -> str:
    """RFC 8785 canonical JSON text of ``value``, member by member: the reference, and
    what :func:`canonical_text` falls back to."""
    out: list[str] = []
    _serialize(value, out)
    return "".join(out)


# A name holding a character above U+FFFF may sort differently by UTF-16 code unit (§3.2.3).
_SUPPLEMENTARY = re.compile("[\U00010000-\U0010ffff]")
_SAFE = MAX_SAFE_INTEGER
# The standard library's encoder with the settings under which, for the values
# stdlib_is_canonical accepts, its text is RFC 8785's (module docstring). No circular
# check: the check's own recursion meets a cycle first.
_stdlib_text = JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False,
    check_circular=False,
).encode


def stdlib_is_canonical(value: object) -> bool:
    """Whether the standard library's encoder writes ``value`` exactly as RFC 8785 does
    (module docstring): exact ``dict`` (``str`` names, none above U+FFFF), ``list``,
    ``tuple``, ``str``, ``int`` within ±(2**53 - 1), ``bool`` and ``None`` only.

    Lone surrogates are not looked for here: :func:`canonical_text` and
    :func:`canonicalize` catch them in the encoder's text. One pass, scalars checked in
    the loop rather than by a call each, so it costs a fraction of the reference."""
    kind = type(value)
    if kind is dict:
        for key, item in value.items():  # type: ignore[attr-defined]
            if type(key) is not str or (not key.isascii() and _SUPPLEMENTARY.search(key)):
                return False
            kind = type(item)
            if kind is str or kind is bool or item is None:
                continue
            if kind is int:
                if -_SAFE <= item <= _SAFE:
                    continue
                return False
            if not stdlib_is_canonical(item):
                return False
        return True
    if kind is list or kind is tuple:
        for item in value:  # type: ignore[attr-defined]
            kind = type(item)
            if kind is str or kind is bool or item is None:
                continue
            if kind is int:
                if -_SAFE <= item <= _SAFE:
                    continue
                return False
            if not stdlib_is_canonical(item):
                return False
        return True
    if kind is str or kind is bool or value is None:
        return True
    return kind is int and -_SAFE <= value <= _SAFE  # type: ignore[operator]


def canonical_text(value: object) -> str:
    """RFC 8785 canonical JSON text of ``value`` (dict/list/tuple/str/int/bool/None)."""
    if stdlib_is_canonical(value):
        text = _stdlib_text(value)
        # A surrogate in the text came from the value: the reference refuses it.
        if text.isascii() or not _SURROGATE.search(text):
            return text
    return canonical_text_exact(value)


def canonicalize(value: object) -> bytes:
    """RFC 8785 canonical JSON of ``value`` as UTF-8 bytes (§3.2.4), ready to log."""
    if stdlib_is_canonical(value):
        try:
            return _stdlib_text(value).encode("utf-8")
        except UnicodeEncodeError:
            pass  # a surrogate from the value: the reference refuses it, naming the string
    return canonical_text_exact(value).encode("utf-8")
