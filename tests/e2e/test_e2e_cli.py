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
