"""Seeded randomness split into independent streams, one per node and per subsystem.

A run draws from many named streams (``network/3``, ``workload``, ``fault/equivocate/0``)
instead of one shared generator: each stream's seed is ``sha256(seed || "/" || name)``, so
adding a fault or a node never shifts the draws another subsystem sees, and a failing run is
reproduced from its seed alone. Nothing here reads a clock or the operating system's entropy.
"""

from __future__ import annotations

import hashlib
import random

SUBSEED_BYTES = 32


def derive_bytes(seed: int, name: str, size_bytes: int = SUBSEED_BYTES) -> bytes:
    """Deterministic bytes for ``name`` under ``seed`` (at most 32)."""
    assert 0 < size_bytes <= SUBSEED_BYTES
    material = str(seed).encode() + b"/" + name.encode()
    return hashlib.sha256(material).digest()[:size_bytes]


def derive_seed(seed: int, name: str) -> int:
    return int.from_bytes(derive_bytes(seed, name), "big")


class RandomStreams:
    """A factory of named, independent ``random.Random`` streams derived from one seed.

    Asking twice for the same name returns the same stream object, so a subsystem keeps its
    position across calls; two names never share a stream.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._streams: dict[str, random.Random] = {}

    def stream(self, name: str) -> random.Random:
        stream = self._streams.get(name)
        if stream is None:
            stream = random.Random(derive_seed(self.seed, name))
            self._streams[name] = stream
        return stream

    def node_seed(self, replica_id: int) -> bytes:
        """The 32-byte Ed25519 seed of replica ``replica_id``'s key in this run."""
        return derive_bytes(self.seed, f"node-key/{replica_id}")
