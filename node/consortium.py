"""`huzhu consortium up|down|status`: run a testnet's nodes as background processes.

Each node runs as `python -m client.node_cli node start --home NET/nodeI` (the same command as
`huzhu node start`, without loading the rest of the CLI) in its own session, so a Ctrl-C in
the terminal that ran `up` does not reach it; its pid is in NET/nodeI/node.pid and
its output in NET/nodeI/node.log. `up` waits until every node answers /readyz; `down` sends
SIGTERM, waits, and sends SIGKILL to whatever is still running after the timeout. A pid file
is trusted only when that pid is still a node process for that home (pids get reused).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger import codec
from ledger.errors import HuzhuError
from node.config import load_config

PID_FILE_NAME = "node.pid"
LOG_FILE_NAME = "node.log"
DEFAULT_READY_TIMEOUT_S = 60.0
DEFAULT_STOP_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.1
HTTP_TIMEOUT_S = 2.0
LOG_TAIL_LINES = 20


class ConsortiumError(HuzhuError):
    default_code = "consortium_error"


@dataclass(frozen=True, slots=True)
class NodeProcess:
    index: int
    home: Path
    pid: int | None
    api_url: str


def _homes(directory: Path) -> list[Path]:
    from node.testnet import list_node_homes

    return list_node_homes(directory)


def _index(home: Path) -> int:
    return int(home.name.removeprefix("node"))


def read_pid(home: Path) -> int | None:
    try:
        text = (home / PID_FILE_NAME).read_text().strip()
    except (FileNotFoundError, OSError):
        return None
    return codec.parse_decimal(text)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not running.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    except (OSError, IndexError):
        pass
    return True


def _is_node_process(pid: int, home: Path) -> bool:
    """Is ``pid`` alive and a node for ``home``? Where /proc is missing, trust the pid file."""
    if not _pid_alive(pid):
        return False
    cmdline_path = Path(f"/proc/{pid}/cmdline")
    if not cmdline_path.parent.exists():
        return True
    try:
        arguments = cmdline_path.read_bytes().split(b"\0")
    except OSError:
        return False
    return str(home).encode() in arguments and b"start" in arguments


def node_pid(home: Path) -> int | None:
    """The pid of the running node for ``home``, or None."""
    pid = read_pid(home)
    if pid is not None and _is_node_process(pid, home.resolve()):
        return pid
    return None


def running_nodes(directory: str | Path) -> list[int]:
    try:
        homes = _homes(Path(directory))
    except HuzhuError:
        return []
    return [_index(home) for home in homes if node_pid(home) is not None]


def processes(directory: str | Path) -> list[NodeProcess]:
    result = []
    for home in _homes(Path(directory)):
        config = load_config(home)
        result.append(NodeProcess(_index(home), home.resolve(), node_pid(home), config.api_url))
    return result


def http_get_json(url: str, timeout_s: float = HTTP_TIMEOUT_S) -> tuple[int, Any]:
    """(status, body) of a GET; status 0 when the node does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"null")
        except ValueError:
            return exc.code, None
    except (urllib.error.URLError, OSError, ValueError):
        return 0, None


def start_node(home: Path, log_format: str | None = None, log_level: str | None = None,
               extra_env: dict[str, str] | None = None) -> int:
    """Start one node in the background; return its pid. Its output goes to node.log."""
    home = home.resolve()
    command = [sys.executable, "-m", "client.node_cli", "node", "start", "--home", str(home)]
    if log_format:
        command += ["--log-format", log_format]
    if log_level:
        command += ["--log-level", log_level]
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra_env or {})
    with open(home / LOG_FILE_NAME, "ab") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True, env=env,
                                   cwd=str(home))
    (home / PID_FILE_NAME).write_text(f"{process.pid}\n")
    return process.pid


def log_tail(home: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = (home / LOG_FILE_NAME).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_ready(nodes: list[NodeProcess], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    pending = list(nodes)
    while pending:
        still = []
        for node in pending:
            status, _ = http_get_json(f"{node.api_url}/readyz", timeout_s=HTTP_TIMEOUT_S)
            if status == 200:
                continue
            if node.pid is not None and not _pid_alive(node.pid):
                raise ConsortiumError("node_exited", f"node{node.index} exited before it was "
                                                     f"ready; last log lines:\n"
                                                     f"{log_tail(node.home)}")
            still.append(node)
        pending = still
        if not pending:
            return
        if time.monotonic() > deadline:
            names = ", ".join(f"node{node.index}" for node in pending)
            raise ConsortiumError("not_ready", f"{names} not ready after {timeout_s:.0f} s")
        time.sleep(POLL_INTERVAL_S)


def up(directory: str | Path, timeout_s: float = DEFAULT_READY_TIMEOUT_S,
       log_format: str | None = None, log_level: str | None = None,
       wait: bool = True) -> list[NodeProcess]:
    """Start every node of the testnet that is not running; wait until all are ready."""
    started = []
    for node in processes(directory):
        pid = node.pid if node.pid is not None else start_node(node.home, log_format, log_level)
        started.append(NodeProcess(node.index, node.home, pid, node.api_url))
    if wait:
        wait_ready(started, timeout_s)
    return started


def _wait_or_kill(pid: int, deadline: float) -> str:
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            while _pid_alive(pid):
                time.sleep(POLL_INTERVAL_S)
            return "killed"
        time.sleep(POLL_INTERVAL_S)
    return "stopped"


def stop_node(home: Path, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> str:
    """SIGTERM, then SIGKILL after ``timeout_s``. Returns what happened."""
    return down_homes([home.resolve()], timeout_s)[0]


def down_homes(homes: list[Path], timeout_s: float) -> list[str]:
    # Signal every node first, then wait, so stopping N nodes takes one timeout, not N.
    pids = []
    for home in homes:
        pid = node_pid(home.resolve())
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pid = None
        pids.append(pid)
    deadline = time.monotonic() + timeout_s
    outcomes = []
    for home, pid in zip(homes, pids):
        outcomes.append("not running" if pid is None else _wait_or_kill(pid, deadline))
        (home / PID_FILE_NAME).unlink(missing_ok=True)
    return outcomes


def down(directory: str | Path, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> dict[int, str]:
    homes = _homes(Path(directory))
    return {_index(home): outcome for home, outcome in zip(homes, down_homes(homes, timeout_s))}


def status(directory: str | Path) -> list[dict]:
    """One row per node: process and the node's own /status, or why it has none."""
    rows = []
    for node in processes(directory):
        row: dict[str, Any] = {"node": f"node{node.index}", "pid": node.pid,
                               "api": node.api_url}
        code, body = http_get_json(f"{node.api_url}/status") if node.pid else (0, None)
        if code == 200 and isinstance(body, dict):
            row.update(state="up", height=body.get("height"), view=body.get("view"),
                       primary=body.get("primary"), peers=body.get("peers_connected"),
                       mempool=body.get("mempool_txs"), ready=body.get("ready"))
        else:
            row.update(state="down" if node.pid is None else "unresponsive")
        rows.append(row)
    return rows
