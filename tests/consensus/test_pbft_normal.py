"""PBFT normal case: exact transcripts, certificates, pipelining, batching, persist-before-send."""

from __future__ import annotations

from dataclasses import replace

from pbft_harness import (
    APP_HASH0,
    CHAIN_ID,
    GENESIS_HASH,
    TEST_PARAMS,
    Cluster,
    make_txs,
)

from consensus import wal
from consensus.events import Propose, Tick
from consensus.messages import Commit, PrePrepare, Prepare, decode_message
from ledger.merkle import EMPTY_ROOT
from ledger.quorum import quorum_size


def test_one_block_exact_transcript():
    cluster = Cluster()
    cluster.start()
    txs = make_txs(0, 3)
    ready = cluster.propose(txs)
    # The primary's pre-prepare is persisted in the same Ready that sends it.
    assert [decode_message(data).TYPE for _, data in ready.send] == ["preprepare"]
    assert [key for key, _ in ready.persist] == [wal.vote_key(1, 0, wal.PHASE_PREPREPARE)]
    cluster.deliver_all()
    assert cluster.transcript == [
        (0, 1, "preprepare"), (0, 2, "preprepare"), (0, 3, "preprepare"),
        (1, 0, "prepare"), (1, 2, "prepare"), (1, 3, "prepare"),
        (2, 0, "prepare"), (2, 1, "prepare"), (2, 3, "prepare"),
        (3, 0, "prepare"), (3, 1, "prepare"), (3, 2, "prepare"),
        # replica 2 is first to hold 2f=2 backup prepares (from 1 and its own), and so on
        (2, 0, "commit"), (2, 1, "commit"), (2, 3, "commit"),
        (3, 0, "commit"), (3, 1, "commit"), (3, 2, "commit"),
        (0, 1, "commit"), (0, 2, "commit"), (0, 3, "commit"),
        (1, 0, "commit"), (1, 2, "commit"), (1, 3, "commit"),
    ]
    assert cluster.heights() == [1, 1, 1, 1]
    cluster.assert_consistent()
    block, cert = cluster.nodes[0].chain[0]
    assert block.txs == txs
    assert block.header.prev_hash == GENESIS_HASH
    assert block.header.app_hash == APP_HASH0 and block.header.results_hash == EMPTY_ROOT
    assert len(cert.signatures) == quorum_size(4) == 3
    assert cert.view == 0 and cert.height == 1


def test_certificates_are_the_commit_signatures():
    cluster = Cluster()
    cluster.start()
    cluster.propose(make_txs(0, 1))
    commits = {}
    while cluster.queue:
        source, target, data = cluster.queue[0]
        message = decode_message(data)
        if isinstance(message, Commit):
            commits[message.replica] = message.signature
        cluster.deliver_all(limit=1)
    for node in cluster.nodes:
        _, cert = node.chain[0]
        for replica, signature in cert.signatures:
            assert commits[replica] == signature


def test_pipelined_heights_commit_in_order():
    cluster = Cluster()
    cluster.start()
    primary = cluster.replica(0)
    cluster.step(0, Propose(make_txs(0, 1)))
    assert primary.wants_proposal  # height 2 needs only the state after height 0
    cluster.step(0, Propose(make_txs(1, 1)))
    assert not primary.wants_proposal  # height 3 waits for height 1 to execute
    # both pre-prepares are out before any vote is delivered: two heights in flight
    assert {decode_message(data).height for _, _, data in cluster.queue} == {1, 2}
    cluster.deliver_all()
    cluster.assert_consistent()
    for node in cluster.nodes:
        assert [block.height for block, _ in node.chain] == [1, 2]
        # header 2 carries the state after height 0 (pipeline depth 2)
        assert node.chain[1][0].header.app_hash == APP_HASH0
    # once 1 executed, the primary may propose 3, which carries the state after 1
    assert primary.wants_proposal
    cluster.step(0, Propose(()))
    cluster.deliver_all()
    third = cluster.nodes[1].chain[2][0]
    assert third.header.app_hash == cluster.nodes[1].app_hashes[1]


