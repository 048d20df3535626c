"""The real backend: NodeCore over MemoryStore, genesis built in memory, signed workload txs.

Each simulated node is the same ``node.core.NodeCore`` the aiohttp runtime runs, with its own
``MemoryStore`` and a ``SimSigner`` that counts signature work for the CPU model and, in fast
mode, checks signatures against the run's signature table instead of running Ed25519.

The workload is the plan's (members enrolled by a registrar and paying into their balance)
when the contracts are installed, else the kv app's ``kv.set``. Workload clients are the
plan's registrars and treasurers in the simulated genesis.
"""

from __future__ import annotations

import importlib.util
import random
from collections.abc import Sequence
from typing import Any

from consensus.signer import Ed25519Signer
from ledger import keys
from ledger.hashing import sha256
from ledger.keys import KeyPair
from ledger.errors import InvalidGenesis
from ledger.types import TX_DOMAIN, Transaction
from node.genesis import Genesis
from node.storage.memory import MemoryStore
from sim import protocol
from sim.backend import CryptoMeter, MessageInfo
from sim.scenarios import ScenarioError

YEAR_MS = 31_556_952_000
MEMBER_AGE_YEARS = 35
MAX_DEPOSIT_FEN = 50_000


class SimSigner:
    """A ``consensus.signer.Signer`` that meters its work and may verify by table lookup."""

    __slots__ = ("_inner", "chain_id", "key", "validators", "meter")

    def __init__(self, chain_id: str, key: KeyPair, validators: Sequence[bytes],
                 meter: CryptoMeter) -> None:
        self._inner = Ed25519Signer(chain_id, key, validators)
        self.chain_id = chain_id
        self.key = key
        self.validators = tuple(validators)
        self.meter = meter

    def sign(self, kind: str, payload: Any) -> bytes:
        message = keys.signing_message(kind, self.chain_id, payload)
        signature = self.key.sign_message(message)
        self.meter.signs += 1
        self.meter.table.add(self.key.public_key, message, signature)
        return signature

    def verify(self, replica_id: int, kind: str, payload: Any, signature: bytes) -> bool:
        self.meter.verifies += 1
        if self.meter.cost.real_verify:
            return self._inner.verify(replica_id, kind, payload, signature)
        if type(replica_id) is not int or not 0 <= replica_id < len(self.validators):
            return False
        message = keys.signing_message(kind, self.chain_id, payload)
        return self.meter.table.check(self.validators[replica_id], message, signature)

    def verify_transaction(self, tx: Transaction) -> bool:
        self.meter.verifies += 1
        if self.meter.cost.real_verify:
            return tx.verify_signature()
        message = keys.signing_message(TX_DOMAIN, tx.chain_id, tx.signing_payload())
        return self.meter.table.check(tx.sender, message, tx.signature)


def plan_available() -> bool:
    return importlib.util.find_spec("contracts.genesis") is not None


