"""The plan's rules end to end through PlanApp: enrollment, waiting period, tiers, ages,
settlement with carry and cap, arrears and grace, exits, payouts less arrears, bounded
per-block work, replay and restart."""

from __future__ import annotations

import pytest
from contract_helpers import (
    CHAIN_ID,
    GENESIS_MS,
    REGISTRAR,
    REVIEWER,
    TREASURER,
    Chain,
    DictReader,
    birth_for_age,
    key,
    members_named,
    mid,
    plan_genesis,
)

from client.identity import commitment as registrar_commitment
from client.identity import key_id_of as identity_key_id
from contracts import PlanApp
from contracts.genesis import DAY_MS, YEAR_MS
from contracts.members import birthday_ms
from ledger.hashing import sha256

PERIOD_MS = YEAR_MS // 24
ROOT = sha256(b"evidence")
AFTER_WAITING_MS = GENESIS_MS + 92 * DAY_MS  # everyone enrolled near genesis is past waiting


def boundary(period: int) -> int:
    return GENESIS_MS + period * PERIOD_MS


def submit(chain: Chain, pair, condition="CI001", days_ago=1, amount=30_000_000):
    return chain.run(pair, "claim.submit", {"condition": condition,
                                            "diagnosis_ms": chain.time_ms - days_ago * DAY_MS,
                                            "amount_fen": amount, "evidence_root": ROOT})


def approve(chain: Chain, claim_id: int, amount: int):
    return chain.run(REVIEWER, "claim.review", {"claim_id": claim_id, "decision": "approve",
                                                "amount_fen": amount})


def test_enrollment_ages_and_tiers() -> None:
    chain = Chain()
    now = chain.time_ms + 1_000
    cases = [
        (key("baby"), now - 29 * DAY_MS, "too_young"),
        (key("infant"), now - 31 * DAY_MS, "ok"),
        (key("young"), birth_for_age(now, 39, 300), "ok"),
        (key("forty"), birth_for_age(now, 40, 1), "ok"),
        (key("old"), birth_for_age(now, 59, 360), "ok"),
        (key("sixty"), birth_for_age(now, 60, 1), "too_old"),
        (key("unborn"), now + DAY_MS, "too_young"),
    ]
    receipts = chain.block([chain.tx(REGISTRAR, "member.enroll", {
        "public_key": pair.public_key, "identity": sha256(pair.public_key), "birth_ms": birth})
        for pair, birth, _ in cases])
    assert [r.code for r in receipts] == [code for _, _, code in cases]
    assert chain.member(key("young"))["tier_cap_fen"] == 30_000_000
    assert chain.member(key("forty"))["tier_cap_fen"] == 10_000_000
    assert chain.member(key("infant"))["tier_cap_fen"] == 30_000_000
    assert chain.totals()["active_members"] == 4


def test_one_active_membership_per_identity() -> None:
    chain = Chain()
    alice, alice_again = key("alice"), key("alice-new-phone")
    # The registrar's keyed commitment (client.identity): the same for the same person.
    secret = sha256(b"registrar secret")
    identity = registrar_commitment(secret, "110101199001011234")
    assert identity == registrar_commitment(secret, " 110101199001011234 ")
    assert chain.enroll(alice, identity=identity).ok
    assert chain.enroll(alice_again, identity=identity).code == "identity_enrolled"
    assert chain.enroll(alice).code == "already_member"
    assert chain.run(alice, "member.exit", {}).ok
    # After leaving, the same person may join again with a new key.
    assert chain.enroll(alice_again, identity=identity).ok
    assert chain.enroll(alice, identity=sha256(b"other")).code == "already_member"


