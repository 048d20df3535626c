"""Every transaction kind in one table: its body shape, who may sign it, and its handler.

``check_tx`` uses the table to refuse a transaction before the mempool when its signer cannot
be authorised for its kind from the committed state, and ``execute_block`` runs the same rule
again before the handler (the state may have changed between admission and the block). The
handlers keep their own checks: the table decides who may sign, the handler decides whether
what they signed is allowed now.

A signer rule reads a bounded number of records (roles, the member, the claim, the jury and
one seat), never a list that grows with the plan. A signer that is neither a member, a role
holder nor an org key is a stranger: no rule admits one, and a stranger's transaction never
spends a nonce (see ``is_known_signer``), so it leaves nothing in the state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from contracts import claims, governance, jury, members
from contracts.env import TxEnv
from contracts.genesis import PARAM_NAMES, ROLES
from contracts.reasons import reject
from contracts.records import CLAIM_JURY, Claim, PlanState, member_id_of
from contracts.schema import (
    AMOUNT,
    DIGEST,
    ID,
    MAX_CODE_CHARS,
    MAX_KEY_ID_CHARS,
    MAX_NAME_CHARS,
    MAX_REFERENCE_CHARS,
    MAX_TIME_MS,
    MEMBER_ID,
    OBJECTION_REASONS,
    PUBLIC_KEY,
    REVIEW_REJECT_REASONS,
    VOTES,
    anything,
    choice,
    documents,
    integer,
    one_of,
    plain_body,
    text,
)

Handler = Callable[[PlanState, TxEnv, dict], dict]
# (plan, signer's public key, validated body): returns, or raises the refusal's reason code
Authorise = Callable[[PlanState, bytes, dict], None]


@dataclass(frozen=True, slots=True)
class Kind:
    body: Callable[[Any], dict]  # returns the body unchanged or raises bad_body
    signer: str  # who may sign, in words (error messages, docs/DOMAIN.md)
    authorise: Authorise
    handler: Handler


# --- signer rules ---------------------------------------------------------------------------

def _role(role: str) -> Authorise:
    def authorise(plan: PlanState, sender: bytes, body: dict) -> None:
        members.require_role(plan, role, sender)
    return authorise


def _org(plan: PlanState, sender: bytes, body: dict) -> None:
    if plan.org_of(sender) is None:
        raise reject("unauthorized", "the signer is not an org's governance key")


def _active_member(plan: PlanState, sender: bytes, body: dict) -> None:
    members.signer_member(plan, sender, must_be_active=True)


def _claim(plan: PlanState, claim_id: int) -> Claim:
    claim = plan.claim(claim_id)
    if claim is None:
        raise reject("unknown_claim", "no such claim")
    return claim


def _claimant(plan: PlanState, sender: bytes, body: dict) -> None:
    """The member whose claim it is (the claim must exist)."""
    member = members.signer_member(plan, sender, must_be_active=False)
    if _claim(plan, body["claim_id"]).member_id != member.member_id:
        raise reject("unauthorized", "only the claimant may sign this for their claim")


def _anchorer(plan: PlanState, sender: bytes, body: dict) -> None:
    """A reviewer or a hospital for any claim, or the claimant for their own."""
    if plan.has_role("reviewer", sender) or plan.has_role("hospital", sender):
        _claim(plan, body["claim_id"])
        return
    if plan.member(member_id_of(sender)) is None:
        raise reject("unauthorized", "only the claimant, a reviewer or a hospital may anchor")
    _claimant(plan, sender, body)


def _juror(plan: PlanState, sender: bytes, body: dict) -> None:
    """A member drawn for the round of the claim's jury now sitting."""
    member = members.signer_member(plan, sender, must_be_active=False)
    claim = _claim(plan, body["claim_id"])
    sitting = plan.jury(claim.claim_id)
    if sitting is None or claim.status != CLAIM_JURY:
        raise reject("no_jury", "this claim has no jury sitting")
    if plan.seat(claim.claim_id, sitting.round, member.member_id) is None:
        raise reject("not_juror", "the signer was not drawn for this jury")


