"""What the simulation needs from the system under test, in one narrow interface.

The simulation drives "cores" (``start``, ``on_tick``, ``on_message``, ``submit_tx``,
``status``) exactly as docs/INTERFACES.md specifies NodeCore. A ``Backend`` builds them and
knows the protocol just enough for tracing, vote checking and forging; the real one
(``sim.nodes.NodeBackend``) wraps NodeCore and the consensus messages, and tests drive the
simulator's own machinery with a tiny fake backend.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ledger.keys import KeyPair


@dataclass(frozen=True, slots=True)
class Vote:
    """A signed statement a replica makes about one slot: at most one digest per slot."""

    replica: int
    kind: str  # e.g. "pre_prepare", "prepare", "commit"
    view: int
    height: int
    digest: bytes


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """What the trace shows of a message; ``votes`` feed the double-sign checker."""

    type: str
    view: int | None = None
    height: int | None = None
    votes: tuple[Vote, ...] = ()


UNKNOWN_MESSAGE = MessageInfo("unknown")


class Output(Protocol):
    send: Sequence[tuple[int | None, bytes]]
    committed: Sequence[tuple[Any, ...]]  # (height, block_hash, tx_ids, ...)


class Core(Protocol):
    def start(self, now_ms: int) -> Output: ...

    def on_tick(self, now_ms: int) -> Output: ...

    def on_message(self, sender: int, data: bytes) -> Output: ...

    def submit_tx(self, raw: bytes, now_ms: int) -> tuple[Any, Output]: ...

    def status(self) -> dict: ...


@dataclass(frozen=True, slots=True)
class CryptoCost:
    """Virtual CPU time charged per signature operation, and whether real Ed25519
    verification runs (``real_verify`` False: signatures are checked against the table of
    signatures the run itself produced, which is exact inside the simulation and far faster)."""

    verify_us: int = 0
    sign_us: int = 0
    real_verify: bool = True


class Backend(Protocol):
    name: str

    def make_genesis(self, chain_id: str, validator_keys: Sequence[KeyPair],
                     genesis_time_ms: int, app: str, client_keys: Sequence[KeyPair],
                     consensus: dict[str, int]) -> Any:
        """The chain's genesis; ``client_keys`` are the workload's signers (the plan app
        gives them the registrar and treasurer roles); ``consensus`` overrides parameters."""
        ...

    def genesis_hash(self, genesis: Any) -> bytes: ...

    def make_store(self) -> Any: ...

    def reopen_store(self, store: Any) -> Any: ...

    def make_core(self, genesis: Any, replica_id: int, key: KeyPair, store: Any,
                  meter: "CryptoMeter") -> Core: ...

    def describe(self, data: bytes) -> MessageInfo: ...

    def forge(self, data: bytes, rng: random.Random, forger: KeyPair, replica_count: int,
              chain_id: str) -> bytes | None:
        """A forged variant of ``data`` (see ``sim.protocol.forge``), None if unsigned."""
        ...

    def conflicting_proposal(self, data: bytes, rng: random.Random, key: KeyPair,
                             chain_id: str) -> bytes | None:
        """If ``data`` is a proposal signed by ``key``'s replica, another valid proposal for
        the same slot, signed by ``key`` (see ``sim.protocol.conflicting_proposal``)."""
        ...

    def make_tx(self, genesis: Any, client: KeyPair, nonce: int, rng: random.Random) -> bytes | None:
        """A signed transaction for the workload; None when the app has none to offer."""
        ...

    def tx_id(self, raw: bytes) -> bytes: ...

    def state_root(self, core: Core, store: Any, commit: Any) -> bytes | None:
        """The state root a node holds after executing the block of ``commit`` (an entry of
        ``Output.committed``), None if not known."""
        ...

    def workload_app(self, requested: str) -> str: ...


class CryptoMeter:
    """Counts the signature work one endpoint does, so the simulation can charge it as
    virtual CPU time, and serves the shared signature table when real verification is off."""

    __slots__ = ("signs", "verifies", "cost", "table")

    def __init__(self, cost: CryptoCost, table: "SignatureTable") -> None:
        self.signs = 0
        self.verifies = 0
        self.cost = cost
        self.table = table

    def take_us(self) -> int:
        """Virtual CPU time owed since the last call."""
        used = self.signs * self.cost.sign_us + self.verifies * self.cost.verify_us
        self.signs = 0
        self.verifies = 0
        return used


class SignatureTable:
    """Every (public key, message) -> signature made inside the run, for fast verification.

    Ed25519 signatures are deterministic, so an honest signer's signature over a message is
    unique; a forged or corrupted signature is simply not in the table. Bounded by the run's
    own signing, which is linear in its messages.
    """

    __slots__ = ("_signatures",)

    def __init__(self) -> None:
        self._signatures: dict[tuple[bytes, bytes], bytes] = {}

    def add(self, public_key: bytes, message: bytes, signature: bytes) -> None:
        self._signatures[(public_key, message)] = signature

    def check(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        return self._signatures.get((public_key, message)) == signature
