"""Every reason code a plan transaction can be rejected with, in one place.

A rejection is ``InvalidTransaction(code)`` raised by a handler (or by the application before
it), turned into a failed ``Receipt`` whose ``code`` is one of these; ``reject`` refuses codes
that are not listed so the list stays complete (the tests assert each one is reachable).
"""

from __future__ import annotations

from ledger.errors import InvalidTransaction

REASON_CODES: tuple[str, ...] = (
    # the transaction itself
    "wrong_chain", "bad_signature", "bad_nonce", "nonce_too_low", "nonce_too_high",
    "unknown_kind", "bad_body", "unauthorized", "settlement_pending",
    # enrollment, payments, jurors
    "already_member", "identity_enrolled", "too_young", "too_old", "unknown_member",
    "not_member", "member_not_active", "duplicate_payment", "already_juror",
    # claims and evidence
    "unknown_claim", "claim_open", "too_many_claims", "condition_rejected", "bad_diagnosis_date",
    "not_active_at_diagnosis", "waiting_period", "over_age", "not_covered", "over_tier",
    "over_requested", "bad_claim_state", "claim_closed", "too_many_anchors", "own_claim",
    "not_in_notice", "already_objected", "too_many_objections", "not_appealable",
    # jury
    "no_jury", "commit_closed", "not_juror", "already_committed", "not_reveal_phase",
    "not_committed", "already_revealed", "reveal_mismatch",
    # governance
    "bad_param", "unknown_role", "role_exists", "role_missing", "unknown_org",
    "duplicate_key", "unknown_proposal", "proposal_closed", "already_approved",
)
_CODES = frozenset(REASON_CODES)
assert len(_CODES) == len(REASON_CODES)


def reject(code: str, message: str = "") -> InvalidTransaction:
    """The error to raise for a rejection with ``code`` (which must be listed above)."""
    assert code in _CODES, f"unlisted reason code {code}"
    return InvalidTransaction(code, message)
