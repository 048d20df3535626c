"""View change: a silent primary is replaced, prepared blocks survive, timers double and are
capped, one replica cannot start a storm, f+1 replicas pull the rest along."""

from __future__ import annotations

from pbft_harness import TEST_PARAMS, Cluster, make_txs

from consensus.events import Propose
from consensus.messages import Commit, NewView, PrePrepare


def run_until(cluster: Cluster, condition, max_ticks: int = 400, waiting_txs: int = 1) -> int:
    for tick in range(max_ticks):
        if condition():
            return tick
        cluster.tick(waiting_txs=waiting_txs)
    raise AssertionError("condition never held")


def in_view(cluster: Cluster, view: int, replicas) -> bool:
    return all(cluster.replica(i).view == view and not cluster.replica(i).view_changing
               for i in replicas)


def test_silent_primary_is_replaced_and_commits_resume():
    cluster = Cluster()
    cluster.start()
    cluster.propose(make_txs(0, 1))
    cluster.deliver_all()
    assert cluster.heights() == [1, 1, 1, 1]
    cluster.crash(0)
    ticks = run_until(cluster, lambda: in_view(cluster, 1, [1, 2, 3]))
    # nobody moves before the base timeout has passed
    assert ticks >= TEST_PARAMS.view_change_timeout_ticks
    assert cluster.replica(1).primary == 1
    kinds = [kind for _, _, kind in cluster.transcript]
    assert "view_change" in kinds and "new_view" in kinds
    cluster.step(1, Propose(make_txs(1, 2)))
    cluster.deliver_all()
    assert cluster.heights()[1:] == [2, 2, 2]
    block, cert = cluster.nodes[3].chain[1]
    assert block.header.view == 1 and block.header.proposer == 1 and cert.view == 1
    cluster.assert_consistent()
    # a view that commits ends the run of view changes
    assert cluster.replica(2).consecutive_view_changes == 0


def test_prepared_but_uncommitted_block_survives_into_the_new_view():
    cluster = Cluster()
    cluster.start()
    cluster.drop = lambda source, target, message: isinstance(message, Commit)
    txs = make_txs(0, 3)
    cluster.propose(txs)
    cluster.deliver_all()
    assert cluster.heights() == [0, 0, 0, 0]
    prepared = cluster.replica(2)._slots[1].cert
    assert prepared is not None and prepared.view == 0
    cluster.drop = None
    cluster.crash(0)
    run_until(cluster, lambda: cluster.heights()[1:] == [1, 1, 1])
    for index in (1, 2, 3):
        block, cert = cluster.nodes[index].chain[0]
        assert block.block_hash == prepared.block_hash  # the same block, header of view 0
        assert block.txs == txs and block.header.view == 0
        assert cert.view == 1  # committed in the new view
    new_view = next(message for message in _sent(cluster, NewView))
    assert [(entry.height, entry.block_hash) for entry in new_view.preprepares] == [
        (1, prepared.block_hash)]
    cluster.assert_consistent()


def _sent(cluster: Cluster, kind):
    from consensus.messages import decode_message
    for node in cluster.nodes:
        for key, value in node.wal.items():
            if key.startswith(b"nv/") or key.startswith(b"vc/"):
                message = decode_message(value)
                if isinstance(message, kind):
                    yield message


def test_block_only_preprepared_is_replaced_by_a_fresh_proposal():
    cluster = Cluster()
    cluster.start()
    # only replica 1 sees the pre-prepare: nothing prepares, so nothing may survive
    cluster.drop = lambda source, target, message: (
        isinstance(message, PrePrepare) and target != 1)
    cluster.propose(make_txs(0, 1))
    cluster.deliver_all()
    cluster.drop = None
    cluster.crash(0)
    run_until(cluster, lambda: in_view(cluster, 1, [1, 2, 3]))
    cluster.step(1, Propose(make_txs(5, 1)))
    cluster.deliver_all()
    first = cluster.nodes[2].chain[0][0]
    assert first.header.view == 1 and first.txs == make_txs(5, 1)
    cluster.assert_consistent()


