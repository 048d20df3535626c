"""Shared pieces of the client commands: options, output, errors, exit codes.

Every client command takes ``--node URL`` (default ``HUZHU_NODE``, else the first node of
the local testnet), ``--key FILE`` where it signs (default ``HUZHU_KEY``) and ``--json``. Human
output is rich tables on stdout; an error is one line on stderr and a non-zero exit code:

    0  success
    1  error: bad usage, unreachable node, the node refused the request, or a transaction
       that was committed with a failed receipt
    2  (audit and evidence verify only) the chain or the file does not verify
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table

from client.api import Client, ClientError
from ledger.errors import HuzhuError
from ledger.keys import KeyPair

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_MISMATCH = 2

NODE_ENV = "HUZHU_NODE"
KEY_ENV = "HUZHU_KEY"
NET_ENV = "HUZHU_NET"
DEFAULT_NET_DIRS = ("testnet", "net")  # where `huzhu testnet` usually writes, relative to cwd

MIN_PIPE_WIDTH = 120  # output that goes to a file or pipe is not wrapped at 80 columns


def _console(stderr: bool = False) -> Console:
    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal and console.width < MIN_PIPE_WIDTH:
        console = Console(stderr=stderr, highlight=False, soft_wrap=True, width=MIN_PIPE_WIDTH)
    return console


stdout_console = _console()
stderr_console = _console(stderr=True)


class CommandFailed(Exception):
    """An expected failure of a command: printed as one line, then exit with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class _UsageExitsOne:
    """Usage errors exit 1: 2 is reserved for 'does not verify' (audit, evidence verify)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)  # type: ignore[misc]
        except click.UsageError as exc:
            exc.exit_code = EXIT_ERROR
            raise


class HuzhuCommand(_UsageExitsOne, click.Command):
    pass


class HuzhuGroup(_UsageExitsOne, click.Group):
    command_class = HuzhuCommand

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            exc.exit_code = EXIT_ERROR
            raise


HuzhuGroup.group_class = HuzhuGroup


def fail(message: str, exit_code: int = EXIT_ERROR) -> None:
    raise CommandFailed(message, exit_code)


def handle_errors(function: Callable) -> Callable:
    """Turn expected failures into one line on stderr and a non-zero exit code."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except CommandFailed as exc:
            _print_error(exc.message)
            sys.exit(exc.exit_code)
        except ClientError as exc:
            _print_error(str(exc))
            sys.exit(EXIT_ERROR)
        except HuzhuError as exc:
            _print_error(f"{exc.code}: {exc.message}")
            sys.exit(EXIT_ERROR)
        except OSError as exc:
            _print_error(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
            sys.exit(EXIT_ERROR)

    return wrapper


def _print_error(message: str) -> None:
    click.echo(f"error: {message}", err=True)


# --- node, key ------------------------------------------------------------------------

def local_testnet_dirs() -> list[Path]:
    env = os.environ.get(NET_ENV)
    if env:
        return [Path(env)]
    return [Path(name) for name in DEFAULT_NET_DIRS]


def default_node_url() -> str | None:
    """``HUZHU_NODE``, else the API address of node0 of a local testnet directory."""
    env = os.environ.get(NODE_ENV)
    if env:
        return env
    for net in local_testnet_dirs():
        config_path = net / "node0" / "config.toml"
        if config_path.is_file():
            try:
                from node.config import load_config
                return load_config(config_path).api_url
            except HuzhuError:
                continue
    return None


def make_client(node: str | None) -> Client:
    url = node or default_node_url()
    if not url:
        fail(f"no node given: pass --node URL or set {NODE_ENV}")
    return Client(url)


def load_key(path: str | None) -> KeyPair:
    path = path or os.environ.get(KEY_ENV)
    if not path:
        fail(f"no key given: pass --key FILE or set {KEY_ENV}")
    return KeyPair.load(path)


node_option = click.option(
    "--node", "node", metavar="URL", default=None,
    help=f"Node API address (default ${NODE_ENV}, else node0 of ./testnet).")
key_option = click.option(
    "--key", "key", metavar="FILE", default=None, type=click.Path(dir_okay=False),
    help=f"Key file that signs (default ${KEY_ENV}).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")


# --- output ---------------------------------------------------------------------------

def to_jsonable(value: Any) -> Any:
    """Plain values with bytes as lowercase hex, for --json output."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def print_json(value: Any) -> None:
    click.echo(json.dumps(to_jsonable(value), indent=2, sort_keys=True))


def _cell(value: Any) -> str:
    value = to_jsonable(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    if value is None:
        return "-"
    return str(value)


def print_mapping(title: str, mapping: dict[str, Any]) -> None:
    """A two-column table of a flat mapping (nested values as compact JSON)."""
    table = Table(title=title, show_header=False, title_justify="left", box=box.SIMPLE,
                  pad_edge=False, title_style="bold")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in mapping.items():
        table.add_row(str(name), _cell(value))
    stdout_console.print(table)


def print_rows(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  title_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(value) for value in row))
    stdout_console.print(table)


def output(value: Any, as_json: bool, title: str) -> None:
    if as_json:
        print_json(value)
    elif isinstance(value, dict):
        print_mapping(title, value)
    else:
        stdout_console.print(value)


def parse_hex(value: str, size: int | None, what: str) -> bytes:
    text = value[2:] if value.startswith("0x") else value
    try:
        data = bytes.fromhex(text)
    except ValueError:
        fail(f"{what} must be hex")
    if size is not None and len(data) != size:
        fail(f"{what} must be {size} bytes ({size * 2} hex digits)")
    return data
