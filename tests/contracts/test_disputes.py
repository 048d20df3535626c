"""Public notice, objections, appeals and the jury: draw, commit-reveal, quorum, redraw."""

from __future__ import annotations

from contract_helpers import (
    GENESIS_MS,
    REGISTRAR,
    REVIEWER,
    Chain,
    key,
    members_named,
    mid,
    plan_genesis,
)

from contracts.genesis import DAY_MS
from contracts.jury import vote_commitment
from ledger.hashing import sha256

AFTER_WAITING_MS = GENESIS_MS + 92 * DAY_MS
EVIDENCE = sha256(b"objection evidence")


class Dispute:
    """A plan with a claimant, eight qualified jurors and two other members."""

    def __init__(self, overrides: dict | None = None) -> None:
        self.chain = Chain(plan_genesis(overrides))
        self.claimant, self.objector, self.bystander = key("claimant"), key("objector"), key("by")
        self.jurors = members_named("juror", 8)
        everyone = [self.claimant, self.objector, self.bystander, *self.jurors]
        self.chain.enroll_many(everyone, deposit_fen=100_000)
        # The objector is a qualified juror too: objectors must never sit on the jury.
        receipts = self.chain.block([
            self.chain.tx(REGISTRAR, "member.qualify_juror", {"member_id": mid(pair)})
            for pair in [*self.jurors, self.objector]])
        assert all(r.ok for r in receipts)
        self.by_id = {mid(pair).hex(): pair for pair in everyone}
        self.chain.advance_to(AFTER_WAITING_MS)

    def claim(self, amount: int = 2_000_000) -> int:
        chain = self.chain
        receipt = chain.run(self.claimant, "claim.submit", {
            "condition": "CI002", "diagnosis_ms": chain.time_ms - DAY_MS,
            "amount_fen": amount, "evidence_root": sha256(b"docs")})
        assert receipt.ok
        return receipt.result["claim_id"]

    def review(self, claim_id: int, approve: bool, amount: int = 2_000_000):
        body = ({"claim_id": claim_id, "decision": "approve", "amount_fen": amount} if approve
                else {"claim_id": claim_id, "decision": "reject", "reason": "pre_existing_condition"})
        receipt = self.chain.run(REVIEWER, "claim.review", body)
        assert receipt.ok
        return receipt

    def objected_claim(self) -> int:
        """A claim approved, objected to, and past its notice: in front of a jury."""
        claim_id = self.claim()
        self.review(claim_id, approve=True)
        assert self.chain.run(self.objector, "claim.object", {
            "claim_id": claim_id, "reason": "other", "evidence_digest": EVIDENCE}).ok
        self.chain.advance_to(self.chain.q(f"claim/{claim_id}")["notice_end_ms"])
        return claim_id

    def jury(self, claim_id: int) -> dict:
        return self.chain.q(f"jury/{claim_id}")

    def drawn(self, claim_id: int) -> list:
        return [self.by_id[member_id] for member_id in self.jury(claim_id)["jurors"]]

    def vote(self, claim_id: int, votes: list[str | None], committed_only: int = 0) -> None:
        """Drawn jurors commit ``votes`` in order (None: no commit) and reveal them, except the
        last ``committed_only`` voters, who commit but never reveal."""
        chain = self.chain
        jurors = self.drawn(claim_id)
        salts = {}
        txs = []
        for pair, vote in zip(jurors, votes):
            if vote is None:
                continue
            salts[pair.public_key] = sha256(b"salt" + pair.public_key)
            txs.append(chain.tx(pair, "jury.commit", {
                "claim_id": claim_id, "commitment": vote_commitment(vote, salts[pair.public_key])}))
        assert all(r.ok for r in chain.block(txs))
        jury = self.jury(claim_id)
        chain.advance_to(jury["commit_end_ms"])
        revealing = [(p, v) for p, v in zip(jurors, votes) if v is not None]
        if committed_only:
            revealing = revealing[:-committed_only]
        receipts = chain.block([chain.tx(pair, "jury.reveal", {
            "claim_id": claim_id, "vote": vote, "salt": salts[pair.public_key]})
            for pair, vote in revealing])
        assert all(r.ok for r in receipts), receipts
        chain.advance_to(jury["reveal_end_ms"])


def test_unopposed_approval_is_final_when_the_notice_ends() -> None:
    dispute = Dispute()
    claim_id = dispute.claim()
    dispute.review(claim_id, approve=True)
    notice_end = dispute.chain.q(f"claim/{claim_id}")["notice_end_ms"]
    dispute.chain.advance_to(notice_end - 1)
    assert dispute.chain.q(f"claim/{claim_id}")["status"] == "notice"
    dispute.chain.advance_to(notice_end)
    claim = dispute.chain.q(f"claim/{claim_id}")
    assert claim["status"] == "approved" and claim["final_ms"] == notice_end
    assert claim["jury"] is None