class NodeBackend:
    name = "nodecore"

    def __init__(self) -> None:
        self._table = None  # the run's signature table, learned from the first meter

    # --- genesis and stores ---------------------------------------------------------------

    def workload_app(self, requested: str) -> str:
        if requested == "auto":
            return "plan" if plan_available() else "kv"
        return requested

    def make_genesis(self, chain_id: str, validator_keys: Sequence[KeyPair], genesis_time_ms: int,
                     app: str, client_keys: Sequence[KeyPair],
                     consensus: dict[str, int]) -> Genesis:
        public_keys = [key.public_key for key in validator_keys]
        if app == "plan":
            from contracts.genesis import MAX_ORGS, default_app_genesis
            # one governing org per validator, up to the plan's limit of governing orgs
            # (a consortium of hundreds of nodes is governed by its first MAX_ORGS)
            orgs = [{"name": f"org{index}", "gov_key": sha256(b"gov" + key)}
                    for index, key in enumerate(public_keys[:MAX_ORGS])]
            clients = [key.public_key for key in client_keys]
            app_section = default_app_genesis(
                orgs, {"registrar": clients, "treasurer": clients},
                genesis_time_ms=genesis_time_ms)
        else:
            app_section = {"name": "kv"}
        try:
            return Genesis.build(chain_id, public_keys, genesis_time_ms, app=app_section,
                                 consensus=consensus)
        except InvalidGenesis as exc:
            raise ScenarioError(f"consensus parameters: {exc.message}") from None

    def genesis_hash(self, genesis: Genesis) -> bytes:
        return genesis.genesis_hash

    def make_store(self) -> MemoryStore:
        return MemoryStore()

    def reopen_store(self, store: MemoryStore) -> MemoryStore:
        return store.reopen()

    def make_core(self, genesis: Genesis, replica_id: int, key: KeyPair, store: MemoryStore,
                  meter: CryptoMeter) -> Any:
        from node.core import NodeCore, NodeParams

        self._table = meter.table
        signer = SimSigner(genesis.chain_id, key, genesis.validator_keys, meter)
        return NodeCore(genesis, replica_id, key, store, None, NodeParams(), signer=signer)

    # --- protocol knowledge -----------------------------------------------------------------

    def describe(self, data: bytes) -> MessageInfo:
        return protocol.describe(data)

    def forge(self, data: bytes, rng: random.Random, forger: KeyPair, replica_count: int,
              chain_id: str) -> bytes | None:
        return protocol.forge(data, rng, forger, replica_count, chain_id)

    def conflicting_proposal(self, data: bytes, rng: random.Random, key: KeyPair,
                             chain_id: str) -> bytes | None:
        def sign(kind: str, payload: dict) -> bytes:
            # through the run's table, so fast verification accepts it as Ed25519 would
            message = keys.signing_message(kind, chain_id, payload)
            signature = key.sign_message(message)
            if self._table is not None:
                self._table.add(key.public_key, message, signature)
            return signature
        return protocol.conflicting_proposal(data, rng, sign)

    def state_root(self, core: Any, store: MemoryStore, commit: Any) -> bytes | None:
        return commit.app_hash  # NodeCore reports the state root after each committed block

    # --- workload ---------------------------------------------------------------------------

    def tx_id(self, raw: bytes) -> bytes:
        return sha256(raw)

    def make_tx(self, genesis: Genesis, client: KeyPair, nonce: int,
                rng: random.Random) -> bytes | None:
        if genesis.app_name == "plan":
            kind, body = self._plan_tx(genesis, client, nonce, rng)
        else:
            kind, body = "kv.set", {"key": f"k{rng.randrange(64)}",
                                    "value": rng.randbytes(16)}
        tx = Transaction.create(client, genesis.chain_id, nonce, kind, body)
        if self._table is not None:
            # fast verification knows every signature made inside the run, clients' too
            message = keys.signing_message(TX_DOMAIN, tx.chain_id, tx.signing_payload())
            self._table.add(client.public_key, message, tx.signature)
        return tx.encode()

    @staticmethod
    def _member_key(client: KeyPair, index: int) -> KeyPair:
        return KeyPair.from_seed(sha256(client.public_key + index.to_bytes(8, "big")))

    def _plan_tx(self, genesis: Genesis, client: KeyPair, nonce: int,
                 rng: random.Random) -> tuple[str, dict]:
        """Even nonces enroll a new member; odd ones credit that member a payment."""
        from contracts.records import member_id_of

        member = self._member_key(client, nonce // 2)
        if nonce % 2 == 0:
            identity = sha256(b"salt" + member.public_key)
            birth_ms = genesis.genesis_time_ms - MEMBER_AGE_YEARS * YEAR_MS
            return "member.enroll", {"public_key": member.public_key, "identity": identity,
                                     "birth_ms": birth_ms}
        return "member.deposit", {"member_id": member_id_of(member.public_key),
                                  "amount_fen": 100 * (1 + rng.randrange(MAX_DEPOSIT_FEN // 100)),
                                  "reference": f"{client.public_key.hex()[:16]}-{nonce}"}
