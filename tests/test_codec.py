"""ledger.codec: one encoding per plain value, and nothing else decodes.

Round trips over generated values; hand-written non-canonical msgpack for every form that has
a shorter or differently ordered equivalent; floats, extension types, oversize and over-deep
input; and random or mutated bytes, which may only ever raise DecodeError.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import codec
from ledger.errors import DecodeError, EncodeError

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(codec.MIN_INT, codec.MAX_INT),
    st.binary(max_size=300),
    st.text(max_size=300),  # hypothesis leaves out lone surrogates, which have no UTF-8
)
plain_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=20),
        st.dictionaries(st.text(max_size=20), children, max_size=20),
    ),
    max_leaves=60,
)


def same(a, b) -> bool:
    """Equal with equal types all the way down (True == 1 in Python, but not here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[key], b[key]) for key in a)
    return a == b


def sorted_deep(value):
    if isinstance(value, dict):
        return {key: sorted_deep(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [sorted_deep(item) for item in value]
    return value


def decode_error(data: bytes, **kwargs) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        codec.decode(data, **kwargs)
    return info.value


# --- round trips ------------------------------------------------------------------------

@given(plain_values)
def test_round_trip(value):
    encoded = codec.encode(value)
    decoded = codec.decode(encoded)
    assert same(decoded, sorted_deep(value))
    assert codec.encode(decoded) == encoded


@given(st.dictionaries(st.text(max_size=8), scalars, min_size=2, max_size=12))
def test_map_order_does_not_change_the_encoding(mapping):
    reversed_mapping = dict(reversed(list(mapping.items())))
    assert codec.encode(reversed_mapping) == codec.encode(mapping)
    assert list(codec.decode(codec.encode(mapping))) == sorted(mapping)


def test_tuples_and_byte_views_encode_as_lists_and_bytes():
    assert codec.encode((1, 2)) == codec.encode([1, 2])
    assert codec.encode(bytearray(b"ab")) == codec.encode(b"ab")
    assert codec.encode(memoryview(b"ab")) == codec.encode(b"ab")
    assert codec.decode(bytearray(codec.encode([1]))) == [1]


@pytest.mark.parametrize("value, encoded", [
    (None, "c0"), (False, "c2"), (True, "c3"),
    (0, "00"), (127, "7f"), (128, "cc80"), (255, "ccff"), (256, "cd0100"),
    (65535, "cdffff"), (65536, "ce00010000"), (2**32 - 1, "ceffffffff"),
    (2**32, "cf0000000100000000"), (2**64 - 1, "cfffffffffffffffff"),
    (-1, "ff"), (-32, "e0"), (-33, "d0df"), (-128, "d080"), (-129, "d1ff7f"),
    (-(2**15), "d18000"), (-(2**15) - 1, "d2ffff7fff"), (-(2**31), "d280000000"),
    (-(2**31) - 1, "d3ffffffff7fffffff"), (-(2**63), "d38000000000000000"),
    ("", "a0"), ("a", "a161"), ("x" * 31, "bf" + "78" * 31), ("x" * 32, "d920" + "78" * 32),
    (b"", "c400"), (b"\x01", "c40101"), ([], "90"), ({}, "80"),
    ({"b": 1, "a": 2}, "82a16102a16201"),
])
def test_smallest_forms(value, encoded):
    assert codec.encode(value).hex() == encoded
    assert same(codec.decode(bytes.fromhex(encoded)), sorted_deep(value))


# --- non-canonical input ----------------------------------------------------------------

NON_CANONICAL = {
    "uint8 for a fixint": "cc01",
    "uint16 for a fixint": "cd0001",
    "uint16 for a uint8": "cd00ff",
    "uint32 for a uint16": "ce0000ffff",
    "uint64 for a fixint": "cf0000000000000005",
    "uint64 for a uint32": "cf00000000ffffffff",
    "int8 for a positive fixint": "d001",
    "int8 for a negative fixint": "d0ff",
    "int16 for an int8": "d1ff80",
    "int16 for a positive uint8": "d100c8",
    "int32 for an int16": "d2ffff8000",
    "int64 for an int32": "d3ffffffff80000000",
    "int64 for a positive uint64": "d34000000000000000",
    "str8 where fixstr fits": "d903616263",
    "str16 where fixstr fits": "da0003616263",
    "str32 where fixstr fits": "db00000003616263",
    "str16 where str8 fits": "da0020" + "78" * 32,
    "bin16 where bin8 fits": "c50003010203",
    "bin32 where bin8 fits": "c600000003010203",
    "array16 with one entry": "dc000101",
    "array32 with one entry": "dd0000000101",
    "map16 with one entry": "de0001a16101",
    "map32 with one entry": "df00000001a16101",
    "unsorted map keys": "82a16201a16102",
    "unsorted nested map keys": "91 82a16201a16102",
    "duplicate map keys": "82a16101a16102",
    "duplicate keys, the same value": "82a16101a16101",
}


@pytest.mark.parametrize("hex_data", list(NON_CANONICAL.values()), ids=list(NON_CANONICAL))
def test_non_canonical_encodings_rejected(hex_data):
    data = bytes.fromhex(hex_data.replace(" ", ""))
    assert decode_error(data).code == "non_canonical"


def test_trailing_bytes_rejected():
    assert decode_error(b"\x01\x01").code == "trailing_bytes"
    assert decode_error(codec.encode({"a": [1, 2]}) + b"\x00").code == "trailing_bytes"
    assert decode_error(b"\x01\x91").code == "trailing_bytes"


@pytest.mark.parametrize("hex_data", ["", "91", "a3616263"[:-2], "c40301", "dc00", "82a16101",
                                      "c1", "a2ff61", "a3eda080"])
def test_truncated_or_invalid_msgpack_rejected(hex_data):
    # including the never-used byte 0xc1 and strings that are not UTF-8 (a lone surrogate)
    assert decode_error(bytes.fromhex(hex_data)).code == "malformed"


def test_map_keys_must_be_str():
    assert decode_error(bytes.fromhex("81c4016101")).code == "non_str_key"  # bin key
    assert decode_error(bytes.fromhex("810101")).code == "malformed"        # int key
    assert decode_error(bytes.fromhex("81c0 01".replace(" ", ""))).code == "malformed"
    with pytest.raises(EncodeError) as info:
        codec.encode({1: 2})
    assert info.value.code == "non_str_key"
    with pytest.raises(EncodeError):
        codec.encode({b"a": 1})


# --- floats and extension types ---------------------------------------------------------

@pytest.mark.parametrize("value", [1.5, 0.0, float("nan"), [1, 2.0], {"a": {"b": -0.0}}])
def test_floats_rejected_on_encode(value):
    with pytest.raises(EncodeError) as info:
        codec.encode(value)
    assert info.value.code == "float"


@pytest.mark.parametrize("hex_data", [
    "ca3fc00000",              # float32 1.5
    "cb3ff8000000000000",      # float64 1.5
    "cb0000000000000000",      # float64 0.0
    "92 01 ca3fc00000",        # inside a list
    "81 a161 cb3ff8000000000000",  # inside a map
])
def test_floats_rejected_on_decode(hex_data):
    assert decode_error(bytes.fromhex(hex_data.replace(" ", ""))).code == "float"


def test_float_map_key_rejected():
    assert decode_error(bytes.fromhex("81ca3fc0000001")).code == "malformed"


@pytest.mark.parametrize("hex_data", [
    "d40500",                  # fixext1, type 5
    "d50500ff",                # fixext2
    "c7010500",                # ext8
    "c800010500",              # ext16
    "d6ff00000001",            # the timestamp extension (type -1), which msgpack builds itself
    "d7ff0000000000000001",    # timestamp64
    "91 d40500",               # inside a list
])
def test_extension_types_rejected(hex_data):
    assert decode_error(bytes.fromhex(hex_data.replace(" ", ""))).code == "ext_type"


@pytest.mark.parametrize("value, code", [
    (object(), "unsupported_type"),
    ({1, 2}, "unsupported_type"),
    (2**64, "int_out_of_range"),
    (-(2**63) - 1, "int_out_of_range"),
    ("\ud800", "bad_str"),
    ({"\udc00": 1}, "bad_str"),
])
def test_values_without_an_encoding(value, code):
    with pytest.raises(EncodeError) as info:
        codec.encode(value)
    assert info.value.code == code


# --- limits -----------------------------------------------------------------------------

def nested_lists(depth: int):
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def nested_maps(depth: int):
    value: dict = {}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


@pytest.mark.parametrize("make", [nested_lists, nested_maps])
def test_nesting_limit_is_exact(make):
    deepest = make(codec.MAX_DEPTH)
    assert codec.decode(codec.encode(deepest)) == deepest
    too_deep = make(codec.MAX_DEPTH + 1)
    with pytest.raises(EncodeError) as info:
        codec.encode(too_deep)
    assert info.value.code == "too_deep"
    header = b"\x91" if make is nested_lists else b"\x81\xa1k"
    empty = b"\x90" if make is nested_lists else b"\x80"
    assert codec.decode(header * (codec.MAX_DEPTH - 1) + empty) == deepest
    assert decode_error(header * codec.MAX_DEPTH + empty).code == "too_deep"


def test_scalar_at_the_deepest_level_is_allowed():
    value = [1]
    for _ in range(codec.MAX_DEPTH - 1):
        value = [value]
    assert codec.decode(codec.encode(value)) == value


@pytest.mark.parametrize("depth", [100, 1000, 5000, 100_000])
def test_very_deep_input_rejected(depth):
    # past msgpack's own parse stack as well as ours
    assert decode_error(b"\x91" * depth + b"\x01").code == "too_deep"


def test_oversize_rejected():
    big = codec.encode(b"\x00" * 100)
    assert codec.decode(big, max_bytes=len(big)) == b"\x00" * 100
    assert decode_error(big, max_bytes=len(big) - 1).code == "oversize"
    assert decode_error(b"\xc0" * (codec.MAX_ENCODED_BYTES + 1)).code == "oversize"


def test_length_headers_larger_than_the_input_rejected():
    # A 4-billion-entry array header must not make the decoder allocate for it.
    assert decode_error(bytes.fromhex("ddffffffff01")).code == "malformed"
    assert decode_error(bytes.fromhex("c6ffffffff")).code == "malformed"


@pytest.mark.parametrize("value", ["text", 5, None, [b"\x00"]])
def test_non_bytes_input_rejected(value):
    assert decode_error(value).code == "not_bytes"


# --- garbage ----------------------------------------------------------------------------

def decode_or_decode_error(data: bytes) -> None:
    """Either DecodeError, or a value whose canonical encoding is exactly ``data``."""
    try:
        value = codec.decode(data)
    except DecodeError as exc:
        assert exc.code
        return
    assert codec.encode(value) == data


@given(st.binary(max_size=200))
def test_random_bytes_only_raise_decode_error(data):
    decode_or_decode_error(data)


@given(plain_values, st.data())
def test_mutated_encodings_only_raise_decode_error(value, data):
    encoded = bytearray(codec.encode(value))
    for _ in range(data.draw(st.integers(1, 3))):
        action = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        position = data.draw(st.integers(0, len(encoded)))
        if action == "insert":
            encoded.insert(position, data.draw(st.integers(0, 255)))
        elif encoded and position < len(encoded):
            if action == "flip":
                encoded[position] ^= 1 << data.draw(st.integers(0, 7))
            else:
                del encoded[position]
    decode_or_decode_error(bytes(encoded))


@given(st.lists(st.sampled_from([b"\x91", b"\x92", b"\x81\xa1a", b"\xdc\x00\x02", b"\xc0",
                                 b"\xcb", b"\xd4\x01", b"\xa1", b"\xff", b"\xcf"]),
                max_size=60))
def test_structured_garbage_only_raises_decode_error(pieces):
    decode_or_decode_error(b"".join(pieces))


def test_decimal_text_is_ascii_digits_only():
    from ledger.codec import parse_decimal

    assert parse_decimal("0") == 0 and parse_decimal("42") == 42
    for text in ("١", "٣", "１", "²", "1\n", " 1", "+1", "-1", "01", "", "1_000", "1e3"):
        assert parse_decimal(text) is None, text
    assert parse_decimal("9" * 19) == int("9" * 19) and parse_decimal("1" + "0" * 19) is None


def test_plan_queries_refuse_digits_of_other_scripts():
    """``/claims/١`` once read claim 1: ``str.isdigit`` and ``int`` take Arabic-Indic digits."""
    import pytest

    from contracts.queries import _int_arg
    from ledger.application import QueryError

    assert _int_arg("1") == 1
    for text in ("١", "1\n", "１"):
        with pytest.raises(QueryError):
            _int_arg(text)