def test_empty_blocks_until_the_state_is_certified():
    cluster = Cluster()
    cluster.start()
    cluster.propose(make_txs(0, 2))
    cluster.deliver_all()
    for _ in range(5):
        if cluster.replica(0).wants_proposal:
            cluster.step(0, Propose(()))
        cluster.deliver_all()
    chain = cluster.nodes[2].chain
    # block 1 non-empty, then exactly pipeline_depth empty blocks; the last carries state 1
    assert [len(block.txs) for block, _ in chain] == [2, 0, 0]
    assert chain[2][0].header.app_hash == cluster.nodes[2].app_hashes[1]
    assert cluster.replica(0).wants_proposal  # free to propose, but nothing is needed:
    ready = cluster.step(0, Propose(()))
    assert not ready.send


def test_block_limits_and_batch_delay():
    params = replace(TEST_PARAMS, max_block_txs=3, batch_delay_ticks=2)
    cluster = Cluster(params=params)
    cluster.start()
    # a full block goes at once, with at most max_block_txs transactions
    cluster.step(0, Propose(make_txs(0, 5)))
    cluster.deliver_all()
    assert [len(block.txs) for block, _ in cluster.nodes[1].chain] == [3]
    cluster.step(0, Propose(make_txs(3, 2)))  # needed empty-or-not block after a full one
    cluster.deliver_all()
    for _ in range(2):  # the empty blocks that certify the state after block 2
        cluster.step(0, Propose(()))
        cluster.deliver_all()
    assert [len(block.txs) for block, _ in cluster.nodes[1].chain] == [3, 2, 0, 0]
    # a partial batch waits batch_delay_ticks before it is cut
    primary = cluster.replica(0)
    assert primary.wants_proposal
    assert not cluster.step(0, Propose(make_txs(5, 1))).send
    cluster.step(0, Tick(cluster.now_ms + 10, 1))
    assert not cluster.step(0, Propose(make_txs(5, 1))).send
    cluster.step(0, Tick(cluster.now_ms + 20, 1))
    ready = cluster.step(0, Propose(make_txs(5, 1)))
    assert [decode_message(data).TYPE for _, data in ready.send] == ["preprepare"]


def test_block_bytes_limit():
    one = len(make_txs(0, 1)[0].encode())
    params = replace(TEST_PARAMS, max_block_bytes=2 * one + 1, max_message_bytes=8 * 1024 * 1024)
    cluster = Cluster(params=params)
    cluster.start()
    cluster.step(0, Propose(make_txs(0, 4)))
    cluster.deliver_all()
    assert len(cluster.nodes[3].chain[0][0].txs) == 2


def test_every_vote_is_persisted_before_it_is_sent():
    cluster = Cluster()
    cluster.start()
    seen: dict[int, set[bytes]] = {index: set() for index in range(4)}
    original = cluster.apply_one

    def checking_apply(index, ready):
        persisted = {value for _, value in ready.persist if value is not None}
        for _, data in ready.send:
            message = decode_message(data)
            if isinstance(message, (PrePrepare, Prepare, Commit)):
                assert data in persisted or data in seen[index], f"{message.TYPE} sent unpersisted"
        seen[index] |= persisted
        return original(index, ready)

    cluster.apply_one = checking_apply
    for start in range(0, 12, 3):
        if cluster.replica(0).wants_proposal:
            cluster.propose(make_txs(start, 3))
        cluster.deliver_all()
        cluster.tick()
    assert min(cluster.heights()) >= 4
    cluster.assert_consistent()


def test_single_replica_commits_alone():
    cluster = Cluster(n=1)
    cluster.start()
    ready = cluster.propose(make_txs(0, 2))
    assert not ready.send  # nobody to talk to
    assert cluster.heights() == [1]
    block, cert = cluster.nodes[0].chain[0]
    cert.verify(CHAIN_ID, cluster.validators)
