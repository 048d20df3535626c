"""Hand-built chains for the audit and evidence tests, without consensus or processes.

``Chain`` makes blocks the way a correct consortium does: each header links to its parent,
carries the app_hash/results_hash of the state after height h - pipeline_depth, and gets a
commit certificate signed by a quorum of the four validators; each block is executed with the
real plan application and stored (block, certificate, receipts, state writes) in a
``MemoryStore`` exactly as NodeCore does. Tests then tamper with the stored bytes.
"""

from __future__ import annotations

from collections.abc import Sequence

from contracts.genesis import default_app_genesis
from ledger.keys import KeyPair
from ledger.merkle import EMPTY_ROOT
from ledger.types import (
    COMMIT_DOMAIN,
    Block,
    BlockHeader,
    CommitCertificate,
    Transaction,
    commit_vote_payload,
    results_hash,
    tx_root,
)
from node.apps import make_application
from node.genesis import Genesis
from node.storage import MemoryStore

CHAIN_ID = "huzhu-audit-test"
GENESIS_TIME_MS = 1_800_000_000_000
BLOCK_INTERVAL_MS = 1_000
DAY_MS = 86_400_000


def _key(label: str) -> KeyPair:
    return KeyPair.from_seed(label.encode().ljust(32, b"\0")[:32])


class Chain:
    def __init__(self, pipeline_depth: int = 2, params: dict | None = None) -> None:
        self.validators = [_key(f"validator-{i}") for i in range(4)]
        self.orgs = [_key(f"org-{i}") for i in range(4)]
        self.registrar = _key("registrar")
        self.treasurer = _key("treasurer")
        self.reviewer = _key("reviewer")
        app = default_app_genesis(
            [{"name": f"org{i}", "gov_key": key.public_key} for i, key in enumerate(self.orgs)],
            {"registrar": [self.registrar.public_key], "treasurer": [self.treasurer.public_key],
             "reviewer": [self.reviewer.public_key]},
            params_overrides=params or {}, genesis_time_ms=GENESIS_TIME_MS)
        self.genesis = Genesis.build(CHAIN_ID, [v.public_key for v in self.validators],
                                     GENESIS_TIME_MS, app=app,
                                     consensus={"pipeline_depth": pipeline_depth})
        self.depth = pipeline_depth
        self.store = MemoryStore()
        self.app = make_application(self.genesis, self.store)
        genesis_hash = self.app.commit()
        self._write(self.app.take_writes())
        self.executed = {0: (genesis_hash, EMPTY_ROOT)}
        self.blocks: list[Block] = []
        self.receipts: list[list] = []
        self.certificates: list[CommitCertificate] = []
        self.nonces: dict[bytes, int] = {}
        self.time_ms = GENESIS_TIME_MS

    def _write(self, writes: Sequence[tuple[bytes, bytes | None]]) -> None:
        with self.store.batch() as batch:
            for key, value in writes:
                if value is None:
                    batch.delete_state(key)
                else:
                    batch.put_state(key, value)

    @property
    def height(self) -> int:
        return len(self.blocks)

    def tx(self, key: KeyPair, kind: str, body: dict) -> Transaction:
        nonce = self.nonces.get(key.public_key, 0)
        self.nonces[key.public_key] = nonce + 1
        return Transaction.create(key, CHAIN_ID, nonce, kind, body)

    def certify(self, block: Block, signers: Sequence[int] = (0, 1, 2),
                view: int = 0) -> CommitCertificate:
        payload = commit_vote_payload(view, block.height, block.block_hash)
        return CommitCertificate.build(block.height, view, block.block_hash, {
            i: self.validators[i].sign(COMMIT_DOMAIN, CHAIN_ID, payload) for i in signers})

    def add_block(self, txs: Sequence[Transaction] = (), advance_ms: int = BLOCK_INTERVAL_MS,
                  app_hash: bytes | None = None) -> Block:
        """Make, certify, execute and store the next block (``app_hash`` forces a wrong one)."""
        height = self.height + 1
        self.time_ms += advance_ms
        certified_app_hash, certified_results = self.executed[max(0, height - self.depth)]
        header = BlockHeader(
            chain_id=CHAIN_ID, height=height, view=0,
            prev_hash=self.blocks[-1].block_hash if self.blocks else self.genesis.genesis_hash,
            timestamp_ms=self.time_ms, proposer=height % 4,
            tx_root=tx_root([tx.tx_id for tx in txs]), tx_count=len(txs),
            app_hash=app_hash if app_hash is not None else certified_app_hash,
            results_hash=certified_results)
        block = Block(header, tuple(txs))
        certificate = self.certify(block)
        receipts = self.app.execute_block(header, block.txs)
        state_root = self.app.commit()
        writes = self.app.take_writes()
        with self.store.batch() as batch:
            batch.put_block(block)
            batch.put_certificate(certificate)
            batch.put_receipts(height, receipts)
            for key, value in writes:
                if value is None:
                    batch.delete_state(key)
                else:
                    batch.put_state(key, value)
        self.executed[height] = (state_root, results_hash(receipts))
        self.blocks.append(block)
        self.receipts.append(receipts)
        self.certificates.append(certificate)
        return block

    def settle_tail(self) -> None:
        """Empty blocks until the state after the last block is certified by a header."""
        for _ in range(self.depth):
            self.add_block()

    # --- a small plan history -----------------------------------------------------------

    def enroll(self, member: KeyPair, birth_ms: int = GENESIS_TIME_MS - 30 * 365 * DAY_MS,
               tag: bytes = b"") -> Transaction:
        from ledger.hashing import sha256

        return self.tx(self.registrar, "member.enroll", {
            "public_key": member.public_key, "identity": sha256(b"id" + member.public_key + tag),
            "birth_ms": birth_ms})

    def deposit(self, member: KeyPair, amount_fen: int, reference: str) -> Transaction:
        from ledger.hashing import sha256

        return self.tx(self.treasurer, "member.deposit", {
            "member_id": sha256(member.public_key)[:16], "amount_fen": amount_fen,
            "reference": reference})


def plan_history(chain: Chain, members: int = 4) -> list[KeyPair]:
    """Enroll and fund a few members over several blocks, with empty blocks between."""
    people = [_key(f"member-{i}") for i in range(members)]
    chain.add_block([chain.enroll(person) for person in people])
    chain.add_block()
    chain.add_block([chain.deposit(person, 2_000, f"pay-{i}") for i, person in enumerate(people)])
    chain.add_block([chain.tx(people[-1], "member.exit", {})])
    chain.settle_tail()
    return people
