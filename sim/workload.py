"""The client workload: closed-loop clients submitting signed transactions.

Each client has its own key (derived from the run's seed), one transaction outstanding at a
time, and strictly increasing nonces, as a real wallet would: it submits to a random running
honest node, waits for the transaction to commit, thinks for an exponentially distributed
time, and sends the next. A transaction not committed within ``timeout_ms`` is resubmitted
(same bytes, same id) to another node, so a crashed or partitioned node only delays it.
All draws come from the ``workload`` stream.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ledger.keys import KeyPair
from sim.rng import derive_bytes
from sim.runtime import ms_to_us, us_to_ms

if TYPE_CHECKING:
    from sim.scenarios import WorkloadSpec
    from sim.simulation import Simulation


@dataclass(slots=True)
class _Client:
    index: int
    key: KeyPair
    nonce: int = 0
    raw: bytes | None = None
    tx_id: bytes | None = None
    attempts: int = 0


class Workload:
    def __init__(self, sim: "Simulation", spec: "WorkloadSpec", rng: random.Random) -> None:
        self.sim = sim
        self.spec = spec
        self.rng = rng
        self.clients = [_Client(i, KeyPair.from_seed(derive_bytes(sim.seed, f"client/{i}")))
                        for i in range(spec.clients)]
        self._waiting: dict[bytes, _Client] = {}
        self.submitted = 0
        self.committed = 0
        self.rejected = 0

    def _stopped(self) -> bool:
        stop = self.spec.stop_ms
        return stop is not None and us_to_ms(self.sim.loop.now_us) >= stop

    def start(self) -> None:
        for client in self.clients:
            delay_ms = self.spec.start_ms + self.rng.randrange(max(1, self.spec.think_ms) + 1)
            self.sim.loop.schedule_at(ms_to_us(delay_ms), lambda c=client: self._next(c))

    def _next(self, client: _Client) -> None:
        if self._stopped():
            return
        raw = self.sim.backend.make_tx(self.sim.genesis, client.key, client.nonce, self.rng)
        if raw is None:
            return
        client.raw = raw
        client.tx_id = self.sim.backend.tx_id(raw)
        client.attempts = 0
        self._waiting[client.tx_id] = client
        self._submit(client)

    def _submit(self, client: _Client) -> None:
        if client.raw is None or self.sim.halted:
            return
        candidates = [r for r in self.sim.honest if self.sim.honest_endpoint(r).running]
        if not candidates:
            self._retry_later(client)
            return
        replica = candidates[self.rng.randrange(len(candidates))]
        endpoint = self.sim.honest_endpoint(replica)
        client.attempts += 1
        self.submitted += 1
        result, out = endpoint.core.submit_tx(client.raw, self.sim.node_now_ms(endpoint))
        accepted = getattr(result, "ok", result)
        if not accepted:
            self.rejected += 1
        self.sim.trace.record(self.sim.loop.now_us, "submit", node=replica, client=client.index,
                              nonce=client.nonce, tx=client.tx_id.hex()[:16],
                              accepted=bool(accepted), attempt=client.attempts)
        self.sim._handle_output(endpoint, out)
        self._retry_later(client)

    def _retry_later(self, client: _Client) -> None:
        tx_id = client.tx_id

        def check() -> None:
            if client.tx_id == tx_id and tx_id in self._waiting and not self._stopped():
                self._submit(client)
        self.sim.loop.schedule_in(ms_to_us(self.spec.timeout_ms), check)

    def on_committed(self, tx_ids) -> None:
        for tx_id in tx_ids:
            client = self._waiting.pop(tx_id, None)
            if client is None:
                continue
            self.committed += 1
            client.nonce += 1
            client.raw = None
            client.tx_id = None
            think_ms = int(self.rng.expovariate(1.0 / self.spec.think_ms)) if self.spec.think_ms else 0
            self.sim.loop.schedule_in(ms_to_us(think_ms), lambda c=client: self._next(c))