def test_enrollment_records_which_registrar_secret_made_the_commitment() -> None:
    chain = Chain()
    secret = sha256(b"registrar secret")
    person, twin = key("person"), key("person-again")
    body = {"public_key": person.public_key,
            "identity": registrar_commitment(secret, "11010119900101123X"),
            "identity_key_id": identity_key_id(secret),
            "birth_ms": birth_for_age(chain.time_ms, 30)}
    assert chain.run(REGISTRAR, "member.enroll", body).ok
    assert chain.member(person)["identity_key_id"] == identity_key_id(secret)
    twice = chain.run(REGISTRAR, "member.enroll", dict(body, public_key=twin.public_key,
                                                       identity=registrar_commitment(
                                                           secret, "11010119900101123x")))
    assert twice.code == "identity_enrolled"
    assert chain.run(REGISTRAR, "member.enroll", dict(
        body, public_key=twin.public_key, identity_key_id="")).code == "bad_body"


def test_members_leave_at_sixty() -> None:
    chain = Chain()
    old = key("old")
    birth = birth_for_age(chain.time_ms + 1_000, 59, 360)
    assert chain.run(REGISTRAR, "member.enroll", {"public_key": old.public_key,
                                                  "identity": sha256(b"o"),
                                                  "birth_ms": birth}).ok
    sixty = birthday_ms(birth, 60)  # midnight (UTC) of the 60th calendar birthday
    chain.advance_to(sixty - 1)
    assert chain.member(old)["status"] == "active"
    chain.advance_to(sixty)
    member = chain.member(old)
    assert member["status"] == "aged_out" and member["end_ms"] == sixty
    assert chain.totals()["active_members"] == 0


def test_waiting_period_illness_ends_membership_accident_does_not() -> None:
    chain = Chain()
    ill, hurt, other = key("ill"), key("hurt"), key("other")
    chain.enroll_many([ill, hurt, other], deposit_fen=10_000)
    chain.advance_to(chain.time_ms + 10 * DAY_MS)
    receipt = submit(chain, ill)
    assert receipt.ok and receipt.result["status"] == "closed"
    claim = chain.q("claim/1")
    assert claim["status"] == "closed" and claim["outcome"] == "waiting_period"
    member = chain.member(ill)
    assert member["status"] == "waiting_period_claim"
    assert chain.totals()["active_members"] == 2
    owed = member["owed_fen"]
    # An accident has no waiting period.
    receipt = submit(chain, hurt, condition="ACCIDENT")
    assert receipt.ok and receipt.result["status"] == "submitted"
    assert approve(chain, 2, 1_000_000).ok
    chain.advance_to(boundary(2))
    # No further shares for the member whose membership ended.
    assert chain.member(ill)["owed_fen"] == owed
    assert chain.member(other)["owed_fen"] > 0


def test_settlement_shares_cap_and_carry_with_three_hundred_members() -> None:
    chain = Chain()
    pairs = members_named("m", 300)
    chain.enroll_many(pairs, age_years=30, deposit_fen=5_000)
    old = members_named("older", 2)
    chain.enroll_many(old, age_years=45, deposit_fen=5_000)
    chain.advance_to(AFTER_WAITING_MS)
    assert submit(chain, pairs[0], amount=30_000_000).ok
    assert submit(chain, old[0], amount=20_000_000).ok
    assert approve(chain, 2, 20_000_000).code == "over_tier"  # 45 at enrollment: RMB 100,000
    assert approve(chain, 1, 30_000_000).ok
    assert approve(chain, 2, 10_000_000).ok
    period = chain.totals()["next_period"]
    chain.advance_to(chain.time_ms + 3 * DAY_MS + 1)  # notices end
    assert chain.q("claim/1")["status"] == "approved"
    assert chain.totals()["pending_payouts_fen"] == 40_000_000
    chain.advance_to(boundary(period))
    settlement = chain.q(f"settlement/{period}")
    # 302 members; total 43,200,000 fen; floor(total / 302) is far above the cap of 783.
    assert settlement["members"] == 302
    assert settlement["payouts_fen"] == 40_000_000 and settlement["fee_fen"] == 3_200_000
    assert settlement["total_fen"] == 43_200_000
    assert settlement["share_fen"] == 783
    assert settlement["carry_fen"] == 43_200_000 - 783 * 302
    totals = chain.totals()
    assert totals["conservation_holds"]
    assert totals["shares_charged_fen"] + totals["carry_fen"] == (
        totals["payouts_fen"] + totals["fees_fen"])
    # Claimants were paid and left; everyone else owes exactly one share.
    assert chain.q("claim/1")["status"] == "paid"
    assert chain.member(pairs[0])["status"] == "claimed"
    assert totals["active_members"] == 300
    assert chain.q(f"balance/{mid(pairs[5]).hex()}")["balance_fen"] == 5_000 - 783
    # Next period: no new claims, the carry is shared by the 300 who remain.
    chain.advance_to(boundary(period + 1))
    following = chain.q(f"settlement/{period + 1}")
    assert following["carry_in_fen"] == settlement["carry_fen"]
    assert following["members"] == 300 and following["share_fen"] == 783
    assert chain.q(f"balance/{mid(pairs[5]).hex()}")["owed_fen"] == 2 * 783
    assert chain.totals()["conservation_holds"]


