"""A real node runtime's log lines: one JSON event per line, each saying where the node was.

The unit test of node.logging (tests/node/test_config_testnet.py) feeds a fixed context; this
one checks the runtime's own context: a block_committed line carries the node id, the view,
and as height the block it announces, and --log-level warning keeps such lines out.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

from ledger.keys import KeyPair
from ledger.types import Transaction
from node.config import load_config
from node.logging import setup_logging
from node.runtime import NodeRuntime
from node.testnet import create_testnet

# tests/<dir> are not packages; the port helper lives with the e2e helpers.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from e2e_helpers import free_port_block  # noqa: E402


async def commit_one(runtime: NodeRuntime, key: str) -> int:
    tx = Transaction.create(KeyPair.generate(), runtime.chain_id, 0, "kv.set",
                            {"key": key, "value": b"v"})
    outcome = runtime.submit_tx(tx.encode())
    assert outcome.category == "accepted", outcome
    location = await runtime.wait_for_commit(tx.tx_id, 20.0)
    assert location is not None
    return location[0]


async def test_runtime_events_carry_node_height_and_view(tmp_path: Path) -> None:
    layout = create_testnet(tmp_path / "net", 1, base_port=free_port_block(2), app="kv")
    runtime = NodeRuntime(load_config(layout.node_homes[0]))
    stream = io.StringIO()
    setup_logging("json", "info", runtime.log_context, stream=stream)
    try:
        await runtime.start()
        height = await commit_one(runtime, "first")
        events = [json.loads(line) for line in stream.getvalue().splitlines()]
        names = [event["event"] for event in events]
        assert "node_started" in names
        for event in events:
            assert event["node"] == 0 and event["view"] == 0, event
            assert {"timestamp", "level", "height"} <= set(event), event
        committed = [event for event in events if event["event"] == "block_committed"]
        assert any(event["committed"] == height for event in committed)
        for event in committed:
            assert event["height"] >= event["committed"], event

        quiet = io.StringIO()
        setup_logging("json", "warning", runtime.log_context, stream=quiet)
        await commit_one(runtime, "second")
        assert "block_committed" not in quiet.getvalue()
    finally:
        await runtime.stop()
        setup_logging("plain", "warning", None)
