"""Findings of a protocol-aware adversary, each as an exact transcript: one byzantine replica
out of four (n=4, f=1) crafts messages that honest code would never send. Every test fails on
the replica before its fix and names the safety or liveness property it protects."""

from __future__ import annotations

from dataclasses import replace

from pbft_harness import Cluster, make_txs
from test_pbft_validation import deliver, dropped, signer

from consensus.messages import (
    CheckpointProof,
    NewView,
    decode_message,
    encode_message,
)


def _run_until(cluster: Cluster, condition, max_ticks: int = 400, waiting_txs: int = 1) -> None:
    for _ in range(max_ticks):
        if condition():
            return
        cluster.tick(waiting_txs=waiting_txs)
    raise AssertionError("condition never held")


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
    _run_until(cluster, lambda: cluster.replica(1).view == 1
               and not cluster.replica(1).view_changing)
    cluster.drop = None
    honest = _wal_new_view(cluster, 1, 1)
    victim = cluster.replica(3)
    assert victim.view_changing and victim.stable.height == 0
    # The byzantine new primary swaps replica 2's checkpoint for a forged one.
    forged = CheckpointProof(400, b"\x09" * 32, ())
    view_changes = tuple(replace(vc, checkpoint=forged) if vc.replica == 2 else vc
                         for vc in honest.view_changes)
    data = _resign_new_view(cluster, honest, view_changes=view_changes)
    assert dropped(deliver(cluster, 1, data, target=3)) == ["bad_new_view"]
    assert victim.stable.height == 0 and victim.view_changing
    # The honest NEW-VIEW is still accepted afterwards.
    deliver(cluster, 1, encode_message(honest), target=3)
    assert victim.view == 1 and not victim.view_changing
