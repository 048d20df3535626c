"""ledger.types: canonical round trips, strict decoding, signatures, block structure, quorums."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import codec, merkle, types
from ledger.errors import DecodeError, InvalidBlock, InvalidCertificate, InvalidTransaction
from ledger.keys import KeyPair
from ledger.quorum import quorum_size
from ledger.types import (
    Block,
    BlockHeader,
    CommitCertificate,
    Receipt,
    Transaction,
    commit_vote_payload,
)

CHAIN = "huzhu-test"
KEYS = [KeyPair.from_seed(bytes([index + 1]) * 32) for index in range(7)]
HASH_A, HASH_B = b"\xaa" * 32, b"\xbb" * 32

# --- strategies ---------------------------------------------------------------------------

chain_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,30}", fullmatch=True)
tx_kinds = st.from_regex(r"[a-z][a-z0-9_]{0,8}(\.[a-z][a-z0-9_]{0,8}){0,2}", fullmatch=True)
hashes = st.binary(min_size=32, max_size=32)
plain_scalars = st.one_of(st.none(), st.booleans(), st.integers(codec.MIN_INT, codec.MAX_INT),
                          st.binary(max_size=40), st.text(max_size=40))
plain_values = st.recursive(
    plain_scalars,
    lambda children: st.one_of(st.lists(children, max_size=5),
                               st.dictionaries(st.text(max_size=10), children, max_size=5)),
    max_leaves=20,
)
bodies = st.dictionaries(st.text(max_size=12), plain_values, max_size=6)
heights = st.integers(0, types.MAX_HEIGHT)


@st.composite
def transactions(draw, chain_id=None):
    key = draw(st.sampled_from(KEYS))
    return Transaction.create(key, chain_id or draw(chain_ids),
                              draw(st.integers(0, types.MAX_NONCE)), draw(tx_kinds), draw(bodies))


headers = st.builds(
    BlockHeader,
    chain_id=chain_ids, height=heights, view=heights, prev_hash=hashes,
    timestamp_ms=heights, proposer=st.integers(0, types.MAX_REPLICAS - 1), tx_root=hashes,
    tx_count=st.integers(0, types.MAX_BLOCK_TXS), app_hash=hashes, results_hash=hashes,
)
blocks = st.builds(Block, header=headers,
                   txs=st.lists(transactions(), max_size=3).map(tuple))
certificates = st.builds(
    CommitCertificate,
    height=heights, view=heights, block_hash=hashes,
    signatures=st.lists(st.tuples(st.integers(0, types.MAX_REPLICAS - 1),
                                  st.binary(min_size=64, max_size=64)),
                        min_size=1, max_size=8, unique_by=lambda pair: pair[0])
    .map(lambda pairs: tuple(sorted(pairs))),
)
receipts = st.builds(Receipt, tx_id=hashes,
                     code=st.text(min_size=1, max_size=types.MAX_CODE_CHARS), result=bodies)


# --- round trips --------------------------------------------------------------------------

@given(transactions())
def test_transaction_round_trip(tx):
    encoded = tx.encode()
    decoded = Transaction.decode(encoded)
    assert decoded == tx
    assert decoded.encode() == encoded
    assert decoded.tx_id == tx.tx_id == types.sha256(encoded)
    assert decoded.verify_signature()


@given(headers)
def test_header_round_trip(header):
    decoded = BlockHeader.decode(header.encode())
    assert decoded == header
    assert decoded.block_hash == header.block_hash


@given(blocks)
def test_block_round_trip(block):
    encoded = block.encode()
    assert Block.decode(encoded) == block
    assert Block.decode(encoded).encode() == encoded
    assert block.block_hash == block.header.block_hash


@given(certificates)
def test_certificate_round_trip(certificate):
    assert CommitCertificate.decode(certificate.encode()) == certificate


@given(receipts)
def test_receipt_round_trip(receipt):
    assert Receipt.decode(receipt.encode()) == receipt


# --- strict decoding ----------------------------------------------------------------------

def sample_tx(**body) -> Transaction:
    return Transaction.create(KEYS[0], CHAIN, 7, "member.deposit", body or {"amount_fen": 100})


def sample_header(**changes) -> BlockHeader:
    header = BlockHeader(CHAIN, 5, 1, HASH_A, 1_700_000_000_000, 1, merkle.EMPTY_ROOT, 0,
                         HASH_B, HASH_B)
    return dataclasses.replace(header, **changes)


def changed(plain: dict, **changes) -> bytes:
    plain = dict(plain)
    for name, value in changes.items():
        if value is KeyError:
            del plain[name]
        else:
            plain[name] = value
    return codec.encode(plain)


TX_BAD_FIELDS = [
    ({"nonce": KeyError}, "malformed"),
    ({"extra": 1}, "malformed"),
    ({"signature": KeyError, "sig": b"\x00" * 64}, "malformed"),
    ({"nonce": "7"}, "malformed"),
    ({"nonce": True}, "malformed"),
    ({"nonce": -1}, "malformed"),
    ({"nonce": types.MAX_NONCE + 1}, "malformed"),
    ({"sender": b"\x00" * 31}, "malformed"),
    ({"sender": "00" * 32}, "malformed"),
    ({"signature": b"\x00" * 63}, "malformed"),
    ({"body": []}, "malformed"),
    ({"body": None}, "malformed"),
    ({"chain_id": 5}, "bad_chain_id"),
    ({"chain_id": ""}, "bad_chain_id"),
    ({"chain_id": "-huzhu"}, "bad_chain_id"),
    ({"chain_id": "huzhu test"}, "bad_chain_id"),
    ({"chain_id": "huzhu\n"}, "bad_chain_id"),
    ({"chain_id": "h" * (types.MAX_CHAIN_ID_CHARS + 1)}, "bad_chain_id"),
    ({"kind": ""}, "bad_kind"),
    ({"kind": "Member.enroll"}, "bad_kind"),
    ({"kind": "member..enroll"}, "bad_kind"),
    ({"kind": "member.enroll\n"}, "bad_kind"),
    ({"kind": "member.enroll."}, "bad_kind"),
    ({"kind": b"member.enroll"}, "bad_kind"),
    ({"kind": "m" * (types.MAX_KIND_CHARS + 1)}, "bad_kind"),
]


@pytest.mark.parametrize("changes, code", TX_BAD_FIELDS)
def test_transaction_decode_rejects(changes, code):
    with pytest.raises(InvalidTransaction) as info:
        Transaction.decode(changed(sample_tx().to_plain(), **changes))
    assert info.value.code == code


def test_transaction_decode_passes_codec_errors_through_as_invalid_transaction():
    with pytest.raises(InvalidTransaction) as info:
        Transaction.decode(b"\xcc\x01")
    assert info.value.code == "non_canonical"
    with pytest.raises(InvalidTransaction) as info:
        Transaction.decode(codec.encode(b"\x00" * types.MAX_TX_BYTES))
    assert info.value.code == "oversize"
    with pytest.raises(InvalidTransaction) as info:
        Transaction.decode(codec.encode([1, 2]))
    assert info.value.code == "malformed"


def test_create_validates_its_fields():
    with pytest.raises(InvalidTransaction):
        Transaction.create(KEYS[0], CHAIN, -1, "member.deposit", {})
    with pytest.raises(InvalidTransaction):
        Transaction.create(KEYS[0], CHAIN, 0, "Bad Kind", {})


HEADER_BAD_FIELDS = [
    {"height": KeyError},
    {"extra": 0},
    {"height": -1},
    {"height": types.MAX_HEIGHT + 1},
    {"height": "5"},
    {"view": -1},
    {"timestamp_ms": -1},
    {"proposer": types.MAX_REPLICAS},
    {"proposer": False},
    {"tx_count": types.MAX_BLOCK_TXS + 1},
    {"prev_hash": HASH_A[:31]},
    {"tx_root": HASH_A.hex()},
    {"app_hash": None},
    {"results_hash": HASH_A + b"\x00"},
    {"chain_id": "bad chain"},
]


@pytest.mark.parametrize("changes", HEADER_BAD_FIELDS)
def test_header_decode_rejects(changes):
    with pytest.raises(InvalidBlock):
        BlockHeader.decode(changed(sample_header().to_plain(), **changes))


def test_block_decode_rejects():
    good = Block(sample_header(), (sample_tx(),)).to_plain()
    for changes in ({"txs": KeyError}, {"extra": 1}, {"txs": {}},
                    {"txs": [None] * (types.MAX_BLOCK_TXS + 1)}):
        with pytest.raises(InvalidBlock) as info:
            Block.decode(changed(good, **changes))
        assert info.value.code == "malformed"
    bad_tx = dict(good["txs"][0], nonce=-1)
    with pytest.raises(InvalidBlock) as info:
        Block.decode(changed(good, txs=[bad_tx]))
    assert info.value.code == "bad_transaction"
    with pytest.raises(InvalidBlock):
        Block.decode(changed(good, header=dict(good["header"], view=-1)))


CERT_BAD_FIELDS = [
    ({"view": KeyError}, "malformed"),
    ({"extra": 1}, "malformed"),
    ({"signatures": []}, "malformed"),
    ({"signatures": {}}, "malformed"),
    ({"signatures": [[0, b"\x00" * 64, 1]]}, "malformed"),
    ({"signatures": [0]}, "malformed"),
    ({"signatures": [[types.MAX_REPLICAS, b"\x00" * 64]]}, "malformed"),
    ({"signatures": [[-1, b"\x00" * 64]]}, "malformed"),
    ({"signatures": [[0, b"\x00" * 63]]}, "malformed"),
    ({"signatures": [[1, b"\x00" * 64], [0, b"\x00" * 64]]}, "unsorted_signers"),
    ({"signatures": [[0, b"\x00" * 64], [0, b"\x00" * 64]]}, "unsorted_signers"),
    ({"block_hash": b"\x00" * 31}, "malformed"),
    ({"height": -1}, "malformed"),
]


@pytest.mark.parametrize("changes, code", CERT_BAD_FIELDS)
def test_certificate_decode_rejects(changes, code):
    good = CommitCertificate(5, 0, HASH_A, ((0, b"\x01" * 64), (2, b"\x02" * 64))).to_plain()
    with pytest.raises(InvalidCertificate) as info:
        CommitCertificate.decode(changed(good, **changes))
    assert info.value.code == code


@pytest.mark.parametrize("changes", [
    {"code": KeyError}, {"extra": 1}, {"code": ""}, {"code": "x" * (types.MAX_CODE_CHARS + 1)},
    {"code": 0}, {"result": []}, {"tx_id": HASH_A[:31]}, {"tx_id": None},
])
def test_receipt_decode_rejects(changes):
    good = Receipt(HASH_A, "ok", {"member": 1}).to_plain()
    with pytest.raises(DecodeError):
        Receipt.decode(changed(good, **changes))


# --- transaction signatures ---------------------------------------------------------------

def test_transaction_signature_verifies_and_tampering_breaks_it():
    tx = sample_tx(amount_fen=100)
    assert tx.verify_signature()
    tx.check_signature()
    for tampered in (
        dataclasses.replace(tx, nonce=8),
        dataclasses.replace(tx, body={"amount_fen": 101}),
        dataclasses.replace(tx, kind="member.exit"),
        dataclasses.replace(tx, chain_id="huzhu-other"),
        dataclasses.replace(tx, sender=KEYS[1].public_key),
        dataclasses.replace(tx, signature=bytes(64)),
    ):
        assert not tampered.verify_signature()
        with pytest.raises(InvalidTransaction) as info:
            tampered.check_signature()
        assert info.value.code == "bad_signature"
        assert tampered.tx_id != tx.tx_id


def test_transaction_signed_as_another_domain_fails():
    tx = sample_tx()
    vote_signature = KEYS[0].sign(types.COMMIT_DOMAIN, CHAIN, tx.signing_payload())
    assert not dataclasses.replace(tx, signature=vote_signature).verify_signature()


# --- block structure ----------------------------------------------------------------------

def block_with(txs, **header_changes) -> Block:
    txs = tuple(txs)
    header = sample_header(tx_root=types.tx_root([tx.tx_id for tx in txs]), tx_count=len(txs))
    return Block(dataclasses.replace(header, **header_changes), txs)


def several_txs(count: int) -> list[Transaction]:
    return [Transaction.create(KEYS[index % 3], CHAIN, index, "member.deposit",
                               {"amount_fen": index}) for index in range(count)]


def test_valid_blocks_pass_structure_checks():
    block_with([]).validate_structure()
    block_with(several_txs(5)).validate_structure()
    assert block_with([]).header.tx_root == merkle.EMPTY_ROOT


def structure_error(block: Block) -> str:
    with pytest.raises(InvalidBlock) as info:
        block.validate_structure()
    return info.value.code


def test_structure_catches_tx_count_mismatch():
    txs = several_txs(3)
    assert structure_error(block_with(txs, tx_count=2)) == "tx_count"
    assert structure_error(block_with(txs, tx_count=4)) == "tx_count"


def test_structure_catches_tx_root_mismatch():
    txs = several_txs(3)
    assert structure_error(block_with(txs, tx_root=HASH_A)) == "tx_root"
    reordered = block_with(txs)
    reordered = Block(reordered.header, (txs[1], txs[0], txs[2]))
    assert structure_error(reordered) == "tx_root"
    swapped = Block(block_with(txs).header, (txs[0], txs[1], several_txs(4)[3]))
    assert structure_error(swapped) == "tx_root"


def test_structure_catches_duplicate_transactions():
    tx = several_txs(1)[0]
    assert structure_error(block_with([tx, tx])) == "duplicate_tx"


def test_structure_catches_transactions_for_another_chain():
    foreign = Transaction.create(KEYS[0], "huzhu-other", 0, "member.deposit", {})
    assert structure_error(block_with([several_txs(1)[0], foreign])) == "bad_chain_id"


def test_structure_catches_oversize_transactions():
    big = Transaction.create(KEYS[0], CHAIN, 0, "evidence.anchor",
                             {"blob": b"\x00" * types.MAX_TX_BYTES})
    assert structure_error(block_with([big])) == "oversize_tx"


# --- commit certificates ------------------------------------------------------------------

def votes(validators: list[KeyPair], signers, view=0, height=5, block_hash=HASH_A,
          chain_id=CHAIN) -> dict[int, bytes]:
    payload = commit_vote_payload(view, height, block_hash)
    return {index: validators[index].sign(types.COMMIT_DOMAIN, chain_id, payload)
            for index in signers}


@pytest.mark.parametrize("n", [4, 7])
def test_certificate_accepts_a_quorum(n):
    validators = KEYS[:n]
    public = [key.public_key for key in validators]
    needed = quorum_size(n)
    assert needed == {4: 3, 7: 5}[n]
    for signers in (range(needed), range(n - needed, n), range(n)):
        CommitCertificate.build(5, 0, HASH_A, votes(validators, signers)).verify(CHAIN, public)


def certificate_error(certificate: CommitCertificate, public: list[bytes],
                      chain_id: str = CHAIN) -> str:
    with pytest.raises(InvalidCertificate) as info:
        certificate.verify(chain_id, public)
    return info.value.code


@pytest.mark.parametrize("n", [4, 7])
def test_certificate_rejects_too_few(n):
    validators = KEYS[:n]
    public = [key.public_key for key in validators]
    certificate = CommitCertificate.build(5, 0, HASH_A, votes(validators, range(quorum_size(n) - 1)))
    assert certificate_error(certificate, public) == "no_quorum"


@pytest.mark.parametrize("n", [4, 7])
def test_certificate_rejects_duplicate_signers(n):
    validators = KEYS[:n]
    public = [key.public_key for key in validators]
    signed = votes(validators, range(quorum_size(n) - 1))
    pairs = sorted(signed.items())
    doubled = CommitCertificate(5, 0, HASH_A, tuple(pairs + [pairs[-1]]))
    assert certificate_error(doubled, public) == "unsorted_signers"
    # build() keeps one signature per signer, so a repeated one still falls short
    assert certificate_error(CommitCertificate.build(5, 0, HASH_A, pairs + [pairs[-1]]),
                             public) == "no_quorum"


@pytest.mark.parametrize("n", [4, 7])
def test_certificate_rejects_unknown_signers(n):
    validators = KEYS[:n]
    public = [key.public_key for key in validators]
    signed = votes(validators, range(quorum_size(n)))
    outsider = KeyPair.from_seed(b"\x77" * 32)
    signed_by_outsider = dict(signed)
    signed_by_outsider[n] = outsider.sign(types.COMMIT_DOMAIN, CHAIN,
                                          commit_vote_payload(0, 5, HASH_A))
    assert certificate_error(CommitCertificate.build(5, 0, HASH_A, signed_by_outsider),
                             public) == "unknown_signer"
    # a negative id must not index the validator list from its end
    pairs = tuple(sorted(votes(validators, range(1, quorum_size(n))).items()))
    wrapped = votes(validators, [n - 1])[n - 1]
    negative = CommitCertificate(5, 0, HASH_A, ((-1, wrapped),) + pairs)
    assert certificate_error(negative, public) == "unknown_signer"


@pytest.mark.parametrize("n", [4, 7])
@pytest.mark.parametrize("wrong", ["block_hash", "view", "height", "chain", "domain"])
def test_certificate_rejects_signatures_over_something_else(n, wrong):
    validators = KEYS[:n]
    public = [key.public_key for key in validators]
    signers = range(quorum_size(n))
    good = votes(validators, signers)
    if wrong == "block_hash":
        bad = votes(validators, [0], block_hash=HASH_B)
    elif wrong == "view":
        bad = votes(validators, [0], view=1)
    elif wrong == "height":
        bad = votes(validators, [0], height=6)
    elif wrong == "chain":
        bad = votes(validators, [0], chain_id="huzhu-other")
    else:
        bad = {0: validators[0].sign("prepare", CHAIN, commit_vote_payload(0, 5, HASH_A))}
    certificate = CommitCertificate.build(5, 0, HASH_A, {**good, **bad})
    assert certificate_error(certificate, public) == "bad_signature"


@pytest.mark.parametrize("n", [4, 7])
def test_whole_certificate_for_another_view_or_chain_fails(n):
    validators = KEYS[:n]
    public = [key.public_key for key in validators]
    signed = votes(validators, range(n))
    assert certificate_error(CommitCertificate.build(5, 1, HASH_A, signed), public) == \
        "bad_signature"
    assert certificate_error(CommitCertificate.build(5, 0, HASH_B, signed), public) == \
        "bad_signature"
    good = CommitCertificate.build(5, 0, HASH_A, signed)
    assert certificate_error(good, public, chain_id="huzhu-other") == "bad_signature"
    # the same signatures checked against another validator set
    others = [key.public_key for key in reversed(validators)]
    assert certificate_error(good, others) == "bad_signature"


# --- hashes over receipts and transactions ------------------------------------------------

def test_results_hash_and_tx_root_are_merkle_roots():
    first, second = Receipt(HASH_A, "ok", {}), Receipt(HASH_B, "nonce_gap", {})
    assert types.results_hash([]) == merkle.EMPTY_ROOT
    assert types.results_hash([first, second]) == merkle.root([first.encode(), second.encode()])
    assert types.results_hash([first, second]) != types.results_hash([second, first])
    ids = [tx.tx_id for tx in several_txs(3)]
    assert types.tx_root(ids) == merkle.root(ids)


def test_block_hash_covers_every_header_field():
    header = sample_header()
    seen = {header.block_hash}
    for name, value in [("chain_id", "huzhu-other"), ("height", 6), ("view", 2),
                        ("prev_hash", HASH_B), ("timestamp_ms", 1), ("proposer", 2),
                        ("tx_root", HASH_A), ("tx_count", 1), ("app_hash", HASH_A),
                        ("results_hash", HASH_A)]:
        seen.add(dataclasses.replace(header, **{name: value}).block_hash)
    assert len(seen) == 11
