"""A tiny fake consensus for testing the simulator's own machinery (not a BFT protocol).

Replica 0 leads forever. Each tick it proposes the next height with its pending transactions
and its clock's timestamp, signed; a replica commits a proposal when it is the next height and
the signature checks, and writes the height and hash to its store, so a restart resumes from
there. A replica that sees a gap asks the leader for the missing proposals. With twins of the
leader the fake *does* fork -- there are no votes -- which is what the checker tests want.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ledger import codec
from ledger.hashing import sha256
from ledger.keys import KeyPair, signing_message, verify_message
from node.storage.memory import MemoryStore
from sim.backend import CryptoMeter, MessageInfo, Vote

FAKE_DOMAIN = "fake"
MAX_SYNC_BLOCKS = 64


@dataclass
class FakeOutput:
    send: list = field(default_factory=list)
    committed: list = field(default_factory=list)


@dataclass
class FakeGenesis:
    chain_id: str
    validators: list[bytes]
    genesis_time_ms: int


class FakeCore:
    def __init__(self, genesis: FakeGenesis, replica_id: int, key: KeyPair, store: MemoryStore,
                 meter: CryptoMeter) -> None:
        self.genesis = genesis
        self.replica = replica_id
        self.key = key
        self.store = store
        self.meter = meter
        self.height = 0
        self.blocks: dict[int, bytes] = {}  # height -> encoded proposal (the leader keeps all)
        self.pending: list[bytes] = []
        self.bad_messages = 0

    # signing with the meter, as the real Signer does
    def _sign(self, payload: dict) -> bytes:
        message = signing_message(FAKE_DOMAIN, self.genesis.chain_id, payload)
        signature = self.key.sign_message(message)
        self.meter.signs += 1
        self.meter.table.add(self.key.public_key, message, signature)
        return signature

    def _verify(self, replica: int, payload: dict, signature: bytes) -> bool:
        message = signing_message(FAKE_DOMAIN, self.genesis.chain_id, payload)
        self.meter.verifies += 1
        public_key = self.genesis.validators[replica]
        if self.meter.cost.real_verify:
            return verify_message(public_key, message, signature)
        return self.meter.table.check(public_key, message, signature)

    def start(self, now_ms: int) -> FakeOutput:
        raw = self.store.get_meta("fake_height")
        self.height = int.from_bytes(raw, "big") if raw else 0
        return FakeOutput()

    def on_tick(self, now_ms: int) -> FakeOutput:
        out = FakeOutput()
        if self.replica != 0:
            return out
        height = self.height + 1
        payload = {"h": height, "r": 0, "time": now_ms, "txs": self.pending[:50]}
        self.pending = self.pending[50:]
        data = codec.encode({"p": payload, "s": self._sign(payload), "t": "propose"})
        self.blocks[height] = data
        out.send.append((None, data))
        self._commit(height, payload, out)
        return out

    def _commit(self, height: int, payload: dict, out: FakeOutput) -> None:
        digest = sha256(codec.encode(payload))
        self.height = height
        with self.store.batch() as batch:
            batch.put_meta("fake_height", height.to_bytes(8, "big"))
            batch.put_state(b"block/" + height.to_bytes(8, "big"), digest)
        out.committed.append((height, digest, [sha256(tx) for tx in payload["txs"]]))

    def on_message(self, sender: int, data: bytes) -> FakeOutput:
        out = FakeOutput()
        try:
            message = codec.decode(data)
            kind = message["t"]
        except Exception:
            self.bad_messages += 1
            return out
        if kind == "propose":
            payload = message.get("p")
            if not isinstance(payload, dict) or payload.get("r") != 0 or sender != 0:
                self.bad_messages += 1
                return out
            if not self._verify(0, payload, message.get("s", b"")):
                self.bad_messages += 1
                return out
            height = payload.get("h")
            if height == self.height + 1:
                self._commit(height, payload, out)
            elif isinstance(height, int) and height > self.height + 1:
                out.send.append((0, codec.encode({"from": self.height + 1, "t": "sync"})))
        elif kind == "sync" and self.replica == 0:
            start = message.get("from", 1)
            for height in range(start, min(self.height, start + MAX_SYNC_BLOCKS - 1) + 1):
                if height in self.blocks:
                    out.send.append((sender, self.blocks[height]))
        elif kind == "tx":
            self.pending.append(message["raw"])
        else:
            self.bad_messages += 1
        return out

    def submit_tx(self, raw: bytes, now_ms: int) -> tuple[bool, FakeOutput]:
        out = FakeOutput()
        if self.replica == 0:
            self.pending.append(raw)
        else:
            out.send.append((0, codec.encode({"raw": raw, "t": "tx"})))
        return True, out

    def status(self) -> dict:
        return {"node_id": self.replica, "height": self.height, "view": 0}


class FakeBackend:
    name = "fake"

    def __init__(self) -> None:
        self.cores: list[FakeCore] = []

    def make_genesis(self, chain_id, validator_keys, genesis_time_ms, app, client_keys, consensus):
        return FakeGenesis(chain_id, [k.public_key for k in validator_keys], genesis_time_ms)

    def genesis_hash(self, genesis) -> bytes:
        return sha256(codec.encode(genesis.validators))

    def make_store(self):
        return MemoryStore()

    def reopen_store(self, store):
        return store.reopen()

    def make_core(self, genesis, replica_id, key, store, meter):
        core = FakeCore(genesis, replica_id, key, store, meter)
        self.cores.append(core)
        return core

    def describe(self, data: bytes) -> MessageInfo:
        message = codec.decode(data)
        if message.get("t") == "propose":
            payload = message["p"]
            digest = sha256(codec.encode(payload))
            return MessageInfo("propose", 0, payload["h"],
                               (Vote(payload["r"], "pre_prepare", 0, payload["h"], digest),))
        return MessageInfo(str(message.get("t")))

    def forge(self, data: bytes, rng: random.Random, forger: KeyPair, replica_count: int,
              chain_id: str) -> bytes | None:
        try:
            message = codec.decode(data)
        except Exception:
            return None
        if message.get("t") != "propose":
            return None
        message["s"] = bytes(rng.randrange(256) for _ in range(64))
        return codec.encode(message)

    def conflicting_proposal(self, data, rng, key, chain_id):
        message = codec.decode(data)
        if message.get("t") != "propose":
            return None
        payload = dict(message["p"], time=message["p"]["time"] + 1)
        signature = key.sign(FAKE_DOMAIN, chain_id, payload)
        return codec.encode({"p": payload, "s": signature, "t": "propose"})

    def make_tx(self, genesis, client: KeyPair, nonce: int, rng: random.Random) -> bytes | None:
        return codec.encode({"nonce": nonce, "sender": client.public_key,
                             "value": rng.randrange(1 << 30)})

    def tx_id(self, raw: bytes) -> bytes:
        return sha256(raw)

    def state_root(self, core, store, commit) -> bytes | None:
        return store.get_state(b"block/" + commit[0].to_bytes(8, "big"))

    def workload_app(self, requested: str) -> str:
        return "fake"
