"""Peer frames fuzzed into NodeCore: random, truncated, mutated and replayed, from a peer.

The transport authenticates peers (mutual TLS, keys from genesis), so everything here arrives
with a genuine peer id; what a compromised or broken peer controls is the bytes. A 4-node
cluster (tests/node/node_harness) first runs an honest history that produces every message
type: transactions forwarded, blocks ordered and committed, checkpoints, a view change after
the primary is cut off, and a crashed node catching up by block requests. Every frame of that
history is recorded. Then frames are thrown at one up-to-date node:

- random bytes, and random msgpack maps shaped like messages (a real type, random fields);
- recorded frames cut short, with bytes flipped, inserted or removed;
- recorded frames decoded, one field changed to another value, encoded canonically again
  (these pass the codec and reach the message checks: signatures, certificates, bounds);
- recorded frames replayed as they were, from their sender or from another peer.

For each: ``on_message`` returns (no exception), and the node's state is exactly as before:
heights, view, last block hash, state root, mempool, stable checkpoint, store height and WAL.
What it may do is answer (a replayed block request is served) and count the drop.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import codec
from ledger.errors import HuzhuError
from consensus.messages import MESSAGE_TYPES, TxForward, encode_message
from node_harness import NodeCluster, client_key, kv_tx

TARGET = 2  # the node under fire: a backup that took part in everything
PEERS = (0, 1, 3)
# Examples per strategy: bounded for CI; a long run sets HUZHU_FUZZ_EXAMPLES (BENCHMARKS.md).
EXAMPLES = int(os.environ.get("HUZHU_FUZZ_EXAMPLES", "300"))
TRIED: Counter = Counter()  # inputs tried per strategy (printed at the end of the module)


class RecordingCluster(NodeCluster):
    """A NodeCluster that keeps every frame it routes."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, bytes]] = []
        super().__init__()

    def route(self, source, out) -> None:
        for _, data in out.send:
            self.frames.append((source, data))
        super().route(source, out)


def honest_history() -> RecordingCluster:
    cluster = RecordingCluster()
    client = client_key(1)
    nonce = 0

    def submit(index: int, count: int) -> None:
        nonlocal nonce
        for _ in range(count):
            assert cluster.submit(index, kv_tx(client, nonce, f"k{nonce}")).ok
            nonce += 1

    # Normal case through several checkpoints (every 4 blocks in the harness).
    for round_number in range(6):
        submit(1 + round_number % 3, 3)
        cluster.tick(5)
    # The primary is cut off: the others time out, change view and go on.
    primary = cluster.core(1).status()["primary"]
    cluster.isolated.add(primary)
    submit([i for i in range(4) if i != primary][0], 2)
    cluster.tick(120)
    cluster.isolated.clear()
    cluster.tick(40)
    # A crashed node misses blocks and catches up from its peers.
    cluster.crash(3)
    for _ in range(3):
        submit(1, 2)
        cluster.tick(6)
    cluster.boot(3)
    cluster.tick(60)
    submit(2, 1)
    cluster.tick(30)
    heights = cluster.heights()
    assert len(set(heights)) == 1 and heights[0] >= 8, heights
    assert cluster.core(TARGET).status()["view"] >= 1, "the history has no view change"
    return cluster


@pytest.fixture(scope="module")
def history() -> RecordingCluster:
    cluster = honest_history()
    kinds = Counter(codec.decode(data)["type"] for _, data in cluster.frames)
    missing = set(MESSAGE_TYPES) - set(kinds)
    assert not missing, f"the honest history lacks {missing}"
    stats_before = dict(cluster.core(TARGET).status()["stats"])
    yield cluster
    stats = cluster.core(TARGET).status()["stats"]
    counted = {name: value - stats_before.get(name, 0) for name, value in sorted(stats.items())
               if value != stats_before.get(name, 0)}
    print(f"\npeer frames fuzzed into NodeCore: {dict(TRIED)}, total {sum(TRIED.values())}; "
          f"the node counted {counted}")


def snapshot(cluster: RecordingCluster) -> tuple:
    core = cluster.core(TARGET)
    status = dict(core.status())
    status.pop("stats")
    store = cluster.stores[TARGET]
    return (tuple(sorted(status.items())), store.latest_height(),
            tuple(store.iterate_wal()), len(core.mempool), core.mempool.total_bytes)


def fire(cluster: RecordingCluster, sender: int, data: bytes, strategy: str) -> None:
    """One frame into the target: it must neither raise nor change anything."""
    before = snapshot(cluster)
    out = cluster.core(TARGET).on_message(sender, data)
    TRIED[strategy] += 1
    assert not out.committed, "a fuzzed frame committed a block"
    assert snapshot(cluster) == before, f"state changed by {data[:64]!r}"


