"""The deterministic mutual-aid application: state tree, enrollment, evidence, claims, jury, settlement, governance.

``PlanApp(genesis_app, chain_id, state)`` is the Application the node runs (contracts.app);
``contracts.genesis`` builds and validates the app section of genesis; ``contracts.state``
holds the Merkle state tree and ``verify_proof`` for clients.
"""

from contracts.app import PlanApp

__all__ = ["PlanApp"]