def test_view_change_timeouts_double_and_are_capped():
    cluster = Cluster()
    cluster.start()
    # every new primary stays silent: NEW-VIEWs never arrive
    cluster.drop = lambda source, target, message: isinstance(message, (NewView, PrePrepare))
    starts: list[tuple[int, int]] = []  # (view, tick) at which replica 2 started a view change
    replica = cluster.replica(2)
    for _ in range(1200):
        cluster.tick(waiting_txs=1)
        if replica.stats.get("view_changes_started", 0) > len(starts):
            starts.append((replica.view, replica.tick))
    views = [view for view, _ in starts]
    assert views[:6] == [1, 2, 3, 4, 5, 6]
    gaps = [later - earlier for (_, earlier), (_, later) in zip(starts, starts[1:])]
    base, cap = TEST_PARAMS.view_change_timeout_ticks, TEST_PARAMS.max_view_change_timeout_ticks
    assert gaps[:3] == [2 * base, 4 * base, cap]  # 40, 80, then capped at 160
    assert all(gap == cap for gap in gaps[2:])


def test_a_lone_replica_does_not_start_a_storm():
    cluster = Cluster()
    cluster.start()
    lonely = cluster.replica(3)
    # only replica 3 believes there is pending work
    for _ in range(300):
        cluster.now_ms += 10
        for index in range(4):
            from consensus.events import Tick
            cluster.step(index, Tick(cluster.now_ms, 1 if index == 3 else 0))
        cluster.deliver_all()
    assert lonely.view == 1 and lonely.view_changing  # asked once, never escalated alone
    assert all(cluster.replica(i).view == 0 and not cluster.replica(i).view_changing
               for i in range(3))
    assert lonely.stats["view_changes_started"] == 1
    # it re-sent its VIEW-CHANGE instead of moving on
    sent = sum(1 for source, target, kind in cluster.transcript
               if source == 3 and kind == "view_change" and target == 0)
    assert sent > 1


def test_f_plus_one_view_changes_pull_the_rest_along():
    cluster = Cluster()
    cluster.start()
    from consensus.events import Tick
    # replicas 2 and 3 time out; 0 and 1 see no pending work of their own
    for _ in range(TEST_PARAMS.view_change_timeout_ticks + 2):
        cluster.now_ms += 10
        for index in range(4):
            cluster.step(index, Tick(cluster.now_ms, 1 if index >= 2 else 0))
        cluster.deliver_all()
    assert all(cluster.replica(i).view == 1 for i in range(4))
    assert cluster.replica(0).stats.get("view_change_joined") == 1
    assert cluster.replica(1).stats.get("new_views_sent") == 1
    assert in_view(cluster, 1, range(4))


def test_restarted_replica_rejoins_the_current_view_and_catches_up():
    cluster = Cluster()
    cluster.start()
    cluster.crash(0)
    run_until(cluster, lambda: in_view(cluster, 1, [1, 2, 3]))
    for start in range(0, 6):
        if cluster.replica(1).wants_proposal:
            cluster.step(1, Propose(make_txs(start, 1)))
        cluster.deliver_all()
    behind = cluster.restart(0)
    assert behind.view == 0
    for start in range(6, 16):
        cluster.tick()
        if cluster.replica(1).wants_proposal:
            cluster.step(1, Propose(make_txs(start, 1)))
        cluster.deliver_all()
    assert behind.view == 1 and not behind.view_changing
    assert behind.stats.get("synced_blocks", 0) > 0
    heights = cluster.heights()
    assert heights[0] == heights[1] and heights[0] >= 8
    cluster.assert_consistent()


def test_view_change_messages_for_far_views_are_dropped():
    cluster = Cluster()
    cluster.start()
    far = TEST_PARAMS.max_view_lookahead + 1
    replica = cluster.replica(1)
    vc = replica._own_view_change(far)  # a well-formed, correctly signed VIEW-CHANGE
    from consensus.events import Receive
    from consensus.messages import encode_message
    cluster.step(0, Receive(1, encode_message(vc)))
    assert cluster.replica(0).stats["dropped.far_view"] == 1
    assert cluster.replica(0).view == 0


