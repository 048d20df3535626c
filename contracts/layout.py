"""Where everything lives in the state: one short prefix per kind of entry.

Integers in keys are 8-byte big-endian so that byte order is numeric order. Two prefixes are
ordered indexes read by range: the time queue (``q/`` + due time + kind + id: "what is due"
is a range read from the start) and the arrears index (``a/`` + the cumulative share index at
which a member's deposits run out + member id: "who is in arrears" is a range read up to the
current index). The tree's own nodes live under ``~`` (see contracts.state).
"""

from __future__ import annotations

from enum import IntEnum

ID_BYTES = 16  # member ids: the first 16 bytes of SHA-256(public key)

PARAMS_KEY = b"g/params"
CHAIN_KEY = b"g/chain"
TOTALS_KEY = b"g/totals"
CLOCK_KEY = b"g/clock"

QUEUE_PREFIX = b"q/"
ARREARS_PREFIX = b"a/"
ORDERED_PREFIXES = (QUEUE_PREFIX, ARREARS_PREFIX)


def be64(value: int) -> bytes:
    return value.to_bytes(8, "big")


def role_key(role: str, public_key: bytes) -> bytes:
    return b"r/" + role.encode() + b"/" + public_key


def org_key(name: str) -> bytes:
    return b"o/" + name.encode()


def gov_key_key(public_key: bytes) -> bytes:
    """Reverse index: governance key -> org name."""
    return b"k/" + public_key


def nonce_key(sender: bytes) -> bytes:
    return b"n/" + sender


def member_key(member_id: bytes) -> bytes:
    return b"m/" + member_id


def identity_key(commitment: bytes) -> bytes:
    return b"i/" + commitment


def payment_key(reference_hash: bytes) -> bytes:
    return b"d/" + reference_hash


def arrears_key(runout_index_fen: int, member_id: bytes) -> bytes:
    return ARREARS_PREFIX + be64(runout_index_fen) + member_id


def juror_slot_key(slot: int) -> bytes:
    return b"j/" + be64(slot)


def claim_key(claim_id: int) -> bytes:
    return b"c/" + be64(claim_id)


def anchor_key(claim_id: int, number: int) -> bytes:
    return b"e/" + be64(claim_id) + number.to_bytes(4, "big")


def document_key(digest: bytes) -> bytes:
    """Index of anchored document digests: digest -> the first claim and height it backed."""
    return b"h/" + digest


def jury_key(claim_id: int) -> bytes:
    return b"y/" + be64(claim_id)


def seat_key(claim_id: int, round_number: int, member_id: bytes) -> bytes:
    return b"s/" + be64(claim_id) + bytes((round_number,)) + member_id


def settlement_key(period: int) -> bytes:
    return b"x/" + be64(period)


def proposal_key(proposal_id: int) -> bytes:
    return b"v/" + be64(proposal_id)


class Due(IntEnum):
    """Kinds of time-driven transitions. At equal due times the lower kind runs first: the
    settlement of a boundary before the payments it funds, both before anything else due at
    that instant (a claim final exactly at a boundary belongs to the next period; a member
    leaving exactly at a boundary still shares it)."""

    SETTLE = 1
    PAY = 2
    NOTICE_END = 16
    APPEAL_END = 17
    REVEAL_END = 18
    GRACE_END = 32
    AGE_OUT = 33
    PROPOSAL_EXPIRY = 48


def queue_key(due_ms: int, kind: Due, ident: bytes) -> bytes:
    return QUEUE_PREFIX + be64(due_ms) + bytes((kind,)) + ident


def parse_queue_key(key: bytes) -> tuple[int, Due, bytes]:
    body = key[len(QUEUE_PREFIX):]
    return int.from_bytes(body[:8], "big"), Due(body[8]), body[9:]


def queue_stop(now_ms: int) -> bytes:
    """End (exclusive) of the range of items due at or before ``now_ms``."""
    return QUEUE_PREFIX + be64(now_ms + 1)
