"""Who may sign each kind, checked before the mempool and again at execution.

On a chain without fees a stranger's transaction must never reach a block: check_tx refuses
every kind signed by a key that is neither a member, a role holder nor an org, and a stranger's
transaction that reaches a block anyway leaves no nonce record (nor anything else) behind.
"""

from __future__ import annotations

import pytest
from contract_helpers import (
    CHAIN_ID,
    GENESIS_MS,
    HOSPITAL,
    ORGS,
    REGISTRAR,
    REVIEWER,
    TREASURER,
    Chain,
    key,
    members_named,
    mid,
    sample_bodies,
)

from contracts import layout
from contracts.genesis import DAY_MS
from contracts.kinds import KINDS, validate_body
from contracts.state import RESERVED_PREFIX
from ledger.types import Transaction

STRANGER = key("stranger")
CLAIMANT, OTHER = key("claimant"), key("other")
REFUSALS = {"unauthorized", "not_member"}


def claim_chain() -> Chain:
    """Two members; the claimant's claim 1 is open (submitted, not reviewed)."""
    chain = Chain()
    chain.enroll_many([CLAIMANT, OTHER], deposit_fen=10_000)
    receipt = chain.run(CLAIMANT, "claim.submit", dict(sample_bodies(CLAIMANT)["claim.submit"],
                                                      diagnosis_ms=chain.time_ms))
    assert receipt.ok and receipt.result["claim_id"] == 1, receipt
    return chain


def test_every_kind_has_a_body_a_handler_and_a_signer_rule() -> None:
    assert set(sample_bodies(CLAIMANT)) == set(KINDS)
    for name, kind in KINDS.items():
        assert validate_body(name, sample_bodies(CLAIMANT)[name]) == sample_bodies(CLAIMANT)[name]
        assert kind.signer and callable(kind.authorise) and callable(kind.handler)


@pytest.mark.parametrize("kind", sorted(sample_bodies(CLAIMANT)))
def test_a_strangers_transaction_of_any_kind_is_refused_at_admission(kind: str) -> None:
    chain = claim_chain()
    result = chain.app.check_tx(Transaction.create(STRANGER, CHAIN_ID, 0, kind, sample_bodies(CLAIMANT)[kind]))
    assert not result.ok and result.code in REFUSALS, (kind, result)


@pytest.mark.parametrize("kind", sorted(sample_bodies(CLAIMANT)))
def test_a_strangers_transaction_in_a_block_leaves_no_nonce_record(kind: str) -> None:
    chain = claim_chain()
    before = dict(chain.reader.data)
    receipt = chain.block([Transaction.create(STRANGER, CHAIN_ID, 0, kind, sample_bodies(CLAIMANT)[kind])])[0]
    assert receipt.code in REFUSALS, (kind, receipt)
    assert layout.nonce_key(STRANGER.public_key) not in chain.reader.data
    changed = {k for k, v in chain.reader.data.items() if before.get(k) != v}
    changed |= set(before) - set(chain.reader.data)
    # Only the block clock and the state tree's own nodes move; no plan record does.
    assert all(k == layout.CLOCK_KEY or k.startswith(RESERVED_PREFIX) for k in changed), \
        sorted(changed)


def test_a_known_signer_refused_in_a_block_spends_its_nonce() -> None:
    chain = claim_chain()
    nonce = chain.nonce(OTHER)
    receipt = chain.block([chain.tx(OTHER, "member.enroll", sample_bodies(CLAIMANT)["member.enroll"])])[0]
    assert receipt.code == "unauthorized"
    assert chain.nonce(OTHER) == nonce + 1  # the rejected transaction cannot replay


def test_only_the_claimant_a_reviewer_or_a_hospital_may_anchor_evidence() -> None:
    chain = claim_chain()
    anchor = sample_bodies(CLAIMANT)["evidence.anchor"]

    def check(pair, body=anchor):
        return chain.app.check_tx(chain.tx(pair, "evidence.anchor", body))

    assert check(CLAIMANT).ok and check(REVIEWER).ok and check(HOSPITAL).ok
    assert check(OTHER).code == "unauthorized"
    assert check(REGISTRAR).code == "unauthorized"
    assert check(CLAIMANT, dict(anchor, claim_id=2)).code == "unknown_claim"


