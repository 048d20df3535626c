"""The mempool: admitted, not yet committed transactions, by sender and nonce, with hard bounds.

Bounded by ``max_txs`` and ``max_bytes`` (encoded transaction sizes); at the bound a new
transaction is refused with ``mempool_full`` (the API answers 429) rather than evicting an
older one, so admission never breaks first-come order. Deduplicated by tx id and by
(sender, nonce): a second transaction for a nonce already waiting is refused
(``nonce_taken``), so a client cannot queue two competing transactions for one slot.
Signatures and the application's checks happen before ``add`` (in NodeCore), exactly once.

Per sender. The pool knows each waiting sender's next nonce in the committed state (given at
``add``, moved by ``set_next_nonces`` after each block). A sender's transactions from that
nonce up to the first missing one are *ready*; later ones are *held* until the gap fills, so a
client may submit out of order (to one node or several) and still have every transaction
execute. One sender holds at most ``max_txs_per_sender`` transactions (``sender_quota``, 429)
and none more than ``max_nonce_ahead`` past its next nonce (``nonce_too_high``, 422).

A block offer (``select_entries``) takes only ready transactions, each sender's in nonce
order, round-robin across senders in order of arrival (a sender goes to the back of the line
when a block executes one of theirs): with k senders waiting each gets at most
ceil(max_txs / k) of a block, and what the others leave goes to whoever still waits.
Held transactions count for nothing the consensus waits on (``ready_count``), so a gap that
never fills cannot make replicas suspect the primary.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ledger.types import Transaction


@dataclass(slots=True)
class Entry:
    tx: Transaction
    tx_id: bytes
    size_bytes: int
    forwarded_tick: int  # when it was last passed to the primary (-1: never)


DEFAULT_MAX_TXS_PER_SENDER = 1_024
DEFAULT_MAX_NONCE_AHEAD = 1_024  # the plan's own check_tx bound (contracts.app.MAX_NONCE_AHEAD)


class Mempool:
    def __init__(self, max_txs: int, max_bytes: int,
                 max_txs_per_sender: int = DEFAULT_MAX_TXS_PER_SENDER,
                 max_nonce_ahead: int = DEFAULT_MAX_NONCE_AHEAD) -> None:
        assert max_txs > 0 and max_bytes > 0 and max_txs_per_sender > 0 and max_nonce_ahead >= 0
        self.max_txs = max_txs
        self.max_bytes = max_bytes
        self.max_txs_per_sender = max_txs_per_sender
        self.max_nonce_ahead = max_nonce_ahead
        self._entries: dict[bytes, Entry] = {}  # insertion order = arrival order
        self._by_slot: dict[tuple[bytes, int], bytes] = {}  # (sender, nonce) -> tx id
        # sender -> nonce -> tx id; dict order = the order senders are served in (arrival,
        # and to the back after each block that executed one of theirs)
        self._by_sender: dict[bytes, dict[int, bytes]] = {}
        self._next_nonce: dict[bytes, int] = {}  # committed next nonce of each waiting sender
        self._ready_end: dict[bytes, int] = {}  # first missing nonce from the next one
        self.ready_count = 0  # waiting transactions that can execute now (in flight included)
        # tx ids ordered by when they were last forwarded, for cheap re-forwarding
        self._forward_order: dict[bytes, None] = {}
        self.total_bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, tx_id: object) -> bool:
        return tx_id in self._entries

    def get(self, tx_id: bytes) -> Transaction | None:
        entry = self._entries.get(tx_id)
        return None if entry is None else entry.tx

    def next_nonce(self, sender: bytes) -> int | None:
        """The committed next nonce of a sender with waiting transactions (None: no such)."""
        return self._next_nonce.get(sender)

    def precheck(self, tx: Transaction, tx_id: bytes, size_bytes: int,
                 next_nonce: int | None = None) -> str | None:
        """The reason ``tx`` cannot be added (cheap; run before verifying its signature).
        ``next_nonce``: the sender's in the committed state, when the pool does not know it."""
        if tx_id in self._entries:
            return "duplicate"
        if (tx.sender, tx.nonce) in self._by_slot:
            return "nonce_taken"
        known = self._next_nonce.get(tx.sender, next_nonce)
        if known is not None and tx.nonce > known + self.max_nonce_ahead:
            return "nonce_too_high"
        if len(self._by_sender.get(tx.sender, ())) >= self.max_txs_per_sender:
            return "sender_quota"
        if len(self._entries) >= self.max_txs or self.total_bytes + size_bytes > self.max_bytes:
            return "mempool_full"
        return None

    def add(self, tx: Transaction, tx_id: bytes, size_bytes: int, forwarded_tick: int = -1,
            next_nonce: int = 0) -> str:
        """"ok" or the reason the transaction was refused. ``next_nonce``: the sender's in
        the committed state (ignored when the pool already holds the sender's)."""
        reason = self.precheck(tx, tx_id, size_bytes, next_nonce)
        if reason is not None:
            return reason
        sender = tx.sender
        self._entries[tx_id] = Entry(tx, tx_id, size_bytes, forwarded_tick)
        self._by_slot[(sender, tx.nonce)] = tx_id
        if sender not in self._by_sender:
            self._next_nonce[sender] = next_nonce
            self._ready_end[sender] = next_nonce
        self._by_sender.setdefault(sender, {})[tx.nonce] = tx_id
        self._forward_order[tx_id] = None
        self.total_bytes += size_bytes
        if tx.nonce == self._ready_end[sender]:
            self._extend_ready(sender, self._ready_end[sender])
        return "ok"

    def remove(self, tx_ids: Iterable[bytes]) -> int:
        removed = 0
        for tx_id in tx_ids:
            entry = self._entries.pop(tx_id, None)
            if entry is None:
                continue
            tx = entry.tx
            sender = tx.sender
            del self._by_slot[(sender, tx.nonce)]
            nonces = self._by_sender[sender]
            del nonces[tx.nonce]
            if self._next_nonce[sender] <= tx.nonce < self._ready_end[sender]:
                # Its successors wait for a new transaction with this nonce (or a block).
                self._set_ready_end(sender, tx.nonce)
            if not nonces:
                self._set_ready_end(sender, self._next_nonce[sender])
                del self._by_sender[sender], self._next_nonce[sender], self._ready_end[sender]
            self._forward_order.pop(tx_id, None)
            self.total_bytes -= entry.size_bytes
            removed += 1
        return removed

    def set_next_nonces(self, next_nonces: dict[bytes, int]) -> int:
        """The committed next nonces after a block, for its senders: spent nonces leave the
        pool (returns how many), and each sender's ready run starts again from its next
        nonce."""
        removed = 0
        for sender, next_nonce in next_nonces.items():
            nonces = self._by_sender.get(sender)
            if nonces is None:
                continue
            spent = [tx_id for nonce, tx_id in nonces.items() if nonce < next_nonce]
            removed += self.remove(spent)
            if sender not in self._by_sender:
                continue
            # Everything from the old start to the new one has left; restart the run there.
            self._set_ready_end(sender, self._next_nonce[sender])
            self._next_nonce[sender] = next_nonce
            self._ready_end[sender] = next_nonce
            self._extend_ready(sender, next_nonce)
            # To the back of the line: with more senders waiting than a block holds, those
            # served first must not be served first again in every block.
            self._by_sender[sender] = self._by_sender.pop(sender)
        return removed

    def is_ready(self, tx_id: bytes) -> bool:
        entry = self._entries.get(tx_id)
        if entry is None:
            return False
        return entry.tx.nonce < self._ready_end[entry.tx.sender]

    def _set_ready_end(self, sender: bytes, end: int) -> None:
        self.ready_count += end - self._ready_end[sender]
        self._ready_end[sender] = end
        assert self.ready_count >= 0

    def _extend_ready(self, sender: bytes, start: int) -> None:
        nonces = self._by_sender[sender]
        end = start
        while end in nonces:
            end += 1
        self._set_ready_end(sender, end)

    def of_senders(self, senders: Iterable[bytes]) -> list[Transaction]:
        """Waiting transactions of these senders, by sender then nonce."""
        found = []
        for sender in senders:
            nonces = self._by_sender.get(sender)
            if nonces:
                for nonce in sorted(nonces):
                    found.append(self._entries[nonces[nonce]].tx)
        return found

    def select(self, max_txs: int, max_bytes: int,
               skip: Callable[[bytes], bool] | None = None) -> tuple[Transaction, ...]:
        """A block's worth of ready transactions (see ``select_entries``)."""
        return tuple(entry.tx for entry in self.select_entries(max_txs, max_bytes, skip))

    def select_entries(self, max_txs: int, max_bytes: int,
                       skip: Callable[[bytes], bool] | None = None) -> list[Entry]:
        """Up to the limits: each sender's ready transactions in nonce order past those
        ``skip`` names (in flight, so earlier in the chain), round-robin across senders in
        order of arrival. A sender whose next transaction does not fit is done."""
        runs: list[list[Entry]] = []
        for sender in self._by_sender:
            if len(runs) >= max_txs:
                break  # every further sender would get nothing this block anyway
            run = self._ready_run(sender, max_txs, skip)
            if run:
                run.reverse()  # popped from the end: lowest nonce first
                runs.append(run)
        chosen: list[Entry] = []
        size_bytes = 0
        while runs and len(chosen) < max_txs:
            still_waiting = []
            for run in runs:
                if len(chosen) >= max_txs:
                    break
                entry = run[-1]
                if size_bytes + entry.size_bytes > max_bytes:
                    continue
                chosen.append(entry)
                size_bytes += entry.size_bytes
                run.pop()
                if run:
                    still_waiting.append(run)
            runs = still_waiting
        return chosen

    def _ready_run(self, sender: bytes, limit: int,
                   skip: Callable[[bytes], bool] | None) -> list[Entry]:
        nonces = self._by_sender[sender]
        run: list[Entry] = []
        for nonce in range(self._next_nonce[sender], self._ready_end[sender]):
            if len(run) >= limit:
                break
            tx_id = nonces[nonce]
            if skip is not None and skip(tx_id):
                if run:
                    break  # in flight after one not yet offered: offering it would reorder
                continue
            run.append(self._entries[tx_id])
        return run

    def due_for_forwarding(self, tick: int, interval_ticks: int, max_txs: int,
                           skip: Callable[[bytes], bool] | None = None
                           ) -> list[tuple[Transaction, int]]:
        """Up to ``max_txs`` transactions not forwarded in the last ``interval_ticks`` ticks,
        least recently forwarded first, each with the tick it was last forwarded at (-1:
        never, or not since the primary changed); they count as forwarded at ``tick``."""
        due: list[tuple[Transaction, int]] = []
        for tx_id in list(self._forward_order):
            if len(due) >= max_txs:
                break
            entry = self._entries[tx_id]
            if entry.forwarded_tick >= 0 and tick - entry.forwarded_tick < interval_ticks:
                break  # everything after it was forwarded even more recently
            previous = entry.forwarded_tick
            del self._forward_order[tx_id]
            self._forward_order[tx_id] = None
            entry.forwarded_tick = tick
            if skip is not None and skip(tx_id):
                continue
            due.append((entry.tx, previous))
        return due

    def mark_all_unforwarded(self) -> None:
        """The primary changed: everything is due for forwarding to the new one."""
        for entry in self._entries.values():
            entry.forwarded_tick = -1
        self._forward_order = dict.fromkeys(self._entries)
