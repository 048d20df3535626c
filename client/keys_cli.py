"""``huzhu keys``: make and inspect Ed25519 key files (mode 0600, never printed)."""

from __future__ import annotations

import click

from client.cli_common import HuzhuGroup, handle_errors, json_option, output
from ledger.keys import KeyPair


@click.group("keys", cls=HuzhuGroup)
def keys_group() -> None:
    """Make and inspect key files."""


@keys_group.command("new")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Where to write the new key file (refuses to overwrite).")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@json_option
@handle_errors
def keys_new(out: str, force: bool, as_json: bool) -> None:
    """Generate a new Ed25519 key and write it to FILE (readable by you only)."""
    pair = KeyPair.generate()
    path = pair.save(out, overwrite=force)
    output({"public_key": pair.public_key.hex(), "file": str(path)}, as_json, "new key")


@keys_group.command("show")
@click.argument("file", type=click.Path(dir_okay=False))
@json_option
@handle_errors
def keys_show(file: str, as_json: bool) -> None:
    """Print the public key of a key file."""
    pair = KeyPair.load(file)
    output({"public_key": pair.public_key.hex(), "file": file}, as_json, "key")