# CI replays the same examples every run; a long run explores new ones.
FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                         derandomize="HUZHU_FUZZ_EXAMPLES" not in os.environ,
                         suppress_health_check=list(HealthCheck))

senders = st.sampled_from(PEERS)

plain_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
                       st.binary(max_size=80), st.text(max_size=20))
plain_value = st.recursive(plain_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=12), inner, max_size=5)),
    max_leaves=20)


def test_the_oracle_sees_a_real_change(history: RecordingCluster) -> None:
    """A genuinely new transaction from a peer does change the node: ``fire`` would notice."""
    fresh = kv_tx(client_key(7), 0, "new")
    frame = encode_message(TxForward(PEERS[0], (fresh,)))
    with pytest.raises(AssertionError, match="state changed"):
        fire(history, PEERS[0], frame, "oracle check")
    assert history.core(TARGET).mempool_contains(fresh.tx_id)


@FUZZ_SETTINGS
@given(data=st.binary(max_size=2048), sender=senders)
def test_random_bytes(history: RecordingCluster, data: bytes, sender: int) -> None:
    fire(history, sender, data, "random bytes")


@FUZZ_SETTINGS
@given(kind=st.sampled_from(sorted(MESSAGE_TYPES)),
       fields=st.dictionaries(st.sampled_from(["replica", "view", "height", "block_hash",
                                               "signature", "block", "txs", "entries",
                                               "from_height", "max_blocks", "state_root",
                                               "new_view", "view_changes", "preprepares",
                                               "blocks", "prepared", "stable"]),
                              plain_value, max_size=8),
       sender=senders)
def test_random_messages(history: RecordingCluster, kind: str, fields: dict,
                         sender: int) -> None:
    fire(history, sender, codec.encode({**fields, "type": kind}), "random messages")


EDIT_NAMES = {"truncate": "truncated frames", "flip": "bit-flipped frames",
              "insert": "frames with bytes inserted", "delete": "frames with bytes removed"}


@FUZZ_SETTINGS
@given(choice=st.data(), sender=senders)
def test_truncated_and_mutated_frames(history: RecordingCluster, choice: st.DataObject,
                                      sender: int) -> None:
    _, frame = choice.draw(st.sampled_from(history.frames))
    edit = choice.draw(st.sampled_from(["truncate", "flip", "insert", "delete"]))
    position = choice.draw(st.integers(0, len(frame) - 1))
    if edit == "truncate":
        data = frame[:position]
    elif edit == "flip":
        data = frame[:position] + bytes([frame[position] ^ choice.draw(st.integers(1, 255))]) \
            + frame[position + 1:]
    elif edit == "insert":
        data = frame[:position] + choice.draw(st.binary(min_size=1, max_size=8)) + frame[position:]
    else:
        data = frame[:position] + frame[position + choice.draw(st.integers(1, 8)):]
    fire(history, sender, data, EDIT_NAMES[edit])


def _leaves(value, path=()):
    """Paths to every leaf (and every container) of a decoded frame."""
    yield path
    if isinstance(value, dict):
        for key in sorted(value):
            yield from _leaves(value[key], path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, path + (index,))


def _replace(value, path, new):
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    return [*value[:head], _replace(value[head], rest, new), *value[head + 1:]]


@FUZZ_SETTINGS
@given(choice=st.data(), sender=senders)
def test_field_mutated_frames(history: RecordingCluster, choice: st.DataObject,
                              sender: int) -> None:
    _, frame = choice.draw(st.sampled_from(history.frames))
    plain = codec.decode(frame)
    paths = [path for path in _leaves(plain) if path and path != ("type",)]
    path = choice.draw(st.sampled_from(paths))
    old = plain
    for step in path:
        old = old[step]
    new = choice.draw(plain_value.filter(lambda value: value != old))
    try:
        data = codec.encode(_replace(plain, path, new))
    except HuzhuError:
        return
    fire(history, sender, data, "field-mutated frames")


@FUZZ_SETTINGS
@given(index=st.integers(0, 10**9), other_sender=st.booleans(), sender=senders)
def test_replayed_frames(history: RecordingCluster, index: int, other_sender: bool,
                         sender: int) -> None:
    source, frame = history.frames[index % len(history.frames)]
    if source == TARGET:
        source = PEERS[index % len(PEERS)]
    fire(history, sender if other_sender else source, frame, "replayed frames")
