"""Four (or n) NodeCores over MemoryStores, wired by a deterministic FIFO router.

Each ``Output.send`` is queued in order and delivered one message at a time; time moves only
when a test calls ``tick``. Used by the NodeCore tests; nothing here knows consensus internals.
"""

from __future__ import annotations

from ledger.keys import KeyPair
from ledger.types import Transaction
from node.core import NodeCore, NodeParams, Output
from node.genesis import Genesis
from node.storage import MemoryStore

CHAIN_ID = "node-test"
GENESIS_TIME_MS = 1_700_000_000_000
TICK_MS = 10
FAST_CONSENSUS = {"checkpoint_interval": 4, "watermark_window": 16, "batch_delay_ticks": 1,
                  "view_change_timeout_ticks": 30, "max_view_change_timeout_ticks": 240,
                  "catch_up_delay_ticks": 3, "catch_up_timeout_ticks": 10}


def validator_keys(n: int) -> list[KeyPair]:
    return [KeyPair.from_seed(bytes([0x40 + index]) * 32) for index in range(n)]


def client_key(index: int = 0) -> KeyPair:
    return KeyPair.from_seed(bytes([0x90 + index]) * 32)


def kv_tx(client: KeyPair, nonce: int, key: str, value: bytes = b"v",
          chain_id: str = CHAIN_ID) -> Transaction:
    return Transaction.create(client, chain_id, nonce, "kv.set", {"key": key, "value": value})


class NodeCluster:
    def __init__(self, n: int = 4, consensus: dict | None = None,
                 params: NodeParams = NodeParams(), app: dict | None = None) -> None:
        self.n = n
        self.keys = validator_keys(n)
        self.genesis = Genesis.build(CHAIN_ID, [key.public_key for key in self.keys],
                                     GENESIS_TIME_MS, app or {"name": "kv"},
                                     dict(FAST_CONSENSUS, **(consensus or {})))
        self.params = params
        self.stores = [MemoryStore() for _ in range(n)]
        self.cores: list[NodeCore | None] = [None] * n
        self.queue: list[tuple[int, int, bytes]] = []
        self.committed: list[list] = [[] for _ in range(n)]
        self.now_ms = GENESIS_TIME_MS
        self.isolated: set[int] = set()
        for index in range(n):
            self.boot(index)

    def boot(self, index: int) -> NodeCore:
        core = NodeCore(self.genesis, index, self.keys[index], self.stores[index],
                        params=self.params)
        self.cores[index] = core
        self.route(index, core.start(self.now_ms))
        return core

    def crash(self, index: int) -> None:
        self.cores[index] = None
        self.stores[index] = self.stores[index].reopen()

    def core(self, index: int) -> NodeCore:
        core = self.cores[index]
        assert core is not None
        return core

    def route(self, source: int, out: Output) -> None:
        for destination, data in out.send:
            targets = [j for j in range(self.n) if j != source] if destination is None else [destination]
            for target in targets:
                self.queue.append((source, target, data))
        self.committed[source].extend(out.committed)

    def deliver_all(self, limit: int = 200_000) -> None:
        delivered = 0
        while self.queue and delivered < limit:
            source, target, data = self.queue.pop(0)
            if self.cores[target] is None or self.cores[source] is None:
                continue
            if source in self.isolated or target in self.isolated:
                continue
            self.route(target, self.core(target).on_message(source, data))
            delivered += 1

    def tick(self, ticks: int = 1) -> None:
        for _ in range(ticks):
            self.now_ms += TICK_MS
            for index in range(self.n):
                if self.cores[index] is not None:
                    self.route(index, self.core(index).on_tick(self.now_ms))
            self.deliver_all()

    def submit(self, index: int, tx: Transaction):
        result, out = self.core(index).submit_tx(tx.encode(), self.now_ms)
        self.route(index, out)
        return result

    def heights(self) -> list[int]:
        return [store.latest_height() for store in self.stores]
