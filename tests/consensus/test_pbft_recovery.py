"""Checkpoints and garbage collection, catch-up from certified blocks, crash and restart."""

from __future__ import annotations

from dataclasses import replace

from pbft_harness import TEST_PARAMS, Cluster, make_txs

from consensus import wal
from consensus.events import Propose, Receive, Tick
from consensus.messages import (
    BlockRequest,
    BlockResponse,
    Commit,
    NewView,
    PrePrepare,
    Prepare,
    decode_message,
    encode_message,
)
from consensus.signer import Ed25519Signer
from ledger.types import Block, BlockHeader


def produce(cluster: Cluster, blocks: int, primary: int = 0, start_nonce: int = 0) -> None:
    """Have the primary propose ``blocks`` non-empty blocks, delivering everything."""
    nonce = start_nonce
    made = 0
    for _ in range(blocks * 6):
        if made >= blocks:
            break
        if cluster.replica(primary).wants_proposal:
            cluster.step(primary, Propose(make_txs(nonce, 1)))
            nonce += 1
            made += 1
        cluster.deliver_all()
        cluster.tick()
    cluster.deliver_all()


def wal_heights(node) -> list[int]:
    heights = []
    for key in node.wal:
        if key.startswith(wal.VOTE_PREFIX):
            heights.append(wal.parse_vote_key(key)[0])
        elif key.startswith(wal.CERT_PREFIX):
            heights.append(wal.parse_u64_suffix(key, wal.CERT_PREFIX))
    return heights


def test_checkpoints_become_stable_and_garbage_collect():
    cluster = Cluster()
    cluster.start()
    produce(cluster, 10)
    interval = TEST_PARAMS.checkpoint_interval
    for node in cluster.nodes:
        replica = node.replica
        assert replica.committed_height >= 10
        stable = replica.stable.height
        assert stable >= 8 and stable % interval == 0
        # the stable checkpoint carries the state root after its height, signed by 2f+1
        assert replica.stable.state_root == node.app_hashes[stable]
        assert len(replica.stable.signatures) == 3
        assert replica.low_watermark == stable
        assert replica.high_watermark == stable + TEST_PARAMS.watermark_window
        # log entries and checkpoint votes at or below it are gone ...
        assert all(height > stable for height in replica._slots)
        assert all(height > stable for height in replica.checkpoints.votes)
        # ... and so are their WAL records; the proof itself is persisted
        assert wal_heights(node) and all(height > stable for height in wal_heights(node))
        assert decode_stable(node.wal[wal.STABLE_KEY]) == stable
    cluster.assert_consistent()


def decode_stable(data: bytes) -> int:
    from consensus.messages import CheckpointProof
    from ledger import codec
    return CheckpointProof.from_plain(codec.decode(data)).height


def test_wal_stays_bounded_over_a_long_run():
    cluster = Cluster()
    cluster.start()
    produce(cluster, 40)
    assert min(cluster.heights()) >= 40
    bound = (TEST_PARAMS.checkpoint_interval + TEST_PARAMS.pipeline_depth + 2) * 4
    for node in cluster.nodes:
        assert len(node.wal) <= bound


def test_lagging_replica_catches_up_from_certified_blocks():
    cluster = Cluster()
    cluster.start()
    cluster.drop = lambda source, target, message: 3 in (source, target)
    produce(cluster, 12)
    assert cluster.heights()[:3] == [12, 12, 12] or min(cluster.heights()[:3]) >= 12
    assert cluster.heights()[3] == 0
    cluster.drop = None
    produce(cluster, 5, start_nonce=100)
    heights = cluster.heights()
    assert heights[3] == heights[0]
    lagging = cluster.replica(3)
    assert lagging.stats["synced_blocks"] >= 8
    assert cluster.served >= 1
    cluster.assert_consistent()
    # the synced blocks executed: its state matches the others'
    assert cluster.nodes[3].app_hashes == cluster.nodes[0].app_hashes


