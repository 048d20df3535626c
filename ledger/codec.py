"""Canonical msgpack codec.

Every hashed or signed object has exactly one encoding: msgpack of plain values only (int,
bytes, str, bool, None, list, and maps with str keys in sorted order), integers in their
smallest form, no floats, no extension types. ``decode`` accepts only bytes that re-encode to
themselves, so two different byte strings never decode to the same value.
"""

from __future__ import annotations

from typing import Any

import msgpack

from ledger.errors import DecodeError, EncodeError

MAX_ENCODED_BYTES = 8 * 1024 * 1024  # largest canonical object accepted by decode
MAX_DEPTH = 32  # deepest nesting of lists and maps
MAX_INT = 2**64 - 1
MIN_INT = -(2**63)

Plain = None | bool | int | bytes | str | list | dict


def _normalize(value: Any, depth: int) -> Any:
    """Return ``value`` with maps rebuilt in sorted key order; reject what has no encoding."""
    if depth > MAX_DEPTH:
        raise EncodeError("too_deep", f"nesting deeper than {MAX_DEPTH}")
    if value is None or isinstance(value, (bool, str, bytes)):
        return value
    if isinstance(value, int):
        if not MIN_INT <= value <= MAX_INT:
            raise EncodeError("int_out_of_range", f"integer {value} out of range")
        return value
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


def encode(value: Any) -> bytes:
    """The canonical encoding of a plain value."""
    return msgpack.packb(_normalize(value, 0), use_bin_type=True, strict_types=False)


def _no_ext(code: int, data: bytes) -> Any:
    raise DecodeError("ext_type", f"extension type {code} not allowed")


def _check_plain(value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise DecodeError("too_deep", f"nesting deeper than {MAX_DEPTH}")
    if isinstance(value, float):
        raise DecodeError("float", "floats are not allowed")
    if isinstance(value, list):
        for item in value:
            _check_plain(item, depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            _check_plain(item, depth + 1)


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
    except Exception as exc:  # msgpack raises many types for malformed input
        raise DecodeError("malformed", f"not msgpack: {type(exc).__name__}") from None
    _check_plain(value, 0)
    try:
        canonical = encode(value)
    except EncodeError as exc:
        raise DecodeError(exc.code, exc.message) from None
    if canonical != data:
        raise DecodeError("non_canonical", "input is not the canonical encoding of its value")
    return value