def is_known_signer(plan: PlanState, sender: bytes) -> bool:
    """A member (of any status), a role holder or an org key: a signer whose refused
    transaction may spend a nonce. Anyone else is a stranger and gets no nonce record."""
    return (plan.member(member_id_of(sender)) is not None or plan.org_of(sender) is not None
            or any(plan.has_role(role, sender) for role in ROLES))


# --- the table ------------------------------------------------------------------------------

BIRTH_MS = integer(-MAX_TIME_MS, MAX_TIME_MS)  # birth dates may be before 1970

KINDS: dict[str, Kind] = {
    "member.enroll": Kind(
        # identity: HMAC-SHA256 under the registrar's secret named by identity_key_id
        plain_body({"public_key": PUBLIC_KEY, "identity": DIGEST, "birth_ms": BIRTH_MS},
                   optional={"identity_key_id": text(MAX_KEY_ID_CHARS)}),
        "registrar", _role("registrar"), members.enroll),
    "member.deposit": Kind(
        plain_body({"member_id": MEMBER_ID, "amount_fen": AMOUNT,
                    "reference": text(MAX_REFERENCE_CHARS)}),
        "treasurer", _role("treasurer"), members.deposit),
    "member.exit": Kind(
        plain_body({}), "the member (active)", _active_member, members.exit_plan),
    "member.qualify_juror": Kind(
        plain_body({"member_id": MEMBER_ID}),
        "registrar", _role("registrar"), members.qualify_juror),
    "evidence.anchor": Kind(
        plain_body({"claim_id": ID, "documents": documents}),
        "the claimant, a reviewer or a hospital", _anchorer, claims.anchor_evidence),
    "claim.submit": Kind(
        plain_body({"condition": text(MAX_CODE_CHARS), "diagnosis_ms": BIRTH_MS,
                    "amount_fen": AMOUNT, "evidence_root": DIGEST}),
        "a member (active)", _active_member, claims.submit),
    "claim.review": Kind(
        one_of("decision", {
            "approve": {"claim_id": ID, "amount_fen": AMOUNT},
            "reject": {"claim_id": ID, "reason": choice(REVIEW_REJECT_REASONS)},
        }),
        "reviewer", _role("reviewer"), claims.review),
    "claim.object": Kind(
        plain_body({"claim_id": ID, "reason": choice(OBJECTION_REASONS),
                    "evidence_digest": DIGEST}),
        "a member (active)", _active_member, claims.object_to),
    "claim.appeal": Kind(
        plain_body({"claim_id": ID}), "the claimant", _claimant, claims.appeal),
    "jury.commit": Kind(
        plain_body({"claim_id": ID, "commitment": DIGEST}),
        "a juror of the sitting round", _juror, jury.commit_vote),
    "jury.reveal": Kind(
        plain_body({"claim_id": ID, "vote": choice(VOTES), "salt": DIGEST}),
        "a juror of the sitting round", _juror, jury.reveal_vote),
    "gov.propose": Kind(
        one_of("action", {
            "set_param": {"name": choice(PARAM_NAMES), "value": anything},
            "grant_role": {"role": text(MAX_NAME_CHARS), "public_key": PUBLIC_KEY},
            "revoke_role": {"role": text(MAX_NAME_CHARS), "public_key": PUBLIC_KEY},
            "set_org_key": {"org": text(MAX_NAME_CHARS), "public_key": PUBLIC_KEY},
        }),
        "an org", _org, governance.propose),
    "gov.approve": Kind(
        plain_body({"proposal_id": ID}), "an org", _org, governance.approve),
}
TX_KINDS = tuple(KINDS)


def kind_of(name: str) -> Kind:
    kind = KINDS.get(name)
    if kind is None:
        raise reject("unknown_kind", f"no transaction kind {name!r}")
    return kind


def validate_body(name: str, body: Any) -> dict:
    return kind_of(name).body(body)


def authorise(plan: PlanState, name: str, sender: bytes, body: dict) -> None:
    """Raise the reason ``sender`` may not sign a ``name`` transaction with ``body`` now."""
    kind_of(name).authorise(plan, sender, body)