def test_forged_certificate_is_rejected_and_another_peer_asked():
    cluster = Cluster()
    cluster.start()
    cluster.drop = lambda source, target, message: 3 in (source, target)
    produce(cluster, 9)
    cluster.drop = None
    behind = cluster.replica(3)
    original_serve = cluster.serve
    forged_once = []

    def forging_serve(index, serve_request):
        """The first block request is answered with a certificate of garbage signatures."""
        if forged_once:
            return original_serve(index, serve_request)
        forged_once.append(index)
        chain = cluster.nodes[index].chain
        entries = [entry for entry in chain
                   if serve_request.from_height <= entry[0].height
                   < serve_request.from_height + serve_request.max_blocks]
        block, cert = entries[0]
        bad_signatures = tuple((replica, bytes(64)) for replica, _ in cert.signatures)
        entries[0] = (block, replace(cert, signatures=bad_signatures))
        cluster.queue.append((index, serve_request.replica,
                              encode_message(BlockResponse(index, tuple(entries)))))

    cluster.serve = forging_serve
    produce(cluster, 6, start_nonce=300)
    cluster.tick(ticks=30)
    assert forged_once, "a block request was served"
    assert behind.stats.get("dropped.bad_certificate") == 1
    heights = cluster.heights()
    assert heights[3] == heights[0]
    cluster.assert_consistent()


def test_block_response_that_breaks_the_chain_is_rejected():
    cluster = Cluster()
    cluster.start()
    cluster.drop = lambda source, target, message: 2 in (source, target)
    produce(cluster, 3)
    replica = cluster.replica(2)
    assert replica.committed_height == 0
    # replica 2 asked replica 0 for blocks 2..3 and gets blocks 2 and then 1
    replica.catch_up.requests[2] = (0, 2, replica.tick + 10)
    chain = cluster.nodes[0].chain
    swapped = BlockResponse(0, (chain[1], chain[0]))
    replica.step(Receive(0, encode_message(swapped)))
    assert replica.stats["dropped.bad_block_response"] == 1


def test_crash_and_restart_never_signs_two_votes_for_one_slot():
    cluster = Cluster()
    cluster.start()
    signed: dict[tuple[str, int, int, int], bytes] = {}

    def record(source, target, message):
        if isinstance(message, (PrePrepare, Prepare, Commit)):
            block_hash = (message.block.block_hash if isinstance(message, PrePrepare)
                          else message.block_hash)
            key = (message.TYPE, message.replica, message.view, message.height)
            assert signed.setdefault(key, block_hash) == block_hash, f"double vote {key}"
        return False

    cluster.drop = record
    produce(cluster, 2)
    # replica 2 prepares block 3, then crashes before anything else happens
    cluster.step(0, Propose(make_txs(50, 1)))
    prepare_key = wal.vote_key(3, 0, wal.PHASE_PREPARE)
    while cluster.queue and prepare_key not in cluster.nodes[2].wal:
        cluster.deliver_all(limit=1)
    assert prepare_key in cluster.nodes[2].wal
    cluster.crash(2)
    cluster.queue.clear()
    restarted = cluster.restart(2)
    # after the restart it re-sends its own prepare for height 3 (the same bytes) ...
    resent = [decode_message(data) for source, _, data in cluster.queue if source == 2]
    assert any(isinstance(m, Prepare) and m.height == 3 for m in resent)
    # ... and a Byzantine primary's different block for (view 0, height 3) gets no prepare
    rival = rival_preprepare(cluster, restarted, height=3)
    ready = restarted.step(Receive(0, rival))
    assert not any(isinstance(decode_message(data), Prepare) for _, data in ready.send)
    assert restarted.stats["refused_equivocation"] == 1
    cluster.deliver_all()
    produce(cluster, 3, start_nonce=60)
    cluster.assert_consistent()


def rival_preprepare(cluster: Cluster, replica, height: int) -> bytes:
    """A validly signed pre-prepare from primary 0 for an empty block at ``height``."""
    from consensus.messages import preprepare_payload
    from ledger.types import tx_root
    parent = cluster.nodes[0].chain[height - 2][0]
    header = BlockHeader(parent.header.chain_id, height, 0, parent.block_hash,
                         parent.header.timestamp_ms + 1, 0, tx_root([]), 0,
                         cluster.nodes[2].app_hashes[height - 2], parent.header.results_hash)
    block = Block(header, ())
    signer = Ed25519Signer("pbft-test", cluster.keys[0], cluster.validators)
    signature = signer.sign("preprepare", preprepare_payload(0, height, block.block_hash))
    return encode_message(PrePrepare(0, height, 0, block, signature))


