"""Registers the client command groups (keys, the plan's transactions and views, audit)."""

from __future__ import annotations

import click

from client.keys_cli import keys_group


def register(main: click.Group) -> None:
    """Add every client command group to the ``huzhu`` command."""
    main.add_command(keys_group)
