"""Node configuration: one TOML file per node, read strictly, defaults in one place.

`huzhu testnet` writes these files; `huzhu node start --home DIR` reads DIR/config.toml. Paths
in the file are relative to the directory holding it, so a whole testnet directory can be moved.
Each node listens on two ports: the peer port (WebSocket over mutual TLS, client certificates
required) and the API port (plain HTTP, meant for 127.0.0.1 or a reverse proxy).

Unknown keys are an error rather than ignored: a misspelt limit silently falling back to its
default is exactly the kind of mistake a config file must not hide.
"""

from __future__ import annotations

import os.path
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ledger.errors import HuzhuError

CONFIG_FILE_NAME = "config.toml"

# Defaults, in one place. Units are in the names.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_BASE_PORT = 26650
DEFAULT_TICK_MS = 10  # the consensus parameters count timeouts in ticks of this length
DEFAULT_MEMPOOL_MAX_TXS = 10_000
DEFAULT_MEMPOOL_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024  # a full block (8 MiB) plus consensus envelope
DEFAULT_SEND_QUEUE_MAX_FRAMES = 4096
DEFAULT_RECONNECT_INITIAL_MS = 100
DEFAULT_RECONNECT_MAX_MS = 2_000  # a restarted peer is redialled within this
DEFAULT_HANDSHAKE_TIMEOUT_MS = 5_000
DEFAULT_HEARTBEAT_MS = 5_000
DEFAULT_MAX_BODY_BYTES = 256 * 1024  # a transaction is at most 64 KiB; hex doubles it
DEFAULT_WAIT_COMMIT_TIMEOUT_MS = 15_000
DEFAULT_MAX_WAITERS = 10_000
DEFAULT_LOG_FORMAT = "plain"
DEFAULT_LOG_LEVEL = "info"

