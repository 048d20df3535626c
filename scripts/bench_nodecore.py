"""CPU per transaction of four NodeCores in one process: no sockets, no HTTP, no event loop.

    .venv/bin/python scripts/bench_nodecore.py [--txs 3000] [--rounds 6] [--txs-per-tick 256]
                      [--consensus batch_delay_ticks=5 ...] [--memory] [--profile FILE]

Four NodeCores over LevelDB stores in a temporary directory (or MemoryStores with --memory)
are wired by a FIFO queue and driven by ticks of 10 ms virtual time; the workload is `huzhu
bench`'s (member.enroll and member.deposit from 32 registrar and 32 treasurer keys, signed
before the clock starts). Each round commits ``--txs`` more transactions on the same chain and
prints the process CPU time per transaction per node (LevelDB's own threads included), so a
cost that grows with the chain shows as rounds that get slower. ``--txs-per-tick`` sets the
offered load per 10 ms tick: the default saturates the nodes (big blocks); a few per tick
shows the cost of many small blocks. ``--profile`` writes cProfile
stats of the last round. This is the node's core without the runtime around it: compare with
``huzhu bench``'s ``node_cpu_ms_per_tx`` (all four nodes) to see what the runtime adds.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import tempfile
import time
from pathlib import Path

from client.bench import Consortium, build_plans
from contracts.genesis import default_app_genesis
from ledger.keys import KeyPair
from node.core import NodeCore
from node.genesis import Genesis
from node.storage import LevelDBStore, MemoryStore

GENESIS_TIME_MS = 1_700_000_000_000
TICK_MS = 10
NODES = 4
CLIENTS = 32
DEFAULT_TXS_PER_TICK = 256


def key(label: bytes) -> KeyPair:
    return KeyPair.from_seed(hashlib.sha256(label).digest())


class Cluster:
    def __init__(self, directory: Path | None, consensus: dict | None = None) -> None:
        validators = [key(b"validator %d" % index) for index in range(NODES)]
        self.registrars = tuple(key(b"registrar %d" % index) for index in range(CLIENTS))
        self.treasurers = tuple(key(b"treasurer %d" % index) for index in range(CLIENTS))
        orgs = [{"name": f"org{index}", "gov_key": key(b"org %d" % index).public_key.hex()}
                for index in range(NODES)]
        app = default_app_genesis(
            orgs, {"registrar": [k.public_key.hex() for k in self.registrars],
                   "treasurer": [k.public_key.hex() for k in self.treasurers]},
            genesis_time_ms=GENESIS_TIME_MS)
        genesis = Genesis.build("huzhu-local", [k.public_key for k in validators],
                                GENESIS_TIME_MS, app, consensus)
        stores = [MemoryStore() if directory is None else LevelDBStore(directory / f"node{i}")
                  for i in range(NODES)]
        self.cores = [NodeCore(genesis, i, validators[i], stores[i]) for i in range(NODES)]
        self.queue: list[tuple[int, int, bytes]] = []
        self.committed = [0] * NODES
        self.now_ms = GENESIS_TIME_MS + 1000
        for index, core in enumerate(self.cores):
            self.route(index, core.start(self.now_ms))
        self.nonces = {k.public_key: 0 for k in (*self.registrars, *self.treasurers)}

    def route(self, source: int, out) -> None:
        for destination, data in out.send:
            targets = range(NODES) if destination is None else (destination,)
            self.queue.extend((source, target, data) for target in targets if target != source)
        for block in out.committed:
            self.committed[source] += len(block.tx_ids)

    def deliver(self) -> None:
        while self.queue:
            source, target, data = self.queue.pop(0)
            self.route(target, self.cores[target].on_message(source, data))

    def tick(self) -> None:
        self.now_ms += TICK_MS
        for index, core in enumerate(self.cores):
            self.route(index, core.on_tick(self.now_ms))
        self.deliver()

    def submit(self, node: int, raw: bytes) -> None:
        result, out = self.cores[node].submit_tx(raw, self.now_ms)
        assert result.ok, result
        self.route(node, out)

    def wait_committed(self, before: list[int], count: int) -> None:
        while any(done - start < count for done, start in zip(self.committed, before)):
            self.tick()

    def round(self, txs: int, tag: bytes, per_tick: int = DEFAULT_TXS_PER_TICK) -> None:
        consortium = Consortium("huzhu-local", GENESIS_TIME_MS, ("",) * NODES,
                                self.registrars, self.treasurers)
        plans = build_plans(consortium, txs, CLIENTS, self.nonces, tag)
        before = list(self.committed)
        for plan in plans:  # untimed: the members that deposits go to
            self.submit(plan.node, plan.warmup[0][1])
        self.deliver()
        self.wait_committed(before, len(plans))
        start = time.process_time()
        before = list(self.committed)
        # Round-robin over the clients, each in its own nonce order.
        order = []
        iterators = [iter(plan.timed) for plan in plans]
        while len(order) < txs:
            for plan, iterator in zip(plans, iterators):
                item = next(iterator, None)
                if item is not None:
                    order.append((plan.node, item[1]))
        for offset in range(0, txs, per_tick):
            for node, raw in order[offset:offset + per_tick]:
                self.submit(node, raw)
            self.deliver()
            self.tick()
        self.wait_committed(before, txs)
        self.cpu_s = time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--txs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--txs-per-tick", type=int, default=DEFAULT_TXS_PER_TICK)
    parser.add_argument("--memory", action="store_true", help="MemoryStores, not LevelDB")
    parser.add_argument("--consensus", action="append", default=[], metavar="NAME=VALUE",
                        help="a genesis consensus parameter (repeatable)")
    parser.add_argument("--profile", help="write cProfile stats of the last round here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="huzhu-nodecore-") as tmp:
        consensus = {name: int(value) for name, value in
                     (item.split("=", 1) for item in args.consensus)}
        cluster = Cluster(None if args.memory else Path(tmp), consensus or None)
        for number in range(args.rounds):
            last = number == args.rounds - 1
            if args.profile and last:
                profiler = cProfile.Profile()
                profiler.runcall(cluster.round, args.txs, b"round %d" % number,
                                 args.txs_per_tick)
                profiler.dump_stats(args.profile)
            else:
                cluster.round(args.txs, b"round %d" % number, args.txs_per_tick)
            heights = [core.status()["height"] for core in cluster.cores]
            print(f"round {number}: {args.txs} txs, {cluster.cpu_s:.2f} s CPU, "
                  f"{cluster.cpu_s / args.txs / NODES * 1e6:.0f} us per tx per node "
                  f"(height {heights[0]})", flush=True)


if __name__ == "__main__":
    main()
