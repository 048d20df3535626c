"""PlanApp: the mutual-aid plan behind the Application boundary (ledger.application).

One block, in this order:
1. time-driven transitions due at the block's time, oldest first, from the time queue
   (settlements, payments, notice and appeal ends, jury tallies, grace ends, age-outs,
   proposal expiries), then members newly in arrears from the arrears index; at most
   ``max_transitions_per_block`` units of work, the rest carried to the next block in order;
2. each transaction: chain id, signature and nonce checks (a failure here changes nothing),
   then its body and who may sign it (contracts.kinds; a stranger's refused transaction
   changes nothing either), then the nonce is spent and the handler runs between begin and
   commit, or rollback when it rejects: a failed transaction of a known signer leaves only
   its nonce increment and its receipt.

A block whose time is past a period boundary whose settlement the budget did not reach
refuses its transactions (``settlement_pending``): who shares a period is decided by the
members active at the boundary (DOMAIN.md), so nothing timed after the boundary may enrol,
exit or finalize anything before the settlement runs. Work per block stays bounded; the
refused senders sign again for a later block.

``commit()`` folds the block's writes into the state tree and returns the root;
``take_writes()`` hands the node every write (the tree's nodes included) for its commit batch.

Genesis: when the store holds no plan state, the constructor writes the genesis state (params,
roles, orgs, the first settlement) and commits it, so ``commit()`` before the first block
returns the genesis root and the first ``take_writes()`` returns the genesis writes. A new
PlanApp over a store that has them (a restart) finds the same root.

Identity: a member's id is the first 16 bytes of SHA-256 of their public key (hex in queries).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ledger.application import CHECK_OK, CheckResult, QueryError, StateReader
from ledger.errors import InvalidBlock, InvalidGenesis, InvalidTransaction
from ledger.types import BlockHeader, Receipt, Transaction

from contracts import claims, governance, layout, queries, settlement
from contracts.env import BlockEnv, TxEnv
from contracts.genesis import AppGenesis, validate_app_genesis
from contracts.kinds import KINDS, authorise, is_known_signer, validate_body
from contracts.layout import Due, be64
from contracts.reasons import reject
from contracts.records import (
    ChainInfo,
    Clock,
    PlanState,
    Totals,
    decode_record,
    encode_record,
)
from contracts.state import State

Transition = Callable[[PlanState, BlockEnv, int, bytes], int]

# One transition per kind of queued time event.
TRANSITIONS: dict[Due, Transition] = {
    Due.SETTLE: settlement.settle,
    Due.PAY: settlement.pay,
    Due.NOTICE_END: claims.notice_end,
    Due.APPEAL_END: claims.appeal_end,
    Due.REVEAL_END: claims.reveal_end,
    Due.GRACE_END: settlement.grace_end,
    Due.AGE_OUT: settlement.age_out,
    Due.PROPOSAL_EXPIRY: governance.proposal_expiry,
}

MAX_NONCE_AHEAD = 1_024  # how far past the next nonce check_tx lets a client queue
MAX_VERIFIED_TX_IDS = 100_000  # signatures already checked at admission, not re-checked


class PlanApp:
    """The mutual-aid plan as a deterministic ``ledger.application.Application``."""

    def __init__(self, genesis_app: dict, chain_id: str, state: StateReader, *,
                 verify_signatures: bool = True) -> None:
        self.genesis: AppGenesis = validate_app_genesis(genesis_app)
        self.chain_id = chain_id
        self._verify_signatures = verify_signatures
        self._verified: dict[bytes, None] = {}
        self._state = State(state, layout.ORDERED_PREFIXES)
        self._plan = PlanState(self._state)
        stored = state.get_state(layout.CHAIN_KEY)
        if stored is None:
            self.init_genesis()
        else:
            info = decode_record(ChainInfo, stored)
            if (info.chain_id != chain_id
                    or info.genesis_time_ms != self.genesis.genesis_time_ms):
                raise InvalidGenesis("chain_mismatch", "the store holds another chain's state")
        self._root = self._state.commit_root()

    # --- genesis ------------------------------------------------------------------------

    def init_genesis(self) -> None:
        """Write the genesis state: params, roles, orgs, totals, the first settlement."""
        plan, genesis = self._plan, self.genesis
        assert self._state.get(layout.CHAIN_KEY) is None
        self._state.set(layout.CHAIN_KEY, encode_record(
            ChainInfo(self.chain_id, genesis.genesis_time_ms, len(genesis.orgs))))
        plan.put_params(genesis.params.to_plain())
        for role, role_keys in genesis.roles.items():
            for key in role_keys:
                plan.set_role(role, key, True)
        for org in genesis.orgs:
            plan.set_org_key(org.name, org.gov_key)
        first_boundary = genesis.genesis_time_ms + genesis.params.period_ms
        plan.put_totals(Totals(next_boundary_ms=first_boundary,
                               last_settlement_ms=genesis.genesis_time_ms))
        plan.enqueue(first_boundary, Due.SETTLE, be64(1))

    # --- the Application boundary -------------------------------------------------------

    def check_tx(self, tx: Transaction) -> CheckResult:
        """Mempool admission against the committed state: body, who may sign (contracts.kinds),
        nonce window, then the signature. A stranger's transaction stops here."""
        try:
            if tx.chain_id != self.chain_id:
                raise reject("wrong_chain", f"transaction for chain {tx.chain_id!r}")
            body = validate_body(tx.kind, tx.body)
            authorise(self._plan, tx.kind, tx.sender, body)
            next_nonce = self._plan.nonce(tx.sender)
            if tx.nonce < next_nonce:
                raise reject("nonce_too_low", f"next nonce is {next_nonce}")
            if tx.nonce > next_nonce + MAX_NONCE_AHEAD:
                raise reject("nonce_too_high", f"next nonce is {next_nonce}")
            if not self._signature_ok(tx):
                raise reject("bad_signature", "the signature does not verify")
        except InvalidTransaction as exc:
            return CheckResult(False, exc.code, exc.message)
        return CHECK_OK

    def execute_block(self, header: BlockHeader, txs: Sequence[Transaction]) -> list[Receipt]:
        if header.chain_id != self.chain_id:
            raise InvalidBlock("bad_chain_id", "block for another chain")
        clock = self._plan.clock()
        # Consensus keeps block times monotonic; clamping makes that an invariant here too.
        time_ms = header.timestamp_ms if clock is None else max(header.timestamp_ms,
                                                                clock.time_ms)
        block = BlockEnv(self.chain_id, header.height, time_ms, header.block_hash)
        work = self._run_transitions(block)
        settlement_pending = self._plan.totals().next_boundary_ms <= time_ms
        receipts = [self._execute_tx(block, tx, settlement_pending) for tx in txs]
        if work or txs:
            self._plan.put_clock(Clock(time_ms, header.height))
        return receipts

    def commit(self) -> bytes:
        self._root = self._state.commit_root()
        return self._root

    def take_writes(self) -> list[tuple[bytes, bytes | None]]:
        return self._state.take_writes()

    def query(self, path: str, prove: bool = False) -> tuple[Any, Any]:
        if prove and self._state.uncommitted:
            raise QueryError("not_committed", "proofs are available after commit()")
        value, keys = queries.view(self._plan, path, prove)
        if not prove:
            return value, None
        entries = []
        for key in keys:
            raw = self._state.get(key)
            entries.append({"key": key.hex(), "value": None if raw is None else raw.hex(),
                            "proof": self._state.prove(key)})
        return value, {"root": self._state.root().hex(), "entries": entries}

    # --- inside a block -----------------------------------------------------------------

    def _run_transitions(self, block: BlockEnv) -> int:
        """Due items oldest first, then the arrears index, within the block's budget."""
        plan = self._plan
        budget = plan.params().max_transitions_per_block
        used = 0
        while used < budget:
            item = plan.next_due(block.time_ms)
            if item is None:
                break
            due_ms, kind, ident = item
            plan.dequeue(due_ms, kind, ident)
            used += TRANSITIONS[kind](plan, block, due_ms, ident)
        if used < budget:
            used += settlement.scan_arrears(plan, budget - used)
        return used

    def _signature_ok(self, tx: Transaction) -> bool:
        if not self._verify_signatures:
            return True
        tx_id = tx.tx_id
        if tx_id in self._verified:
            return True
        if not tx.verify_signature():
            return False
        if len(self._verified) >= MAX_VERIFIED_TX_IDS:
            del self._verified[next(iter(self._verified))]  # forget the oldest
        self._verified[tx_id] = None
        return True

    def _execute_tx(self, block: BlockEnv, tx: Transaction,
                    settlement_pending: bool) -> Receipt:
        tx_id = tx.tx_id
        if tx.chain_id != self.chain_id:
            return _failed(tx_id, "wrong_chain", "transaction for another chain")
        if not self._signature_ok(tx):
            return _failed(tx_id, "bad_signature", "the signature does not verify")
        next_nonce = self._plan.nonce(tx.sender)
        if tx.nonce != next_nonce:
            return _failed(tx_id, "bad_nonce", f"expected nonce {next_nonce}")
        try:
            body = validate_body(tx.kind, tx.body)
            authorise(self._plan, tx.kind, tx.sender, body)
        except InvalidTransaction as exc:
            # Authorised at admission but not now (or never admitted): a known signer spends
            # the nonce as for any failure; a stranger gets no nonce record, so nothing they
            # sign can grow the state.
            if is_known_signer(self._plan, tx.sender):
                self._plan.set_nonce(tx.sender, next_nonce + 1)
            return _failed(tx_id, exc.code, exc.message)
        # The nonce is spent whatever the outcome, so a rejected transaction cannot replay.
        self._plan.set_nonce(tx.sender, next_nonce + 1)
        if settlement_pending:
            return _failed(tx_id, "settlement_pending",
                           "a period boundary before this block is not settled yet; send again")
        self._state.begin()
        try:
            result = KINDS[tx.kind].handler(self._plan, TxEnv(block, tx_id, tx.sender), body)
        except InvalidTransaction as exc:
            self._state.rollback()
            return _failed(tx_id, exc.code, exc.message)
        except BaseException:
            self._state.rollback()
            raise
        self._state.commit_tx()
        return Receipt(tx_id, "ok", result)


def _failed(tx_id: bytes, code: str, message: str) -> Receipt:
    return Receipt(tx_id, code, {"message": message})