def test_restarted_primary_resends_its_proposal_and_does_not_propose_again():
    cluster = Cluster()
    cluster.start()
    produce(cluster, 1)
    cluster.step(0, Propose(make_txs(10, 1)))
    cluster.queue.clear()  # the pre-prepare for height 2 never left the machine
    cluster.crash(0)
    primary = cluster.restart(0)
    assert primary.view == 0
    # it re-sent the same pre-prepare for height 2 and would propose height 3 next
    resent = [decode_message(data) for source, _, data in cluster.queue if source == 0]
    assert [m.height for m in resent if isinstance(m, PrePrepare)] == [2, 2, 2]  # to each peer
    cluster.deliver_all()
    assert cluster.heights() == [2, 2, 2, 2]
    cluster.assert_consistent()


def test_restart_during_a_view_change_keeps_the_view():
    cluster = Cluster()
    cluster.start()
    produce(cluster, 1)
    cluster.crash(0)
    cluster.drop = lambda source, target, message: source == 3 or isinstance(message, NewView)
    for _ in range(TEST_PARAMS.view_change_timeout_ticks + 5):
        cluster.tick(waiting_txs=1)
        if cluster.replica(3).view_changing:
            break
    # crash replica 3 right after it sent its VIEW-CHANGE (which nobody got)
    assert cluster.replica(3).view_changing and cluster.replica(3).view == 1
    cluster.queue.clear()
    cluster.crash(3)
    cluster.drop = None
    replica = cluster.restart(3)
    assert replica.view == 1 and replica.view_changing
    for _ in range(200):
        cluster.tick(waiting_txs=1)
        if all(cluster.replica(i).view >= 1 and not cluster.replica(i).view_changing
               for i in (1, 2, 3)):
            break
    cluster.step(cluster.replica(1).primary, Propose(make_txs(20, 1)))
    cluster.deliver_all()
    heights = cluster.heights()
    assert heights[1] == heights[2] == heights[3] == 2
    cluster.assert_consistent()


def test_requests_are_bounded_and_rotate_peers_on_timeout():
    cluster = Cluster()
    cluster.start()
    cluster.drop = lambda source, target, message: 3 in (source, target)
    produce(cluster, 12)
    # replica 3 hears about the chain, but block requests go unanswered
    cluster.drop = lambda source, target, message: isinstance(message, (BlockRequest, BlockResponse))
    produce(cluster, 2, start_nonce=100)
    behind = cluster.replica(3)
    peers = []
    for _ in range(40):
        cluster.tick()
        assert len(behind.catch_up.requests) <= TEST_PARAMS.catch_up_max_outstanding_requests
        peers.extend(peer for peer, _, _ in behind.catch_up.requests.values())
    assert behind.stats["sync_timeouts"] >= 2
    assert len(set(peers)) >= 2  # requests went to more than one peer
    cluster.drop = None
    produce(cluster, 2, start_nonce=200)
    cluster.tick(ticks=TEST_PARAMS.catch_up_timeout_ticks + 5)
    assert cluster.heights()[3] == cluster.heights()[0]


def test_catch_up_asks_again_for_a_gap_below_an_outstanding_request():
    """A request that timed out below one still outstanding leaves a gap; the lowest missing
    heights are asked for first (a replica waiting alone in a higher view once stayed at its
    height for good because every new request started above the outstanding one)."""
    cluster = Cluster(params=replace(TEST_PARAMS, catch_up_max_blocks=8))
    cluster.start()
    replica = cluster.replica(3)
    replica.catch_up.certified_height = 20  # the chain is known to be certified far ahead
    replica.catch_up.requests[5] = (1, 2, replica.tick + 1000)  # 5..6 asked, long outstanding
    ready = replica.step(Tick(cluster.now_ms + 10, 0))
    requests = [decode_message(data) for _, data in ready.send]
    requests = [message for message in requests if isinstance(message, BlockRequest)]
    assert [(message.from_height, message.max_blocks) for message in requests] == [(1, 4)]
    assert sorted(replica.catch_up.requests) == [1, 5]
