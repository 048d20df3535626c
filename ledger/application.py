"""The Application boundary (ABCI-like) between a node and its deterministic application.

The same interface serves the mutual-aid contracts, the small key/value test application,
the real node runtime and the simulator:

    app.check_tx(tx) -> CheckResult                  mempool admission, against committed state
    app.execute_block(header, txs) -> [Receipt]      deterministic; failures are failed receipts
    app.commit() -> bytes                            the state root after the executed block
    app.take_writes() -> [(key, value | None)]       state changes since the last call, sorted,
                                                     for the node to persist in its commit batch
    app.query(path, prove=False) -> (value, proof)

The application reads its durable state through a ``StateReader`` (the node's store).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ledger.types import BlockHeader, Receipt, Transaction


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    code: str = "ok"
    message: str = ""


CHECK_OK = CheckResult(True)


class StateReader(Protocol):
    def get_state(self, key: bytes) -> bytes | None: ...

    def iterate_state(self, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Pairs with start <= key < stop in ascending key order."""
        ...


class QueryError(Exception):
    """A query for something that does not exist (``code`` "not_found") or is malformed."""

    def __init__(self, code: str, message: str = "") -> None:
        self.code = code
        self.message = message or code
        super().__init__(f"{code}: {self.message}")


class Application(Protocol):
    def check_tx(self, tx: Transaction) -> CheckResult: ...

    def execute_block(self, header: BlockHeader, txs: Sequence[Transaction]) -> list[Receipt]: ...

    def commit(self) -> bytes: ...

    def take_writes(self) -> list[tuple[bytes, bytes | None]]: ...

    def query(self, path: str, prove: bool = False) -> tuple[Any, Any]: ...