def test_new_view_anchor_above_the_new_primary_is_never_proposed_again():
    """Only replica 3 commits block 1, and the new primary (1) never even saw it. NEW-VIEW's
    anchor is block 1, above the new primary's committed height: the primary must fetch
    that very block and propose from height 2, never a new block 1."""
    cluster = Cluster()
    cluster.start()
    cluster.drop = lambda source, target, message: (
        (isinstance(message, Commit) and target != 3)
        or (isinstance(message, PrePrepare) and target == 1))
    cluster.propose(make_txs(0, 1))
    cluster.deliver_all()
    assert cluster.heights() == [0, 0, 0, 1]
    first = cluster.nodes[3].chain[0][0]
    cluster.drop = None
    cluster.crash(0)
    run_until(cluster, lambda: in_view(cluster, 1, [1, 2, 3]))
    new_primary = cluster.replica(1)
    assert new_primary._view_floor == 1 and new_primary.committed_height == 0
    # it has transactions at once, but nothing to propose until it holds block 1
    assert not new_primary.wants_proposal
    cluster.step(1, Propose(make_txs(5, 1)))
    cluster.deliver_all()
    run_until(cluster, lambda: cluster.heights()[1:] == [1, 1, 1])
    assert new_primary.stats.get("synced_blocks", 0) >= 1 or cluster.replica(2).stats.get(
        "synced_blocks", 0) >= 1
    cluster.step(1, Propose(make_txs(7, 1)))
    cluster.deliver_all()
    for index in (1, 2, 3):
        chain = cluster.nodes[index].chain
        assert chain[0][0].block_hash == first.block_hash
        assert chain[1][0].header.view == 1 and chain[1][0].txs == make_txs(7, 1)
    cluster.assert_consistent()


def test_preprepare_below_the_view_floor_is_refused():
    from consensus.events import Receive
    from test_pbft_validation import block_for, preprepare
    cluster = Cluster()
    cluster.start()
    cluster.tick()
    replica = cluster.replica(2)
    replica._view_floor = 1  # as after a NEW-VIEW whose anchor is block 1
    cluster.step(2, Receive(0, preprepare(cluster, block_for(cluster, height=1))))
    assert replica.stats["dropped.below_view_floor"] == 1
    assert cluster.replica(0)._proposal_height() == 1  # floors are per replica and view


def test_escalation_counts_replicas_that_already_moved_further():
    """Replica 0's view-change timer fires one tick before replica 2's. Its VIEW-CHANGE for
    view 2 reaches replica 2 first; replica 2 must still count it as one of the 2f+1 that
    gave up on view 1 (the primary of view 1 is dead), move to view 2 and, as its primary,
    send NEW-VIEW. Counting only VIEW-CHANGEs for exactly view 1 stalled here."""
    from consensus.events import Tick
    cluster = Cluster()
    cluster.start()
    cluster.crash(1)  # primary of view 1
    cluster.drop = lambda source, target, message: isinstance(message, PrePrepare)  # 0 silent
    cluster.step(0, Tick(cluster.now_ms, 1))  # replica 0 runs one tick ahead of the others
    for _ in range(400):
        cluster.tick(waiting_txs=1)
        if all(not cluster.replica(i).view_changing and cluster.replica(i).view == 2
               for i in (0, 2, 3)):
            break
    assert [cluster.replica(i).view for i in (0, 2, 3)] == [2, 2, 2]
    assert cluster.replica(2).stats.get("new_views_sent") == 1


def test_ready_reports_soft_state_changes_and_proposals():
    """The node learns the view, primary and mode, and what it proposed, from Ready alone."""
    from consensus.events import MODE_NORMAL, MODE_VIEW_CHANGE, SoftState, Tick

    cluster = Cluster()
    first = cluster.step(2, Tick(cluster.now_ms, 0))
    assert first.soft == SoftState(0, 0, MODE_NORMAL)  # reported once, at the first step
    assert cluster.step(2, Tick(cluster.now_ms, 0)).soft is None  # unchanged: not repeated
    cluster.start()
    ready = cluster.propose(make_txs(0, 1))
    assert ready.proposed == (1,) and ready.soft is None
    cluster.deliver_all()
    softs: list[SoftState] = []
    original = cluster.apply

    def record(index, ready):
        if index == 2 and ready.soft is not None:
            softs.append(ready.soft)
        original(index, ready)

    cluster.apply = record
    cluster.crash(0)
    run_until(cluster, lambda: in_view(cluster, 1, [1, 2, 3]))
    assert softs == [SoftState(1, 1, MODE_VIEW_CHANGE), SoftState(1, 1, MODE_NORMAL)]
    assert cluster.replica(2).soft_state == softs[-1]
