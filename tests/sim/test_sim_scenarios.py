"""Built-in scenarios and the scenario file format."""

from __future__ import annotations

import json

import pytest

from sim.scenarios import (BUILTIN, ScenarioError, builtin, colluding_equivocators,
                           load_scenario_file, scenario_from_plain)

REQUIRED = {"normal", "crash-primary", "equivocating-primary", "partition-heal", "lossy-network",
            "byzantine-mix"}


def test_required_scenarios_exist_and_validate_at_several_sizes():
    assert REQUIRED <= set(BUILTIN)
    for name in sorted(BUILTIN):
        for nodes in (4, 7, 16, 64):
            scenario = builtin(name, nodes, 10_000)
            scenario.validate(nodes, 10_000)
            assert len(scenario.faulty_nodes()) <= (nodes - 1) // 3


def test_byzantine_mix_has_f_faulty_nodes_with_mixed_behaviours():
    scenario = builtin("byzantine-mix", 16, 10_000)
    assert len(scenario.byzantine) == 5
    behaviours = {name for role in scenario.byzantine for name in role.behaviours}
    assert {"equivocate", "silent", "forge", "replay", "corrupt"} <= behaviours
    single = builtin("byzantine-mix", 4, 10_000)
    assert len(single.byzantine) == 1 and len(single.byzantine[0].behaviours) > 1


def test_too_many_faulty_nodes_is_refused_unless_expected():
    scenario = colluding_equivocators(4, 10_000)
    scenario.validate(4, 10_000)  # expect_violation allows it
    plain = scenario.to_plain()
    plain.pop("expect_violation")
    with pytest.raises(ScenarioError, match="exceed f"):
        scenario_from_plain(plain).validate(4, 10_000)


def test_duration_must_leave_a_grace_period():
    with pytest.raises(ScenarioError, match="grace"):
        builtin("crash-primary", 4, 10_000).validate(4, 4_000) if False else \
            scenario_from_plain({"events": [{"at_ms": 3000, "kind": "crash", "node": 1}]}).validate(4, 4000)


def test_json_and_yaml_files_load(tmp_path):
    plain = {
        "name": "custom",
        "nodes": 7,
        "duration_ms": 20000,
        "network": {"profile": "wan", "loss": 0.01},
        "workload": {"clients": 4, "think_ms": 50},
        "byzantine": [{"node": 6, "behaviours": ["silent"]}],
        "events": [
            {"at_ms": 1000, "kind": "crash", "node": 1, "until_ms": 5000},
            {"at_ms": 2000, "kind": "partition", "groups": [[0, 1, 2], [3, 4, 5, 6]],
             "until_ms": 6000},
            {"at_ms": 1000, "kind": "network", "until_ms": 3000, "duplicate": 0.1},
            {"at_ms": 1000, "kind": "delay", "from": [0], "to": [2, 3], "extra_ms": 400,
             "until_ms": 2000},
            {"at_ms": 0, "kind": "skew", "nodes": [2], "skew_ms": -300},
        ],
    }
    json_path = tmp_path / "s.json"
    json_path.write_text(json.dumps(plain))
    yaml_path = tmp_path / "s.yaml"
    import yaml
    yaml_path.write_text(yaml.safe_dump(plain))
    for path in (json_path, yaml_path):
        scenario = load_scenario_file(path)
        assert scenario.nodes == 7 and scenario.duration_ms == 20000
        assert scenario.network.loss == 0.01 and scenario.network.regions[0] == "hangzhou"
        assert scenario.faulty_nodes() == (1, 6)
        assert scenario.last_heal_ms() == 6000
        scenario.validate(7, 20000)
        assert scenario_from_plain(scenario.to_plain()).to_plain() == scenario.to_plain()


@pytest.mark.parametrize("bad, message", [
    ({"events": [{"at_ms": 1, "kind": "explode"}]}, "unknown event kind"),
    ({"events": [{"at_ms": 1, "kind": "crash"}]}, "needs nodes"),
    ({"events": [{"at_ms": 1, "kind": "partition"}]}, "needs groups"),
    ({"events": [{"at_ms": 1, "kind": "crash", "node": 1, "colour": "red"}]}, "unknown fields"),
    ({"byzantine": [{"node": 0, "behaviours": ["teleport"]}]}, "unknown behaviour"),
    ({"network": {"loss": 2}}, "network"),
    ({"speed": 3}, "unknown scenario fields"),
    ([1, 2], "one mapping"),
])
def test_bad_scenarios_are_typed_errors(bad, message):
    with pytest.raises(ScenarioError, match=message):
        scenario_from_plain(bad)


def test_unreadable_or_unparsable_files(tmp_path):
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario_file(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    with pytest.raises(ScenarioError, match="does not parse"):
        load_scenario_file(broken)


def test_a_file_may_extend_a_builtin():
    scenario = scenario_from_plain({"base": "crash-primary", "name": "crash-plus",
                                    "events": [{"at_ms": 0, "kind": "skew", "node": 2,
                                                "skew_ms": 100}]}, 4, 10_000)
    kinds = [event.kind for event in scenario.events]
    assert kinds == ["crash", "restart", "skew"]
    assert scenario.name == "crash-plus"
