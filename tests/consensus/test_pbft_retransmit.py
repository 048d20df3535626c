"""Retransmission: a replica that sees no commit for ``retransmit_ticks`` with work pending
sends its own messages for the uncommitted heights again, relays the primary's pre-prepares
it accepted, and asks a peer for the next block. Lost messages are recovered in the view
they were lost in, without a view change; a primary that equivocates is replaced at once."""

from __future__ import annotations

from dataclasses import replace

from pbft_harness import TEST_PARAMS, Cluster, make_txs

from consensus.messages import Commit, PrePrepare, Prepare

PARAMS = replace(TEST_PARAMS, retransmit_ticks=4)  # well inside the 20-tick view-change timer


def run(cluster: Cluster, ticks: int) -> None:
    for _ in range(ticks):
        cluster.tick(waiting_txs=1)


def test_lost_votes_are_sent_again_without_a_view_change():
    cluster = Cluster(params=PARAMS)
    cluster.start()
    seen: set[tuple[int, int, str, int]] = set()

    def first_copy_lost(source, target, message):
        # every prepare and commit is lost the first time it goes over a link
        if isinstance(message, (Prepare, Commit)):
            key = (source, target, message.TYPE, message.height)
            if key not in seen:
                seen.add(key)
                return True
        return False

    cluster.drop = first_copy_lost
    cluster.propose(make_txs(0, 2))
    cluster.deliver_all()
    assert cluster.heights() == [0, 0, 0, 0]  # nothing prepared: every vote was lost
    # one round of re-sent prepares, then one of re-sent commits (their first copies lost)
    run(cluster, 3 * PARAMS.retransmit_ticks)
    assert 3 * PARAMS.retransmit_ticks < PARAMS.view_change_timeout_ticks
    assert min(cluster.heights()) >= 1
    for node in cluster.nodes:
        assert node.replica.view == 0 and not node.replica.view_changing
        assert node.replica.stats.get("retransmits", 0) >= 1
    cluster.assert_consistent()


def test_backups_relay_a_preprepare_the_primary_could_not_deliver():
    cluster = Cluster(params=PARAMS)
    cluster.start()
    # the primary's pre-prepares never reach replicas 2 and 3, not even when re-sent
    cluster.drop = lambda source, target, message: (
        isinstance(message, PrePrepare) and source == 0 and target in (2, 3))
    cluster.propose(make_txs(0, 1))
    cluster.deliver_all()
    assert cluster.heights() == [0, 0, 0, 0]
    run(cluster, PARAMS.retransmit_ticks + 2)
    assert min(cluster.heights()) >= 1
    for index in (2, 3):
        replica = cluster.replica(index)
        assert replica.stats.get("relayed_preprepares", 0) >= 1
        assert replica.view == 0
    assert cluster.replica(1).stats.get("relayed_preprepares_sent", 0) >= 1
    cluster.assert_consistent()


def test_a_replica_that_missed_the_commits_fetches_the_block():
    cluster = Cluster(params=PARAMS)
    cluster.start()
    cluster.drop = lambda source, target, message: isinstance(message, Commit) and target == 3
    cluster.propose(make_txs(0, 1))
    cluster.deliver_all()
    assert cluster.heights()[:3] == [1, 1, 1] and cluster.heights()[3] == 0
    run(cluster, PARAMS.retransmit_ticks + 3)
    lagging = cluster.replica(3)
    assert lagging.committed_height >= 1 and lagging.view == 0
    assert lagging.stats.get("sync_probes", 0) >= 1
    cluster.assert_consistent()


def test_retransmission_off():
    cluster = Cluster(params=replace(TEST_PARAMS, retransmit_ticks=0))
    cluster.start()
    cluster.drop = lambda source, target, message: isinstance(message, Commit) and target == 3
    cluster.propose(make_txs(0, 1))
    cluster.deliver_all()
    run(cluster, 10)
    assert cluster.replica(3).committed_height == 0  # nothing re-sent, nothing asked for
    assert "retransmits" not in cluster.replica(3).stats