LOG_FORMATS = ("plain", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")
MAX_PORT = 65535


class ConfigError(HuzhuError):
    default_code = "bad_config"


@dataclass(frozen=True, slots=True)
class PeerConfig:
    id: int
    name: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class PathsConfig:
    genesis: Path
    key: Path
    tls_key: Path
    tls_cert: Path
    ca_cert: Path
    data_dir: Path


@dataclass(frozen=True, slots=True)
class P2PConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_BASE_PORT
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    send_queue_max_frames: int = DEFAULT_SEND_QUEUE_MAX_FRAMES
    reconnect_initial_ms: int = DEFAULT_RECONNECT_INITIAL_MS
    reconnect_max_ms: int = DEFAULT_RECONNECT_MAX_MS
    handshake_timeout_ms: int = DEFAULT_HANDSHAKE_TIMEOUT_MS
    heartbeat_ms: int = DEFAULT_HEARTBEAT_MS


@dataclass(frozen=True, slots=True)
class ApiConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_BASE_PORT + 1
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    wait_commit_timeout_ms: int = DEFAULT_WAIT_COMMIT_TIMEOUT_MS
    max_waiters: int = DEFAULT_MAX_WAITERS


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    tick_ms: int = DEFAULT_TICK_MS
    mempool_max_txs: int = DEFAULT_MEMPOOL_MAX_TXS
    mempool_max_bytes: int = DEFAULT_MEMPOOL_MAX_BYTES


@dataclass(frozen=True, slots=True)
class LogConfig:
    format: str = DEFAULT_LOG_FORMAT
    level: str = DEFAULT_LOG_LEVEL


@dataclass(frozen=True, slots=True)
class NodeConfig:
    node_id: int
    name: str
    home: Path  # the directory the config file is in; every relative path is resolved from it
    paths: PathsConfig
    p2p: P2PConfig = field(default_factory=P2PConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    node: RuntimeConfig = field(default_factory=RuntimeConfig)
    log: LogConfig = field(default_factory=LogConfig)
    peers: tuple[PeerConfig, ...] = ()

    @property
    def api_url(self) -> str:
        return f"http://{self.api.host}:{self.api.port}"

    def with_log(self, format: str | None = None, level: str | None = None) -> "NodeConfig":
        log = LogConfig(format or self.log.format, level or self.log.level)
        _check_log(log)
        return replace(self, log=log)


# --- reading ------------------------------------------------------------------------------

def _take(table: dict, name: str, kind: type, where: str, default: Any = None,
          required: bool = False) -> Any:
    if name not in table:
        if required:
            raise ConfigError("missing", f"{where}.{name} is required")
        return default
    value = table[name]
    # bool is an int in Python: a port of `true` must not pass as 1.
    if kind is int and (type(value) is not int):
        raise ConfigError("bad_type", f"{where}.{name} must be an integer")
    if kind is str and not isinstance(value, str):
        raise ConfigError("bad_type", f"{where}.{name} must be a string")
    return value


def _check_keys(table: Any, allowed: set[str], where: str) -> dict:
    if not isinstance(table, dict):
        raise ConfigError("bad_type", f"{where} must be a table")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError("unknown_key", f"unknown key(s) in {where}: {', '.join(unknown)}")
    return table


def _positive(value: int, where: str, low: int = 1, high: int = 2**62) -> int:
    if not low <= value <= high:
        raise ConfigError("out_of_range", f"{where} must be in [{low}, {high}]")
    return value


def _section(cls: type, table: Any, where: str) -> Any:
    """Build a flat dataclass section of int/str fields from a TOML table, strictly."""
    table = _check_keys(table if table is not None else {}, {f.name for f in fields(cls)}, where)
    values = {}
    for f in fields(cls):
        kind = int if isinstance(f.default, int) else str
        values[f.name] = _take(table, f.name, kind, where, default=f.default)
        if kind is int:
            high = MAX_PORT if f.name.endswith("port") else 2**62
            _positive(values[f.name], f"{where}.{f.name}", 1, high)
    return cls(**values)


def _check_log(log: LogConfig) -> None:
    if log.format not in LOG_FORMATS:
        raise ConfigError("out_of_range", f"log.format must be one of {', '.join(LOG_FORMATS)}")
    if log.level not in LOG_LEVELS:
        raise ConfigError("out_of_range", f"log.level must be one of {', '.join(LOG_LEVELS)}")


def parse_config(data: dict, home: Path) -> NodeConfig:
    top = _check_keys(data, {"node_id", "name", "paths", "p2p", "api", "node", "log", "peers"},
                      "config")
    node_id = _take(top, "node_id", int, "config", required=True)
    _positive(node_id, "config.node_id", 0)
    name = _take(top, "name", str, "config", default=f"node{node_id}")

    paths_table = _check_keys(top.get("paths"), {f.name for f in fields(PathsConfig)}, "paths")
    path_values = {}
    for f in fields(PathsConfig):
        raw = _take(paths_table, f.name, str, "paths", required=True)
        path_values[f.name] = (home / raw).resolve() if not Path(raw).is_absolute() else Path(raw)
    paths = PathsConfig(**path_values)

    p2p = _section(P2PConfig, top.get("p2p"), "p2p")
    api = _section(ApiConfig, top.get("api"), "api")
    runtime = _section(RuntimeConfig, top.get("node"), "node")
    log = _section(LogConfig, top.get("log"), "log")
    _check_log(log)
    if p2p.reconnect_initial_ms > p2p.reconnect_max_ms:
        raise ConfigError("out_of_range", "p2p.reconnect_initial_ms exceeds reconnect_max_ms")

    peers_raw = top.get("peers", [])
    if not isinstance(peers_raw, list):
        raise ConfigError("bad_type", "peers must be an array of tables ([[peers]])")
    peers = []
    for index, entry in enumerate(peers_raw):
        where = f"peers[{index}]"
        entry = _check_keys(entry, {"id", "name", "host", "port"}, where)
        peer = PeerConfig(
            id=_positive(_take(entry, "id", int, where, required=True), f"{where}.id", 0),
            name=_take(entry, "name", str, where, default=""),
            host=_take(entry, "host", str, where, required=True),
            port=_positive(_take(entry, "port", int, where, required=True), f"{where}.port", 1,
                           MAX_PORT),
        )
        peers.append(peer)
    ids = [peer.id for peer in peers]
    if len(set(ids)) != len(ids):
        raise ConfigError("duplicate_peer", "a peer id appears twice")
    if node_id in ids:
        raise ConfigError("self_peer", "a node does not list itself as a peer")
    return NodeConfig(node_id=node_id, name=name, home=home, paths=paths, p2p=p2p, api=api,
                      node=runtime, log=log, peers=tuple(sorted(peers, key=lambda p: p.id)))


def load_config(home: str | Path) -> NodeConfig:
    """Read HOME/config.toml (or the file itself when ``home`` names a file)."""
    path = Path(home)
    if path.is_dir():
        path = path / CONFIG_FILE_NAME
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError("missing", f"no node config at {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("unreadable", f"cannot read {path}: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("malformed", f"{path} is not valid TOML: {exc}") from None
    return parse_config(data, path.parent.resolve())


# --- writing ------------------------------------------------------------------------------

def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _relative(path: Path, home: Path) -> str:
    try:
        return path.resolve().relative_to(home.resolve()).as_posix()
    except ValueError:
        pass
    # Paths outside home (the shared genesis, the CA) are written relative with "..".
    return Path(os.path.relpath(path.resolve(), home.resolve())).as_posix()


def render_config(config: NodeConfig) -> str:
    """The TOML text of ``config``; ``load_config`` reads it back to an equal value."""
    lines = ["# huzhu node configuration (written by `huzhu testnet`).",
             "# Relative paths are resolved from this file's directory.",
             f"node_id = {config.node_id}",
             f"name = {_toml_value(config.name)}",
             "",
             "[paths]"]
    for f in fields(PathsConfig):
        lines.append(f"{f.name} = {_toml_value(_relative(getattr(config.paths, f.name), config.home))}")
    for title, section in (("p2p", config.p2p), ("api", config.api), ("node", config.node),
                           ("log", config.log)):
        lines.append("")
        lines.append(f"[{title}]")
        for f in fields(section):
            lines.append(f"{f.name} = {_toml_value(getattr(section, f.name))}")
    for peer in config.peers:
        lines.append("")
        lines.append("[[peers]]")
        lines.append(f"id = {peer.id}")
        lines.append(f"name = {_toml_value(peer.name)}")
        lines.append(f"host = {_toml_value(peer.host)}")
        lines.append(f"port = {peer.port}")
    return "\n".join(lines) + "\n"
