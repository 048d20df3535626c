"""The mempool: admitted, not yet committed transactions, oldest first, with hard bounds.

Bounded by ``max_txs`` and ``max_bytes`` (encoded transaction sizes); at the bound a new
transaction is refused with ``mempool_full`` (the API answers 429) rather than evicting an
older one, so admission never breaks first-come order. Deduplicated by tx id and by
(sender, nonce): a second transaction for a nonce already waiting is refused
(``nonce_taken``), so a client cannot queue two competing transactions for one slot.
Signatures and the application's checks happen before ``add`` (in NodeCore), exactly once.
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


class Mempool:
    def __init__(self, max_txs: int, max_bytes: int) -> None:
        assert max_txs > 0 and max_bytes > 0
        self.max_txs = max_txs
        self.max_bytes = max_bytes
        self._entries: dict[bytes, Entry] = {}  # insertion order = arrival order
        self._by_slot: dict[tuple[bytes, int], bytes] = {}  # (sender, nonce) -> tx id
        self._by_sender: dict[bytes, dict[int, bytes]] = {}
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

    def precheck(self, tx: Transaction, tx_id: bytes, size_bytes: int) -> str | None:
        """The reason ``tx`` cannot be added (cheap; run before verifying its signature)."""
        if tx_id in self._entries:
            return "duplicate"
        if (tx.sender, tx.nonce) in self._by_slot:
            return "nonce_taken"
        if len(self._entries) >= self.max_txs or self.total_bytes + size_bytes > self.max_bytes:
            return "mempool_full"
        return None

    def add(self, tx: Transaction, tx_id: bytes, size_bytes: int, forwarded_tick: int = -1) -> str:
        """"ok" or the reason the transaction was refused."""
        reason = self.precheck(tx, tx_id, size_bytes)
        if reason is not None:
            return reason
        self._entries[tx_id] = Entry(tx, tx_id, size_bytes, forwarded_tick)
        self._by_slot[(tx.sender, tx.nonce)] = tx_id
        self._by_sender.setdefault(tx.sender, {})[tx.nonce] = tx_id
        self._forward_order[tx_id] = None
        self.total_bytes += size_bytes
        return "ok"

    def remove(self, tx_ids: Iterable[bytes]) -> int:
        removed = 0
        for tx_id in tx_ids:
            entry = self._entries.pop(tx_id, None)
            if entry is None:
                continue
            tx = entry.tx
            del self._by_slot[(tx.sender, tx.nonce)]
            nonces = self._by_sender[tx.sender]
            del nonces[tx.nonce]
            if not nonces:
                del self._by_sender[tx.sender]
            self._forward_order.pop(tx_id, None)
            self.total_bytes -= entry.size_bytes
            removed += 1
        return removed

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
        """Oldest transactions first, up to the limits, leaving out those ``skip`` names."""
        return tuple(entry.tx for entry in self.select_entries(max_txs, max_bytes, skip))

    def select_entries(self, max_txs: int, max_bytes: int,
                       skip: Callable[[bytes], bool] | None = None) -> list[Entry]:
        chosen: list[Entry] = []
        size_bytes = 0
        for tx_id, entry in self._entries.items():
            if len(chosen) >= max_txs:
                break
            if skip is not None and skip(tx_id):
                continue
            if size_bytes + entry.size_bytes > max_bytes:
                break
            chosen.append(entry)
            size_bytes += entry.size_bytes
        return chosen

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
