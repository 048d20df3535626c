"""What the simulator knows of PBFT's wire messages: trace summaries, votes, forgeries.

``describe`` turns a consensus message into the trace's type/view/height and the votes it
carries (one slot per (kind, view, height) that an honest replica may sign only once).
``forge`` builds the messages a forger sends: well-formed, but with a signature that is not
the claimed replica's -- impersonating another replica, a random signature, or changed
contents under the original signature. ``conflicting_proposal`` builds what an equivocating
primary sends to half of the replicas: a different block for the same (view, height), on
the same parent, validly signed.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace

from consensus import messages as m
from ledger.hashing import sha256
from ledger.keys import KeyPair, SIGNATURE_BYTES
from ledger.types import Block, tx_root
from sim.backend import MessageInfo, Vote

# The slots an honest replica signs at most once. A view change is left out: a replica may
# re-send an updated VIEW-CHANGE for the same view after learning more, which PBFT allows.
VOTE_KINDS = ("pre_prepare", "prepare", "commit", "checkpoint")


def describe(data: bytes) -> MessageInfo:
    try:
        message = m.decode_message(data)
    except Exception:  # corrupt or forged bytes: the trace says so, the run goes on
        return MessageInfo("undecodable")
    if isinstance(message, m.PrePrepare):
        block_hash = message.block.block_hash
        return MessageInfo(message.TYPE, message.view, message.height, (
            Vote(message.replica, "pre_prepare", message.view, message.height, block_hash),))
    if isinstance(message, (m.Prepare, m.Commit)):
        return MessageInfo(message.TYPE, message.view, message.height, (
            Vote(message.replica, message.TYPE, message.view, message.height, message.block_hash),))
    if isinstance(message, m.Checkpoint):
        return MessageInfo(message.TYPE, None, message.height, (
            Vote(message.replica, "checkpoint", 0, message.height, message.state_root),))
    if isinstance(message, m.NewView):
        votes = tuple(Vote(message.replica, "pre_prepare", message.new_view, entry.height,
                           entry.block_hash) for entry in message.preprepares)
        return MessageInfo(message.TYPE, message.new_view, None, votes)
    if isinstance(message, m.ViewChange):
        return MessageInfo(message.TYPE, message.new_view, None)
    if isinstance(message, m.BlockRequest):
        return MessageInfo(message.TYPE, None, message.from_height)
    if isinstance(message, m.BlockResponse):
        height = message.entries[0][0].height if message.entries else None
        return MessageInfo(message.TYPE, None, height)
    return MessageInfo(message.TYPE)


_SIGNED = (m.PrePrepare, m.Prepare, m.Commit, m.Checkpoint, m.ViewChange, m.NewView)


def forge(data: bytes, rng: random.Random, forger: KeyPair, replica_count: int,
          chain_id: str) -> bytes | None:
    """A forged variant of a signed message, or None for messages without a signature."""
    try:
        message = m.decode_message(data)
    except Exception:
        return None
    if not isinstance(message, _SIGNED):
        return None
    choice = rng.randrange(3)
    if choice == 0 and replica_count > 1:
        # impersonate another replica, signing with a key that is not its
        other = rng.randrange(replica_count - 1)
        other = other if other < message.replica else other + 1
        domain = m.SIGNATURE_DOMAINS[message.TYPE]
        impostor = replace(message, replica=other)
        signature = forger.sign(domain, chain_id, impostor.signing_payload())
        return m.encode_message(replace(impostor, signature=signature))
    if choice == 1:
        noise = bytes(rng.randrange(256) for _ in range(SIGNATURE_BYTES))
        return m.encode_message(replace(message, signature=noise))
    # keep the signature, change what it is supposed to cover
    if isinstance(message, (m.Prepare, m.Commit)):
        return m.encode_message(replace(message, block_hash=sha256(message.block_hash)))
    if isinstance(message, m.Checkpoint):
        return m.encode_message(replace(message, state_root=sha256(message.state_root)))
    if isinstance(message, m.PrePrepare):
        return m.encode_message(replace(message, height=message.height + 1))
    return m.encode_message(replace(message, new_view=message.new_view + 1))


def conflicting_proposal(data: bytes, rng: random.Random,
                         sign: Callable[[str, dict], bytes]) -> bytes | None:
    """Another pre-prepare for the same (view, height) as ``data`` and the same parent:
    without its transactions (when it has some) or with a timestamp one ms later, signed with
    ``sign(domain, payload)`` (the proposer's key). None unless ``data`` is a pre-prepare."""
    try:
        message = m.decode_message(data)
    except Exception:
        return None
    if not isinstance(message, m.PrePrepare):
        return None
    header = message.block.header
    if message.block.txs and rng.random() < 0.5:
        block = Block(replace(header, tx_root=tx_root([]), tx_count=0), ())
    else:
        block = Block(replace(header, timestamp_ms=header.timestamp_ms + 1), message.block.txs)
    payload = m.preprepare_payload(message.view, message.height, block.block_hash)
    signature = sign(m.PREPREPARE_DOMAIN, payload)
    return m.encode_message(replace(message, block=block, signature=signature))
