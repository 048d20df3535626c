"""The simulator's view of PBFT messages: trace summaries, votes and forgeries."""

from __future__ import annotations

import random

from consensus import messages as m
from ledger.keys import KeyPair, verify
from ledger.types import COMMIT_DOMAIN, commit_vote_payload
from sim.protocol import describe, forge

CHAIN = "huzhu-sim"
KEYS = [KeyPair.from_seed(bytes([i + 1]) * 32) for i in range(4)]
HASH = b"\x11" * 32


def prepare(replica: int = 1, view: int = 0, height: int = 3) -> m.Prepare:
    payload = m.prepare_payload(view, height, HASH)
    return m.Prepare(view, height, replica, HASH, KEYS[replica].sign(m.PREPARE_DOMAIN, CHAIN, payload))


def test_describe_reports_type_view_height_and_the_vote():
    info = describe(m.encode_message(prepare()))
    assert (info.type, info.view, info.height) == ("prepare", 0, 3)
    assert len(info.votes) == 1
    vote = info.votes[0]
    assert (vote.replica, vote.kind, vote.view, vote.height, vote.digest) == (1, "prepare", 0, 3, HASH)
    commit = m.Commit(2, 5, 3, HASH, KEYS[3].sign(COMMIT_DOMAIN, CHAIN, commit_vote_payload(2, 5, HASH)))
    assert describe(m.encode_message(commit)).votes[0].kind == "commit"
    checkpoint = m.Checkpoint(16, HASH, HASH, 2, b"\x00" * 64)
    assert describe(m.encode_message(checkpoint)).votes[0].kind == "checkpoint"


def test_describe_never_raises_on_garbage():
    assert describe(b"\x00\x01garbage").type == "undecodable"
    assert describe(b"").type == "undecodable"


def test_forgeries_are_well_formed_but_do_not_verify_as_the_claimed_replica():
    original = prepare()
    rng = random.Random(3)
    forger = KeyPair.from_seed(b"\x99" * 32)
    variants = set()
    for _ in range(30):
        data = forge(m.encode_message(original), rng, forger, 4, CHAIN)
        assert data is not None
        message = m.decode_message(data)  # structurally valid
        assert isinstance(message, m.Prepare)
        assert message != original
        claimed = KEYS[message.replica].public_key
        assert not verify(claimed, m.PREPARE_DOMAIN, CHAIN, message.signing_payload(),
                          message.signature)
        variants.add((message.replica != original.replica, message.block_hash != HASH,
                      message.signature != original.signature))
    assert len(variants) == 3  # impersonation, noise signature, changed contents


def test_unsigned_messages_are_not_forged():
    request = m.BlockRequest(1, 5, 10)
    assert forge(m.encode_message(request), random.Random(1), KEYS[0], 4, CHAIN) is None
    assert forge(b"junk", random.Random(1), KEYS[0], 4, CHAIN) is None


def test_conflicting_proposal_is_a_valid_signed_preprepare_for_the_same_slot():
    from ledger.types import Block, BlockHeader, Transaction, tx_root
    from sim.protocol import conflicting_proposal

    client = KeyPair.from_seed(b"\x42" * 32)
    txs = (Transaction.create(client, CHAIN, 0, "kv.set", {"key": "a", "value": b"1"}),)
    header = BlockHeader(CHAIN, 7, 2, b"\x01" * 32, 1_700_000_000_000, 2,
                         tx_root([tx.tx_id for tx in txs]), 1, b"\x02" * 32, b"\x03" * 32)
    block = Block(header, txs)
    payload = m.preprepare_payload(2, 7, block.block_hash)
    original = m.PrePrepare(2, 7, 2, block, KEYS[2].sign(m.PREPREPARE_DOMAIN, CHAIN, payload))

    def sign(kind, body):
        return KEYS[2].sign(kind, CHAIN, body)

    seen = set()
    for seed in range(8):
        data = conflicting_proposal(m.encode_message(original), random.Random(seed), sign)
        other = m.decode_message(data)
        assert (other.view, other.height, other.replica) == (2, 7, 2)
        assert other.block.block_hash != block.block_hash
        assert other.block.header.prev_hash == header.prev_hash
        other.block.validate_structure()
        assert verify(KEYS[2].public_key, m.PREPREPARE_DOMAIN, CHAIN, other.signing_payload(),
                      other.signature)
        seen.add(other.block.header.tx_count)
    assert seen == {0, 1}  # sometimes emptied, sometimes re-timed
    assert conflicting_proposal(m.encode_message(prepare()), random.Random(1), sign) is None
