"""Fault campaign against a 4-node plan consortium of real processes, under load.

Faults: repeated kill -9 of a random node, SIGSTOP/SIGCONT of the primary (the others change
view; the stopped one wakes into a world that moved on), and kill -9 of all nodes at once
followed by a restart. After each: every node holds the same block hashes and state root,
no transaction is in the chain twice, and every transaction whose commit a node acknowledged
to a client is in the chain exactly once, with an ok receipt (plan_load.check_consortium).

The short form (default, CI) runs each fault once or a few times on one consortium; the long
form (-m slow) runs many rounds of all of them. Every wait is bounded (Net.wait_until), every
load stops by itself, and the nodes are killed when the module ends whatever happened.
"""

from __future__ import annotations

import os
import random
import signal

import pytest

from e2e_helpers import Net
from plan_load import PlanLoad, check_consortium, settled

pytestmark = pytest.mark.e2e

CLIENTS = 12
SEED = 20181016  # any fixed seed; the faults are chosen by it, the timing is the machine's
PROGRESS_TXS = 10  # acknowledged commits that show the consortium is making progress


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    net = Net(tmp_path_factory.mktemp("faults") / "net", app="plan", bench_keys=CLIENTS)
    try:
        net.start_all()
        yield net
    finally:
        net.close()  # SIGKILL: a stopped node dies too


@pytest.fixture(scope="module")
def load(net: Net):
    load = PlanLoad(net, CLIENTS)
    yield load
    load.stop_event.set()
    print(f"\nfault campaign answers: {dict(load.outcomes.answers)}; "
          f"acknowledged commits: {load.acked_count()}")


def wait_progress(net: Net, load: PlanLoad, what: str, amount: int = PROGRESS_TXS) -> None:
    target = load.acked_count() + amount
    net.wait_until(lambda: load.acked_count() >= target, f"{amount} more commits {what}")


def primary_of(net: Net, indexes) -> int:
    for index in indexes:
        code, body = net.get(index, "/status")
        if code == 200:
            return body["primary"]
    raise AssertionError("no node answers /status")


def kill9_rounds(net: Net, load: PlanLoad, rng: random.Random, rounds: int,
                 catch_up_first: bool = True) -> None:
    """Kill -9 a random node, let the others commit without it, restart it.

    With ``catch_up_first`` the next round waits until the restarted node has caught up, so
    at most one node is behind at any time (the fault model: f = 1). Without it the next
    victim may die while the last one is still catching up; the survivors must then still
    recover once it has."""
    with load:
        wait_progress(net, load, "before the first kill")
        for round_number in range(rounds):
            victim = rng.randrange(len(net.homes))
            others = [index for index in range(len(net.homes)) if index != victim]
            net.kill9(victim)
            wait_progress(net, load, f"in round {round_number} without node{victim}")
            net.start(victim)
            net.wait_ready([victim])
            if catch_up_first:
                target = max(net.height(index) for index in others)
                net.wait_until(lambda: net.height(victim) >= target,
                               f"node{victim} caught up to {target}")
        wait_progress(net, load, "after the last restart")
        # The restarted nodes catch up while the load goes on.
        target = max(net.height(index) for index in others)
        net.wait_until(lambda: min(net.height(index) for index in range(len(net.homes)))
                       >= target, "every node caught up")


def sigstop_primary(net: Net, load: PlanLoad) -> None:
    everyone = range(len(net.homes))
    with load:
        wait_progress(net, load, "before stopping the primary")
        leader = primary_of(net, everyone)
        others = [index for index in everyone if index != leader]
        view_before = net.status(others[0])["view"]
        pid = net.pid(leader)
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        try:
            net.wait_until(lambda: all(net.status(index)["view"] > view_before
                                       for index in others), "a view change without the primary")
            wait_progress(net, load, f"in the new view while node{leader} is stopped")
        finally:
            os.kill(pid, signal.SIGCONT)
        wait_progress(net, load, f"after node{leader} woke up")
        target = max(net.height(index) for index in others)
        net.wait_until(lambda: net.height(leader) >= target, f"node{leader} caught up")
        net.wait_until(lambda: net.status(leader)["view"] > view_before,
                       f"node{leader} in the new view")
        assert all(primary_of(net, [index]) != leader for index in others)


