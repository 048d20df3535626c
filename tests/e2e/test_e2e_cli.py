"""End to end through the command line: `huzhu testnet`, `huzhu consortium up|status|down`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from e2e_helpers import free_port_block
from node import consortium

pytestmark = pytest.mark.e2e


def huzhu(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "client.cli", *args], capture_output=True,
                          text=True, timeout=timeout_s)


def test_consortium_up_status_down(tmp_path: Path) -> None:
    net = tmp_path / "net"
    base = free_port_block(8)
    created = huzhu("testnet", "--nodes", "4", "--dir", str(net), "--base-port", str(base),
                    "--app", "kv")
    assert created.returncode == 0, created.stderr
    try:
        up = huzhu("consortium", "up", "--dir", str(net), "--timeout", "60")
        assert up.returncode == 0, up.stdout + up.stderr + "\n".join(
            consortium.log_tail(net / f"node{i}") for i in range(4))
        assert "4 nodes ready" in up.stdout
        pids = [consortium.node_pid(net / f"node{i}") for i in range(4)]
        assert all(pid is not None for pid in pids)
        # `up` again starts nothing new
        again = huzhu("consortium", "up", "--dir", str(net), "--timeout", "60")
        assert again.returncode == 0
        assert [consortium.node_pid(net / f"node{i}") for i in range(4)] == pids

        status = huzhu("consortium", "status", "--dir", str(net), "--json")
        assert status.returncode == 0, status.stderr
        rows = json.loads(status.stdout)["nodes"]
        assert [row["node"] for row in rows] == ["node0", "node1", "node2", "node3"]
        assert all(row["state"] == "up" and row["peers"] == 3 for row in rows), rows
        assert len({row["primary"] for row in rows}) == 1
        table = huzhu("consortium", "status", "--dir", str(net))
        assert "node3" in table.stdout and "primary" in table.stdout

        down = huzhu("consortium", "down", "--dir", str(net))
        assert down.returncode == 0
        assert down.stdout.count("stopped") == 4, down.stdout
        assert all(consortium.node_pid(net / f"node{i}") is None for i in range(4))
        assert not any((net / f"node{i}" / "node.pid").exists() for i in range(4))
        # a clean SIGTERM shutdown is logged by every node
        assert all("node_stopped" in (net / f"node{i}" / "node.log").read_text()
                   for i in range(4))
        rows = json.loads(huzhu("consortium", "status", "--dir", str(net), "--json").stdout)
        assert all(row["state"] == "down" for row in rows["nodes"])
    finally:
        consortium.down(net, timeout_s=5)


def test_node_start_runs_in_the_foreground_and_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    import signal
    import time
    import urllib.request

    net = tmp_path / "solo"
    base = free_port_block(2)
    assert huzhu("testnet", "--nodes", "1", "--dir", str(net), "--base-port", str(base),
                 "--app", "kv").returncode == 0
    process = subprocess.Popen([sys.executable, "-m", "client.cli", "node", "start", "--home",
                                str(net / "node0"), "--log-format", "json"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{base + 1}/readyz",
                                            timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            assert process.poll() is None, process.stdout.read()
            assert time.monotonic() < deadline, "node never became ready"
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    names = [event["event"] for event in events]
    assert "node_started" in names and names[-1] == "node_stopped", names
    assert all({"node", "height", "view", "timestamp", "level"} <= set(event)
               for event in events)
    assert all(event["node"] == 0 for event in events)
    # every non-JSON line would be a stray print or an unstructured traceback
    assert all(line.startswith("{") for line in output.splitlines() if line.strip()), output
