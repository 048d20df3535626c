"""The bookkeeping of certified block sync for one replica.

A replica that learns the chain is certified beyond its tip (a stable checkpoint, a commit
certificate, a NEW-VIEW anchor) asks peers for certified blocks, at most
``catch_up_max_outstanding_requests`` requests of ``catch_up_max_blocks`` blocks at a time,
each with a deadline; the peer asked rotates after each request, a timeout and a bad answer,
so one peer that withholds or lies slows catch-up by a timeout, never stops it. Verified
blocks wait in ``buffer`` until they are next in height order. The other direction is bounded
too: each peer's block requests are served from a token bucket (``serve_burst`` requests,
refilled one per tick), enough for an honest peer's outstanding requests plus a probe.

The replica owns the decisions (what is verified, when to deliver); this part owns the state
and its bounds.
"""

from __future__ import annotations

from consensus.params import ConsensusParams
from ledger.types import Block, CommitCertificate


class CatchUp:
    def __init__(self, replica_id: int, n: int, params: ConsensusParams) -> None:
        self.id = replica_id
        self.n = n
        self.params = params
        self.certified_height = 0  # highest height known to hold a commit certificate
        self.requests: dict[int, tuple[int, int, int]] = {}  # from -> (peer, count, deadline)
        self.buffer: dict[int, tuple[Block, CommitCertificate]] = {}
        self.peer = (replica_id + 1) % n
        self.gap_since_tick: int | None = None  # when the chain was first seen ahead
        self.serve_burst = 2 * params.catch_up_max_outstanding_requests + 1
        self._serve_tokens: dict[int, tuple[int, int]] = {}  # peer -> (tokens, at tick)

    def note_certified(self, height: int) -> None:
        self.certified_height = max(self.certified_height, height)

    def rotate_peer(self) -> None:
        if self.n <= 1:
            return
        self.peer = (self.peer + 1) % self.n
        if self.peer == self.id:
            self.peer = (self.peer + 1) % self.n

    def add_request(self, start: int, count: int, tick: int) -> int:
        """Remember a request to the current peer until its deadline; returns that peer and
        moves on to the next."""
        peer = self.peer
        self.requests[start] = (peer, count, tick + self.params.catch_up_timeout_ticks)
        self.rotate_peer()
        return peer

    def expire(self, tick: int) -> int:
        """Forget requests past their deadline (rotating away from a silent current peer);
        returns how many expired."""
        expired = 0
        for start in sorted(self.requests):
            peer, _, deadline = self.requests[start]
            if tick >= deadline:
                del self.requests[start]
                expired += 1
                if peer == self.peer:
                    self.rotate_peer()
        return expired

    def first_missing(self, start: int, target: int) -> int | None:
        """The lowest height in [start, target] that is neither in the buffer nor in an
        outstanding request; None when there is none."""
        height = start
        while height <= target:
            if height in self.buffer:
                height += 1
                continue
            for begin in sorted(self.requests):
                count = self.requests[begin][1]
                if begin <= height < begin + count:
                    height = begin + count
                    break
            else:
                return height
        return None

    def take_request(self, sender: int, first_height: int | None) -> tuple[int, int, int] | None:
        """The outstanding request a response from ``sender`` answers, removed: the one
        starting at ``first_height``, or for an empty response (first_height None) the
        sender's lowest (then the next peer is asked). None when nothing was asked of it."""
        if first_height is not None:
            request = self.requests.get(first_height)
            if request is None or request[0] != sender:
                return None
            del self.requests[first_height]
            return request
        for start in sorted(self.requests):
            if self.requests[start][0] == sender:
                request = self.requests.pop(start)
                self.rotate_peer()
                return request
        return None

    def may_serve(self, sender: int, tick: int) -> bool:
        """Take one token of ``sender``'s serving budget; False when it has none left."""
        tokens, at_tick = self._serve_tokens.get(sender, (self.serve_burst, tick))
        tokens = min(self.serve_burst, tokens + tick - at_tick)
        if tokens < 1:
            self._serve_tokens[sender] = (tokens, tick)
            return False
        self._serve_tokens[sender] = (tokens - 1, tick)
        return True