def restart_everyone(net: Net, load: PlanLoad) -> None:
    everyone = range(len(net.homes))
    with load:
        wait_progress(net, load, "before the restart of all nodes")
        pids = [net.pid(index) for index in everyone]
        for pid in pids:  # as close to at once as signals get
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
        for index in everyone:
            net.wait_until(lambda index=index: net.pid(index) is None, f"node{index} dead")
        net.start_all()
        wait_progress(net, load, "after all nodes restarted")


# --- short form (CI) -------------------------------------------------------------------------------

def test_kill9_random_nodes_under_load(net: Net, load: PlanLoad) -> None:
    kill9_rounds(net, load, random.Random(SEED), rounds=2)
    height = check_consortium(net, load)
    assert height > 0 and load.acked_count() >= 3 * PROGRESS_TXS


def test_sigstop_primary_forces_view_change(net: Net, load: PlanLoad) -> None:
    before = load.acked_count()
    sigstop_primary(net, load)
    check_consortium(net, load)
    assert load.acked_count() >= before + 3 * PROGRESS_TXS


def test_restart_all_nodes_at_once(net: Net, load: PlanLoad) -> None:
    before = load.acked_count()
    height_before = max(net.height(index) for index in range(len(net.homes)))
    restart_everyone(net, load)
    height = check_consortium(net, load)
    assert height > height_before and load.acked_count() >= before + 2 * PROGRESS_TXS


# --- long form -------------------------------------------------------------------------------------

@pytest.mark.slow
def test_next_primary_dies_while_a_restarted_node_catches_up(tmp_path) -> None:
    """A backup is killed and the others run far ahead (past its watermark window); it is
    restarted and, before it has caught up, the primary of the next view dies. Three correct
    nodes remain (one of them behind), so the consortium must commit again once the view
    changes past the dead primary and the restarted node has fetched what it missed."""
    net = Net(tmp_path / "net", app="plan", bench_keys=CLIENTS)
    load = PlanLoad(net, CLIENTS)
    try:
        net.start_all()
        with load:
            wait_progress(net, load, "before the first kill")
            status = net.status(0)
            lagger = next(index for index in (3, 2, 1, 0)
                          if index not in (status["primary"], (status["view"] + 1) % 4))
            net.kill9(lagger)
            others = [index for index in range(4) if index != lagger]
            start = max(net.height(index) for index in others)
            net.wait_until(lambda: min(net.height(index) for index in others) >= start + 80,
                           f"80 blocks without node{lagger}")
            net.start(lagger)
            net.wait_ready([lagger])
            next_primary = (net.status(others[0])["view"] + 1) % 4
            net.kill9(next_primary)
            wait_progress(net, load, f"without node{next_primary}, node{lagger} catching up")
        check_live = [index for index in range(4) if index != next_primary]
        height = net.wait_until(lambda: settled(net, check_live), "the survivors settle")
        assert height > start + 80
    finally:
        load.stop_event.set()
        net.close()


@pytest.mark.slow
def test_long_fault_campaign(tmp_path) -> None:
    rng = random.Random(SEED + 1)
    net = Net(tmp_path / "net", app="plan", bench_keys=CLIENTS)
    load = PlanLoad(net, CLIENTS)
    try:
        net.start_all()
        for campaign_round in range(4):
            kill9_rounds(net, load, rng, rounds=4, catch_up_first=False)
            check_consortium(net, load)
            sigstop_primary(net, load)
            check_consortium(net, load)
            if campaign_round % 2 == 1:
                restart_everyone(net, load)
                check_consortium(net, load)
        assert load.acked_count() >= 40 * PROGRESS_TXS
    finally:
        load.stop_event.set()
        net.close()  # SIGKILL: a stopped node dies too
