"""What a handler knows about where it runs: the block (time, height, hash) and the tx."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BlockEnv:
    chain_id: str
    height: int
    time_ms: int  # the block's timestamp_ms: the only clock a rule ever reads
    block_hash: bytes  # SHA-256 of the header: the only randomness (jury draws)


@dataclass(frozen=True, slots=True)
class TxEnv:
    block: BlockEnv
    tx_id: bytes
    sender: bytes

    @property
    def time_ms(self) -> int:
        return self.block.time_ms
