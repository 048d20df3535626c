"""Checkpoint votes and the stable checkpoint of one replica (PBFT section 4.3).

A checkpoint names a height, the block committed there and the state root after executing
it; 2f+1 matching signed votes make it *stable*: the low watermark moves to it and everything
at or below it may be forgotten, since any replica can prove it decided with the
``CheckpointProof``.

Bounds. Votes are kept per height only inside the watermark window (at most
``watermark_window / checkpoint_interval`` heights, n votes each). A vote above the high
watermark keeps only each replica's highest (at most n entries): enough to learn that 2f+1
replicas are ahead, and one replica voting at ever higher heights replaces its own entry
instead of adding one. When the window moves, far votes inside it join the per-height votes.
"""

from __future__ import annotations

from consensus.messages import CheckpointProof

Checkpoint = tuple[bytes, bytes]  # (block hash, state root)


class Checkpoints:
    def __init__(self, quorum: int, genesis_hash: bytes, app_hash0: bytes) -> None:
        self.quorum = quorum
        self.stable = CheckpointProof(0, genesis_hash, app_hash0, ())
        # height -> (block hash, state root) -> replica -> signature
        self.votes: dict[int, dict[Checkpoint, dict[int, bytes]]] = {}
        self.own: dict[int, Checkpoint] = {}  # this replica's, from its own execution
        self.far: dict[int, tuple[int, Checkpoint, bytes]] = {}  # replica -> its highest far vote

    def vote_refusal(self, replica: int, height: int, checkpoint: Checkpoint,
                     high_watermark: int) -> str | None:
        """Why a vote from ``replica`` adds nothing (None when it is new)."""
        if height <= self.stable.height:
            return "stale"
        far = self.far.get(replica)
        if height > high_watermark and far is not None and far[0] >= height:
            return ("stale" if far[0] > height else
                    "duplicate" if far[1] == checkpoint else "equivocation")
        for voted, signers in self.votes.get(height, {}).items():
            if replica in signers:
                return "duplicate" if voted == checkpoint else "equivocation"
        return None

    def record(self, replica: int, height: int, checkpoint: Checkpoint, signature: bytes,
               high_watermark: int) -> CheckpointProof | None:
        """Count a verified vote; the proof when it completes a quorum above the stable one."""
        if height > high_watermark:
            self.far[replica] = (height, checkpoint, signature)
            signers = {other: vote[2] for other, vote in self.far.items()
                       if vote[:2] == (height, checkpoint)}
        else:
            signers = self.votes.setdefault(height, {}).setdefault(checkpoint, {})
            signers[replica] = signature
        if len(signers) < self.quorum:
            return None
        pairs = tuple(sorted(signers.items())[:self.quorum])
        return CheckpointProof(height, checkpoint[0], checkpoint[1], pairs)

    def make_stable(self, proof: CheckpointProof) -> bool:
        """Adopt ``proof`` if it is above the stable checkpoint (False: nothing changed).
        Asserts that this replica's own state agrees with it where it has executed there."""
        if proof.height <= self.stable.height:
            return False
        own = self.own.get(proof.height)
        assert own is None or own == (proof.block_hash, proof.state_root), (
            f"state after {proof.height} diverges from the stable checkpoint")
        self.stable = proof
        self.forget_below(proof.height)
        return True

    def forget_below(self, height: int) -> None:
        """Drop votes at or below ``height`` (decided) and own checkpoints below it (the
        one at ``height`` still checks this replica's execution against the proof)."""
        for old in [h for h in self.votes if h <= height]:
            del self.votes[old]
        for old in [h for h in self.own if h < height]:
            del self.own[old]

    def take_far_in_window(self, high_watermark: int) -> list[tuple[int, int, Checkpoint, bytes]]:
        """Remove far votes now at or below ``high_watermark``; those still above the stable
        checkpoint are returned as (replica, height, checkpoint, signature) to be recorded."""
        moved = []
        for replica in sorted(self.far):
            height, checkpoint, signature = self.far[replica]
            if height <= high_watermark:
                del self.far[replica]
                if height > self.stable.height:
                    moved.append((replica, height, checkpoint, signature))
        return moved
