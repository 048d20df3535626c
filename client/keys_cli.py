"""``huzhu keys``: make and inspect Ed25519 key files (mode 0600; seeds are never printed)."""

from __future__ import annotations

import click

from client.cli_common import HuzhuGroup, fail, handle_errors, json_option, output, print_json, print_rows
from ledger.hashing import sha256
from ledger.keys import KeyPair

MEMBER_ID_BYTES = 16  # a member's id is the first 16 bytes of SHA-256 of their public key
MAX_KEYS_AT_ONCE = 10_000


def describe(pair: KeyPair, path: str) -> dict:
    return {"public_key": pair.public_key.hex(),
            "member_id": sha256(pair.public_key)[:MEMBER_ID_BYTES].hex(), "file": path}


@click.group("keys", cls=HuzhuGroup)
def keys_group() -> None:
    """Make and inspect key files."""


@keys_group.command("new")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Where to write the new key file (refuses to overwrite). With --count, "
                   "'{n}' in the name is replaced by 1, 2, ...")
@click.option("--count", type=click.IntRange(1, MAX_KEYS_AT_ONCE), default=1,
              help="Make this many keys.")
@click.option("--force", is_flag=True, help="Overwrite existing files.")
@json_option
@handle_errors
def keys_new(out: str, count: int, force: bool, as_json: bool) -> None:
    """Generate new Ed25519 keys, each written to a file readable by you only."""
    if count > 1 and "{n}" not in out:
        fail("with --count, put {n} in --out (e.g. --out keys/member-{n}.json)")
    made = []
    for number in range(1, count + 1):
        path = out.replace("{n}", str(number))
        pair = KeyPair.generate()
        pair.save(path, overwrite=force)
        made.append(describe(pair, path))
    if count == 1:
        output(made[0], as_json, "new key")
    elif as_json:
        print_json({"keys": made})
    else:
        print_rows(f"{count} new keys", ("file", "public_key", "member_id"),
                   [(k["file"], k["public_key"], k["member_id"]) for k in made])


@keys_group.command("show")
@click.argument("file", type=click.Path(dir_okay=False))
@json_option
@handle_errors
def keys_show(file: str, as_json: bool) -> None:
    """Print the public key (and member id) of a key file."""
    output(describe(KeyPair.load(file), file), as_json, "key")
