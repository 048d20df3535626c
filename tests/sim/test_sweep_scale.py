"""Scale (slow): a consortium of more than 64 nodes with the plan's workload commits blocks in
one process, with verification charged as virtual CPU time; the report says which mode ran."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from client.cli import main


@pytest.mark.slow
def test_a_hundred_node_consortium_commits_with_the_cpu_model():
    result = CliRunner().invoke(main, ["simulate", "--nodes", "100", "--duration", "300ms",
                                       "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["crypto"] == "fast" and "virtual CPU time only" in report["cpu_model"]
    assert report["safe"] and report["committed_height"] >= 1
    assert report["max_rss_mib"] > 0