def test_settlement_floors_and_carries_the_remainder() -> None:
    chain = Chain(plan_genesis({"share_cap_fen": 10**9}))
    pairs = members_named("m", 7)
    chain.enroll_many(pairs, deposit_fen=10**7)
    chain.advance_to(AFTER_WAITING_MS)
    assert submit(chain, pairs[0], amount=1_000_001).ok
    assert approve(chain, 1, 1_000_001).ok
    period = chain.totals()["next_period"]
    chain.advance_to(boundary(period))
    settlement = chain.q(f"settlement/{period}")
    assert settlement["fee_fen"] == 80_000  # floor(1,000,001 x 0.08)
    assert settlement["total_fen"] == 1_080_001
    assert settlement["share_fen"] == 1_080_001 // 7
    assert settlement["carry_fen"] == 1_080_001 % 7


def test_exit_still_owes_published_shares_and_may_pay_them() -> None:
    chain = Chain()
    pairs = members_named("m", 3)
    chain.enroll_many(pairs)
    chain.advance_to(AFTER_WAITING_MS)
    submit(chain, pairs[0], amount=100_000)
    approve(chain, 1, 100_000)
    period = chain.totals()["next_period"]
    chain.advance_to(boundary(period))
    share = chain.q(f"settlement/{period}")["share_fen"]
    assert share > 0
    leaver = pairs[1]
    receipt = chain.run(leaver, "member.exit", {})
    assert receipt.ok and receipt.result["owed_fen"] == share
    assert chain.member(leaver)["balance_fen"] == -share
    chain.advance_to(boundary(period + 1))
    assert chain.member(leaver)["owed_fen"] == share  # nothing after leaving
    assert chain.run(leaver, "member.exit", {}).code == "member_not_active"
    over = chain.run(TREASURER, "member.deposit", {"member_id": mid(leaver),
                                                    "amount_fen": share + 1, "reference": "x"})
    assert over.code == "member_not_active"
    paid = chain.run(TREASURER, "member.deposit", {"member_id": mid(leaver),
                                                    "amount_fen": share, "reference": "y"})
    assert paid.ok and chain.member(leaver)["balance_fen"] == 0


