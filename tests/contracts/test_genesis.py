"""Genesis: the real plan's defaults, time scaling, and validation with reason codes."""

from __future__ import annotations

import copy
import json

import pytest
from contract_helpers import CHAIN_ID, GENESIS_MS, Chain, DictReader, plan_genesis

from contracts import PlanApp
from contracts.conditions import ACCIDENT_CODE, COVERED_ILLNESSES
from contracts.genesis import (
    DAY_MS,
    PARAM_NAMES,
    SCALED_DURATIONS,
    YEAR_MS,
    default_app_genesis,
    default_params,
    validate_app_genesis,
)
from ledger.errors import InvalidGenesis


def test_defaults_are_the_real_plans() -> None:
    params = default_params()
    assert set(params) == set(PARAM_NAMES)
    assert params["waiting_ms"] == 90 * DAY_MS
    assert params["notice_ms"] == 3 * DAY_MS
    assert params["grace_ms"] == 5 * DAY_MS
    assert params["juror_seniority_ms"] == 30 * DAY_MS
    assert params["fee_bps"] == 800
    assert params["jury_threshold_bps"] == 5000
    assert params["jury_quorum"] == 1001  # "more than 1,000 valid votes"
    assert params["period_ms"] * 24 == YEAR_MS  # twice a month
    assert params["min_enroll_age_ms"] == 30 * DAY_MS
    assert (params["max_enroll_age_years"], params["leave_age_years"]) == (59, 60)
    assert params["tiers"] == [{"max_age_years": 39, "cap_fen": 30_000_000},
                               {"max_age_years": 59, "cap_fen": 10_000_000}]
    assert YEAR_MS == 31_556_952_000 and YEAR_MS == 365_2425 * DAY_MS // 10_000


def test_one_hundred_distinct_covered_illnesses() -> None:
    conditions = default_params()["conditions"]
    assert len(conditions) == 100
    assert [c["code"] for c in conditions] == [f"CI{n:03d}" for n in range(1, 101)]
    assert len({c["name"] for c in conditions}) == 100
    assert len({c["name_zh"] for c in conditions}) == 100
    assert conditions[0]["name_zh"].startswith("恶性肿瘤")
    assert ACCIDENT_CODE not in {c["code"] for c in conditions}
    assert len(COVERED_ILLNESSES) == 100


def test_time_scale_divides_plan_durations_but_not_ages() -> None:
    scaled = plan_genesis(time_scale=1000)["params"]
    base = default_params()
    for name in SCALED_DURATIONS:
        assert scaled[name] == base[name] // 1000
    assert scaled["min_enroll_age_ms"] == base["min_enroll_age_ms"]
    assert scaled["leave_age_years"] == base["leave_age_years"]
    assert scaled["proposal_ttl_ms"] == base["proposal_ttl_ms"]


def test_app_section_is_json_and_round_trips() -> None:
    app = plan_genesis()
    again = json.loads(json.dumps(app))
    assert again == app
    parsed = validate_app_genesis(again)
    assert parsed.to_plain() == app
    assert app["name"] == "plan" and app["genesis_time_ms"] == GENESIS_MS
    assert len(parsed.orgs) == 4 and len(parsed.roles["registrar"]) == 1


def _mutated(mutate) -> dict:
    app = copy.deepcopy(plan_genesis())
    mutate(app)
    return app


