"""Consensus parameters: every limit of the PBFT replica, named with its unit, in one place.

``ConsensusParams`` is the genesis document's ``consensus`` section. All replicas of a chain
must use the same values (the pipeline depth and the checkpoint interval change what is
certified), so they live in genesis, not in a node's own config. ``from_plain`` accepts a
partial section (missing fields take the defaults below) and rejects unknown fields and
inconsistent combinations with ``InvalidGenesis``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from ledger.errors import InvalidGenesis
from ledger.types import MAX_BLOCK_BYTES, MAX_BLOCK_TXS

# Largest value accepted for any count or duration parameter; keeps arithmetic bounded.
MAX_PARAM_VALUE = 2**40


@dataclass(frozen=True, slots=True)
class ConsensusParams:
    # Heights in flight: header h carries the state after h - pipeline_depth, and a primary
    # proposes h only once it has executed h - pipeline_depth.
    pipeline_depth: int = 2
    # A checkpoint (signed state root) every this many blocks; 2f+1 of them make it stable
    # and let the log below it be garbage-collected.
    checkpoint_interval: int = 16
    # Heights accepted above the stable checkpoint (high watermark = low + window).
    watermark_window: int = 64
    # Batching: a block is cut when it is full or batch_delay_ticks after txs became available.
    max_block_txs: int = 1000
    max_block_bytes: int = 1024 * 1024  # total encoded size of the block's transactions
    batch_delay_ticks: int = 2
    # On an idle chain the primary proposes an empty block once the last block is this old
    # (block time), so time-driven rules (notice ends, jury deadlines, settlements) still run.
    # 0 turns idle blocks off: blocks are then made only for transactions.
    empty_block_interval_ms: int = 0
    # The nominal tick the runtime drives the replica with; durations below are in ticks.
    tick_ms: int = 10
    # View change: the base timeout doubles per consecutive view change, up to the cap.
    view_change_timeout_ticks: int = 200
    # With work pending and no commit for this many ticks, a replica sends its own messages
    # for the uncommitted heights again and asks a peer for the next block: a vote lost on a
    # lossy link is recovered without a view change. 0 turns retransmission off.
    retransmit_ticks: int = 50
    max_view_change_timeout_ticks: int = 6400
    # A VIEW-CHANGE for a view further ahead than this is dropped (bounds memory and storms).
    max_view_lookahead: int = 64
    # How far a primary's block timestamp may be from the replica's own clock.
    max_clock_skew_ms: int = 5_000
    # Pre-prepares held back until the replica has executed far enough to check them.
    max_pending_preprepares: int = 64
    # Messages for a view the replica has not entered yet, kept to replay when it does.
    max_future_messages: int = 1024
    # Largest consensus message accepted from a peer.
    max_message_bytes: int = 8 * 1024 * 1024
    # Catch-up: blocks per request, requests outstanding at once, ticks before a request is
    # given up and sent to the next peer, and ticks a gap must last before fetching.
    catch_up_max_blocks: int = 32
    catch_up_max_outstanding_requests: int = 2
    catch_up_timeout_ticks: int = 100
    catch_up_delay_ticks: int = 10
    # Transactions whose signatures the node already checked, remembered to skip re-checking.
    verified_tx_cache_size: int = 100_000
    # Transactions per TxForward message.
    max_forward_txs: int = 1000

    def validate(self) -> ConsensusParams:
        """Raise ``InvalidGenesis`` unless the parameters are consistent; return self."""
        for item in fields(self):
            value = getattr(self, item.name)
            if type(value) is not int or not 0 <= value <= MAX_PARAM_VALUE:
                raise InvalidGenesis("bad_consensus_param",
                                     f"consensus.{item.name} must be an integer in [0, {MAX_PARAM_VALUE}]")
        positive = ("pipeline_depth", "checkpoint_interval", "watermark_window", "max_block_txs",
                    "max_block_bytes", "tick_ms", "view_change_timeout_ticks",
                    "max_view_change_timeout_ticks", "max_view_lookahead",
                    "max_pending_preprepares", "max_message_bytes", "catch_up_max_blocks",
                    "catch_up_max_outstanding_requests", "catch_up_timeout_ticks",
                    "verified_tx_cache_size", "max_forward_txs")
        for name in positive:
            if getattr(self, name) < 1:
                raise InvalidGenesis("bad_consensus_param", f"consensus.{name} must be at least 1")
        if self.watermark_window < 2 * self.checkpoint_interval:
            # Below that a replica would stall waiting for a checkpoint it cannot reach.
            raise InvalidGenesis("bad_consensus_param",
                                 "consensus.watermark_window must be >= 2 * checkpoint_interval")
        if self.pipeline_depth >= self.checkpoint_interval:
            raise InvalidGenesis("bad_consensus_param",
                                 "consensus.pipeline_depth must be < checkpoint_interval")
        if self.max_block_txs > MAX_BLOCK_TXS or self.max_block_bytes > MAX_BLOCK_BYTES:
            raise InvalidGenesis("bad_consensus_param",
                                 f"blocks are at most {MAX_BLOCK_TXS} txs and {MAX_BLOCK_BYTES} bytes")
        if self.max_view_change_timeout_ticks < self.view_change_timeout_ticks:
            raise InvalidGenesis("bad_consensus_param",
                                 "consensus.max_view_change_timeout_ticks is below the base timeout")
        # A view change carries up to pipeline_depth blocks; a pre-prepare one block.
        if self.max_message_bytes < (self.pipeline_depth + 1) * self.max_block_bytes:
            raise InvalidGenesis("bad_consensus_param",
                                 "consensus.max_message_bytes must hold pipeline_depth + 1 blocks")
        return self

    def to_plain(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_plain(cls, value: Any) -> ConsensusParams:
        if not isinstance(value, dict):
            raise InvalidGenesis("bad_consensus", "the consensus section must be a map")
        known = {item.name for item in fields(cls)}
        unknown = sorted(str(key) for key in value if key not in known)
        if unknown:
            raise InvalidGenesis("bad_consensus", f"unknown consensus parameters {unknown}")
        for key, item in value.items():
            if type(item) is not int:
                raise InvalidGenesis("bad_consensus_param", f"consensus.{key} must be an integer")
        return cls(**value).validate()

    def view_change_timeout(self, consecutive_view_changes: int) -> int:
        """Ticks to wait for progress after this many view changes in a row without any."""
        shift = min(consecutive_view_changes, 40)
        return min(self.view_change_timeout_ticks << shift, self.max_view_change_timeout_ticks)


DEFAULT_PARAMS = ConsensusParams().validate()
