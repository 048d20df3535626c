"""Helpers for the end-to-end tests: a local testnet of real node processes on 127.0.0.1.

``Net`` creates a testnet in a temporary directory on a free block of ports, starts and
kill -9s node processes through node.consortium (the same code `huzhu consortium` runs), and
talks to their APIs with urllib. Every wait is bounded (``wait_until``); a failing wait shows
the last lines of the nodes' logs. ``Net.close`` kills whatever is still running.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ledger.keys import KeyPair
from node import consortium
from node.config import load_config
from node.testnet import create_testnet, free_port_block  # noqa: F401 (re-exported for tests)

WAIT_S = 60.0
HTTP_TIMEOUT_S = 20.0


def http(method: str, url: str, body: bytes | None = None,
         content_type: str = "application/json",
         timeout_s: float = HTTP_TIMEOUT_S) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method=method,
                                     headers={"Content-Type": content_type} if body is not None
                                     else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:
            raw = reply.read()
            kind = reply.headers.get("Content-Type", "")
            return reply.status, json.loads(raw) if "json" in kind else raw
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw


class Net:
    def __init__(self, directory: Path, nodes: int = 4, app: str = "kv",
                 time_scale: int = 1, bench_keys: int = 0) -> None:
        self.base_port = free_port_block(2 * nodes)
        self.layout = create_testnet(directory, nodes, base_port=self.base_port, app=app,
                                     time_scale=time_scale, bench_keys=bench_keys)
        self.directory = self.layout.directory
        self.homes = list(self.layout.node_homes)
        self.configs = [load_config(home) for home in self.homes]
        self.genesis = json.loads(self.layout.genesis_path.read_text())
        self.chain_id = self.genesis["chain_id"]

    # --- processes ----------------------------------------------------------------------

    def start(self, index: int) -> int:
        return consortium.start_node(self.homes[index], log_level="info")

    def start_all(self, wait: bool = True) -> None:
        for index in range(len(self.homes)):
            if consortium.node_pid(self.homes[index]) is None:
                self.start(index)
        if wait:
            self.wait_ready(range(len(self.homes)))

    def pid(self, index: int) -> int | None:
        return consortium.node_pid(self.homes[index])

    def kill9(self, index: int) -> None:
        pid = self.pid(index)
        assert pid is not None, f"node{index} is not running"
        os.kill(pid, signal.SIGKILL)
        self.wait_until(lambda: consortium.node_pid(self.homes[index]) is None,
                        f"node{index} to die")

    def close(self) -> None:
        for home in self.homes:
            pid = consortium.node_pid(home)
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for home in self.homes:
            deadline = time.monotonic() + 10
            while consortium.node_pid(home) is not None and time.monotonic() < deadline:
                time.sleep(0.05)

    def logs(self, lines: int = 30) -> str:
        return "\n".join(f"--- {home.name}\n{consortium.log_tail(home, lines)}"
                         for home in self.homes)

    # --- waiting ------------------------------------------------------------------------

    def wait_until(self, predicate: Callable[[], Any], what: str,
                   timeout_s: float = WAIT_S) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}\n{self.logs()}")
            time.sleep(0.1)

    def wait_ready(self, indexes: Any) -> None:
        for index in indexes:
            self.wait_until(lambda: self.get(index, "/readyz")[0] == 200,
                            f"node{index} ready")

    # --- API ----------------------------------------------------------------------------

    def url(self, index: int, path: str) -> str:
        return self.configs[index].api_url + path

    def get(self, index: int, path: str) -> tuple[int, Any]:
        try:
            return http("GET", self.url(index, path))
        except (urllib.error.URLError, OSError):
            return 0, None

    def post(self, index: int, path: str, body: bytes,
             content_type: str = "application/json") -> tuple[int, Any]:
        return http("POST", self.url(index, path), body, content_type)

    def status(self, index: int) -> dict:
        code, body = self.get(index, "/status")
        assert code == 200, (code, body)
        return body

    def height(self, index: int) -> int:
        code, body = self.get(index, "/status")
        return body["height"] if code == 200 else -1

    def block_hashes(self, index: int, up_to: int) -> list[str]:
        hashes = []
        for height in range(1, up_to + 1):
            code, body = self.get(index, f"/blocks/{height}")
            assert code == 200, (index, height, code, body)
            hashes.append(body["block_hash"])
        return hashes

    def role_key(self, role: str) -> KeyPair:
        return KeyPair.load(self.directory / "keys" / f"{role}.json")
