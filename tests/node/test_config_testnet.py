"""Node config files and `huzhu testnet`: strict TOML, round trips, and the generated layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from client.cli import main
from ledger.keys import KeyPair
from node import tls
from node.config import ConfigError, load_config, parse_config, render_config
from node.testnet import TestnetError, api_port, create_testnet, list_node_homes, p2p_port


@pytest.fixture
def net(tmp_path: Path):
    return create_testnet(tmp_path / "net", 4, base_port=31000, app="kv")


def test_config_round_trips_and_resolves_paths(net) -> None:
    config = load_config(net.node_homes[2])
    assert config.node_id == 2 and config.name == "node2"
    assert config.paths.genesis == net.genesis_path
    assert config.paths.data_dir == net.node_homes[2] / "data"
    assert config.p2p.port == p2p_port(31000, 2) and config.api.port == api_port(31000, 2)
    assert [peer.id for peer in config.peers] == [0, 1, 3]
    assert [peer.port for peer in config.peers] == [31000, 31002, 31006]
    again = parse_config(__import__("tomllib").loads(render_config(config)), config.home)
    assert again == config


def test_testnet_directory_can_be_moved(net, tmp_path: Path) -> None:
    moved = tmp_path / "moved"
    net.directory.rename(moved)
    config = load_config(moved / "node1")
    assert config.paths.genesis == moved / "genesis.json"
    assert config.paths.ca_cert.is_file()


def _config_text(net) -> str:
    return (net.node_homes[0] / "config.toml").read_text()


@pytest.mark.parametrize("edit, code", [
    (lambda t: t.replace("tick_ms = 10", "tick_ms = 10\ntick_mz = 5"), "unknown_key"),
    (lambda t: t.replace("tick_ms = 10", 'tick_ms = "50"'), "bad_type"),
    (lambda t: t.replace("tick_ms = 10", "tick_ms = true"), "bad_type"),
    (lambda t: t.replace("tick_ms = 10", "tick_ms = 0"), "out_of_range"),
    (lambda t: t.replace('format = "plain"', 'format = "xml"'), "out_of_range"),
    (lambda t: t.replace("node_id = 0\n", ""), "missing"),
    (lambda t: t.replace("port = 31002", "port = 70000"), "out_of_range"),
    (lambda t: t.replace("id = 1\n", "id = 0\n"), "self_peer"),
    (lambda t: t + "[extra]\n", "unknown_key"),
    (lambda t: t + "\n[[peers\n", "malformed"),
])
def test_config_rejects_bad_files(net, edit, code) -> None:
    path = net.node_homes[0] / "config.toml"
    path.write_text(edit(_config_text(net)))
    with pytest.raises(ConfigError) as info:
        load_config(net.node_homes[0])
    assert info.value.code == code


def test_missing_config_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert info.value.code == "missing"


def test_genesis_lists_each_nodes_key_and_org(net) -> None:
    genesis = json.loads(net.genesis_path.read_text())
    assert genesis["chain_id"] == "huzhu-local"
    assert genesis["app"]["name"] == "kv"
    assert [v["id"] for v in genesis["validators"]] == [0, 1, 2, 3]
    for index, home in enumerate(net.node_homes):
        key = KeyPair.load(home / "node_key.json")
        assert genesis["validators"][index]["public_key"] == key.public_key.hex()
        assert genesis["validators"][index]["org"] == f"org{index}"
        # The TLS certificate carries that same key and is issued by the consortium CA.
        config = load_config(home)
        tls.check_node_files(config.paths.tls_cert, config.paths.tls_key, config.paths.ca_cert,
                             key)
        certificate = tls.load_certificate(config.paths.tls_cert)
        ca = tls.load_certificate(config.paths.ca_cert)
        assert certificate.issuer == ca.subject
        certificate.verify_directly_issued_by(ca)
        assert (home / "node_key.json").stat().st_mode & 0o077 == 0
        assert config.paths.tls_key.stat().st_mode & 0o077 == 0
    keys = sorted(path.name for path in (net.directory / "keys").iterdir())
    assert keys == ["hospital.json", "org0.json", "org1.json", "org2.json", "org3.json",
                    "registrar.json",
                    "reviewer.json", "treasurer.json"]
    assert [home.name for home in list_node_homes(net.directory)] == [
        "node0", "node1", "node2", "node3"]


def test_testnet_refuses_to_overwrite_unless_forced(net) -> None:
    before = net.genesis_path.read_text()
    with pytest.raises(TestnetError) as info:
        create_testnet(net.directory, 4, app="kv")
    assert info.value.code == "exists"
    assert net.genesis_path.read_text() == before
    forced = create_testnet(net.directory, 3, app="kv", force=True)
    assert len(json.loads(forced.genesis_path.read_text())["validators"]) == 3
    assert not (net.directory / "node3").exists()


def test_force_never_deletes_a_directory_that_is_not_a_testnet(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(TestnetError) as info:
        create_testnet(precious, 4, app="kv", force=True)
    assert info.value.code == "not_a_testnet"
    assert (precious / "thesis.tex").read_text() == "years of work"


def test_testnet_command_line(tmp_path: Path) -> None:
    runner = CliRunner()
    target = tmp_path / "cli-net"
    result = runner.invoke(main, ["testnet", "--nodes", "4", "--dir", str(target),
                                  "--base-port", "32000", "--app", "kv"])
    assert result.exit_code == 0, result.output
    assert "4 nodes" in result.output
    assert load_config(target / "node3").api.port == 32007
    again = runner.invoke(main, ["testnet", "--nodes", "4", "--dir", str(target), "--app", "kv"])
    assert again.exit_code == 1
    assert "already exists" in again.output


def test_log_settings_give_one_structured_line_per_event() -> None:
    import io
    import logging

    from node.logging import get_logger, setup_logging

    position = {"node": 2, "height": 7, "view": 1}
    stream = io.StringIO()
    setup_logging("json", "info", lambda: dict(position), stream=stream)
    try:
        get_logger().info("block_committed", txs=3)
        get_logger().debug("not_at_info")
        position["height"] = 8
        logging.getLogger("aiohttp.server").warning("from a library")
        lines = stream.getvalue().splitlines()
        assert len(lines) == 2
        first, second = (json.loads(line) for line in lines)
        assert first["event"] == "block_committed" and first["txs"] == 3
        assert (first["node"], first["height"], first["view"]) == (2, 7, 1)
        assert second["level"] == "warning" and second["height"] == 8
        stream = io.StringIO()
        setup_logging("plain", "info", lambda: dict(position), stream=stream)
        get_logger().info("view_changed", new_view=2)
        assert "event='view_changed' node=2 height=8 view=1 new_view=2" in stream.getvalue()
    finally:
        setup_logging("plain", "warning", None)
