"""Typed errors with reason codes.

Expected failures are raised as one of these, each carrying a short machine-readable
``code`` (``InvalidTransaction("nonce_gap")``). As in h11, each says whose fault it is:
``RemoteError`` for a peer's or a client's bad input (the node drops it and counts it),
``LocalError`` for this process's own mistake (a value it built has no encoding): code that
handles remote input catches ``RemoteError`` only, so a local bug is never counted as a
peer's fault and stops the node. A broken local invariant is an ``AssertionError``.
"""

from __future__ import annotations


class HuzhuError(Exception):
    """Base of every expected failure; ``code`` is a stable reason code."""

    default_code = "error"

    def __init__(self, code: str | None = None, message: str = "") -> None:
        self.code = code or self.default_code
        self.message = message or self.code.replace("_", " ")
        super().__init__(f"{self.code}: {self.message}" if message else self.code)


class RemoteError(HuzhuError):
    """The other side's fault: bytes, signatures, blocks or transactions that are wrong."""


class LocalError(HuzhuError):
    """This process's own fault: the caller built something invalid."""


class DecodeError(RemoteError):
    """Bytes that are not the one canonical encoding of a plain value (remote fault)."""

    default_code = "decode_error"


class EncodeError(LocalError):
    """A value that has no canonical encoding (local fault: floats, non-str keys, ...)."""

    default_code = "encode_error"


class InvalidSignature(RemoteError):
    default_code = "bad_signature"


class InvalidTransaction(RemoteError):
    default_code = "invalid_transaction"


class InvalidBlock(RemoteError):
    default_code = "invalid_block"


class InvalidCertificate(RemoteError):
    default_code = "invalid_certificate"


class InvalidMerkleProof(RemoteError):
    default_code = "invalid_proof"


class KeyFileError(HuzhuError):
    """A key file that is missing, unreadable or malformed."""

    default_code = "bad_key_file"


class InvalidGenesis(HuzhuError):
    default_code = "invalid_genesis"
