"""KVApp: a small deterministic key/value application behind the ``Application`` boundary.

It exists to test consensus and the node without the mutual-aid contracts, and to run a
consortium when those are not wanted (genesis ``app: {"name": "kv"}``). Transactions:

    kv.set     {"key": str, "value": bytes}
    kv.delete  {"key": str}

Each sender has a nonce; a transaction executes only with exactly the sender's next nonce
(the nonce is spent whether or not the body is valid, so nothing replays).

The state root is an RFC 6962 Merkle root over every (key, value) pair in key order, kept as
a full in-memory copy and rehashed on each ``commit``: that is O(state) per block, fine for
tests and small demos, and the reason this application is not the production one (the plan's
state tree updates incrementally). Signatures are checked by the node and consensus, not here.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from ledger import codec, merkle
from ledger.application import CHECK_OK, CheckResult, QueryError, StateReader
from ledger.errors import InvalidGenesis
from ledger.types import OK, BlockHeader, Receipt, Transaction

KV_PREFIX = b"kv/"
NONCE_PREFIX = b"nonce/"
KINDS = ("kv.set", "kv.delete")
MAX_KEY_CHARS = 256
DEFAULT_MAX_VALUE_BYTES = 4096
MAX_NONCE_AHEAD = 1024  # how far past the next nonce check_tx lets a client queue
_GENESIS_FIELDS = {"name", "max_value_bytes"}
_U64 = struct.Struct(">Q")


def validate_kv_genesis(app: Any) -> None:
    if not isinstance(app, dict) or app.get("name") != "kv" or not set(app) <= _GENESIS_FIELDS:
        raise InvalidGenesis("bad_app", f"the kv app section has fields {sorted(_GENESIS_FIELDS)}")
    limit = app.get("max_value_bytes", DEFAULT_MAX_VALUE_BYTES)
    if type(limit) is not int or not 0 < limit <= 65536:
        raise InvalidGenesis("bad_app", "kv max_value_bytes must be an integer in [1, 65536]")


def _prefix_end(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


class KVApp:
    def __init__(self, genesis_app: dict, chain_id: str, state: StateReader) -> None:
        validate_kv_genesis(genesis_app)
        self.chain_id = chain_id
        self.max_value_bytes = genesis_app.get("max_value_bytes", DEFAULT_MAX_VALUE_BYTES)
        self._reader = state
        # The full state (committed and executed), for the root; and the writes not yet taken.
        self._entries: dict[bytes, bytes] = {}
        for prefix in (KV_PREFIX, NONCE_PREFIX):
            for key, value in state.iterate_state(prefix, _prefix_end(prefix)):
                self._entries[key] = value
        self._writes: dict[bytes, bytes | None] = {}
        self._committed: dict[bytes, bytes] = dict(self._entries)  # state as of commit()
        self._sorted_keys: list[bytes] = sorted(self._entries)
        self._root = self._compute_root()

    # --- helpers -----------------------------------------------------------------------------

    def _nonce(self, sender: bytes, entries: dict[bytes, bytes]) -> int:
        raw = entries.get(NONCE_PREFIX + sender)
        return 0 if raw is None else _U64.unpack(raw)[0]

    def _set(self, key: bytes, value: bytes | None) -> None:
        if value is None:
            self._entries.pop(key, None)
        else:
            self._entries[key] = value
        self._writes[key] = value

    def _check_body(self, tx: Transaction) -> str | None:
        if tx.kind not in KINDS:
            return "unknown_kind"
        body = tx.body
        names = {"key", "value"} if tx.kind == "kv.set" else {"key"}
        if set(body) != names:
            return "bad_body"
        key = body["key"]
        if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_CHARS:
            return "bad_key"
        if tx.kind == "kv.set":
            value = body["value"]
            if not isinstance(value, bytes) or len(value) > self.max_value_bytes:
                return "bad_value"
        return None

    def _leaves(self) -> list[bytes]:
        return [codec.encode([key, self._committed[key]]) for key in self._sorted_keys]

    def _compute_root(self) -> bytes:
        return merkle.root(self._leaves())

    # --- Application -------------------------------------------------------------------------

    def check_tx(self, tx: Transaction) -> CheckResult:
        if tx.chain_id != self.chain_id:
            return CheckResult(False, "wrong_chain", "transaction for another chain")
        problem = self._check_body(tx)
        if problem is not None:
            return CheckResult(False, problem, f"{tx.kind}: {problem.replace('_', ' ')}")
        next_nonce = self._nonce(tx.sender, self._committed)
        if tx.nonce < next_nonce:
            return CheckResult(False, "nonce_too_low", f"next nonce is {next_nonce}")
        if tx.nonce > next_nonce + MAX_NONCE_AHEAD:
            return CheckResult(False, "nonce_too_high", f"next nonce is {next_nonce}")
        return CHECK_OK

    def execute_block(self, header: BlockHeader, txs: Sequence[Transaction]) -> list[Receipt]:
        receipts = []
        for tx in txs:
            tx_id = tx.tx_id
            if tx.chain_id != self.chain_id:
                receipts.append(Receipt(tx_id, "wrong_chain"))
                continue
            next_nonce = self._nonce(tx.sender, self._entries)
            if tx.nonce != next_nonce:
                receipts.append(Receipt(tx_id, "bad_nonce", {"expected": next_nonce}))
                continue
            self._set(NONCE_PREFIX + tx.sender, _U64.pack(next_nonce + 1))
            problem = self._check_body(tx)
            if problem is not None:
                receipts.append(Receipt(tx_id, problem))
                continue
            key = KV_PREFIX + tx.body["key"].encode()
            if tx.kind == "kv.set":
                self._set(key, tx.body["value"])
            else:
                self._set(key, None)
            receipts.append(Receipt(tx_id, OK))
        return receipts

    def commit(self) -> bytes:
        self._committed = dict(self._entries)
        self._sorted_keys = sorted(self._committed)
        self._root = self._compute_root()
        return self._root

    def take_writes(self) -> list[tuple[bytes, bytes | None]]:
        writes = sorted(self._writes.items())
        self._writes = {}
        return writes

    def query(self, path: str, prove: bool = False) -> tuple[Any, Any]:
        """``kv/<key>`` -> value bytes; ``nonce/<sender hex>`` -> next nonce."""
        if not isinstance(path, str):
            raise QueryError("bad_path", "path must be a string")
        if path.startswith("kv/"):
            key = KV_PREFIX + path[3:].encode()
        elif path.startswith("nonce/"):
            try:
                sender = bytes.fromhex(path[6:])
            except ValueError:
                raise QueryError("bad_path", "nonce/<sender as hex>") from None
            key = NONCE_PREFIX + sender
        else:
            raise QueryError("bad_path", "paths are kv/<key> or nonce/<sender hex>")
        raw = self._committed.get(key)
        if raw is None:
            if key.startswith(NONCE_PREFIX):
                value: Any = 0
            else:
                raise QueryError("not_found", f"{path} is not set")
        else:
            value = raw if key.startswith(KV_PREFIX) else _U64.unpack(raw)[0]
        if not prove or raw is None:
            return value, None
        index = self._sorted_keys.index(key)
        leaves = self._leaves()
        proof = merkle.inclusion_proof(leaves, index)
        return value, {"root": self._root.hex(), "leaf": leaves[index].hex(), "index": index,
                       "size": len(leaves), "proof": [item.hex() for item in proof]}
