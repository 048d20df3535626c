"""`huzhu testnet`: lay out a local consortium directory.

    NET/genesis.json            the one shared genesis (validators, orgs, role keys, parameters)
    NET/ca/ca.crt, ca.key       the consortium CA (Ed25519), the only TLS trust anchor
    NET/keys/*.json             role keys: one governance key per org, registrar, treasurer,
                                reviewer (ledger key files, mode 0600)
    NET/keys/bench/*.json       with bench_keys=K: K more registrar and K more treasurer keys
                                (registrarNNN.json, treasurerNNN.json), so a load generator
                                can sign from many senders, each with its own nonces
    NET/nodeI/config.toml       node I's configuration (ports, paths, peers, limits)
    NET/nodeI/node_key.json     node I's Ed25519 key (signs consensus messages)
    NET/nodeI/tls/node.key      the same key in PEM form for TLS
    NET/nodeI/tls/node.crt      its certificate, issued by the consortium CA
    NET/nodeI/data/             its LevelDB store (created when the node first starts)

Node I listens for peers on base_port + 2*I (mutual TLS) and serves its API on
base_port + 2*I + 1. Every node runs for its own org (org I).
"""

from __future__ import annotations

import importlib.util
import json
import random
import re
import shutil
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ledger.errors import HuzhuError
from ledger.keys import KeyPair
from ledger.quorum import max_faulty
from node import tls
from node.config import (
    DEFAULT_BASE_PORT,
    DEFAULT_HOST,
    DEFAULT_TICK_MS,
    CONFIG_FILE_NAME,
    ApiConfig,
    NodeConfig,
    P2PConfig,
    PathsConfig,
    PeerConfig,
    RuntimeConfig,
    render_config,
)

GENESIS_FILE_NAME = "genesis.json"
DEFAULT_CHAIN_ID = "huzhu-local"
ROLE_NAMES = ("registrar", "treasurer", "reviewer", "hospital")
MAX_TESTNET_NODES = 64
BENCH_ROLES = ("registrar", "treasurer")
BENCH_KEYS_DIR = "bench"
MAX_BENCH_KEYS = 255  # the plan allows 256 keys per role; the testnet's own key is one
PORTS_PER_NODE = 2
APPS = ("plan", "kv")
_NODE_DIR = re.compile(r"^node(\d+)$")


class TestnetError(HuzhuError):
    __test__ = False  # not a pytest test class despite the name
    default_code = "testnet_error"


@dataclass(frozen=True, slots=True)
class TestnetLayout:
    __test__ = False

    directory: Path
    genesis_path: Path
    node_homes: tuple[Path, ...]
    chain_id: str
    app: str


def default_app() -> str:
    """"plan" once the contracts provide their genesis builder, else the key/value test app."""
    return "plan" if importlib.util.find_spec("contracts.genesis") is not None else "kv"


LOWEST_LOCAL_PORT = 20_000  # where free_port_block starts looking


