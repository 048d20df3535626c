"""Choosing the application a chain runs, by the genesis app section's name."""

from __future__ import annotations

from typing import Any

from ledger.application import Application, StateReader
from ledger.errors import InvalidGenesis


def make_application(genesis: Any, store: StateReader, verify_signatures: bool = True) -> Application:
    """The application for ``genesis`` over ``store``: ``"plan"`` (the mutual-aid contracts)
    or ``"kv"`` (the key/value test application).

    ``verify_signatures=False`` lets the plan skip re-checking transaction signatures that the
    node already checked at admission and consensus checked before voting (the audit keeps
    the default and checks them all). The kv application never checks signatures itself.
    """
    name = genesis.app.get("name") if isinstance(genesis.app, dict) else None
    if name == "kv":
        from node.kvapp import KVApp
        return KVApp(genesis.app, genesis.chain_id, store)
    if name == "plan":
        from contracts import PlanApp  # imported lazily: the kv chain does not need it
        return PlanApp(genesis.app, genesis.chain_id, store, verify_signatures=verify_signatures)
    raise InvalidGenesis("bad_app", f"unknown application {name!r}")
