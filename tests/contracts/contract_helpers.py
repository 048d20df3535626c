"""Shared helpers for the contracts tests: a dict-backed StateReader and a small chain driver.

node/storage is built separately; these tests only need ``get_state`` / ``iterate_state`` and a
place to persist ``take_writes()``, which a dict plus a sort gives.
"""

from __future__ import annotations

from collections.abc import Iterator

from sortedcontainers import SortedList


class DictReader:
    """A ``StateReader`` over a dict, with a sorted key index for range reads."""

    def __init__(self, data: dict[bytes, bytes] | None = None) -> None:
        self.data: dict[bytes, bytes] = dict(data or {})
        self._keys = SortedList(self.data)

    def get_state(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def iterate_state(self, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]:
        for key in list(self._keys.irange(start, stop, inclusive=(True, False))):
            yield key, self.data[key]

    def apply(self, writes: list[tuple[bytes, bytes | None]]) -> None:
        for key, value in writes:
            if value is None:
                if self.data.pop(key, None) is not None:
                    self._keys.remove(key)
            else:
                if key not in self.data:
                    self._keys.add(key)
                self.data[key] = value


# --- a small chain driver -------------------------------------------------------------------

from ledger import merkle  # noqa: E402
from ledger.hashing import ZERO_HASH, sha256  # noqa: E402
from ledger.keys import KeyPair  # noqa: E402
from ledger.types import BlockHeader, Receipt, Transaction, results_hash, tx_root  # noqa: E402

from contracts import PlanApp  # noqa: E402
from contracts.genesis import DAY_MS, YEAR_MS, default_app_genesis  # noqa: E402
from contracts.jury import vote_commitment  # noqa: E402
from contracts.records import member_id_of  # noqa: E402

CHAIN_ID = "huzhu-test"
GENESIS_MS = 1_700_000_000_000

# Small juries so tests can seat them; everything else is the real plan's default.
SMALL_JURY = {"jury_size": 5, "jury_quorum": 3, "max_transitions_per_block": 1_000}


def key(name: str) -> KeyPair:
    return KeyPair.from_seed(sha256(name.encode()))


ORGS = [key(f"org{i}") for i in range(4)]
REGISTRAR, TREASURER, REVIEWER, HOSPITAL = (key(name) for name in
                                            ("registrar", "treasurer", "reviewer", "hospital"))


def plan_genesis(overrides: dict | None = None, time_scale: int = 1) -> dict:
    params = dict(SMALL_JURY)
    params.update(overrides or {})
    return default_app_genesis(
        orgs=[{"name": f"org{i}", "gov_key": org.public_key} for i, org in enumerate(ORGS)],
        roles={"registrar": [REGISTRAR.public_key], "treasurer": [TREASURER.public_key],
               "reviewer": [REVIEWER.public_key], "hospital": [HOSPITAL.public_key]},
        params_overrides=params, time_scale=time_scale, genesis_time_ms=GENESIS_MS)


def mid(pair: KeyPair) -> bytes:
    return member_id_of(pair.public_key)


def birth_for_age(now_ms: int, years: int, extra_days: int = 10) -> int:
    """A birth date making someone ``years`` old (and ``extra_days`` more) at ``now_ms``."""
    return now_ms - years * YEAR_MS - extra_days * DAY_MS


class Chain:
    """Drives a PlanApp block by block the way a node does, persisting into a DictReader."""

    def __init__(self, genesis_app: dict | None = None, reader: DictReader | None = None,
                 verify_signatures: bool = True) -> None:
        self.genesis_app = genesis_app or plan_genesis()
        self.reader = reader or DictReader()
        self.verify_signatures = verify_signatures
        self.app = PlanApp(self.genesis_app, CHAIN_ID, self.reader,
                           verify_signatures=verify_signatures)
        self.root = self.app.commit()
        self.reader.apply(self.app.take_writes())
        self.height = 0
        self.time_ms = GENESIS_MS
        self.prev_hash = ZERO_HASH
        self.last_results = merkle.EMPTY_ROOT
        self._pending: dict[bytes, int] = {}
        self._deposit_counter = 0
        self.receipts: list[Receipt] = []
        self.headers: list[BlockHeader] = []
        self.blocks: list[tuple[BlockHeader, list[Transaction]]] = []

    def restart(self) -> None:
        """A new PlanApp over the persisted state, as after a node restart."""
        self.app = PlanApp(self.genesis_app, CHAIN_ID, self.reader,
                           verify_signatures=self.verify_signatures)

    def nonce(self, pair: KeyPair) -> int:
        value, _ = self.app.query(f"nonce/{pair.public_key.hex()}")
        return value["next_nonce"]

    def tx(self, pair: KeyPair, kind: str, body: dict, nonce: int | None = None) -> Transaction:
        if nonce is None:
            nonce = self.nonce(pair) + self._pending.get(pair.public_key, 0)
            self._pending[pair.public_key] = self._pending.get(pair.public_key, 0) + 1
        return Transaction.create(pair, CHAIN_ID, nonce, kind, body)

    def block(self, txs: list[Transaction] = (), advance_ms: int = 1_000,
              at_ms: int | None = None) -> list[Receipt]:
        self.time_ms = at_ms if at_ms is not None else self.time_ms + advance_ms
        self.height += 1
        txs = list(txs)
        header = BlockHeader(CHAIN_ID, self.height, 0, self.prev_hash, self.time_ms, 0,
                             tx_root([tx.tx_id for tx in txs]), len(txs), self.root,
                             self.last_results)
        receipts = self.app.execute_block(header, txs)
        self.root = self.app.commit()
        self.reader.apply(self.app.take_writes())
        self.prev_hash = header.block_hash
        self.last_results = results_hash(receipts)
        self._pending = {}
        self.receipts.extend(receipts)
        self.headers.append(header)
        self.blocks.append((header, txs))
        return receipts

    def run(self, pair: KeyPair, kind: str, body: dict, advance_ms: int = 1_000) -> Receipt:
        """One transaction in its own block."""
        return self.block([self.tx(pair, kind, body)], advance_ms=advance_ms)[0]

    def q(self, path: str) -> dict:
        return self.app.query(path)[0]

    def totals(self) -> dict:
        return self.q("plan/totals")

    def enroll(self, pair: KeyPair, age_years: int = 30, identity: bytes | None = None) -> Receipt:
        body = {"public_key": pair.public_key,
                "identity": identity or sha256(b"salt" + pair.public_key),
                "birth_ms": birth_for_age(self.time_ms, age_years)}
        return self.run(REGISTRAR, "member.enroll", body)

    def member(self, pair: KeyPair) -> dict:
        return self.q(f"member/{mid(pair).hex()}")

    def enroll_many(self, pairs: list[KeyPair], age_years: int = 30,
                    deposit_fen: int = 0) -> None:
        """Enroll ``pairs`` in one block (and credit each ``deposit_fen`` in the next)."""
        receipts = self.block([self.tx(REGISTRAR, "member.enroll", {
            "public_key": pair.public_key, "identity": sha256(b"id" + pair.public_key),
            "birth_ms": birth_for_age(self.time_ms, age_years)}) for pair in pairs])
        assert all(receipt.ok for receipt in receipts), receipts
        if deposit_fen:
            self.deposit_many(pairs, deposit_fen)

    def deposit_many(self, pairs: list[KeyPair], amount_fen: int) -> None:
        start = self._deposit_counter
        self._deposit_counter += len(pairs)
        receipts = self.block([self.tx(TREASURER, "member.deposit", {
            "member_id": mid(pair), "amount_fen": amount_fen,
            "reference": f"pay-{start + index}"}) for index, pair in enumerate(pairs)])
        assert all(receipt.ok for receipt in receipts), receipts


    def advance_to(self, time_ms: int) -> list[Receipt]:
        """An empty block at ``time_ms`` (time-driven transitions run)."""
        return self.block([], at_ms=time_ms)


def members_named(prefix: str, count: int) -> list[KeyPair]:
    return [key(f"{prefix}{index}") for index in range(count)]


def bulk_enroll(chain: Chain, count: int, deposit_fen: int, age_years: int = 30) -> None:
    """Enroll and fund ``count`` members by calling the real enroll and deposit handlers in a
    loop, as execute_block would for that many transactions (minus signatures and blocks).
    Commits to the state tree and persists every 50,000 members."""
    from contracts import members
    from contracts.env import BlockEnv, TxEnv

    app = chain.app
    plan, state = app._plan, app._state
    chain.height += 1
    chain.time_ms += 1_000
    block = BlockEnv(CHAIN_ID, chain.height, chain.time_ms, sha256(b"bulk"))
    enroll_env = TxEnv(block, ZERO_HASH, REGISTRAR.public_key)
    deposit_env = TxEnv(block, ZERO_HASH, TREASURER.public_key)
    birth_ms = birth_for_age(chain.time_ms, age_years)
    for index in range(count):
        public_key = sha256(b"bulk-member-%d" % index)
        members.enroll(plan, enroll_env, {"public_key": public_key,
                                          "identity": sha256(b"bulk-identity-%d" % index),
                                          "birth_ms": birth_ms})
        members.deposit(plan, deposit_env, {"member_id": member_id_of(public_key),
                                            "amount_fen": deposit_fen,
                                            "reference": f"bulk-{index}"})
        if (index + 1) % 50_000 == 0 or index + 1 == count:
            chain.root = state.commit_root()
            chain.reader.apply(state.take_writes())


SAMPLE_DIGEST = sha256(b"document")


def sample_bodies(member: KeyPair) -> dict[str, dict]:
    """A well-formed body of every kind, about ``member`` and their claim 1."""
    return {
        "member.enroll": {"public_key": key("newcomer").public_key, "identity": SAMPLE_DIGEST,
                          "birth_ms": GENESIS_MS - 30 * 365 * DAY_MS},
        "member.deposit": {"member_id": mid(member), "amount_fen": 100, "reference": "r1"},
        "member.exit": {},
        "member.qualify_juror": {"member_id": mid(member)},
        "evidence.anchor": {"claim_id": 1, "documents": [{"digest": SAMPLE_DIGEST,
                                                          "kind": "diagnosis"}]},
        "claim.submit": {"condition": "ACCIDENT", "diagnosis_ms": GENESIS_MS,
                         "amount_fen": 100, "evidence_root": SAMPLE_DIGEST},
        "claim.review": {"claim_id": 1, "decision": "reject", "reason": "other"},
        "claim.object": {"claim_id": 1, "reason": "other", "evidence_digest": SAMPLE_DIGEST},
        "claim.appeal": {"claim_id": 1},
        "jury.commit": {"claim_id": 1, "commitment": vote_commitment("pay", SAMPLE_DIGEST)},
        "jury.reveal": {"claim_id": 1, "vote": "pay", "salt": SAMPLE_DIGEST},
        "gov.propose": {"action": "set_param", "name": "fee_bps", "value": 700},
        "gov.approve": {"proposal_id": 1},
    }
