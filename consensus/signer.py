"""Signing and verification behind one small interface.

The replica never touches keys directly: it asks a ``Signer`` to sign its own messages and to
verify everyone else's. The real ``Ed25519Signer`` uses ``ledger.keys``; the simulator wraps
it (or replaces verification with a table lookup) to charge signature work as virtual CPU
time. Every signature is domain-separated by ``kind`` (``ledger.keys.signing_message``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ledger import keys
from ledger.types import Transaction


class Signer(Protocol):
    def sign(self, kind: str, payload: Any) -> bytes:
        """This replica's signature over ``payload`` in domain ``kind``."""
        ...

    def verify(self, replica_id: int, kind: str, payload: Any, signature: bytes) -> bool:
        """True when ``signature`` is validator ``replica_id``'s over ``payload`` in ``kind``."""
        ...

    def verify_transaction(self, tx: Transaction) -> bool:
        """True when the transaction's own (client) signature is valid."""
        ...


class Ed25519Signer:
    """The real signer: one validator key, the chain id, the validator public keys."""

    __slots__ = ("chain_id", "key", "validators")

    def __init__(self, chain_id: str, key: keys.KeyPair, validators: Sequence[bytes]) -> None:
        self.chain_id = chain_id
        self.key = key
        self.validators = tuple(validators)

    def sign(self, kind: str, payload: Any) -> bytes:
        return self.key.sign(kind, self.chain_id, payload)

    def verify(self, replica_id: int, kind: str, payload: Any, signature: bytes) -> bool:
        if type(replica_id) is not int or not 0 <= replica_id < len(self.validators):
            return False
        return keys.verify(self.validators[replica_id], kind, self.chain_id, payload, signature)

    def verify_transaction(self, tx: Transaction) -> bool:
        return tx.verify_signature()