KEY = "ab" * 32
CASES = [
    ("not_a_map", lambda a: a.clear() or a.update({"x": 1}), "bad_fields"),
    ("name", lambda a: a.update(name="kv"), "bad_name"),
    ("time", lambda a: a.update(genesis_time_ms=-1), "bad_genesis_time"),
    ("time_type", lambda a: a.update(genesis_time_ms="0"), "bad_genesis_time"),
    ("no_orgs", lambda a: a.update(orgs=[]), "bad_orgs"),
    ("org_fields", lambda a: a["orgs"][0].pop("gov_key"), "bad_orgs"),
    ("dup_org", lambda a: a["orgs"].append({"name": "org0", "gov_key": KEY}), "duplicate_org"),
    ("dup_gov_key", lambda a: a["orgs"].append(
        {"name": "org9", "gov_key": a["orgs"][0]["gov_key"]}), "duplicate_key"),
    ("key_hex", lambda a: a["orgs"][0].update(gov_key="zz" * 32), "bad_key"),
    ("key_upper", lambda a: a["orgs"][0].update(gov_key="AB" * 32), "bad_key"),
    ("key_short", lambda a: a["roles"].update(registrar=["ab"]), "bad_key"),
    ("roles_missing", lambda a: a["roles"].pop("hospital"), "bad_roles"),
    ("roles_type", lambda a: a["roles"].update(reviewer="x"), "bad_roles"),
    ("dup_role_key", lambda a: a["roles"].update(reviewer=[KEY, KEY]), "duplicate_key"),
    ("param_missing", lambda a: a["params"].pop("fee_bps"), "missing_param"),
    ("param_unknown", lambda a: a["params"].update(bonus=1), "unknown_param"),
    ("param_float", lambda a: a["params"].update(fee_bps=8.0), "bad_param"),
    ("param_range", lambda a: a["params"].update(fee_bps=10_001), "bad_param"),
    ("param_bool", lambda a: a["params"].update(notice_ms=True), "bad_param"),
    ("quorum", lambda a: a["params"].update(jury_quorum=6), "bad_param"),
    ("ages", lambda a: a["params"].update(max_enroll_age_years=60), "bad_param"),
    ("budget", lambda a: a["params"].update(max_transitions_per_block=5), "bad_param"),
    ("tiers_order", lambda a: a["params"].update(tiers=[
        {"max_age_years": 59, "cap_fen": 1}, {"max_age_years": 39, "cap_fen": 1}]), "bad_tiers"),
    ("tiers_gap", lambda a: a["params"].update(tiers=[
        {"max_age_years": 39, "cap_fen": 1}]), "bad_tiers"),
    ("tiers_empty", lambda a: a["params"].update(tiers=[]), "bad_tiers"),
    ("cond_dup", lambda a: a["params"]["conditions"].append(
        dict(a["params"]["conditions"][0])), "bad_conditions"),
    ("cond_accident", lambda a: a["params"]["conditions"].append(
        {"code": "ACCIDENT", "name": "x", "name_zh": "x"}), "bad_conditions"),
    ("cond_fields", lambda a: a["params"]["conditions"][0].pop("name_zh"), "bad_conditions"),
]


@pytest.mark.parametrize("mutate,code", [(m, c) for _, m, c in CASES],
                         ids=[name for name, _, _ in CASES])
def test_invalid_genesis_has_a_reason_code(mutate, code) -> None:
    with pytest.raises(InvalidGenesis) as info:
        validate_app_genesis(_mutated(mutate))
    assert info.value.code == code


def test_builder_rejects_bad_arguments() -> None:
    with pytest.raises(InvalidGenesis) as info:
        default_app_genesis(orgs=[{"name": "a", "gov_key": KEY}], roles={"janitor": []})
    assert info.value.code == "unknown_role"
    with pytest.raises(InvalidGenesis) as info:
        default_app_genesis(orgs=[{"name": "a", "gov_key": KEY}], roles={}, time_scale=0)
    assert info.value.code == "bad_time_scale"
    with pytest.raises(InvalidGenesis) as info:
        default_app_genesis(orgs=[{"name": "a", "gov_key": KEY}], roles={},
                            params_overrides={"nope": 1})
    assert info.value.code == "unknown_param"
    with pytest.raises(InvalidGenesis):
        validate_app_genesis([])


def test_genesis_root_is_deterministic_and_written_once() -> None:
    first, second = Chain(), Chain()
    assert first.root == second.root
    assert Chain(plan_genesis({"fee_bps": 700})).root != first.root
    # The genesis writes are taken once; a restart over them writes nothing new.
    app = PlanApp(first.genesis_app, CHAIN_ID, first.reader)
    assert app.commit() == first.root
    assert app.take_writes() == []


def test_store_of_another_chain_is_refused() -> None:
    chain = Chain()
    with pytest.raises(InvalidGenesis) as info:
        PlanApp(chain.genesis_app, "other-chain", chain.reader)
    assert info.value.code == "chain_mismatch"
    moved = plan_genesis()
    moved["genesis_time_ms"] += 1
    with pytest.raises(InvalidGenesis):
        PlanApp(moved, CHAIN_ID, chain.reader)
    assert PlanApp(moved, CHAIN_ID, DictReader()).commit() != chain.root
