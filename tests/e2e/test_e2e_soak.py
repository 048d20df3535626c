"""Soak (slow, excluded by default): repeated kill -9 of random nodes under load.

Each round kills one node (possibly the primary) with SIGKILL while transactions keep flowing
to the others, lets the rest commit, and restarts it. At the end every transaction that was
accepted is committed on every node, and all four hold the same chain and state root.
Run with: ./scripts/test.sh -m slow tests/e2e/test_e2e_soak.py
"""

from __future__ import annotations

import random

import pytest

from e2e_helpers import Net
from test_e2e_consortium import Load, assert_same_chain, committed_everywhere, settled

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROUNDS = 8


def test_repeated_kill9_under_load(tmp_path) -> None:
    rng = random.Random(20181016)  # Xiang Hu Bao's launch day; any fixed seed would do
    net = Net(tmp_path / "net")
    accepted = []
    try:
        net.start_all()
        for round_number in range(ROUNDS):
            victim = rng.randrange(4)
            others = [index for index in range(4) if index != victim]
            with Load(net, others) as load:
                net.wait_until(lambda: len(load.accepted) >= 3, "load running")
                net.kill9(victim)
                before = max(net.height(index) for index in others)
                net.wait_until(lambda: min(net.height(index) for index in others) >= before + 2,
                               f"round {round_number}: commits without node{victim}")
                net.start(victim)
                net.wait_ready([victim])
                target = max(net.height(index) for index in others)
                net.wait_until(lambda: net.height(victim) >= target,
                               f"round {round_number}: node{victim} caught up")
            accepted.extend(load.accepted)
        for tx in accepted:
            net.wait_until(lambda tx=tx: committed_everywhere(net, tx, range(4)),
                           f"{tx.tx_id.hex()[:8]} committed everywhere")
        height = net.wait_until(lambda: settled(net, range(4)), "all four settled")
        assert_same_chain(net, list(range(4)), height)
    finally:
        net.close()