def test_objection_sends_the_claim_to_a_jury_that_pays() -> None:
    dispute = Dispute()
    chain = dispute.chain
    claim_id = dispute.claim()
    dispute.review(claim_id, approve=True)
    receipt = chain.run(dispute.objector, "claim.object", {
        "claim_id": claim_id, "reason": "pre_existing_condition", "evidence_digest": EVIDENCE})
    assert receipt.ok
    # A juror qualified just now is too junior to sit (30 days of seniority).
    junior = key("junior")
    chain.enroll_many([junior])
    assert chain.run(REGISTRAR, "member.qualify_juror", {"member_id": mid(junior)}).ok
    chain.advance_to(chain.q(f"claim/{claim_id}")["notice_end_ms"])
    claim = chain.q(f"claim/{claim_id}")
    assert claim["status"] == "jury"
    assert claim["objections"][0]["member_id"] == mid(dispute.objector).hex()
    jury = dispute.jury(claim_id)
    assert len(jury["jurors"]) == 5 and len(set(jury["jurors"])) == 5
    assert set(jury["jurors"]) <= {mid(pair).hex() for pair in dispute.jurors}
    # Three pay, one rejects, one commits and never reveals: 4 valid votes >= quorum 3.
    dispute.vote(claim_id, ["pay", "pay", "reject", "pay", "pay"], committed_only=1)
    claim = chain.q(f"claim/{claim_id}")
    assert claim["status"] == "approved" and claim["outcome"] == "approved_by_jury"
    rounds = dispute.jury(claim_id)["rounds"]
    assert rounds[0]["reveals"] == 4 and rounds[0]["pay_votes"] == 3
    assert rounds[0]["non_revealers"] == [jury["jurors"][4]]


def test_jury_majority_against_closes_the_claim() -> None:
    dispute = Dispute()
    chain = dispute.chain
    claim_id = dispute.objected_claim()
    dispute.vote(claim_id, ["reject", "reject", "pay", "reject", None])
    claim = chain.q(f"claim/{claim_id}")
    assert claim["status"] == "closed" and claim["outcome"] == "rejected_by_jury"
    # The claimant may claim again.
    assert chain.member(dispute.claimant)["open_claim"] is None


def test_tie_meets_the_fifty_percent_threshold() -> None:
    dispute = Dispute({"jury_size": 4, "jury_quorum": 4})
    chain = dispute.chain
    claim_id = dispute.objected_claim()
    dispute.vote(claim_id, ["pay", "reject", "pay", "reject"])
    assert chain.q(f"claim/{claim_id}")["status"] == "approved"


def test_missed_quorum_redraws_once_then_the_review_stands() -> None:
    dispute = Dispute()
    chain = dispute.chain
    claim_id = dispute.objected_claim()
    first = dispute.jury(claim_id)
    dispute.vote(claim_id, ["reject", "reject", None, None, None])  # 2 < quorum 3
    second = dispute.jury(claim_id)
    assert second["round"] == 2 and second["seed"] != first["seed"]
    assert second["rounds"][0]["outcome"] == "no_quorum"
    assert chain.q(f"claim/{claim_id}")["status"] == "jury"
    dispute.vote(claim_id, [None, None, None, None, None])
    claim = chain.q(f"claim/{claim_id}")
    # The reviewer approved, so the approval stands.
    assert claim["status"] == "approved" and claim["outcome"] == "approved_by_review"
    assert [r["outcome"] for r in dispute.jury(claim_id)["rounds"]] == ["no_quorum", "no_quorum"]


def test_appeal_goes_to_a_jury_that_can_overturn_a_rejection() -> None:
    dispute = Dispute()
    chain = dispute.chain
    claim_id = dispute.claim(amount=50_000_000)  # more than the RMB 300,000 cover
    dispute.review(claim_id, approve=False)
    assert chain.q(f"claim/{claim_id}")["status"] == "rejected"
    assert chain.run(dispute.bystander, "claim.appeal", {"claim_id": claim_id}).code == (
        "unauthorized")
    receipt = chain.run(dispute.claimant, "claim.appeal", {"claim_id": claim_id})
    assert receipt.ok and receipt.result["jurors"] == 5
    assert chain.run(dispute.claimant, "claim.appeal", {"claim_id": claim_id}).code == (
        "not_appealable")
    dispute.vote(claim_id, ["pay", "pay", "pay", "reject", "reject"])
    claim = chain.q(f"claim/{claim_id}")
    assert claim["status"] == "approved" and claim["approved_fen"] == 30_000_000


def test_rejection_without_appeal_closes_when_the_window_ends() -> None:
    dispute = Dispute()
    chain = dispute.chain
    claim_id = dispute.claim()
    dispute.review(claim_id, approve=False)
    appeal_end = chain.q(f"claim/{claim_id}")["appeal_end_ms"]
    chain.advance_to(appeal_end)
    claim = chain.q(f"claim/{claim_id}")
    assert claim["status"] == "closed" and claim["outcome"] == "rejected"
    assert chain.run(dispute.claimant, "claim.appeal", {"claim_id": claim_id}).code == (
        "not_appealable")


