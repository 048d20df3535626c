"""Typed errors with reason codes.

Expected failures (a peer's or a client's bad input) are raised as one of these, each carrying
a short machine-readable ``code`` (``InvalidTransaction("nonce_gap")``). A broken local
invariant is an ``AssertionError`` and stops the node instead.
"""

from __future__ import annotations


class HuzhuError(Exception):
    """Base of every expected failure; ``code`` is a stable reason code."""

    default_code = "error"

    def __init__(self, code: str | None = None, message: str = "") -> None:
        self.code = code or self.default_code
        self.message = message or self.code.replace("_", " ")
        super().__init__(f"{self.code}: {self.message}" if message else self.code)


class DecodeError(HuzhuError):
    """Bytes that are not the one canonical encoding of a plain value (remote fault)."""

    default_code = "decode_error"


class EncodeError(HuzhuError):
    """A value that has no canonical encoding (local fault: floats, non-str keys, ...)."""

    default_code = "encode_error"


class InvalidSignature(HuzhuError):
    default_code = "bad_signature"


class InvalidTransaction(HuzhuError):
    default_code = "invalid_transaction"


class InvalidBlock(HuzhuError):
    default_code = "invalid_block"


class InvalidCertificate(HuzhuError):
    default_code = "invalid_certificate"


class InvalidMerkleProof(HuzhuError):
    default_code = "invalid_proof"


class KeyFileError(HuzhuError):
    """A key file that is missing, unreadable or malformed."""

    default_code = "bad_key_file"


class InvalidGenesis(HuzhuError):
    default_code = "invalid_genesis"