def first_ephemeral_port() -> int:
    """Where the kernel starts picking ports for outgoing connections (Linux: 32768)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_port_block(count: int) -> int:
    """A base port with ``count`` consecutive free ports on 127.0.0.1, for a local testnet
    made on the fly (``huzhu bench --setup``, tests). OSError when none is found.

    Below the ephemeral range: a port in it can be taken by some outgoing connection while its
    node is down, and the node then cannot listen again when it restarts."""
    highest = first_ephemeral_port() - count
    for _ in range(200):
        base = random.randrange(LOWEST_LOCAL_PORT, highest, 2)
        sockets = []
        try:
            for offset in range(count):
                sock = socket.socket()
                sock.bind(("127.0.0.1", base + offset))
                sockets.append(sock)
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise OSError(f"no block of {count} free ports on 127.0.0.1")


def p2p_port(base_port: int, index: int) -> int:
    return base_port + PORTS_PER_NODE * index


def api_port(base_port: int, index: int) -> int:
    return base_port + PORTS_PER_NODE * index + 1


def node_home(directory: Path, index: int) -> Path:
    return Path(directory) / f"node{index}"


def list_node_homes(directory: str | Path) -> list[Path]:
    """NET/node0, NET/node1, ... that hold a config, in node order."""
    directory = Path(directory)
    if not directory.is_dir():
        raise TestnetError("missing", f"{directory} is not a testnet directory")
    found = []
    for child in directory.iterdir():
        match = _NODE_DIR.match(child.name)
        if match and (child / CONFIG_FILE_NAME).is_file():
            found.append((int(match.group(1)), child))
    if not found:
        raise TestnetError("missing", f"no node directories with {CONFIG_FILE_NAME} in {directory}")
    return [path for _, path in sorted(found)]


def _app_genesis(app: str, orgs: list[dict], roles: dict[str, list[str]], time_scale: int,
                 genesis_time_ms: int) -> dict:
    if app == "kv":
        return {"name": "kv"}
    try:
        from contracts.genesis import default_app_genesis
    except ImportError:
        raise TestnetError("no_plan_app",
                           "the plan application (contracts.genesis) is not available; "
                           "use --app kv") from None
    return default_app_genesis(orgs, roles, time_scale=time_scale,
                               genesis_time_ms=genesis_time_ms)


# `huzhu testnet` default: an idle block once a second keeps the plan's clock moving when
# nobody transacts. The library default is 0 (off) so a test can watch an idle chain stand still.
DEFAULT_EMPTY_BLOCK_INTERVAL_MS = 1_000


def _consensus_params(tick_ms: int, empty_block_interval_ms: int) -> dict:
    """The consensus section, written out in full so the file shows every parameter the
    consortium agrees on. The nodes tick every ``tick_ms``; the replica counts its timeouts in
    ticks of that length."""
    from consensus.params import ConsensusParams

    return replace(ConsensusParams(), tick_ms=tick_ms,
                   empty_block_interval_ms=empty_block_interval_ms).validate().to_plain()


def _prepare_directory(directory: Path, force: bool) -> None:
    if directory.exists() and not directory.is_dir():
        raise TestnetError("exists", f"{directory} exists and is not a directory")
    if directory.exists() and any(directory.iterdir()):
        if not force:
            raise TestnetError("exists", f"{directory} already exists; use --force to replace it")
        # --force replaces a testnet, never an arbitrary directory that happens to be named.
        if not (directory / GENESIS_FILE_NAME).exists():
            raise TestnetError("not_a_testnet",
                               f"{directory} is not empty and holds no {GENESIS_FILE_NAME}; "
                               "refusing to delete it even with --force")
        from node.consortium import running_nodes

        running = running_nodes(directory)
        if running:
            raise TestnetError("running", f"nodes {running} of {directory} are running; "
                                          "stop them first (huzhu consortium down)")
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)


def create_testnet(directory: str | Path, nodes: int, base_port: int = DEFAULT_BASE_PORT,
                   time_scale: int = 1, app: str | None = None,
                   chain_id: str = DEFAULT_CHAIN_ID, force: bool = False,
                   host: str = DEFAULT_HOST, tick_ms: int = DEFAULT_TICK_MS,
                   genesis_time_ms: int | None = None, bench_keys: int = 0,
                   empty_block_interval_ms: int = 0) -> TestnetLayout:
    directory = Path(directory).resolve()
    app = app or default_app()
    if app not in APPS:
        raise TestnetError("bad_app", f"--app must be one of {', '.join(APPS)}")
    if not 1 <= nodes <= MAX_TESTNET_NODES:
        raise TestnetError("bad_nodes", f"--nodes must be in [1, {MAX_TESTNET_NODES}]")
    if time_scale < 1:
        raise TestnetError("bad_time_scale", "--time-scale must be a positive integer")
    if not 0 <= bench_keys <= MAX_BENCH_KEYS or (bench_keys and app != "plan"):
        raise TestnetError("bad_bench_keys",
                           f"--bench-keys must be in [0, {MAX_BENCH_KEYS}] (plan app only)")
    if not 1024 <= base_port <= 65535 - PORTS_PER_NODE * nodes:
        raise TestnetError("bad_port", "--base-port leaves no room for the nodes' ports")
    _prepare_directory(directory, force)

    ca = tls.make_ca()
    ca_cert = directory / "ca" / "ca.crt"
    tls.save_ca(ca, ca_cert, directory / "ca" / "ca.key")

    keys_dir = directory / "keys"
    orgs = []
    for index in range(nodes):
        governance = KeyPair.generate()
        governance.save(keys_dir / f"org{index}.json")
        orgs.append({"name": f"org{index}", "gov_key": governance.public_key.hex()})
    roles = {}
    for role in ROLE_NAMES:
        role_key = KeyPair.generate()
        role_key.save(keys_dir / f"{role}.json")
        roles[role] = [role_key.public_key.hex()]
    for role in BENCH_ROLES if bench_keys else ():
        for number in range(bench_keys):
            role_key = KeyPair.generate()
            role_key.save(keys_dir / BENCH_KEYS_DIR / f"{role}{number:03d}.json")
            roles[role].append(role_key.public_key.hex())

    validators = []
    node_keys = []
    for index in range(nodes):
        key = KeyPair.generate()
        node_keys.append(key)
        validators.append({"id": index, "name": f"node{index}", "org": f"org{index}",
                           "public_key": key.public_key.hex()})

    if genesis_time_ms is None:
        genesis_time_ms = int(time.time() * 1000)
    genesis: dict[str, Any] = {
        "chain_id": chain_id,
        "genesis_time_ms": genesis_time_ms,
        "validators": validators,
        "consensus": _consensus_params(tick_ms, empty_block_interval_ms),
        "app": _app_genesis(app, orgs, roles, time_scale, genesis_time_ms),
    }
    genesis_path = directory / GENESIS_FILE_NAME
    genesis_path.write_text(json.dumps(genesis, indent=2, sort_keys=True) + "\n")
    _validate_genesis(genesis_path)

    homes = []
    for index, key in enumerate(node_keys):
        home = node_home(directory, index)
        tls_dir = home / "tls"
        key.save(home / "node_key.json")
        tls.write_private(tls_dir / "node.key", tls.private_key_pem(tls.node_private_key(key)))
        certificate = tls.issue_certificate(ca, key.public_key, f"node{index}",
                                            organization=f"org{index}", hosts=(host,))
        (tls_dir / "node.crt").write_bytes(tls.certificate_pem(certificate))
        peers = tuple(PeerConfig(id=other, name=f"node{other}", host=host,
                                 port=p2p_port(base_port, other))
                      for other in range(nodes) if other != index)
        config = NodeConfig(
            node_id=index,
            name=f"node{index}",
            home=home,
            paths=PathsConfig(genesis=genesis_path, key=home / "node_key.json",
                              tls_key=tls_dir / "node.key", tls_cert=tls_dir / "node.crt",
                              ca_cert=ca_cert, data_dir=home / "data"),
            p2p=P2PConfig(host=host, port=p2p_port(base_port, index)),
            api=ApiConfig(host=host, port=api_port(base_port, index)),
            node=RuntimeConfig(tick_ms=tick_ms),
            peers=peers,
        )
        (home / CONFIG_FILE_NAME).write_text(render_config(config))
        homes.append(home)
    return TestnetLayout(directory, genesis_path, tuple(homes), chain_id, app)


def _validate_genesis(path: Path) -> None:
    """Read the written genesis back through the node's own loader, when it exists, so a
    testnet never holds a genesis its nodes would refuse."""
    try:
        from node.genesis import Genesis
    except ImportError:
        return
    Genesis.load(path)


def describe(layout: TestnetLayout) -> str:
    n = len(layout.node_homes)
    lines = [f"testnet {layout.chain_id} ({layout.app} app) in {layout.directory}: "
             f"{n} nodes, tolerates f={max_faulty(n)} faulty"]
    for home in layout.node_homes:
        lines.append(f"  {home.name}: {home}")
    lines.append(f"  genesis: {layout.genesis_path}")
    lines.append(f"  role keys: {layout.directory / 'keys'}")
    return "\n".join(lines)