def test_appeal_with_missed_quorum_keeps_the_rejection() -> None:
    dispute = Dispute()
    chain = dispute.chain
    claim_id = dispute.claim()
    dispute.review(claim_id, approve=False)
    chain.run(dispute.claimant, "claim.appeal", {"claim_id": claim_id})
    dispute.vote(claim_id, [None] * 5)
    dispute.vote(claim_id, [None] * 5)
    claim = chain.q(f"claim/{claim_id}")
    assert claim["status"] == "closed" and claim["outcome"] == "rejected"


def test_draw_is_the_same_on_every_replica_and_depends_on_the_block() -> None:
    juries = []
    for _ in range(2):
        dispute = Dispute({"jury_size": 3, "jury_quorum": 2})
        claim_id = dispute.claim()
        dispute.review(claim_id, approve=False)
        dispute.chain.run(dispute.claimant, "claim.appeal", {"claim_id": claim_id})
        juries.append(dispute.jury(claim_id))
    assert juries[0]["jurors"] == juries[1]["jurors"]
    assert juries[0]["seed"] == juries[1]["seed"]
    # The same dispute opened one block later draws from another seed.
    dispute = Dispute({"jury_size": 3, "jury_quorum": 2})
    claim_id = dispute.claim()
    dispute.review(claim_id, approve=False)
    dispute.chain.block([])
    dispute.chain.run(dispute.claimant, "claim.appeal", {"claim_id": claim_id})
    assert dispute.jury(claim_id)["seed"] != juries[0]["seed"]


def test_a_rejected_condition_cannot_be_claimed_again_after_the_appeal_window() -> None:
    dispute = Dispute()
    chain = dispute.chain
    claim_id = dispute.claim()
    dispute.review(claim_id, approve=False)
    resubmit = {"condition": "CI002", "diagnosis_ms": chain.time_ms - 2 * DAY_MS,
                "amount_fen": 2_000_000, "evidence_root": sha256(b"docs again")}
    # Inside the appeal window the rejected claim is still open.
    assert chain.run(dispute.claimant, "claim.submit", resubmit).code == "claim_open"
    chain.advance_to(chain.q(f"claim/{claim_id}")["appeal_end_ms"])
    # After the window the rejection is final: a fresh claim for the same illness, even with
    # another diagnosis date, would be an appeal without the deadline.
    receipt = chain.run(dispute.claimant, "claim.submit", resubmit)
    assert receipt.code == "condition_rejected", receipt
    # Another condition is another claim.
    assert chain.run(dispute.claimant, "claim.submit",
                     dict(resubmit, condition="CI003")).ok


def test_a_condition_rejected_by_a_jury_cannot_be_claimed_again() -> None:
    dispute = Dispute()
    chain = dispute.chain
    claim_id = dispute.claim()
    dispute.review(claim_id, approve=False)
    assert chain.run(dispute.claimant, "claim.appeal", {"claim_id": claim_id}).ok
    dispute.vote(claim_id, ["reject"] * 5)
    assert chain.q(f"claim/{claim_id}")["outcome"] == "rejected_by_jury"
    accident = {"condition": "ACCIDENT", "diagnosis_ms": chain.time_ms - DAY_MS,
                "amount_fen": 1_000, "evidence_root": sha256(b"fall")}
    assert chain.run(dispute.claimant, "claim.submit", dict(accident, condition="CI002",
                                                            amount_fen=2_000_000)).code == (
        "condition_rejected")
    # Accidents are told apart by their date: a rejected accident blocks the same accident
    # (same date) only.
    accident_id = chain.run(dispute.claimant, "claim.submit", accident).result["claim_id"]
    dispute.review(accident_id, approve=False)
    chain.advance_to(chain.q(f"claim/{accident_id}")["appeal_end_ms"])
    assert chain.run(dispute.claimant, "claim.submit", accident).code == "condition_rejected"
    assert chain.run(dispute.claimant, "claim.submit",
                     dict(accident, diagnosis_ms=chain.time_ms)).ok


def test_a_juror_whose_membership_ends_after_the_draw_cannot_vote() -> None:
    dispute = Dispute()
    chain = dispute.chain
    claim_id = dispute.objected_claim()
    drawn = dispute.drawn(claim_id)
    salt = sha256(b"salt")
    commit = {"claim_id": claim_id, "commitment": vote_commitment("pay", salt)}
    assert chain.run(drawn[0], "jury.commit", commit).ok
    assert chain.run(drawn[0], "member.exit", {}).ok
    assert chain.run(drawn[1], "member.exit", {}).ok
    assert chain.run(drawn[1], "jury.commit", commit).code == "member_not_active"
    chain.advance_to(dispute.jury(claim_id)["commit_end_ms"])
    assert chain.run(drawn[0], "jury.reveal", {"claim_id": claim_id, "vote": "pay",
                                               "salt": salt}).code == "member_not_active"
    chain.advance_to(dispute.jury(claim_id)["reveal_end_ms"])
    # The sealed vote of the juror who left is recorded as not revealed.
    assert dispute.jury(claim_id)["rounds"][0]["non_revealers"] == [mid(drawn[0]).hex()]
