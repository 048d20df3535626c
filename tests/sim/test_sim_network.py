"""The network model: latency, FIFO links, reordering, loss, duplicates, bandwidth, partitions."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sim.network import DelayRule, Network, NetworkProfile, named_profile
from sim.rng import RandomStreams
from sim.runtime import US_PER_MS


def make(profile: NetworkProfile, n: int = 4, seed: int = 1) -> Network:
    return Network(profile, n, RandomStreams(seed))


def test_latency_follows_the_region_matrix():
    profile = NetworkProfile(regions=("a", "b"), latency_ms=((1, 30), (30, 1)), jitter_ms=0,
                             bandwidth_bytes_per_ms=10**9)
    net = make(profile)
    near, _ = net.transmit(0, 0, 2, 100)  # both region a
    far, _ = net.transmit(0, 0, 1, 100)   # a -> b
    assert near[0].arrive_us == 1 * US_PER_MS + 1  # 100 bytes at 1e9 B/ms rounds up to 1 us
    assert far[0].arrive_us == 30 * US_PER_MS + 2  # queued behind the first copy on the uplink


def test_links_are_fifo_without_reordering():
    profile = NetworkProfile(jitter_ms=50, bandwidth_bytes_per_ms=10**9)
    net = make(profile)
    arrivals = [net.transmit(t * 10, 0, 1, 10)[0][0].arrive_us for t in range(200)]
    assert arrivals == sorted(arrivals)


def test_reordering_lets_later_messages_overtake():
    profile = NetworkProfile(jitter_ms=0, reorder=0.5, reorder_ms=100, bandwidth_bytes_per_ms=10**9)
    net = make(profile)
    arrivals = [net.transmit(t * 10, 0, 1, 10)[0][0].arrive_us for t in range(200)]
    assert arrivals != sorted(arrivals)


def test_loss_and_duplicates_happen_at_about_their_rates():
    profile = NetworkProfile(loss=0.2, duplicate=0.1)
    net = make(profile)
    lost = duplicated = 0
    for t in range(5000):
        copies, reason = net.transmit(t * 1000, 0, 1, 10)
        if not copies:
            assert reason == "loss"
            lost += 1
        elif len(copies) == 2:
            assert copies[1].note == "duplicate" and copies[1].arrive_us >= copies[0].arrive_us
            duplicated += 1
    assert 800 < lost < 1200
    assert 300 < duplicated < 500


def test_uplink_bandwidth_queues_a_broadcast():
    profile = NetworkProfile(jitter_ms=0, latency_ms=((0,),), bandwidth_bytes_per_ms=1000)
    net = make(profile, n=5)
    arrivals = [net.transmit(0, 0, target, 1000)[0][0].arrive_us for target in range(1, 5)]
    assert arrivals == [1000, 2000, 3000, 4000]  # 1 ms of serialization each, back to back


def test_partition_drops_across_groups_until_healed():
    net = make(NetworkProfile())
    net.partition([[0, 1]])  # 2 and 3 form the implicit second group
    assert net.transmit(0, 0, 1, 10)[0]
    assert net.transmit(0, 2, 3, 10)[0]
    assert net.transmit(0, 0, 2, 10) == ([], "partition")
    net.heal()
    assert net.transmit(0, 0, 2, 10)[0]


def test_partition_rejects_a_node_in_two_groups():
    net = make(NetworkProfile())
    with pytest.raises(ValueError):
        net.partition([[0, 1], [1, 2]])


def test_delay_rules_apply_to_their_links_until_they_expire():
    profile = NetworkProfile(jitter_ms=0, bandwidth_bytes_per_ms=10**9)
    net = make(profile)
    base = net.transmit(0, 0, 1, 1)[0][0].arrive_us
    net.add_delay(DelayRule(frozenset({0}), frozenset({1}), 500, 10_000 * US_PER_MS), 0)
    delayed = net.transmit(1000, 0, 1, 1)[0][0].arrive_us
    other = net.transmit(1000, 0, 2, 1)[0][0].arrive_us
    assert delayed - 1000 >= base + 500 * US_PER_MS
    assert other < 1000 + 10 * US_PER_MS
    after = net.transmit(20_000 * US_PER_MS, 0, 1, 1)[0][0].arrive_us
    assert after - 20_000 * US_PER_MS < 10 * US_PER_MS


def test_same_seed_same_decisions():
    profile = named_profile("lossy")
    runs = []
    for _ in range(2):
        net = make(profile, n=8, seed=99)
        runs.append([net.transmit(t * 100, t % 8, (t + 3) % 8, 200) for t in range(500)])
    assert runs[0] == runs[1]


def test_profiles_validate():
    for name in ("lan", "wan", "lossy"):
        named_profile(name).validate()
    with pytest.raises(ValueError):
        replace(NetworkProfile(), loss=1.0).validate()
    with pytest.raises(ValueError):
        NetworkProfile(regions=("a", "b"), latency_ms=((1, 2), (3, 1))).validate()
    with pytest.raises(ValueError):
        named_profile("moon")
    custom = NetworkProfile.from_plain({"profile": "wan", "loss": 0.1})
    assert custom.loss == 0.1 and custom.regions == named_profile("wan").regions
