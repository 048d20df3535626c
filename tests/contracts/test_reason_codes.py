"""Every reason code in contracts.reasons.REASON_CODES is reached, each by a transaction built
to break exactly one rule (or by check_tx for the admission-only codes)."""

from __future__ import annotations

from contract_helpers import (
    CHAIN_ID,
    GENESIS_MS,
    ORGS,
    REGISTRAR,
    REVIEWER,
    TREASURER,
    Chain,
    birth_for_age,
    key,
    members_named,
    mid,
    plan_genesis,
)

from contracts.genesis import DAY_MS, YEAR_MS
from contracts.jury import vote_commitment
from contracts.reasons import REASON_CODES
from contracts.kinds import KINDS
from ledger.hashing import sha256
from ledger.types import Transaction

DIGEST = sha256(b"d")
PERIOD_MS = YEAR_MS // 24


class Probe:
    def __init__(self) -> None:
        self.chain = Chain(plan_genesis({"max_anchors_per_claim": 1,
                                         "max_objections_per_claim": 1}))
        self.reached: dict[str, str] = {}

    def expect(self, code: str, pair, kind: str, body: dict, note: str = "") -> None:
        receipt = self.chain.run(pair, kind, body)
        assert receipt.code == code, (code, note, receipt)
        self.reached.setdefault(code, note or kind)

    def expect_block(self, code: str, tx: Transaction) -> None:
        receipt = self.chain.block([tx])[0]
        assert receipt.code == code, (code, receipt)
        self.reached.setdefault(code, tx.kind)

    def expect_check(self, code: str, tx: Transaction) -> None:
        result = self.chain.app.check_tx(tx)
        assert not result.ok and result.code == code, (code, result)
        self.reached.setdefault(code, "check_tx")

    def govern(self, body: dict) -> int:
        receipt = self.chain.run(ORGS[0], "gov.propose", body)
        assert receipt.ok, receipt
        proposal_id = receipt.result["proposal_id"]
        for org in (1, 2):
            assert self.chain.run(ORGS[org], "gov.approve", {"proposal_id": proposal_id}).ok
        assert self.chain.q(f"proposal/{proposal_id}")["status"] == "applied"
        return proposal_id


