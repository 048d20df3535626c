"""Validation: every malformed, badly signed, wrong-view, out-of-window, non-primary or
otherwise wrong message is dropped and counted by reason; nothing raises."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pbft_harness import APP_HASH0, CHAIN_ID, GENESIS_HASH, TEST_PARAMS, Cluster, make_txs

from consensus.events import Receive
from consensus.messages import (
    BlockResponse,
    Checkpoint,
    Commit,
    CheckpointProof,
    NewView,
    PrePrepare,
    Prepare,
    PreparedCertificate,
    TxForward,
    ViewChange,
    checkpoint_payload,
    encode_message,
    prepare_payload,
    preprepare_payload,
)
from consensus.signer import Ed25519Signer
from ledger import codec
from ledger.merkle import EMPTY_ROOT
from ledger.types import COMMIT_DOMAIN, Block, BlockHeader, commit_vote_payload, tx_root

TARGET = 1  # the backup that receives every bad message


def signer(cluster: Cluster, index: int) -> Ed25519Signer:
    return Ed25519Signer(CHAIN_ID, cluster.keys[index], cluster.validators)


def block_for(cluster: Cluster, height: int = 1, view: int = 0, txs=(), **changes) -> Block:
    header = BlockHeader(CHAIN_ID, height, view, GENESIS_HASH, cluster.now_ms, view % 4,
                         tx_root([tx.tx_id for tx in txs]), len(txs), APP_HASH0, EMPTY_ROOT)
    return Block(replace(header, **changes), tuple(txs))


def preprepare(cluster: Cluster, block: Block, view: int = 0, height: int | None = None,
               by: int | None = None, sign_as: int | None = None) -> bytes:
    height = block.height if height is None else height
    by = view % 4 if by is None else by
    signature = signer(cluster, by if sign_as is None else sign_as).sign(
        "preprepare", preprepare_payload(view, height, block.block_hash))
    return encode_message(PrePrepare(view, height, by, block, signature))


def deliver(cluster: Cluster, sender: int, data: bytes, target: int = TARGET) -> dict:
    before = dict(cluster.replica(target).stats)
    cluster.step(target, Receive(sender, data))
    after = cluster.replica(target).stats
    return {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}


def dropped(delta: dict) -> list[str]:
    return sorted(key[len("dropped."):] for key in delta if key.startswith("dropped."))


@pytest.fixture
def cluster() -> Cluster:
    world = Cluster()
    world.start()
    world.tick()  # the clock moves past genesis time, so a block at "now" is after its parent
    return world


def test_undecodable_and_misaddressed(cluster):
    assert dropped(deliver(cluster, 0, b"\xc1garbage")) == ["malformed"]
    assert dropped(deliver(cluster, 0, codec.encode({"type": "nope", "replica": 0}))) == ["malformed"]
    assert cluster.replica(TARGET).stats["malformed.unknown_type"] == 1
    assert dropped(deliver(cluster, 0, codec.encode({"type": "prepare"}))) == ["malformed"]
    big = b"\x00" * (TEST_PARAMS.max_message_bytes + 1)
    assert dropped(deliver(cluster, 0, big)) == ["oversize"]
    good = preprepare(cluster, block_for(cluster))
    block_hash = block_for(cluster).block_hash
    vote = encode_message(Prepare(0, 1, 3, block_hash, signer(cluster, 3).sign(
        "prepare", prepare_payload(0, 1, block_hash))))
    assert dropped(deliver(cluster, 2, vote)) == ["sender_mismatch"]  # says it is from 3
    assert dropped(deliver(cluster, 9, good)) == ["bad_sender"]
    assert dropped(deliver(cluster, TARGET, good)) == ["bad_sender"]  # from itself
    # the valid one is still accepted afterwards
    delta = deliver(cluster, 0, good)
    assert not dropped(delta) and delta["received.preprepare"] == 1


def test_preprepare_checks(cluster):
    txs = make_txs(0, 2)
    cases = {
        "not_primary": preprepare(cluster, block_for(cluster, proposer=2), by=2),
        "bad_signature": preprepare(cluster, block_for(cluster), sign_as=3),
        "out_of_window": preprepare(cluster, block_for(cluster, height=TEST_PARAMS.watermark_window + 1)),
        "bad_header": preprepare(cluster, block_for(cluster, view=0, proposer=0), height=2),
        "bad_app_hash": preprepare(cluster, block_for(cluster, app_hash=b"\x01" * 32)),
        "bad_prev_hash": preprepare(cluster, block_for(cluster, prev_hash=b"\x02" * 32)),
        "clock_skew": preprepare(cluster, block_for(
            cluster, timestamp_ms=cluster.now_ms + TEST_PARAMS.max_clock_skew_ms + 1)),
        "bad_timestamp": preprepare(cluster, block_for(cluster, timestamp_ms=1)),
        "tx_root": preprepare(cluster, block_for(cluster, txs=txs, tx_root=b"\x03" * 32)),
        "tx_count": preprepare(cluster, block_for(cluster, txs=txs, tx_count=1)),
    }
    forged_tx = replace(txs[0], signature=b"\x04" * 64)
    cases["bad_tx_signature"] = preprepare(cluster, block_for(cluster, txs=(forged_tx,)))
    for reason, data in cases.items():
        assert dropped(deliver(cluster, 0 if reason != "not_primary" else 2, data)) == [reason], reason
    assert cluster.replica(TARGET)._slots.get(1) is None or cluster.replica(TARGET)._slots[1].view is None


def test_block_limits_are_checked(cluster):
    small = Cluster(params=replace(TEST_PARAMS, max_block_txs=1))
    small.start()
    small.tick()
    data = preprepare(small, block_for(small, txs=make_txs(0, 2)))
    assert dropped(deliver(small, 0, data)) == ["block_too_large"]


def test_relayed_preprepare_is_checked_against_its_primary(cluster):
    good = preprepare(cluster, block_for(cluster))
    delta = deliver(cluster, 2, good)  # replica 2 relays the primary's pre-prepare
    assert not dropped(delta) and delta["relayed_preprepares"] == 1
    assert cluster.replica(TARGET)._slots[1].block_hash == block_for(cluster).block_hash
    # a relayed one still needs the primary's signature and names the primary as signer
    forged = preprepare(cluster, block_for(cluster, txs=make_txs(0, 1)), sign_as=2)
    assert dropped(deliver(cluster, 2, forged, target=3)) == ["bad_signature"]
    not_primary = preprepare(cluster, block_for(cluster, proposer=2), by=2)
    assert dropped(deliver(cluster, 3, not_primary, target=2)) == ["not_primary"]


def test_equivocating_primary_is_left_at_once(cluster):
    first = preprepare(cluster, block_for(cluster, txs=make_txs(0, 1)))
    assert not dropped(deliver(cluster, 0, first))
    assert deliver(cluster, 0, first) == {"received.preprepare": 1, "ignored.duplicate": 1}
    # a different block for the same height, not signed by the primary: no proof, no move
    unsigned = preprepare(cluster, block_for(cluster, txs=make_txs(1, 1)), sign_as=3)
    assert dropped(deliver(cluster, 2, unsigned)) == ["bad_signature"]
    assert cluster.replica(TARGET).view == 0
    # signed by the primary (here relayed by another replica): proof of equivocation
    second = preprepare(cluster, block_for(cluster, txs=make_txs(1, 1)))
    delta = deliver(cluster, 2, second)
    assert dropped(delta) == ["equivocation"] and delta["primary_equivocations"] == 1
    target = cluster.replica(TARGET)
    assert target.view == 1 and target.view_changing
    # both pre-prepares went out with the VIEW-CHANGE, so every peer holds the proof
    sent = [(source, data) for source, _, data in cluster.queue if source == TARGET]
    assert any(data == first for _, data in sent) and any(data == second for _, data in sent)


def test_equivocation_at_a_decided_height_is_proof_too():
    from pbft_harness import Cluster as World
    world = World()
    world.start()
    world.tick()
    world.propose(make_txs(0, 1))
    world.deliver_all()
    assert world.heights() == [1, 1, 1, 1]
    committed = world.nodes[TARGET].chain[0][0]
    rival = block_for(world, txs=make_txs(5, 1))
    assert rival.block_hash != committed.block_hash
    forged = preprepare(world, rival, sign_as=2)
    assert deliver(world, 2, forged).get("ignored.stale") == 1
    assert world.replica(TARGET).view == 0
    # the same block the chain holds is just stale
    same = encode_message(PrePrepare(0, 1, 0, committed, signer(world, 0).sign(
        "preprepare", preprepare_payload(0, 1, committed.block_hash))))
    assert deliver(world, 2, same).get("ignored.stale") == 1
    delta = deliver(world, 2, preprepare(world, rival))
    assert dropped(delta) == ["equivocation"] and world.replica(TARGET).view == 1


def test_old_view_and_future_view(cluster):
    # a message from a view this replica has not entered is checked and kept for later
    future = preprepare(cluster, block_for(cluster, view=1, proposer=1), view=1)
    delta = deliver(cluster, 1, future, target=2)
    assert not dropped(delta) and len(cluster.replica(2)._future) == 1
    forged_future = preprepare(cluster, block_for(cluster, view=1, proposer=1), view=1, sign_as=2)
    assert dropped(deliver(cluster, 1, forged_future, target=2)) == ["bad_signature"]
    far = TEST_PARAMS.max_view_lookahead + 1
    far_data = preprepare(cluster, block_for(cluster, view=far, proposer=far % 4), view=far)
    assert dropped(deliver(cluster, far % 4, far_data, target=2)) == ["far_view"]


def test_prepare_and_commit_checks(cluster):
    cluster.propose(make_txs(0, 1))
    block_hash = decode_first_block_hash(cluster)
    s2, s0 = signer(cluster, 2), signer(cluster, 0)
    payload = prepare_payload(0, 1, block_hash)
    from_primary = Prepare(0, 1, 0, block_hash, s0.sign("prepare", payload))
    assert dropped(deliver(cluster, 0, encode_message(from_primary))) == ["prepare_from_primary"]
    forged = Prepare(0, 1, 2, block_hash, s0.sign("prepare", payload))
    assert dropped(deliver(cluster, 2, encode_message(forged))) == ["bad_signature"]
    # a prepare signature does not pass as a commit (domains differ)
    cross = Commit(0, 1, 2, block_hash, s2.sign("prepare", payload))
    assert dropped(deliver(cluster, 2, encode_message(cross))) == ["bad_signature"]
    window = Commit(0, 99, 2, block_hash, s2.sign(COMMIT_DOMAIN, commit_vote_payload(0, 99, block_hash)))
    assert dropped(deliver(cluster, 2, encode_message(window))) == ["out_of_window"]
    good = Commit(0, 1, 2, block_hash, s2.sign(COMMIT_DOMAIN, commit_vote_payload(0, 1, block_hash)))
    assert not dropped(deliver(cluster, 2, encode_message(good)))
    other = b"\x05" * 32
    rival = Commit(0, 1, 2, other, s2.sign(COMMIT_DOMAIN, commit_vote_payload(0, 1, other)))
    assert dropped(deliver(cluster, 2, encode_message(rival))) == ["equivocation"]


def decode_first_block_hash(cluster: Cluster) -> bytes:
    from consensus.messages import decode_message
    for _, _, data in cluster.queue:
        message = decode_message(data)
        if isinstance(message, PrePrepare):
            return message.block.block_hash
    raise AssertionError("no pre-prepare queued")


def test_checkpoint_checks(cluster):
    s2 = signer(cluster, 2)
    root, block_hash = b"\x06" * 32, b"\x05" * 32

    def checkpoint(height: int, signed_height: int | None = None, state_root: bytes = root,
                   signed_hash: bytes = block_hash) -> bytes:
        payload = checkpoint_payload(height if signed_height is None else signed_height,
                                     signed_hash, state_root)
        return encode_message(Checkpoint(height, block_hash, state_root, 2,
                                         s2.sign("checkpoint", payload)))

    assert dropped(deliver(cluster, 2, checkpoint(3))) == ["bad_checkpoint_height"]
    assert dropped(deliver(cluster, 2, checkpoint(4, signed_height=8))) == ["bad_signature"]
    assert dropped(deliver(cluster, 2, checkpoint(4, signed_hash=b"\x04" * 32))) == [
        "bad_signature"]  # the block hash is signed too
    assert not dropped(deliver(cluster, 2, checkpoint(4)))
    assert dropped(deliver(cluster, 2, checkpoint(4, state_root=b"\x07" * 32))) == [
        "equivocation"]


def test_view_change_and_new_view_checks(cluster):
    s2 = signer(cluster, 2)
    genesis_proof = CheckpointProof(0, GENESIS_HASH, APP_HASH0, ())

    def view_change(new_view=1, prepared=(), blocks=(), proof=genesis_proof, sign=s2):
        unsigned = ViewChange(new_view, 2, proof, None, tuple(prepared), b"", ())
        return encode_message(ViewChange(new_view, 2, proof, None, tuple(prepared),
                                         sign.sign("viewchange", unsigned.signing_payload()),
                                         tuple(blocks)))

    assert dropped(deliver(cluster, 2, view_change(sign=signer(cluster, 3)))) == ["bad_signature"]
    bad_proof = CheckpointProof(4, GENESIS_HASH, APP_HASH0, ((0, b"\x00" * 64),))
    assert dropped(deliver(cluster, 2, view_change(proof=bad_proof))) == ["bad_checkpoint_proof"]
    block = block_for(cluster)
    fake_cert = PreparedCertificate(0, 1, block.block_hash, b"\x08" * 64,
                                    ((1, b"\x09" * 64), (2, b"\x0a" * 64)))
    assert dropped(deliver(cluster, 2, view_change(prepared=[fake_cert], blocks=[block]))) == [
        "bad_prepared_certificate"]
    # a correct one is kept; then a NEW-VIEW from a replica that is not view 1's primary
    assert not dropped(deliver(cluster, 2, view_change()))
    unsigned = NewView(1, 2, (), (), b"", ())
    not_primary = NewView(1, 2, (), (), s2.sign("newview", unsigned.signing_payload()), ())
    assert dropped(deliver(cluster, 2, encode_message(not_primary))) == ["not_primary"]
    s1 = signer(cluster, 1)
    unsigned = NewView(1, 1, (), (), b"", ())
    empty = NewView(1, 1, (), (), s1.sign("newview", unsigned.signing_payload()), ())
    assert dropped(deliver(cluster, 1, encode_message(empty), target=2)) == ["bad_new_view"]


def test_block_response_and_forward_checks(cluster):
    assert dropped(deliver(cluster, 2, encode_message(BlockResponse(2, ())))) == ["unrequested_blocks"]
    many = Cluster(params=replace(TEST_PARAMS, max_forward_txs=1))
    many.start()
    many.tick()
    forward = TxForward(2, make_txs(0, 2))
    assert dropped(deliver(many, 2, encode_message(forward))) == ["too_many_txs"]
    ready = many.replica(TARGET).step(Receive(2, encode_message(TxForward(2, make_txs(0, 1)))))
    assert [tx for _, tx in ready.txs] == list(make_txs(0, 1))


def test_fuzzed_bytes_never_raise(cluster):
    import random
    rng = random.Random(7)
    samples = [preprepare(cluster, block_for(cluster, txs=make_txs(0, 2)))]
    samples.append(encode_message(Checkpoint(4, b"\x03" * 32, b"\x01" * 32, 2, b"\x02" * 64)))
    replica = cluster.replica(TARGET)
    for _ in range(400):
        data = bytearray(rng.choice(samples))
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        replica.step(Receive(rng.choice([0, 2, 3]), bytes(data)))
    assert replica.stats.get("dropped", 0) > 300
