"""A hypothesis state machine drives random plan histories: enrollments, deposits, exits, juror
qualification, claims, reviews, objections, appeals, jury votes, junk transactions, restarts
and time jumps. After every step it checks, from an independent model where it can:

- money is conserved: shares charged + carry = payouts + fees; every member's deposits add up
  to the treasurer's deposits plus arrears recovered from payouts; payouts = net paid + arrears;
- no member pays twice for a period: what each member owes equals the sum of the shares of
  exactly the settlements at whose boundary they were a member (enrolled before, not yet left);
- nobody outside the rules is paid: every approved or paid claim was active at diagnosis, past
  the waiting period (or an accident), covered, within the request and the member's tier cover
  computed from their age at enrollment, and approved by a reviewer or a jury; one paid claim
  per member at most;
- a second PlanApp executing the same blocks over its own store reaches the same state root
  after every block, and the store contents are identical.
"""

from __future__ import annotations

from contract_helpers import (
    CHAIN_ID,
    ORGS,
    REGISTRAR,
    REVIEWER,
    TREASURER,
    Chain,
    DictReader,
    key,
    mid,
    plan_genesis,
)
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from contracts import PlanApp
from contracts.genesis import DAY_MS, HOUR_MS, YEAR_MS
from contracts.jury import vote_commitment
from ledger.hashing import sha256

TIME_SCALE = 10  # waiting 9 days, notice 7.2 h, period ~1.5 days, grace 12 h
OVERRIDES = {"jury_size": 3, "jury_quorum": 2, "share_cap_fen": 5_000,
             "max_transitions_per_block": 1_000}
CONDITIONS = ("CI001", "CI017", "CI100", "ACCIDENT", "CI555")
PICK = st.integers(0, 2**16)
MODES = st.sampled_from(["within", "within", "over_cover", "over_request"])


class PlanMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.chain = Chain(plan_genesis(OVERRIDES, time_scale=TIME_SCALE))
        self.params = self.chain.q("params")
        self.replica_reader = DictReader()
        self.replica = PlanApp(self.chain.genesis_app, CHAIN_ID, self.replica_reader)
        assert self.replica.commit() == self.chain.root
        self.replica_reader.apply(self.replica.take_writes())
        self.members: list = []  # KeyPairs ever enrolled, in order
        self.enrolled: dict[bytes, tuple[int, int]] = {}  # member id -> (enrolled_ms, birth_ms)
        self.settlements: list[dict] = []
        self.payments = 0

    # --- driving ----------------------------------------------------------------------------

    def step(self, txs: list, advance_ms: int = 60_000) -> list:
        receipts = self.chain.block(txs, advance_ms=advance_ms)
        header, block_txs = self.chain.blocks[-1]
        self.replica.execute_block(header, block_txs)
        assert self.replica.commit() == self.chain.root, "replicas diverged"
        self.replica_reader.apply(self.replica.take_writes())
        return receipts

    def pick_member(self, index: int):
        return self.members[index % len(self.members)] if self.members else None

    def member(self, pair) -> dict:
        return self.chain.member(pair)

    def claims(self) -> list[dict]:
        count = self.chain.totals()["claims_total"]
        return [self.chain.q(f"claim/{claim_id}") for claim_id in range(1, count + 1)]

    # --- rules ------------------------------------------------------------------------------

    @initialize(ages=st.lists(st.integers(20, 59), min_size=4, max_size=10),
                deposits=st.lists(st.integers(0, 50_000), min_size=10, max_size=10))
    def start(self, ages: list[int], deposits: list[int]) -> None:
        """A plan with a few members, some paying, half of them jurors, a few days old."""
        for age in ages:
            self.enroll(age, 100)
        paying = [(pair, amount) for pair, amount in zip(self.members, deposits) if amount]
        for pair, amount in paying:
            self.deposit(self.members.index(pair), amount)
        for index in range(0, len(self.members), 2):
            self.qualify(index)
        self.wait_days(10)  # past the (scaled) waiting period

    @rule(age=st.integers(0, 61), days=st.integers(0, 364))
    def enroll(self, age: int, days: int) -> None:
        pair = key(f"member-{len(self.members)}")
        birth = self.chain.time_ms + 60_000 - age * YEAR_MS - days * DAY_MS
        receipts = self.step([self.chain.tx(REGISTRAR, "member.enroll", {
            "public_key": pair.public_key, "identity": sha256(pair.public_key),
            "birth_ms": birth})])
        if receipts[0].ok:
            self.members.append(pair)
            self.enrolled[mid(pair)] = (self.chain.time_ms, birth)
        else:
            assert receipts[0].code in ("too_young", "too_old")

    @precondition(lambda self: self.members)
    @rule(index=PICK, amount=st.integers(1, 20_000))
    def deposit(self, index: int, amount: int) -> None:
        pair = self.pick_member(index)
        self.payments += 1
        self.step([self.chain.tx(TREASURER, "member.deposit", {
            "member_id": mid(pair), "amount_fen": amount,
            "reference": f"payment-{self.payments}"})])

    @precondition(lambda self: self.members)
    @rule(index=PICK)
    def exit(self, index: int) -> None:
        self.step([self.chain.tx(self.pick_member(index), "member.exit", {})])

    @precondition(lambda self: self.members)
    @rule(index=PICK)
    def qualify(self, index: int) -> None:
        self.step([self.chain.tx(REGISTRAR, "member.qualify_juror",
                                 {"member_id": mid(self.pick_member(index))})])

    @precondition(lambda self: self.members)
    @rule(index=PICK, condition=st.sampled_from(CONDITIONS),
          when=st.one_of(st.integers(92, 100), st.integers(92, 100), st.integers(-5, 100)),
          amount=st.sampled_from([1, 5_000, 90_000, 9_000_000, 12_000_000, 35_000_000]),
          decision=st.sampled_from(["approve", "reject", "later", "object", "appeal"]),
          share=st.integers(1, 100), mode=MODES, other=PICK,
          votes=st.lists(st.sampled_from(["pay", "reject", None]), min_size=3, max_size=3))
    def claim(self, index: int, condition: str, when: int, amount: int, decision: str,
              share: int, mode: str, other: int, votes: list) -> None:
        """A claim diagnosed ``when`` percent of the way from enrollment to now, reviewed at
        once (or left for ``review``), then perhaps objected to or appealed and judged."""
        # Mostly members who can claim (active, nothing open); now and then anyone.
        able = [p for p in self.members
                if (view := self.member(p))["status"] == "active" and view["open_claim"] is None]
        pair = able[index % len(able)] if able and index % 8 != 7 else self.pick_member(index)
        enrolled_ms, _ = self.enrolled[mid(pair)]
        now = self.chain.time_ms + 60_000
        receipt = self.step([self.chain.tx(pair, "claim.submit", {
            "condition": condition,
            "diagnosis_ms": enrolled_ms + (now - enrolled_ms) * when // 100,
            "amount_fen": amount, "evidence_root": sha256(b"docs")})])[0]
        if not receipt.ok or receipt.result["status"] != "submitted" or decision == "later":
            return
        claim_id = receipt.result["claim_id"]
        self.review(claim_id, decision in ("approve", "object"), share, mode)
        if decision == "object":
            self.object(claim_id, other)
            notice_end = self.chain.q(f"claim/{claim_id}")["notice_end_ms"]
            if notice_end is not None and notice_end > self.chain.time_ms:
                self.step([], advance_ms=notice_end - self.chain.time_ms)
        elif decision == "appeal":
            self.appeal(claim_id)
        else:
            return
        if self.chain.q(f"claim/{claim_id}")["status"] != "jury":
            return
        jury = self.chain.q(f"jury/{claim_id}")
        self.vote(claim_id, votes)  # commits
        self.step([], advance_ms=max(1, jury["commit_end_ms"] - self.chain.time_ms))
        self.vote(claim_id, votes)  # reveals

    @rule(pick=PICK, approve=st.booleans(), share=st.integers(1, 100), mode=MODES)
    def review(self, pick: int, approve: bool, share: int, mode: str = "within") -> None:
        open_claims = [c for c in self.claims() if c["status"] == "submitted"]
        if not open_claims:
            return
        claim = next((c for c in open_claims if c["claim_id"] == pick),
                     open_claims[pick % len(open_claims)])
        cover = self.chain.q(f"member/{claim['member_id']}")["tier_cap_fen"]
        # A share of the most that may be paid, or (mode) just over the cover or the request,
        # which the contract must refuse.
        amount = max(1, min(claim["requested_fen"], cover) * share // 100)
        if mode == "over_cover":
            amount = cover + share
        elif mode == "over_request":
            amount = claim["requested_fen"] + share
        body = ({"claim_id": claim["claim_id"], "decision": "approve",
                 "amount_fen": amount} if approve else
                {"claim_id": claim["claim_id"], "decision": "reject", "reason": "other"})
        self.step([self.chain.tx(REVIEWER, "claim.review", body)])

    def object(self, pick: int, index: int) -> None:
        noticed = [c for c in self.claims() if c["status"] == "notice"]
        if not noticed:
            return
        claim = next((c for c in noticed if c["claim_id"] == pick), noticed[pick % len(noticed)])
        self.step([self.chain.tx(self.pick_member(index), "claim.object", {
            "claim_id": claim["claim_id"], "reason": "other", "evidence_digest": sha256(b"o")})])

    def appeal(self, pick: int) -> None:
        rejected = [c for c in self.claims() if c["status"] == "rejected"]
        if not rejected:
            return
        claim = next((c for c in rejected if c["claim_id"] == pick),
                     rejected[pick % len(rejected)])
        claimant = next(p for p in self.members if mid(p).hex() == claim["member_id"])
        self.step([self.chain.tx(claimant, "claim.appeal", {"claim_id": claim["claim_id"]})])

    @rule(pick=PICK, votes=st.lists(st.sampled_from(["pay", "reject", None]), min_size=3,
                                    max_size=3))
    def vote(self, pick: int, votes: list) -> None:
        """Every drawn juror commits (or not) in one block; in the reveal window, reveals."""
        sitting = [c for c in self.claims() if c["status"] == "jury"]
        if not sitting:
            return
        claim_id = next((c for c in sitting if c["claim_id"] == pick),
                        sitting[pick % len(sitting)])["claim_id"]
        jury = self.chain.q(f"jury/{claim_id}")
        by_id = {mid(pair).hex(): pair for pair in self.members}
        txs = []
        for seat, vote in zip(jury["seats"], votes):
            juror = by_id[seat["member_id"]]
            salt = sha256(b"%d/%d/" % (claim_id, jury["round"]) + juror.public_key)
            if self.chain.time_ms + 60_000 < jury["commit_end_ms"]:
                if vote is not None:
                    txs.append(self.chain.tx(juror, "jury.commit", {
                        "claim_id": claim_id, "commitment": vote_commitment(vote, salt)}))
            elif seat["committed"] and vote is not None:
                # The vote is not known here: try both, exactly one matches the commitment.
                for choice in ("pay", "reject"):
                    txs.append(self.chain.tx(juror, "jury.reveal", {
                        "claim_id": claim_id, "vote": choice, "salt": salt}))
        self.step(txs)

    @rule(hours=st.integers(1, 48))
    def wait_hours(self, hours: int) -> None:
        self.step([], advance_ms=hours * HOUR_MS)

    @rule(days=st.integers(1, 6))
    def wait_days(self, days: int) -> None:
        self.step([], advance_ms=days * DAY_MS)

    @precondition(lambda self: self.members)
    @rule(index=PICK, kind=st.sampled_from(["stale", "unauthorized", "junk", "gov"]))
    def junk(self, index: int, kind: str) -> None:
        pair = self.pick_member(index)
        if kind == "stale":
            tx = self.chain.tx(pair, "member.exit", {}, nonce=self.chain.nonce(pair) + 3)
        elif kind == "unauthorized":
            tx = self.chain.tx(pair, "claim.review", {"claim_id": 1, "decision": "reject",
                                                      "reason": "other"})
        elif kind == "gov":
            tx = self.chain.tx(ORGS[index % len(ORGS)], "gov.propose", {
                "action": "set_param", "name": "fee_bps", "value": 600 + index % 300})
        else:
            tx = self.chain.tx(pair, "claim.submit", {"condition": 7})
        self.step([tx])

    @rule()
    def restart(self) -> None:
        root = self.chain.root
        self.chain.restart()
        assert self.chain.app.commit() == root

    # --- invariants -------------------------------------------------------------------------

    def _new_settlements(self) -> None:
        settled = self.chain.totals()["next_period"] - 1
        while len(self.settlements) < settled:
            self.settlements.append(self.chain.q(f"settlement/{len(self.settlements) + 1}"))

    @invariant()
    def money_is_conserved(self) -> None:
        totals = self.chain.totals()
        assert totals["shares_charged_fen"] + totals["carry_fen"] == (
            totals["payouts_fen"] + totals["fees_fen"])
        assert totals["conservation_holds"]
        assert totals["paid_net_fen"] + totals["arrears_recovered_fen"] == totals["payouts_fen"]
        views = [self.member(pair) for pair in self.members]
        assert sum(v["deposits_fen"] for v in views) == (
            totals["deposits_fen"] + totals["arrears_recovered_fen"])
        assert sum(v["owed_fen"] for v in views) == totals["shares_charged_fen"]
        assert totals["active_members"] == sum(v["status"] == "active" for v in views)

    @invariant()
    def nobody_pays_twice_for_a_period(self) -> None:
        self._new_settlements()
        for pair in self.members:
            view = self.member(pair)
            end = view["end_ms"]
            expected = sum(s["share_fen"] for s in self.settlements
                           if view["enrolled_ms"] < s["boundary_ms"]
                           and (end is None or s["boundary_ms"] <= end))
            assert view["owed_fen"] == expected, (view, expected)

    @invariant()
    def only_rule_abiding_claims_are_paid(self) -> None:
        waiting_ms = self.params["waiting_ms"]
        paid_members = []
        paid_total = 0
        for claim in self.claims():
            member_id = bytes.fromhex(claim["member_id"])
            enrolled_ms, birth_ms = self.enrolled[member_id]
            age_at_enrollment = (enrolled_ms - birth_ms) // YEAR_MS
            cover = 30_000_000 if age_at_enrollment <= 39 else 10_000_000
            # Whatever its state, an approved amount is within the request and the cover.
            assert claim["approved_fen"] <= min(claim["requested_fen"], cover)
            if claim["status"] not in ("approved", "paid"):
                continue
            assert claim["condition"] in CONDITIONS[:4]
            assert claim["diagnosis_ms"] >= enrolled_ms
            if claim["condition"] != "ACCIDENT":
                assert claim["diagnosis_ms"] >= enrolled_ms + waiting_ms
            assert (claim["diagnosis_ms"] - birth_ms) // YEAR_MS < 60
            assert 0 < claim["approved_fen"] <= min(claim["requested_fen"], cover)
            by_review = claim["review"]["decision"] == "approve"
            assert by_review or claim["outcome"] == "approved_by_jury"
            if claim["status"] == "paid":
                paid_members.append(member_id)
                paid_total += claim["approved_fen"]
        assert len(paid_members) == len(set(paid_members))
        assert paid_total == self.chain.totals()["payouts_fen"]

    @invariant()
    def replicas_store_the_same_state(self) -> None:
        assert self.replica_reader.data == self.chain.reader.data


PlanMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=60,
                                         deadline=None)
TestPlanMachine = PlanMachine.TestCase