def test_every_reason_code_is_reachable() -> None:
    probe = Probe()
    chain = probe.chain
    claimant, objector, other, spare, waiting, repeat = (
        key(name) for name in ("claimant", "objector", "other", "spare", "waiting", "repeat"))
    jurors = members_named("juror", 7)
    chain.enroll_many([claimant, objector, other, spare, waiting, repeat, *jurors],
                      deposit_fen=100_000)
    old = key("old")
    chain.enroll_many([old], age_years=55)
    assert all(r.ok for r in chain.block([chain.tx(REGISTRAR, "member.qualify_juror",
                                                   {"member_id": mid(p)}) for p in jurors]))

    # --- the transaction itself -------------------------------------------------------------
    nonce = chain.nonce(claimant)
    probe.expect_block("wrong_chain", Transaction.create(claimant, "other-chain", nonce,
                                                         "member.exit", {}))
    signed = chain.tx(claimant, "member.exit", {})
    probe.expect_block("bad_signature", Transaction(signed.chain_id, signed.sender, signed.nonce,
                                                    signed.kind, signed.body, bytes(64)))
    probe.expect_block("bad_nonce", chain.tx(claimant, "member.exit", {}, nonce=nonce + 5))
    probe.expect("unknown_kind", claimant, "member.teleport", {})
    probe.expect("bad_body", claimant, "member.exit", {"now": True})
    probe.expect("bad_body", REGISTRAR, "member.enroll", {"public_key": b"short",
                                                         "identity": DIGEST, "birth_ms": 0})
    probe.expect_check("nonce_too_low", Transaction.create(claimant, CHAIN_ID, 0,
                                                           "member.exit", {}))
    probe.expect_check("nonce_too_high", Transaction.create(claimant, CHAIN_ID, 10**6,
                                                            "member.exit", {}))
    probe.expect("unauthorized", other, "member.enroll", {
        "public_key": key("x").public_key, "identity": DIGEST, "birth_ms": 0})

    # --- enrollment, payments, jurors -------------------------------------------------------
    enroll = {"public_key": claimant.public_key, "identity": sha256(b"fresh"),
              "birth_ms": birth_for_age(chain.time_ms, 30)}
    probe.expect("already_member", REGISTRAR, "member.enroll", enroll)
    probe.expect("identity_enrolled", REGISTRAR, "member.enroll", dict(
        enroll, public_key=key("twin").public_key, identity=sha256(b"id" + claimant.public_key)))
    probe.expect("too_young", REGISTRAR, "member.enroll", dict(
        enroll, public_key=key("baby").public_key, birth_ms=chain.time_ms - DAY_MS))
    probe.expect("too_old", REGISTRAR, "member.enroll", dict(
        enroll, public_key=key("elder").public_key, birth_ms=birth_for_age(chain.time_ms, 61)))
    probe.expect("unknown_member", TREASURER, "member.deposit", {
        "member_id": mid(key("ghost")), "amount_fen": 1, "reference": "ghost"})
    probe.expect("not_member", key("ghost"), "member.exit", {})
    probe.expect("duplicate_payment", TREASURER, "member.deposit", {
        "member_id": mid(claimant), "amount_fen": 1, "reference": "pay-0"})
    probe.expect("already_juror", REGISTRAR, "member.qualify_juror", {"member_id": mid(jurors[0])})
    assert chain.run(spare, "member.exit", {}).ok
    probe.expect("member_not_active", spare, "member.exit", {})

    # --- claims and evidence ----------------------------------------------------------------
    chain.advance_to(GENESIS_MS + 92 * DAY_MS)
    claim = {"condition": "CI001", "diagnosis_ms": chain.time_ms - DAY_MS,
             "amount_fen": 50_000_000, "evidence_root": DIGEST}
    probe.expect("bad_diagnosis_date", claimant, "claim.submit",
                 dict(claim, diagnosis_ms=chain.time_ms + DAY_MS))
    probe.expect("not_active_at_diagnosis", claimant, "claim.submit",
                 dict(claim, diagnosis_ms=GENESIS_MS - DAY_MS))
    probe.expect("not_covered", claimant, "claim.submit", dict(claim, condition="CI999"))
    assert chain.run(claimant, "claim.submit", claim).ok  # claim 1
    probe.expect("claim_open", claimant, "claim.submit", claim)
    probe.expect("unknown_claim", REVIEWER, "claim.review", {"claim_id": 999,
                                                            "decision": "reject",
                                                            "reason": "other"})
    approve = {"claim_id": 1, "decision": "approve", "amount_fen": 60_000_000}
    probe.expect("over_requested", REVIEWER, "claim.review", approve)
    probe.expect("over_tier", REVIEWER, "claim.review", dict(approve, amount_fen=40_000_000))
    objection = {"claim_id": 1, "reason": "misrepresentation", "evidence_digest": DIGEST}
    probe.expect("not_in_notice", objector, "claim.object", objection)
    probe.expect("no_jury", jurors[0], "jury.commit", {"claim_id": 1, "commitment": DIGEST})
    assert chain.run(REVIEWER, "claim.review", dict(approve, amount_fen=1_000_000)).ok
    probe.expect("bad_claim_state", REVIEWER, "claim.review", dict(approve, amount_fen=1))
    probe.expect("own_claim", claimant, "claim.object", objection)
    assert chain.run(objector, "claim.object", objection).ok
    probe.expect("already_objected", objector, "claim.object", objection)
    probe.expect("too_many_objections", other, "claim.object", objection)
    probe.expect("not_appealable", claimant, "claim.appeal", {"claim_id": 1})
    anchor = {"claim_id": 1, "documents": [{"digest": DIGEST, "kind": "diagnosis"}]}
    assert chain.run(claimant, "evidence.anchor", anchor).ok
    probe.expect("too_many_anchors", claimant, "evidence.anchor", anchor)

    # --- jury -------------------------------------------------------------------------------
    chain.advance_to(chain.q("claim/1")["notice_end_ms"])
    jury = chain.q("jury/1")
    by_id = {mid(pair).hex(): pair for pair in jurors}
    drawn = [by_id[member_id] for member_id in jury["jurors"]]
    outsider = next(pair for pair in jurors if mid(pair).hex() not in jury["jurors"])
    salt = sha256(b"salt")
    commit = {"claim_id": 1, "commitment": vote_commitment("pay", salt)}
    probe.expect("not_juror", outsider, "jury.commit", commit)
    assert chain.run(drawn[0], "jury.commit", commit).ok
    probe.expect("already_committed", drawn[0], "jury.commit", commit)
    reveal = {"claim_id": 1, "vote": "pay", "salt": salt}
    probe.expect("not_reveal_phase", drawn[0], "jury.reveal", reveal)
    chain.advance_to(jury["commit_end_ms"])
    probe.expect("commit_closed", drawn[1], "jury.commit", commit)
    probe.expect("not_committed", drawn[1], "jury.reveal", reveal)
    probe.expect("reveal_mismatch", drawn[0], "jury.reveal", dict(reveal, vote="reject"))
    assert chain.run(drawn[0], "jury.reveal", reveal).ok
    probe.expect("already_revealed", drawn[0], "jury.reveal", reveal)

    # --- a closed claim ---------------------------------------------------------------------
    newcomer = key("newcomer")
    chain.enroll_many([newcomer])
    closed = chain.run(newcomer, "claim.submit", dict(claim, diagnosis_ms=chain.time_ms))
    assert closed.result["status"] == "closed"
    probe.expect("claim_closed", newcomer, "evidence.anchor",
                 dict(anchor, claim_id=closed.result["claim_id"]))

    # --- governance, and the rules a governance change can make bite --------------------------
    probe.expect("bad_param", ORGS[0], "gov.propose", {"action": "set_param",
                                                       "name": "fee_bps", "value": -1})
    role = {"action": "grant_role", "role": "registrar", "public_key": REGISTRAR.public_key}
    probe.expect("role_exists", ORGS[0], "gov.propose", role)
    probe.expect("unknown_role", ORGS[0], "gov.propose", dict(role, role="mayor"))
    probe.expect("role_missing", ORGS[0], "gov.propose",
                 dict(role, action="revoke_role", public_key=key("nobody").public_key))
    rotate = {"action": "set_org_key", "org": "org7", "public_key": key("k").public_key}
    probe.expect("unknown_org", ORGS[0], "gov.propose", rotate)
    probe.expect("duplicate_key", ORGS[0], "gov.propose",
                 dict(rotate, org="org0", public_key=ORGS[1].public_key))
    probe.expect("unknown_proposal", ORGS[1], "gov.approve", {"proposal_id": 77})
    opened = chain.run(ORGS[0], "gov.propose", {"action": "set_param", "name": "fee_bps",
                                                "value": 700})
    probe.expect("already_approved", ORGS[0], "gov.approve",
                 {"proposal_id": opened.result["proposal_id"]})

    waiting_claim = chain.run(waiting, "claim.submit", dict(
        claim, diagnosis_ms=GENESIS_MS + 91 * DAY_MS, amount_fen=100))
    assert waiting_claim.ok
    applied = probe.govern({"action": "set_param", "name": "waiting_ms", "value": 120 * DAY_MS})
    probe.expect("proposal_closed", ORGS[3], "gov.approve", {"proposal_id": applied})
    probe.expect("waiting_period", REVIEWER, "claim.review", {
        "claim_id": waiting_claim.result["claim_id"], "decision": "approve", "amount_fen": 100})
    probe.govern({"action": "set_param", "name": "max_enroll_age_years", "value": 49})
    probe.govern({"action": "set_param", "name": "leave_age_years", "value": 50})
    probe.expect("over_age", old, "claim.submit", dict(claim, condition="ACCIDENT",
                                                       diagnosis_ms=chain.time_ms))

    # --- a member who keeps claiming ----------------------------------------------------------
    accident = dict(claim, condition="ACCIDENT", amount_fen=100)
    for attempt in range(32):
        diagnosis_ms = chain.time_ms
        receipt = chain.run(repeat, "claim.submit", dict(accident, diagnosis_ms=diagnosis_ms))
        assert receipt.ok, receipt
        assert chain.run(REVIEWER, "claim.review", {"claim_id": receipt.result["claim_id"],
                                                    "decision": "reject", "reason": "other"}).ok
        chain.advance_to(chain.time_ms + 7 * DAY_MS)
        if attempt == 0:
            probe.expect("condition_rejected", repeat, "claim.submit",
                         dict(accident, diagnosis_ms=diagnosis_ms))
    probe.expect("too_many_claims", repeat, "claim.submit",
                 dict(accident, diagnosis_ms=chain.time_ms))

    # --- a block past many boundaries, more than its budget settles --------------------------
    stalled = Chain(plan_genesis({"max_transitions_per_block": 6}))
    late = stalled.block([stalled.tx(REGISTRAR, "member.enroll", dict(
        enroll, birth_ms=birth_for_age(GENESIS_MS, 30)))], at_ms=GENESIS_MS + 12 * PERIOD_MS)
    assert late[0].code == "settlement_pending", late
    probe.reached.setdefault("settlement_pending", "a block past an undecided boundary")

    assert set(probe.reached) == set(REASON_CODES), sorted(set(REASON_CODES) - set(probe.reached))
    assert chain.totals()["conservation_holds"]


def test_every_kind_has_a_handler_and_a_schema() -> None:
    assert len(KINDS) == 13
    assert all(kind.body and kind.handler and kind.authorise for kind in KINDS.values())