def test_only_the_claimant_may_appeal() -> None:
    chain = claim_chain()
    appeal = chain.tx(OTHER, "claim.appeal", {"claim_id": 1})
    assert chain.app.check_tx(appeal).code == "unauthorized"
    assert chain.app.check_tx(chain.tx(CLAIMANT, "claim.appeal", {"claim_id": 9})).code \
        == "unknown_claim"
    assert chain.app.check_tx(chain.tx(CLAIMANT, "claim.appeal", {"claim_id": 1})).ok


def test_role_and_org_kinds_need_the_role_or_an_org() -> None:
    chain = claim_chain()
    cases = {"member.enroll": REGISTRAR, "member.qualify_juror": REGISTRAR,
             "member.deposit": TREASURER, "claim.review": REVIEWER,
             "gov.propose": ORGS[0], "gov.approve": ORGS[1]}
    for kind, holder in cases.items():
        assert chain.app.check_tx(chain.tx(holder, kind, sample_bodies(CLAIMANT)[kind])).ok, kind
        refused = chain.app.check_tx(chain.tx(CLAIMANT, kind, sample_bodies(CLAIMANT)[kind]))
        assert refused.code == "unauthorized", (kind, refused)


def test_member_kinds_need_an_active_member() -> None:
    chain = claim_chain()
    assert chain.run(OTHER, "member.exit", {}).ok
    for kind in ("member.exit", "claim.submit", "claim.object"):
        result = chain.app.check_tx(chain.tx(OTHER, kind, sample_bodies(CLAIMANT)[kind]))
        assert result.code == "member_not_active", (kind, result)


def test_jury_votes_need_a_seat_on_the_sitting_jury() -> None:
    chain = claim_chain()
    jurors = members_named("juror", 7)
    chain.enroll_many(jurors, deposit_fen=10_000)
    assert all(r.ok for r in chain.block([chain.tx(REGISTRAR, "member.qualify_juror",
                                                   {"member_id": mid(p)}) for p in jurors]))
    commit = sample_bodies(CLAIMANT)["jury.commit"]
    assert chain.app.check_tx(chain.tx(jurors[0], "jury.commit", commit)).code == "no_jury"
    chain.advance_to(GENESIS_MS + 40 * DAY_MS)
    assert chain.run(REVIEWER, "claim.review", {"claim_id": 1, "decision": "reject",
                                                "reason": "other"}).ok
    assert chain.run(CLAIMANT, "claim.appeal", {"claim_id": 1}).ok
    seated = set(chain.q("jury/1")["jurors"])
    drawn = [pair for pair in jurors if mid(pair).hex() in seated]
    outsiders = [pair for pair in jurors if mid(pair).hex() not in seated]
    assert drawn and outsiders
    assert chain.app.check_tx(chain.tx(drawn[0], "jury.commit", commit)).ok
    assert chain.app.check_tx(chain.tx(outsiders[0], "jury.commit", commit)).code == "not_juror"
    assert chain.app.check_tx(chain.tx(CLAIMANT, "jury.reveal",
                                       sample_bodies(CLAIMANT)["jury.reveal"])).code == "not_juror"


def govern(chain: Chain, action: dict) -> None:
    """Propose with org0 and approve with org1 and org2: more than 2/3 of four orgs."""
    receipt = chain.run(ORGS[0], "gov.propose", action)
    assert receipt.ok, receipt
    proposal = {"proposal_id": receipt.result["proposal_id"]}
    for org in (1, 2):
        assert chain.run(ORGS[org], "gov.approve", proposal).ok
    assert chain.q(f"proposal/{proposal['proposal_id']}")["status"] == "applied"


def test_a_signer_authorised_at_admission_but_not_at_execution_gets_no_nonce_record() -> None:
    chain = claim_chain()
    deputy = key("deputy registrar")
    grant = {"action": "grant_role", "role": "registrar", "public_key": deputy.public_key}
    govern(chain, grant)
    enroll = Transaction.create(deputy, CHAIN_ID, 0, "member.enroll",
                                sample_bodies(CLAIMANT)["member.enroll"])
    assert chain.app.check_tx(enroll).ok
    govern(chain, dict(grant, action="revoke_role"))
    receipt = chain.block([enroll])[0]
    assert receipt.code == "unauthorized"
    assert layout.nonce_key(deputy.public_key) not in chain.reader.data
