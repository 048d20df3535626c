"""Canonical msgpack codec.

Every hashed or signed object has exactly one encoding: msgpack of plain values only (int,
bytes, str, bool, None, list, and maps with str keys in sorted order), integers in their
smallest form, no floats, no extension types. ``decode`` accepts only bytes that re-encode to
themselves, so two different byte strings never decode to the same value.
"""

from __future__ import annotations

from typing import Any

import msgpack
import msgpack.exceptions

from ledger.errors import DecodeError, EncodeError

MAX_ENCODED_BYTES = 8 * 1024 * 1024  # largest canonical object accepted by decode
MAX_DEPTH = 32  # most lists and maps nested inside one another
MAX_INT = 2**64 - 1
MIN_INT = -(2**63)

Plain = None | bool | int | bytes | str | list | dict


# Exact types that encode as they are. Everything else (subclasses included) goes through the
# general rules in ``_normalize_any``; the fast path below only saves calls on the hot path.
_AS_IS = frozenset((str, bytes, bool, type(None)))


def _normalize(value: Any, depth: int) -> Any:
    """Return ``value`` with maps rebuilt in sorted key order; reject what has no encoding.

    ``depth`` counts the lists and maps around ``value``; at most ``MAX_DEPTH`` may nest.
    """
    kind = type(value)
    if kind in _AS_IS:
        return value
    if kind is int and MIN_INT <= value <= MAX_INT:
        return value
    if depth < MAX_DEPTH:
        if kind is dict:
            for key in value:
                if type(key) is not str:
                    return _normalize_any(value, depth)
            normalized = {}
            for key in sorted(value):
                item = value[key]
                item_kind = type(item)
                if item_kind in _AS_IS or (item_kind is int and MIN_INT <= item <= MAX_INT):
                    normalized[key] = item
                else:
                    normalized[key] = _normalize(item, depth + 1)
            return normalized
        if kind is list or kind is tuple:
            return [item if type(item) in _AS_IS else _normalize(item, depth + 1)
                    for item in value]
    return _normalize_any(value, depth)


def _normalize_any(value: Any, depth: int) -> Any:
    """The general rules, for every type (``_normalize`` handles the common ones first)."""
    if value is None or isinstance(value, (bool, str, bytes)):
        return value
    if isinstance(value, int):
        if not MIN_INT <= value <= MAX_INT:
            raise EncodeError("int_out_of_range", f"integer {value} out of range")
        return value
    if isinstance(value, (list, tuple, dict)) and depth >= MAX_DEPTH:
        raise EncodeError("too_deep", f"nesting deeper than {MAX_DEPTH}")
    if isinstance(value, (list, tuple)):
        return [_normalize(item, depth + 1) for item in value]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise EncodeError("non_str_key", f"map key {key!r} is not a str")
        return {key: _normalize(value[key], depth + 1) for key in sorted(value)}
    if isinstance(value, float):
        raise EncodeError("float", "floats have no canonical encoding")
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise EncodeError("unsupported_type", f"cannot encode {type(value).__name__}")


MAX_DECIMAL_DIGITS = 19  # fits a u64


def parse_decimal(text: str, max_digits: int = MAX_DECIMAL_DIGITS) -> int | None:
    """A non-negative integer written in ASCII digits (no sign, space, underscore, newline
    or leading zero), else None. ``str.isdigit`` and ``int`` also accept other scripts'
    digits ("\u0661" is 1) and surrounding whitespace: text from outside goes through here."""
    if not 0 < len(text) <= max_digits or not text.isascii() or not text.isdigit():
        return None
    if text[0] == "0" and len(text) > 1:
        return None
    return int(text)


def encode(value: Any) -> bytes:
    """The canonical encoding of a plain value."""
    normalized = _normalize(value, 0)
    try:
        return msgpack.packb(normalized, use_bin_type=True, strict_types=False)
    except UnicodeEncodeError:
        # A str holding lone surrogates has no UTF-8 form, hence no encoding.
        raise EncodeError("bad_str", "string is not valid Unicode text") from None


def _no_ext(code: int, data: bytes) -> Any:
    raise DecodeError("ext_type", f"extension type {code} not allowed")


_SCALAR_TYPES = (type(None), bool, int, str, bytes)


def _check_plain(value: Any, depth: int) -> bool:
    """Reject decoded values that are not plain (floats, msgpack's built-in timestamp ext).

    Returns whether every map already has str keys in sorted order, in which case the value
    re-encodes without being normalized first (see ``decode``).
    """
    kind = type(value)
    if kind in _SCALAR_TYPES:
        return True
    if kind is float:
        raise DecodeError("float", "floats are not allowed")
    if kind is not list and kind is not dict:
        # msgpack turns ext type -1 into a Timestamp without calling ext_hook.
        raise DecodeError("ext_type", f"{kind.__name__} values are not allowed")
    if depth >= MAX_DEPTH:
        raise DecodeError("too_deep", f"nesting deeper than {MAX_DEPTH}")
    ordered = True
    if kind is dict:
        previous = None
        for key in value:
            if type(key) is not str or (previous is not None and not previous < key):
                ordered = False
                break
            previous = key
    for item in value if kind is list else value.values():
        if type(item) not in _SCALAR_TYPES and not _check_plain(item, depth + 1):
            ordered = False
    return ordered


def decode(data: bytes, max_bytes: int = MAX_ENCODED_BYTES) -> Any:
    """Decode canonical bytes; raise ``DecodeError`` on anything else."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError("not_bytes", "input is not bytes")
    data = bytes(data)
    if len(data) > max_bytes:
        raise DecodeError("oversize", f"{len(data)} bytes exceeds the limit of {max_bytes}")
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            ext_hook=_no_ext,
        )
    except DecodeError:
        raise
    except msgpack.exceptions.ExtraData:
        raise DecodeError("trailing_bytes", "bytes follow the encoded value") from None
    except msgpack.exceptions.StackError:
        # Nesting far past MAX_DEPTH overflows msgpack's own parse stack before we look.
        raise DecodeError("too_deep", f"nesting deeper than {MAX_DEPTH}") from None
    except Exception as exc:  # msgpack raises many types for malformed input
        raise DecodeError("malformed", f"not msgpack: {type(exc).__name__}") from None
    if _check_plain(value, 0):
        # Plain, with every map in sorted str-key order: encode would only copy it.
        canonical = msgpack.packb(value, use_bin_type=True, strict_types=False)
    else:
        try:
            canonical = encode(value)
        except EncodeError as exc:
            raise DecodeError(exc.code, exc.message) from None
    if canonical != data:
        raise DecodeError("non_canonical", "input is not the canonical encoding of its value")
    return value