def test_arrears_grace_period_removal_and_cure() -> None:
    chain = Chain()
    payer, late, never = key("payer"), key("late"), key("never")
    chain.enroll_many([payer, late, never])
    chain.deposit_many([payer], 100_000)
    chain.advance_to(AFTER_WAITING_MS)
    submit(chain, payer, amount=50_000)
    approve(chain, 1, 50_000)
    period = chain.totals()["next_period"]
    chain.advance_to(boundary(period))
    for pair in (late, never):
        member = chain.member(pair)
        assert member["arrears_fen"] > 0
        assert member["arrears_since_ms"] == boundary(period)
        assert member["grace_due_ms"] == boundary(period) + 5 * DAY_MS
    # Paying the arrears inside the grace period cures them.
    owed = chain.member(late)["arrears_fen"]
    assert chain.run(TREASURER, "member.deposit", {"member_id": mid(late), "amount_fen": owed,
                                                   "reference": "late-1"}).ok
    assert chain.member(late)["arrears_since_ms"] is None
    chain.advance_to(boundary(period) + 5 * DAY_MS - 1)
    assert chain.member(never)["status"] == "active"
    chain.advance_to(boundary(period) + 5 * DAY_MS)
    assert chain.member(never)["status"] == "removed_arrears"
    assert chain.member(late)["status"] == "active"
    totals = chain.totals()
    assert totals["removed_arrears"] == 1 and totals["active_members"] == 1  # payer claimed


@pytest.mark.parametrize("grace_days", [5, 20])
def test_unpaid_shares_are_deducted_from_a_payout(grace_days: int) -> None:
    chain = Chain(plan_genesis({"grace_ms": grace_days * DAY_MS}))
    pairs = members_named("m", 4)
    chain.enroll_many(pairs)
    chain.deposit_many(pairs[1:], 100_000)
    chain.advance_to(AFTER_WAITING_MS)
    submit(chain, pairs[1], amount=1_000_000)
    approve(chain, 1, 1_000_000)
    chain.advance_to(chain.time_ms + 3 * DAY_MS)
    first_period = chain.totals()["next_period"]
    chain.advance_to(boundary(first_period))
    first_share = chain.q(f"settlement/{first_period}")["share_fen"]
    debtor = pairs[0]  # never paid anything
    assert chain.member(debtor)["arrears_fen"] == first_share > 0
    assert submit(chain, debtor, amount=500_000).ok
    assert approve(chain, 2, 500_000).ok
    period = chain.totals()["next_period"]
    chain.advance_to(boundary(period))
    share = chain.q(f"settlement/{period}")["share_fen"]
    claim = chain.q("claim/2")
    member = chain.member(debtor)
    assert claim["status"] == "paid"
    if grace_days == 5:
        # Removed for arrears before the next boundary: still paid, less the unpaid share.
        assert member["status"] == "removed_arrears"
        assert claim["arrears_deducted_fen"] == first_share
    else:
        # Still a member at the boundary: shares it, is paid, then leaves.
        assert member["status"] == "claimed"
        assert claim["arrears_deducted_fen"] == first_share + share
    assert claim["paid_net_fen"] == 500_000 - claim["arrears_deducted_fen"]
    assert member["balance_fen"] == 0
    totals = chain.totals()
    assert totals["paid_net_fen"] + totals["arrears_recovered_fen"] == totals["payouts_fen"]


def test_transitions_are_bounded_per_block_and_carried_in_order() -> None:
    # A budget of 6 units; 20 members fall into arrears at one settlement.
    chain = Chain(plan_genesis({"max_transitions_per_block": 6}))
    pairs = members_named("m", 20)
    chain.enroll_many(pairs)
    payer = key("payer")
    chain.enroll_many([payer], deposit_fen=1_000_000)
    chain.advance_to(AFTER_WAITING_MS)
    submit(chain, payer, amount=100_000)
    approve(chain, 1, 100_000)
    chain.advance_to(chain.time_ms + 3 * DAY_MS)  # the notice ends
    period = chain.totals()["next_period"]
    # The boundary block runs the settlement (1) and the payment (1): 4 units left for arrears.
    chain.advance_to(boundary(period))
    flagged = sum(chain.member(pair)["arrears_since_ms"] is not None for pair in pairs)
    assert flagged == 4
    chain.block([])
    assert sum(chain.member(pair)["arrears_since_ms"] is not None for pair in pairs) == 10
    for _ in range(2):
        chain.block([])
    assert all(chain.member(pair)["arrears_since_ms"] == boundary(period) for pair in pairs)


