"""Findings of a protocol-aware adversary, each as an exact transcript: one byzantine replica
out of four (n=4, f=1) crafts messages that honest code would never send. Every test fails on
the replica before its fix and names the safety or liveness property it protects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from pbft_harness import TEST_PARAMS, TICK_MS, Cluster, make_txs
from test_pbft_validation import deliver, dropped, signer
from test_pbft_viewchange import run_until

from consensus.events import Propose, Receive, Tick
from consensus.messages import (
    BlockRequest,
    BlockResponse,
    Checkpoint,
    CheckpointProof,
    Commit,
    NewView,
    PrePrepare,
    Prepare,
    ViewChange,
    checkpoint_payload,
    decode_message,
    encode_message,
    prepare_payload,
    preprepare_payload,
)
from ledger.types import commit_vote_payload


def _wal_new_view(cluster: Cluster, index: int, view: int) -> NewView:
    for key, value in cluster.nodes[index].wal.items():
        if key.startswith(b"nv/"):
            message = decode_message(value)
            if isinstance(message, NewView) and message.new_view == view:
                return message
    raise AssertionError(f"replica {index} sent no NEW-VIEW for view {view}")


def _resign_new_view(cluster: Cluster, message: NewView, **changes) -> bytes:
    changed = replace(message, **changes)
    unsigned = replace(changed, signature=b"", blocks=())
    signature = signer(cluster, changed.replica).sign("newview", unsigned.signing_payload())
    return encode_message(replace(changed, signature=signature))


def test_a_view_change_copied_into_a_new_view_with_other_content_is_refused():
    """Bug: verified VIEW-CHANGEs were cached under (view, replica, signature), so a NEW-VIEW
    carrying a copy with the original signature but an unsigned "stable checkpoint" at a huge
    height skipped every check; the backup adopted it and garbage-collected its whole log."""
    cluster = Cluster()
    cluster.start()
    cluster.propose(make_txs(0, 1))
    cluster.deliver_all()
    cluster.crash(0)
    # Replica 3 sees every VIEW-CHANGE (and verifies replica 2's) but not the NEW-VIEW.
    cluster.drop = lambda source, target, message: isinstance(message, NewView) and target == 3
    run_until(cluster, lambda: cluster.replica(1).view == 1
               and not cluster.replica(1).view_changing)
    cluster.drop = None
    honest = _wal_new_view(cluster, 1, 1)
    victim = cluster.replica(3)
    assert victim.view_changing and victim.stable.height == 0
    # The byzantine new primary swaps replica 2's checkpoint for a forged one.
    forged = CheckpointProof(400, b"\x08" * 32, b"\x09" * 32, ())
    view_changes = tuple(replace(vc, checkpoint=forged) if vc.replica == 2 else vc
                         for vc in honest.view_changes)
    data = _resign_new_view(cluster, honest, view_changes=view_changes)
    assert dropped(deliver(cluster, 1, data, target=3)) == ["bad_new_view"]
    assert victim.stable.height == 0 and victim.view_changing
    # The honest NEW-VIEW is still accepted afterwards.
    deliver(cluster, 1, encode_message(honest), target=3)
    assert victim.view == 1 and not victim.view_changing


class _Adversary:
    """Routes a cluster's traffic for one transcript: replica ``byzantine`` speaks only
    through what the test injects, messages to ``held`` replicas wait until released."""

    def __init__(self, cluster: Cluster, byzantine: int) -> None:
        self.cluster = cluster
        self.byzantine = byzantine
        self.injected: set[tuple[int, int, bytes]] = set()
        self.captured: list[object] = []  # what the byzantine replica's own code sent
        self.held: list[tuple[int, int, bytes]] = []
        self.holding: set[int] = set()
        self.passes: Callable[[int, int, object], bool] = lambda source, target, message: False
        cluster.drop = self._drop

    def _drop(self, source: int, target: int, message: object) -> bool:
        data = encode_message(message)
        if (source, target, data) in self.injected:
            return False
        if source == self.byzantine:
            self.captured.append(message)
            return True
        if target in self.holding and not self.passes(source, target, message):
            self.held.append((source, target, data))
            return True
        return False

    def inject(self, source: int, targets, data: bytes) -> None:
        for target in targets:
            self.injected.add((source, target, data))
            self.cluster.queue.append((source, target, data))
        self.cluster.deliver_all()

    def release(self, target: int) -> None:
        self.holding.discard(target)
        held = [item for item in self.held if item[1] == target]
        self.held = [item for item in self.held if item[1] != target]
        self.cluster.queue.extend(held)
        self.cluster.deliver_all()

    def sign(self, domain: str, payload) -> bytes:
        return signer(self.cluster, self.byzantine).sign(domain, payload)


def _tick_only(cluster: Cluster, replicas, waiting_txs: int = 1) -> None:
    cluster.now_ms += TICK_MS
    for index in replicas:
        cluster.step(index, Tick(cluster.now_ms, waiting_txs))
    cluster.deliver_all()


def _until(condition, step, max_steps: int = 400) -> None:
    for _ in range(max_steps):
        if condition():
            return
        step()
    raise AssertionError("condition never held")


def test_certificates_between_a_stable_checkpoint_and_a_commit_certificate_survive():
    """Bug: the new view anchored at the highest commit certificate in V, each VIEW-CHANGE
    carried prepared certificates only above its sender's commit certificate, but a replica
    garbage-collected its log up to its stable checkpoint. Honest C's VIEW-CHANGE read
    "stable 4, commit certificate 3, prepared 5": the O set came out empty and the new
    primary proposed a fresh block at height 5, which honest A had already committed
    differently. One byzantine replica suffices: it omits its certificates and withholds
    block 5 from catch-up. The new view must start at the stable checkpoint."""
    A, P, C, B = 0, 1, 2, 3  # A primary of view 0, P primary of view 1, B byzantine
    cluster = Cluster()
    cluster.start()
    for nonce in range(3):
        cluster.propose(make_txs(nonce, 1))
        cluster.deliver_all()
    # Heights 4 and 5: P sees nothing; C prepares both but never sees a commit.
    cluster.drop = lambda source, target, message: target == P or (
        target == C and isinstance(message, Commit))
    cluster.propose(make_txs(3, 1))
    cluster.deliver_all()
    cluster.propose(make_txs(4, 1))
    cluster.deliver_all()
    assert cluster.heights() == [5, 3, 3, 5]
    committed_5 = cluster.nodes[A].chain[4][0].block_hash
    cluster.crash(A)
    adversary = _Adversary(cluster, B)
    adversary.holding = {C}
    p, c = cluster.replica(P), cluster.replica(C)
    _until(lambda: p.view_changing, lambda: _tick_only(cluster, [P]))
    # P probes for the next block; B answers with block 4 only.
    _until(lambda: any(isinstance(m, BlockResponse) for m in adversary.captured),
           lambda: _tick_only(cluster, [P, B], waiting_txs=0))
    response = next(m for m in adversary.captured if isinstance(m, BlockResponse))
    adversary.inject(B, [P], encode_message(BlockResponse(B, tuple(
        entry for entry in response.entries if entry[0].height == 4))))
    assert p.committed_height == 4
    # P's checkpoint at 4 reaches C: stable 4 (A, B, P signed it) while C committed only 3.
    adversary.passes = lambda source, target, message: isinstance(message, Checkpoint)
    adversary.release(C)
    adversary.holding = {C}
    assert c.stable.height == 4 and c.committed_height == 3
    _until(lambda: c.view_changing, lambda: _tick_only(cluster, [C]))
    # B's VIEW-CHANGE omits every certificate it holds.
    certificate_3 = cluster.nodes[B].chain[2][1]
    unsigned = ViewChange(1, B, cluster.replica(B).stable, certificate_3, (), b"", ())
    adversary.inject(B, [P, C], encode_message(
        replace(unsigned, signature=adversary.sign("viewchange", unsigned.signing_payload()))))
    assert p.view == 1 and not p.view_changing
    adversary.passes = lambda source, target, message: False
    adversary.release(C)
    # B votes for whatever P proposes at height 5 in view 1.
    voted: set[bytes] = set()

    def step() -> None:
        cluster.step(P, Propose(make_txs(100 + len(voted), 1)))
        cluster.deliver_all()
        slot = p._slots.get(5)
        if slot is not None and slot.view == 1 and slot.block_hash not in voted:
            voted.add(slot.block_hash)
            for kind, domain, payload in (
                    (Prepare, "prepare", prepare_payload(1, 5, slot.block_hash)),
                    (Commit, "commit", commit_vote_payload(1, 5, slot.block_hash))):
                adversary.inject(B, [P, C], encode_message(
                    kind(1, 5, B, slot.block_hash, adversary.sign(domain, payload))))
        _tick_only(cluster, [P, C])

    _until(lambda: p.committed_height >= 5 and c.committed_height >= 5, step)
    for index in (P, C):
        assert cluster.nodes[index].chain[4][0].block_hash == committed_5
    cluster.assert_consistent()


def _state_after(cluster: Cluster, holder: int, height: int) -> tuple[bytes, bytes]:
    block = cluster.nodes[holder].chain[height - 1][0]
    return block.block_hash, cluster.nodes[holder].app_hashes[height]


def test_a_restarted_primary_below_its_stable_checkpoint_does_not_propose_twice():
    """Bug: a new primary that re-issued heights 3 and 4 in its NEW-VIEW, then learned the
    stable checkpoint 4 while it had committed only 2, restarted and proposed a fresh block at
    height 3 (its proposal height ignored the low watermark and the O-set entries skipped at
    or below it), tripping "a primary never proposes twice at one height in one view" at
    every restart."""
    A, P, C, B = 0, 1, 2, 3  # A (primary of view 0) is the faulty replica here
    cluster = Cluster()
    cluster.start()
    for nonce in range(2):
        cluster.propose(make_txs(nonce, 1))
        cluster.deliver_all()
    # Heights 3 and 4 prepare at C and B only; nobody commits them in view 0.
    cluster.drop = lambda source, target, message: target == P or isinstance(message, Commit)
    cluster.propose(make_txs(2, 1))
    cluster.deliver_all()
    cluster.propose(make_txs(3, 1))
    cluster.deliver_all()
    cluster.crash(A)
    # View 1: P re-issues 3 and 4 but never receives a commit or a block.
    cluster.drop = lambda source, target, message: target == P and isinstance(
        message, (Commit, BlockResponse))
    p = cluster.replica(P)
    _until(lambda: cluster.heights()[C] == 4, lambda: cluster.tick(waiting_txs=1))
    new_view = _wal_new_view(cluster, P, 1)
    assert [entry.height for entry in new_view.preprepares] == [3, 4]
    assert p.committed_height == 2
    # C and B signed checkpoint 4; faulty A signs the same, so it is stable at P.
    block_hash, state_root = _state_after(cluster, C, 4)
    vote = Checkpoint(4, block_hash, state_root, A, signer(cluster, A).sign(
        "checkpoint", checkpoint_payload(4, block_hash, state_root)))
    cluster.step(P, Receive(A, encode_message(vote)))
    assert p.stable.height == 4 and p.committed_height == 2
    cluster.crash(P)
    p = cluster.restart(P)
    cluster.step(P, Propose(make_txs(10, 1)))  # raised AssertionError before the fix
    assert p.stats.get("proposed", 0) == 0  # nothing to propose until it has block 4
    cluster.drop = None
    _until(lambda: p.committed_height >= 5, lambda: (
        cluster.step(P, Propose(make_txs(10, 1))), cluster.tick(waiting_txs=1)))
    cluster.assert_consistent()


def test_far_checkpoint_votes_from_one_replica_stay_bounded():
    """Bug: checkpoint votes far above the window left entries that were never freed (and
    were sorted on every message): 5,000 of them made each message five times slower."""
    cluster = Cluster()
    cluster.start()
    target = cluster.replica(1)
    interval = cluster.params.checkpoint_interval
    root, block_hash = b"\x06" * 32, b"\x05" * 32
    for index in range(1, 2001):
        height = cluster.params.watermark_window + interval * index
        payload = checkpoint_payload(height, block_hash, root)
        cluster.step(1, Receive(2, encode_message(Checkpoint(
            height, block_hash, root, 2, signer(cluster, 2).sign("checkpoint", payload)))))
    assert len(target.checkpoints.votes) <= cluster.params.watermark_window // interval
    assert len(target.checkpoints.far) == 1  # replica 2's highest vote only
    # 2f+1 replicas far ahead at one height still make it stable (the lagging replica learns).
    height = cluster.params.watermark_window + interval * 2000
    for sender in (0, 3):
        payload = checkpoint_payload(height, block_hash, root)
        cluster.step(1, Receive(sender, encode_message(Checkpoint(
            height, block_hash, root, sender, signer(cluster, sender).sign("checkpoint", payload)))))
    assert target.stable.height == height
    assert not target.checkpoints.far


def test_one_replica_flooding_future_views_does_not_crowd_out_the_others():
    """Bug: the buffer of messages for views not entered yet had one cap for all senders, so
    one replica filled it with signed votes for view+64 and the honest next-view votes that
    pull a replica into a view change (PBFT's f+1 rule) were dropped."""
    cluster = Cluster()
    cluster.start()
    target = cluster.replica(0)
    flood = cluster.params.max_future_messages + 10
    for index in range(flood):
        view = 1 + index % cluster.params.max_view_lookahead
        payload = prepare_payload(view, 1, b"\x07" * 32)
        cluster.step(0, Receive(3, encode_message(Prepare(
            view, 1, 3, b"\x07" * 32, signer(cluster, 3).sign("prepare", payload)))))
    assert target.stats["dropped.future_full"] > 0
    for sender in (1, 2):  # two honest replicas (f+1) vote in view 1
        payload = prepare_payload(1, 1, b"\x08" * 32)
        cluster.step(0, Receive(sender, encode_message(Prepare(
            1, 1, sender, b"\x08" * 32, signer(cluster, sender).sign("prepare", payload)))))
    assert target.view == 1 and target.stats.get("view_change_joined") == 1
    assert len(target._future[3]) <= cluster.params.max_future_messages // cluster.n


def test_block_requests_from_one_peer_are_rate_limited():
    """Bug: block requests had no per-peer limit: 1,000 requests got 1,000 answers of up to
    32 blocks each."""
    cluster = Cluster()
    cluster.start()
    served = 0
    for _ in range(1000):
        ready = cluster.replica(1).step(Receive(2, encode_message(BlockRequest(2, 1, 32))))
        served += len(ready.serve)
    burst = 2 * cluster.params.catch_up_max_outstanding_requests + 1
    assert served == burst
    assert cluster.replica(1).stats["dropped.block_request_budget"] == 1000 - burst
    # the budget refills with time: one request a tick
    cluster.tick(ticks=3)
    ready = cluster.replica(1).step(Receive(2, encode_message(BlockRequest(2, 1, 32))))
    assert len(ready.serve) == 1


def test_a_primary_that_equivocates_while_the_chain_commits_is_replaced():
    """Bug: at n=4 an equivocating primary sent block A to two backups and block B to the
    third; A committed (the third fetched it with its certificate and forgot B), nobody
    passed the proof on, and the primary kept its role while signing two proposals per
    height. The replica that accepted the losing block holds the proof: it must spread it."""
    cluster = Cluster()
    cluster.start()
    cluster.tick()
    rival_of: dict[bytes, bytes] = {}

    def equivocate(source: int, target: int, message: object) -> bool:
        if source != 0 or target != 3 or not isinstance(message, PrePrepare):
            return False
        if message.view != 0 or message.block.block_hash in rival_of.values():
            return False
        block = message.block
        rival = replace(block, header=replace(block.header,
                                              timestamp_ms=block.header.timestamp_ms + 1))
        data = encode_message(PrePrepare(0, message.height, 0, rival, signer(cluster, 0).sign(
            "preprepare", preprepare_payload(0, message.height, rival.block_hash))))
        rival_of[block.block_hash] = rival.block_hash
        cluster.queue.append((0, 3, data))
        return True

    cluster.drop = equivocate
    cluster.propose(make_txs(0, 1))
    cluster.deliver_all()
    assert rival_of  # replica 3 was shown another block
    for _ in range(TEST_PARAMS.view_change_timeout_ticks // 2):
        cluster.tick(waiting_txs=0)  # no pending work: only the proof can move anyone
        if all(cluster.replica(index).view >= 1 for index in (1, 2, 3)):
            break
    assert all(cluster.replica(index).view >= 1 for index in (1, 2, 3))
    assert cluster.replica(3).stats["primary_equivocations"] >= 1
    cluster.assert_consistent()


def test_a_backup_restarted_after_accepting_a_new_view_still_votes_in_it():
    """Bug: a backup kept no record of the NEW-VIEW it accepted; restarted, it was in the
    view but had accepted none of its re-issued pre-prepares, and dropped the primary's
    NEW-VIEW as stale, so the view (which needed its vote) committed nothing until the next
    view change."""
    # Retransmission at a quarter of the view-change timeout, as in the default parameters.
    cluster = Cluster(params=replace(TEST_PARAMS, retransmit_ticks=5))
    cluster.start()
    cluster.drop = lambda source, target, message: isinstance(message, Commit)
    cluster.propose(make_txs(0, 1))
    cluster.deliver_all()
    assert cluster.heights() == [0, 0, 0, 0]
    cluster.crash(0)
    # In view 1 only the VIEW-CHANGEs and the NEW-VIEW get through before the crash.
    cluster.drop = lambda source, target, message: isinstance(message, (Commit, Prepare))
    # Replica 3 accepts view 1's NEW-VIEW, then crashes before any commit of that view.
    _until(lambda: cluster.replica(3).view == 1 and not cluster.replica(3).view_changing,
           lambda: cluster.tick(waiting_txs=1))
    cluster.crash(3)
    cluster.drop = None
    cluster.restart(3)
    deadline = cluster.params.view_change_timeout_ticks  # well before view 1 would time out
    for _ in range(deadline):
        if min(cluster.heights()[1:]) >= 1:
            break
        cluster.tick(waiting_txs=1)
    assert cluster.heights()[1:] == [1, 1, 1]
    assert all(cluster.nodes[index].chain[0][1].view == 1 for index in (1, 2, 3))
    cluster.assert_consistent()


def test_a_local_encoding_bug_stops_the_replica_instead_of_blaming_the_peer(monkeypatch):
    """Bug: an EncodeError of the replica's own making while it handled a peer's message was
    counted as that peer's ``dropped.encode_error``; it is a local fault and must stop it."""
    import pytest

    import consensus.replica
    from ledger.errors import EncodeError

    cluster = Cluster()
    cluster.start()
    cluster.tick()
    ready = cluster.replica(0).step(Propose(make_txs(0, 1)))
    preprepare = next(data for _, data in ready.send)

    def broken(message):
        raise EncodeError("float", "floats have no canonical encoding")

    monkeypatch.setattr(consensus.replica, "encode_message", broken)
    with pytest.raises(EncodeError):
        cluster.replica(1).step(Receive(0, preprepare))  # encoding its own PREPARE fails
    assert "dropped.float" not in cluster.replica(1).stats
