"""`huzhu testnet`, `huzhu node start` and `huzhu consortium up|down|status`.

Exit codes: 0 success, 1 error (bad usage, a directory that exists, a node that would not
start or become ready). `node start` runs in the foreground until SIGTERM or SIGINT and exits
0 after a clean shutdown.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich import box
from rich.console import Console
from rich.table import Table

from ledger.errors import HuzhuError
from node import consortium
from node.config import DEFAULT_BASE_PORT, DEFAULT_TICK_MS, LOG_FORMATS, LOG_LEVELS
from node.testnet import (APPS, DEFAULT_CHAIN_ID, DEFAULT_EMPTY_BLOCK_INTERVAL_MS, create_testnet,
                          describe)


class NodeCommandError(click.ClickException):
    exit_code = 1


def _fail(exc: Exception) -> NodeCommandError:
    return NodeCommandError(str(getattr(exc, "message", None) or exc))


@click.command("testnet")
@click.option("--nodes", "-n", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Number of validator nodes.")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Directory to create (NET).")
@click.option("--base-port", type=click.IntRange(1024, 65000), default=DEFAULT_BASE_PORT,
              show_default=True, help="Node I uses base+2I (peers, TLS) and base+2I+1 (API).")
@click.option("--time-scale", type=click.IntRange(min=1), default=1, show_default=True,
              help="Divide the plan's durations (notice, jury, periods) by this factor.")
@click.option("--app", type=click.Choice(APPS), default=None,
              help="Application: the mutual-aid plan (default when available) or key/value.")
@click.option("--chain-id", default=DEFAULT_CHAIN_ID, show_default=True)
@click.option("--tick-ms", type=click.IntRange(1, 10_000), default=DEFAULT_TICK_MS,
              show_default=True, help="How often each node ticks its consensus clock.")
@click.option("--force", is_flag=True, help="Replace an existing testnet directory.")
@click.option("--bench-keys", type=click.IntRange(0, 255), default=0, show_default=True,
              help="Extra registrar and treasurer keys (NET/keys/bench/) for huzhu bench.")
@click.option("--empty-block-interval-ms", type=click.IntRange(0, 3_600_000),
              default=DEFAULT_EMPTY_BLOCK_INTERVAL_MS, show_default=True,
              help="On an idle chain the primary makes an empty block this often, so notice "
                   "ends, jury deadlines and settlements still happen; 0 turns it off.")
def testnet_command(nodes: int, directory: Path, base_port: int, time_scale: int,
                    app: str | None, chain_id: str, tick_ms: int, force: bool,
                    bench_keys: int, empty_block_interval_ms: int) -> None:
    """Create keys, a consortium CA and certificates, genesis and node configs."""
    try:
        layout = create_testnet(directory, nodes, base_port=base_port, time_scale=time_scale,
                                app=app, chain_id=chain_id, force=force, tick_ms=tick_ms,
                                bench_keys=bench_keys,
                                empty_block_interval_ms=empty_block_interval_ms)
    except HuzhuError as exc:
        raise _fail(exc) from None
    click.echo(describe(layout))


@click.group("node")
def node_group() -> None:
    """Run one consortium node."""


@node_group.command("start")
@click.option("--home", type=click.Path(exists=True, file_okay=False, path_type=Path),
              required=True, help="The node's directory (NET/nodeI).")
@click.option("--log-format", type=click.Choice(LOG_FORMATS), default=None,
              help="Override the config's log format.")
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default=None,
              help="Override the config's log level.")
def node_start(home: Path, log_format: str | None, log_level: str | None) -> None:
    """Run the node in the foreground until SIGTERM or SIGINT."""
    from node.config import load_config
    from node.runtime import run_node

    try:
        config = load_config(home).with_log(log_format, log_level)
    except HuzhuError as exc:
        raise _fail(exc) from None
    try:
        run_node(config)
    except HuzhuError as exc:
        raise _fail(exc) from None


@click.group("consortium")
def consortium_group() -> None:
    """Start, stop and inspect all nodes of a local testnet as background processes."""


_DIR_OPTION = click.option("--dir", "directory", required=True,
                           type=click.Path(exists=True, file_okay=False, path_type=Path),
                           help="The testnet directory (NET).")


@consortium_group.command("up")
@_DIR_OPTION
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=1), show_default=True,
              default=consortium.DEFAULT_READY_TIMEOUT_S, help="Seconds to wait for /readyz.")
@click.option("--log-format", type=click.Choice(LOG_FORMATS), default=None)
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default=None)
def consortium_up(directory: Path, timeout_s: float, log_format: str | None,
                  log_level: str | None) -> None:
    """Start every node that is not running and wait until all are ready."""
    try:
        started = consortium.up(directory, timeout_s=timeout_s, log_format=log_format,
                                log_level=log_level)
    except HuzhuError as exc:
        raise _fail(exc) from None
    for node in started:
        click.echo(f"node{node.index} pid {node.pid} api {node.api_url} log "
                   f"{node.home / consortium.LOG_FILE_NAME}")
    click.echo(f"{len(started)} nodes ready")


@consortium_group.command("down")
@_DIR_OPTION
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0), show_default=True,
              default=consortium.DEFAULT_STOP_TIMEOUT_S,
              help="Seconds between SIGTERM and SIGKILL.")
def consortium_down(directory: Path, timeout_s: float) -> None:
    """Stop every node: SIGTERM, then SIGKILL after the timeout."""
    try:
        outcomes = consortium.down(directory, timeout_s=timeout_s)
    except HuzhuError as exc:
        raise _fail(exc) from None
    for index, outcome in outcomes.items():
        click.echo(f"node{index}: {outcome}")


@consortium_group.command("status")
@_DIR_OPTION
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
def consortium_status(directory: Path, as_json: bool) -> None:
    """Show height, view, primary, peers and mempool of every node."""
    try:
        rows = consortium.status(directory)
    except HuzhuError as exc:
        raise _fail(exc) from None
    if as_json:
        click.echo(json.dumps({"nodes": rows}))
        return
    table = Table(box=box.SIMPLE)
    columns = ("node", "state", "pid", "height", "view", "primary", "peers", "mempool", "api")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if row.get(column) is None else str(row.get(column))
                        for column in columns))
    # Off a terminal (piped, captured) rich would wrap at 80 columns and cut the URLs.
    width = None if sys.stdout.isatty() else 160
    Console(highlight=False, file=sys.stdout, width=width).print(table)


def register(main: click.Group) -> None:
    main.add_command(testnet_command)
    main.add_command(node_group)
    main.add_command(consortium_group)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def node_main() -> None:
    """The node commands alone: `python -m client.node_cli node start --home DIR`.

    `huzhu consortium up` starts nodes this way, so a node process imports only what a node
    needs and does not depend on every other command of the `huzhu` CLI."""


register(node_main)

if __name__ == "__main__":
    node_main()
