"""The replica's write-ahead log records: keys and values.

Records (keys are bytes, ascending order is the restore order):

    b"stable"                              the stable checkpoint proof
    b"view"                                {view, changing, consecutive, floor}: never lost
    b"vote/" + u64(height) + u64(view) + phase   one of this replica's own signed messages
    b"cert/" + u64(height)                 the best prepared certificate held, with its block
    b"vc/" + u64(view)                     this replica's VIEW-CHANGE for that view
    b"nv/" + u64(view)                     this replica's NEW-VIEW (as that view's primary)

A vote record is written before the vote is sent, so after a crash the replica re-sends the
same bytes instead of signing something different for the same (view, height, phase).
Records at or below the stable checkpoint, and view records of earlier views, are deleted.
"""

from __future__ import annotations

import struct

from ledger import codec

_U64 = struct.Struct(">Q")

STABLE_KEY = b"stable"
VIEW_KEY = b"view"
VOTE_PREFIX = b"vote/"
CERT_PREFIX = b"cert/"
VIEW_CHANGE_PREFIX = b"vc/"
NEW_VIEW_PREFIX = b"nv/"

PHASE_PREPREPARE = 1
PHASE_PREPARE = 2
PHASE_COMMIT = 3


def vote_key(height: int, view: int, phase: int) -> bytes:
    return VOTE_PREFIX + _U64.pack(height) + _U64.pack(view) + bytes([phase])


def parse_vote_key(key: bytes) -> tuple[int, int, int]:
    body = key[len(VOTE_PREFIX):]
    if len(body) != 17:
        raise AssertionError(f"corrupt WAL vote key {key!r}")
    return _U64.unpack(body[:8])[0], _U64.unpack(body[8:16])[0], body[16]


def cert_key(height: int) -> bytes:
    return CERT_PREFIX + _U64.pack(height)


def view_change_key(view: int) -> bytes:
    return VIEW_CHANGE_PREFIX + _U64.pack(view)


def new_view_key(view: int) -> bytes:
    return NEW_VIEW_PREFIX + _U64.pack(view)


def parse_u64_suffix(key: bytes, prefix: bytes) -> int:
    body = key[len(prefix):]
    if len(body) != 8:
        raise AssertionError(f"corrupt WAL key {key!r}")
    return _U64.unpack(body)[0]


def encode_view(view: int, changing: bool, consecutive: int, floor: int) -> bytes:
    return codec.encode({"changing": changing, "consecutive": consecutive, "floor": floor,
                         "view": view})


def decode_view(data: bytes) -> tuple[int, bool, int, int]:
    plain = codec.decode(data)
    return plain["view"], plain["changing"], plain["consecutive"], plain["floor"]
