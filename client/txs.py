"""Building, signing and sending transactions, and waiting for their receipts.

A transaction's nonce must equal the sender's next nonce when it executes. The sender reads
its next nonce from the committed state (``nonce/<public key>``) and numbers a batch
consecutively from there; the plan admits nonces up to ``MAX_NONCE_AHEAD`` past the next one,
so a batch goes into the mempool at once and commits in a block or two. A single transaction
is sent with ``?wait=commit``; a batch is sent first and then each id is polled.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from client.api import ApiError, Client, ClientError, NotFound
from ledger.keys import KeyPair
from ledger.types import Transaction

COMMIT_POLL_INTERVAL_S = 0.1
DEFAULT_COMMIT_TIMEOUT_S = 60.0
MAX_BATCH_TXS = 1_000  # below the plan's MAX_NONCE_AHEAD


class TxFailed(ClientError):
    """A transaction was committed with a failed receipt (its code is the reason)."""


class CommitTimeout(ClientError):
    code = "commit_timeout"


@dataclass(frozen=True, slots=True)
class TxOutcome:
    tx_id: bytes
    kind: str
    nonce: int
    status: str  # "committed" or "pending" (not waited for)
    height: int | None = None
    code: str | None = None  # the receipt's code when committed
    result: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "committed" and self.code == "ok"

    def to_json(self) -> dict:
        return {"tx_id": self.tx_id.hex(), "kind": self.kind, "nonce": self.nonce,
                "status": self.status, "height": self.height, "code": self.code,
                "result": self.result}

    def failure_message(self) -> str:
        message = self.result.get("message") if isinstance(self.result, dict) else None
        text = f"{self.kind} {self.tx_id.hex()[:16]}… failed at height {self.height}: {self.code}"
        return f"{text} ({message})" if message else text


class TxSender:
    """Signs with one key and submits to one node."""

    def __init__(self, client: Client, key: KeyPair, chain_id: str | None = None) -> None:
        self.client = client
        self.key = key
        self._chain_id = chain_id

    @property
    def chain_id(self) -> str:
        if self._chain_id is None:
            chain_id = self.client.status().get("chain_id")
            if not isinstance(chain_id, str):
                raise ClientError("the node's status names no chain_id", "bad_status")
            self._chain_id = chain_id
        return self._chain_id

    def next_nonce(self) -> int:
        answer = self.client.state(f"nonce/{self.key.public_key.hex()}")
        value = answer.get("value") if isinstance(answer, dict) else None
        nonce = value.get("next_nonce") if isinstance(value, dict) else None
        if type(nonce) is not int or nonce < 0:
            raise ClientError("the node's nonce answer is malformed", "bad_answer")
        return nonce

    def build(self, kind: str, body: dict, nonce: int) -> Transaction:
        return Transaction.create(self.key, self.chain_id, nonce, kind, body)

    def send(self, kind: str, body: dict, wait: bool = True,
             timeout_s: float = DEFAULT_COMMIT_TIMEOUT_S) -> TxOutcome:
        """Sign and submit one transaction; with ``wait``, return its committed receipt."""
        tx = self.build(kind, body, self.next_nonce())
        answer = self._submit(tx, wait)
        if answer.get("status") == "committed":
            return _committed(tx, answer)
        if not wait:
            return TxOutcome(tx.tx_id, kind, tx.nonce, "pending")
        return wait_for_commit(self.client, tx, timeout_s)

    def send_many(self, kind: str, bodies: Sequence[dict], wait: bool = True,
                  timeout_s: float = DEFAULT_COMMIT_TIMEOUT_S) -> list[TxOutcome]:
        """Sign and submit a batch with consecutive nonces, then wait for every receipt."""
        if len(bodies) > MAX_BATCH_TXS:
            raise ClientError(f"at most {MAX_BATCH_TXS} transactions per batch", "batch_too_large")
        if not bodies:
            return []
        first = self.next_nonce()
        txs = [self.build(kind, body, first + offset) for offset, body in enumerate(bodies)]
        for tx in txs:
            self._submit(tx, False)
        if not wait:
            return [TxOutcome(tx.tx_id, kind, tx.nonce, "pending") for tx in txs]
        deadline = time.monotonic() + timeout_s
        return [wait_for_commit(self.client, tx, max(0.0, deadline - time.monotonic()))
                for tx in txs]


    def _submit(self, tx: Transaction, wait: bool) -> dict:
        try:
            return self.client.submit(tx, wait=wait)
        except ApiError as exc:
            # A retried POST whose first attempt reached the node: the node already has this
            # exact transaction (same id), so it is pending or committed, not refused.
            if exc.status == 409 and exc.code in ("duplicate", "already_committed"):
                return {"tx_id": tx.tx_id.hex(), "status": "pending"}
            raise


def _committed(tx: Transaction, answer: dict) -> TxOutcome:
    receipt = answer.get("receipt") or {}
    return TxOutcome(tx.tx_id, tx.kind, tx.nonce, "committed", answer.get("height"),
                     receipt.get("code"), receipt.get("result") or {})


def wait_for_commit(client: Client, tx: Transaction, timeout_s: float) -> TxOutcome:
    """Poll ``GET /txs/{id}`` until the transaction is committed (or ``CommitTimeout``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            answer = client.tx(tx.tx_id)
        except NotFound:
            answer = {"status": "unknown"}
        if answer.get("status") == "committed" and answer.get("receipt") is not None:
            return _committed(tx, answer)
        if time.monotonic() >= deadline:
            raise CommitTimeout(f"{tx.kind} {tx.tx_id.hex()} not committed after {timeout_s:.0f} s "
                                f"(status {answer.get('status')})")
        time.sleep(COMMIT_POLL_INTERVAL_S)


def result_value(outcome: TxOutcome, name: str) -> Any:
    return outcome.result.get(name) if isinstance(outcome.result, dict) else None
