"""Governance: the consortium orgs change parameters and role keys by a >2/3 vote on chain.

``gov.propose`` (an org's governance key) opens a proposal and counts as that org's approval;
``gov.approve`` adds another org's. When more than 2/3 of the orgs approve, the action takes
effect in that transaction, after being checked again against the state of that moment (a
proposal that became invalid meanwhile is closed as failed). Open proposals expire after
``proposal_ttl_ms``. A parameter change is validated as a whole parameter set with the same
code as genesis, so no vote can reach parameters genesis would refuse.
"""

from __future__ import annotations

from ledger.errors import InvalidGenesis, InvalidTransaction

from contracts.env import BlockEnv, TxEnv
from contracts.genesis import ROLES, params_from_plain
from contracts.layout import Due, be64
from contracts.reasons import reject
from contracts.records import (
    PROPOSAL_APPLIED,
    PROPOSAL_EXPIRED,
    PROPOSAL_FAILED,
    PROPOSAL_OPEN,
    PlanState,
    Proposal,
)


def _sender_org(plan: PlanState, env: TxEnv) -> str:
    org = plan.org_of(env.sender)
    if org is None:
        raise reject("unauthorized", "the signer is not an org's governance key")
    return org


def _check_action(plan: PlanState, action: dict) -> None:
    """Raise the reason the action cannot take effect in the current state, if any."""
    kind = action["action"]
    if kind == "set_param":
        plain = plan.params().to_plain()
        plain[action["name"]] = action["value"]
        try:
            params_from_plain(plain)
        except InvalidGenesis as exc:
            raise reject("bad_param", exc.message) from None
    elif kind in ("grant_role", "revoke_role"):
        if action["role"] not in ROLES:
            raise reject("unknown_role", f"roles are {list(ROLES)}")
        holds = plan.has_role(action["role"], action["public_key"])
        if kind == "grant_role" and holds:
            raise reject("role_exists", "the key already holds this role")
        if kind == "revoke_role" and not holds:
            raise reject("role_missing", "the key does not hold this role")
    else:
        assert kind == "set_org_key"
        if plan.org_gov_key(action["org"]) is None:
            raise reject("unknown_org", "no such org")
        if plan.org_of(action["public_key"]) is not None:
            raise reject("duplicate_key", "the key already governs an org")


def _apply(plan: PlanState, action: dict) -> None:
    kind = action["action"]
    if kind == "set_param":
        plain = plan.params().to_plain()
        plain[action["name"]] = action["value"]
        plan.put_params(plain)
    elif kind == "grant_role":
        plan.set_role(action["role"], action["public_key"], True)
    elif kind == "revoke_role":
        plan.set_role(action["role"], action["public_key"], False)
    else:
        plan.set_org_key(action["org"], action["public_key"])


def _decide(plan: PlanState, proposal: Proposal, time_ms: int) -> None:
    """Apply ``proposal`` once more than 2/3 of the orgs approve it."""
    if len(proposal.approvals) * 3 <= 2 * plan.chain().org_count:
        return
    plan.dequeue(proposal.expires_ms, Due.PROPOSAL_EXPIRY, be64(proposal.proposal_id))
    proposal.closed_ms = time_ms
    try:
        _check_action(plan, proposal.action)
    except InvalidTransaction as exc:
        proposal.status = PROPOSAL_FAILED
        proposal.failure = exc.code
        return
    _apply(plan, proposal.action)
    proposal.status = PROPOSAL_APPLIED


def propose(plan: PlanState, env: TxEnv, body: dict) -> dict:
    """gov.propose (an org): open a proposal, approved by the proposing org."""
    org = _sender_org(plan, env)
    action = dict(body)
    _check_action(plan, action)
    totals = plan.totals()
    totals.proposals_total += 1
    now = env.time_ms
    proposal = Proposal(proposal_id=totals.proposals_total, action=action, proposer=org,
                        approvals=[org], status=PROPOSAL_OPEN, created_ms=now,
                        expires_ms=now + plan.params().proposal_ttl_ms)
    plan.enqueue(proposal.expires_ms, Due.PROPOSAL_EXPIRY, be64(proposal.proposal_id))
    _decide(plan, proposal, now)
    plan.put_proposal(proposal)
    plan.put_totals(totals)
    return {"proposal_id": proposal.proposal_id, "status": proposal.status}


def approve(plan: PlanState, env: TxEnv, body: dict) -> dict:
    """gov.approve (an org): add this org's approval to an open proposal."""
    org = _sender_org(plan, env)
    proposal = plan.proposal(body["proposal_id"])
    if proposal is None:
        raise reject("unknown_proposal", "no such proposal")
    if proposal.status != PROPOSAL_OPEN:
        raise reject("proposal_closed", f"the proposal is {proposal.status}")
    if org in proposal.approvals:
        raise reject("already_approved", f"{org} already approved")
    proposal.approvals.append(org)
    _decide(plan, proposal, env.time_ms)
    plan.put_proposal(proposal)
    return {"status": proposal.status, "approvals": len(proposal.approvals)}


def proposal_expiry(plan: PlanState, block: BlockEnv, due_ms: int, ident: bytes) -> int:
    proposal = plan.proposal(int.from_bytes(ident, "big"))
    assert proposal is not None and proposal.status == PROPOSAL_OPEN
    proposal.status = PROPOSAL_EXPIRED
    proposal.closed_ms = due_ms
    plan.put_proposal(proposal)
    return 1
