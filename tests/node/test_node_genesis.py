"""Genesis documents: strict validation, stable hash, JSON round trip."""

from __future__ import annotations

import json

import pytest

from consensus.params import ConsensusParams
from ledger.errors import InvalidGenesis
from ledger.keys import KeyPair
from node.genesis import Genesis, default_consensus_params

KEYS = [KeyPair.from_seed(bytes([0x30 + i]) * 32).public_key for i in range(4)]


def plain() -> dict:
    return Genesis.build("g-test", KEYS, 1_700_000_000_000).to_plain()


def test_round_trip_and_hash(tmp_path):
    genesis = Genesis.build("g-test", KEYS, 1_700_000_000_000)
    path = genesis.save(tmp_path / "genesis.json")
    loaded = Genesis.load(path)
    assert loaded == genesis
    assert loaded.genesis_hash == genesis.genesis_hash
    assert loaded.validator_keys == tuple(KEYS)
    assert loaded.consensus == ConsensusParams()
    # a partial consensus section takes defaults and hashes as the full one
    document = json.loads(path.read_text())
    document["consensus"] = {"pipeline_depth": 2}
    assert Genesis.from_plain(document).genesis_hash == genesis.genesis_hash
    other = Genesis.build("g-test", KEYS, 1_700_000_000_001)
    assert other.genesis_hash != genesis.genesis_hash
    assert default_consensus_params()["checkpoint_interval"] == 16


@pytest.mark.parametrize("change", [
    lambda d: d.pop("app"),
    lambda d: d.update(extra=1),
    lambda d: d.update(chain_id="bad id"),
    lambda d: d.update(genesis_time_ms=-1),
    lambda d: d.update(validators=[]),
    lambda d: d["validators"][1].update(id=5),
    lambda d: d["validators"][1].update(public_key=d["validators"][0]["public_key"]),
    lambda d: d["validators"][1].update(public_key="XYZ"),
    lambda d: d["consensus"].update(pipeline_depth=0),
    lambda d: d["consensus"].update(unknown_limit=3),
    lambda d: d["consensus"].update(watermark_window=3),
    lambda d: d["consensus"].update(max_view_change_timeout_ticks=1),
    lambda d: d.update(app={"name": "nope"}),
    lambda d: d.update(app={"name": "kv", "max_value_bytes": 0}),
])
def test_invalid_documents_are_refused(change):
    document = plain()
    change(document)
    with pytest.raises(InvalidGenesis):
        Genesis.from_plain(document)


def test_load_errors(tmp_path):
    with pytest.raises(InvalidGenesis) as missing:
        Genesis.load(tmp_path / "none.json")
    assert missing.value.code == "missing"
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidGenesis) as malformed:
        Genesis.load(bad)
    assert malformed.value.code == "malformed"