def test_failed_transaction_leaves_only_its_nonce() -> None:
    chain = Chain()
    alice = key("alice")
    chain.enroll(alice)
    root_before = chain.root
    writes_keys = set(chain.reader.data)
    receipt = chain.run(alice, "claim.submit", {"condition": "CI999", "diagnosis_ms": chain.time_ms,
                                                 "amount_fen": 1, "evidence_root": ROOT})
    assert receipt.code == "not_covered"
    assert chain.nonce(alice) == 1
    changed = {k for k in chain.reader.data if not k.startswith(b"~")} - writes_keys
    assert changed == {b"n/" + alice.public_key}
    assert chain.root != root_before
    # A wrong nonce leaves nothing of the transaction, not even a nonce (only the block clock).
    before = dict(chain.reader.data)
    stale = chain.tx(alice, "member.exit", {}, nonce=0)
    assert chain.block([stale])[0].code == "bad_nonce"
    changed = {k for k in set(before) | set(chain.reader.data)
               if before.get(k) != chain.reader.data.get(k) and not k.startswith(b"~")}
    assert changed == {b"g/clock"}
    assert chain.nonce(alice) == 1 and chain.member(alice)["status"] == "active"


def test_replay_of_the_same_blocks_gives_the_same_roots_and_restart_too() -> None:
    chain = Chain()
    pairs = members_named("m", 12)
    chain.enroll_many(pairs, deposit_fen=2_000)
    chain.advance_to(AFTER_WAITING_MS)
    submit(chain, pairs[0], amount=100_000)
    approve(chain, 1, 100_000)
    chain.run(pairs[3], "member.exit", {})
    chain.advance_to(boundary(chain.totals()["next_period"]))
    replica = DictReader()
    app = PlanApp(chain.genesis_app, CHAIN_ID, replica)
    app.commit()
    replica.apply(app.take_writes())
    roots = []
    for index, (header, txs) in enumerate(chain.blocks):
        app.execute_block(header, txs)
        roots.append(app.commit())
        replica.apply(app.take_writes())
        if index == 3:  # restart the replica midway
            app = PlanApp(chain.genesis_app, CHAIN_ID, replica)
    assert roots[-1] == chain.root
    assert replica.data == chain.reader.data
    chain.restart()
    assert chain.app.commit() == chain.root
    value, proof = chain.app.query(f"member/{mid(pairs[1]).hex()}", prove=True)
    assert value["status"] == "active" and proof["root"] == chain.root.hex()


def test_settlement_and_balance_cost_do_not_grow_with_members() -> None:
    """Count state reads of the settlement block and of a balance query at two sizes."""

    class CountingReader(DictReader):
        reads = 0

        def get_state(self, key):
            if not key.startswith(b"~"):  # the tree's nodes are counted separately below
                CountingReader.reads += 1
            return super().get_state(key)

        def iterate_state(self, start, stop):
            CountingReader.reads += 1
            return super().iterate_state(start, stop)

    costs = []
    for size in (10, 150):
        chain = Chain(reader=CountingReader())
        pairs = members_named("m", size)
        chain.enroll_many(pairs, deposit_fen=100_000)
        chain.advance_to(boundary(1) - 1)
        CountingReader.reads = 0
        chain.advance_to(boundary(1))
        settlement_reads = CountingReader.reads
        CountingReader.reads = 0
        chain.q(f"balance/{mid(pairs[0]).hex()}")
        costs.append((settlement_reads, CountingReader.reads))
        assert chain.q("settlement/1")["members"] == size
    # Exactly the same plan records are read whatever the membership; (the tree paths of the
    # few keys a settlement writes are about log2(state) deep, see the benchmark).
    assert costs[0] == costs[1]
    assert costs[0][0] < 20
