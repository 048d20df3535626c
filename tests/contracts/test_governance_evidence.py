"""Governance by more than 2/3 of the orgs, and evidence anchoring with inclusion proofs from a
file all the way to a block, plus state proofs of query answers."""

from __future__ import annotations

from contract_helpers import (
    GENESIS_MS,
    HOSPITAL,
    ORGS,
    REGISTRAR,
    REVIEWER,
    Chain,
    key,
    mid,
)

from contracts.genesis import DAY_MS
from contracts.state import verify_proof
from ledger import merkle
from ledger.hashing import sha256
from ledger.types import tx_root


def propose(chain: Chain, org: int, body: dict):
    return chain.run(ORGS[org], "gov.propose", body)


def test_param_change_needs_more_than_two_thirds_of_orgs() -> None:
    chain = Chain()  # four orgs: three approvals are needed
    receipt = propose(chain, 0, {"action": "set_param", "name": "fee_bps", "value": 600})
    assert receipt.ok and receipt.result["status"] == "open"
    proposal_id = receipt.result["proposal_id"]
    assert chain.run(ORGS[0], "gov.approve", {"proposal_id": proposal_id}).code == (
        "already_approved")
    assert chain.run(ORGS[1], "gov.approve", {"proposal_id": proposal_id}).result == {
        "status": "open", "approvals": 2}
    assert chain.q("params")["fee_bps"] == 800
    assert chain.run(ORGS[2], "gov.approve", {"proposal_id": proposal_id}).result["status"] == (
        "applied")
    assert chain.q("params")["fee_bps"] == 600
    assert chain.run(ORGS[3], "gov.approve", {"proposal_id": proposal_id}).code == (
        "proposal_closed")
    assert chain.run(key("stranger"), "gov.approve", {"proposal_id": 1}).code == "unauthorized"
    assert chain.run(ORGS[3], "gov.approve", {"proposal_id": 99}).code == "unknown_proposal"


def test_invalid_parameter_sets_are_refused() -> None:
    chain = Chain()
    for body in ({"action": "set_param", "name": "fee_bps", "value": 20_000},
                 {"action": "set_param", "name": "jury_quorum", "value": 6},
                 {"action": "set_param", "name": "tiers", "value": []}):
        assert propose(chain, 0, body).code == "bad_param"


def test_role_grant_and_revoke_take_effect_on_approval() -> None:
    chain = Chain()
    new_registrar = key("registrar-2")
    grant = {"action": "grant_role", "role": "registrar", "public_key": new_registrar.public_key}
    proposal_id = propose(chain, 0, grant).result["proposal_id"]
    assert chain.enroll(key("m0")).ok
    body = {"public_key": key("m1").public_key, "identity": sha256(b"m1"),
            "birth_ms": GENESIS_MS - 30 * 365 * DAY_MS}
    assert chain.run(new_registrar, "member.enroll", body).code == "unauthorized"
    for org in (1, 2):
        chain.run(ORGS[org], "gov.approve", {"proposal_id": proposal_id})
    assert chain.run(new_registrar, "member.enroll", body).ok
    assert propose(chain, 1, grant).code == "role_exists"
    revoke = {"action": "revoke_role", "role": "registrar", "public_key": REGISTRAR.public_key}
    proposal_id = propose(chain, 1, revoke).result["proposal_id"]
    for org in (2, 3):
        chain.run(ORGS[org], "gov.approve", {"proposal_id": proposal_id})
    assert chain.enroll(key("m2")).code == "unauthorized"
    assert propose(chain, 0, revoke).code == "role_missing"
    assert propose(chain, 0, dict(revoke, role="janitor")).code == "unknown_role"


def test_org_key_rotation_and_expiry_and_failure() -> None:
    chain = Chain()
    new_key = key("org0-new")
    assert propose(chain, 0, {"action": "set_org_key", "org": "org9",
                              "public_key": new_key.public_key}).code == "unknown_org"
    assert propose(chain, 0, {"action": "set_org_key", "org": "org0",
                              "public_key": ORGS[1].public_key}).code == "duplicate_key"
    rotate = {"action": "set_org_key", "org": "org0", "public_key": new_key.public_key}
    proposal_id = propose(chain, 0, rotate).result["proposal_id"]
    for org in (1, 2):
        chain.run(ORGS[org], "gov.approve", {"proposal_id": proposal_id})
    assert chain.run(ORGS[0], "gov.propose", {"action": "set_param", "name": "fee_bps",
                                              "value": 700}).code == "unauthorized"
    # Two proposals for the same grant: the second to pass fails when it is applied.
    grant = {"action": "grant_role", "role": "hospital", "public_key": key("h2").public_key}
    first = chain.run(new_key, "gov.propose", grant).result["proposal_id"]
    second = propose(chain, 1, grant).result["proposal_id"]
    for org in (1, 2):
        chain.run(ORGS[org], "gov.approve", {"proposal_id": first})
    for org in (2, 3):
        chain.run(ORGS[org], "gov.approve", {"proposal_id": second})
    assert chain.q(f"proposal/{first}")["status"] == "applied"
    failed = chain.q(f"proposal/{second}")
    assert failed["status"] == "failed" and failed["failure"] == "role_exists"
    # An open proposal expires after proposal_ttl_ms (30 days).
    stale = propose(chain, 1, {"action": "set_param", "name": "fee_bps", "value": 700})
    stale_id = stale.result["proposal_id"]
    chain.advance_to(chain.time_ms + 30 * DAY_MS)
    assert chain.run(ORGS[2], "gov.approve", {"proposal_id": stale_id}).code == (
        "proposal_closed")
    assert chain.q("params")["fee_bps"] == 800


def test_evidence_from_file_to_certified_block() -> None:
    chain = Chain()
    alice = key("alice")
    chain.enroll_many([alice], deposit_fen=10_000)
    chain.advance_to(GENESIS_MS + 92 * DAY_MS)
    files = [b"%PDF diagnosis ...", b"%PDF pathology report", b"invoice 2024-001"]
    documents = [{"digest": sha256(data), "kind": kind}
                 for data, kind in zip(files, ("diagnosis", "pathology", "invoice"))]
    root = merkle.root([d["digest"] for d in documents])
    receipt = chain.run(alice, "claim.submit", {"condition": "CI001",
                                                "diagnosis_ms": chain.time_ms - DAY_MS,
                                                "amount_fen": 1_000_000, "evidence_root": root})
    claim_id = receipt.result["claim_id"]
    anchor_tx = chain.tx(HOSPITAL, "evidence.anchor", {"claim_id": claim_id,
                                                        "documents": documents})
    receipts = chain.block([chain.tx(alice, "member.exit", {}), anchor_tx])
    assert receipts[1].ok and receipts[1].result["root"] == root.hex()
    header, txs = chain.blocks[-1]

    claim, proof = chain.app.query(f"claim/{claim_id}", prove=True)
    anchor = claim["evidence"][0]
    assert claim["anchor_tx_ids"] == [anchor_tx.tx_id.hex()] and anchor["height"] == header.height
    # 1. the file is in the anchored list (RFC 6962 inclusion against the anchor's root);
    index = anchor["digests"].index(sha256(files[1]).hex())
    digests = [bytes.fromhex(d) for d in anchor["digests"]]
    assert anchor["kinds"][index] == "pathology"
    inclusion = merkle.inclusion_proof(digests, index)
    assert merkle.verify_inclusion(sha256(files[1]), index, len(digests), inclusion,
                                   bytes.fromhex(anchor["root"]))
    assert not merkle.verify_inclusion(sha256(b"forged"), index, len(digests), inclusion,
                                       bytes.fromhex(anchor["root"]))
    # 2. the anchor transaction is in the block (tx_root inclusion);
    tx_ids = [tx.tx_id for tx in txs]
    position = tx_ids.index(anchor_tx.tx_id)
    assert merkle.verify_inclusion(anchor_tx.tx_id, position, len(tx_ids),
                                   merkle.inclusion_proof(tx_ids, position), header.tx_root)
    assert tx_root(tx_ids) == header.tx_root
    # 3. the anchor as stored is in the state root (which a later header certifies).
    assert proof["root"] == chain.root.hex()
    for entry in proof["entries"]:
        assert verify_proof(chain.root, bytes.fromhex(entry["key"]),
                            bytes.fromhex(entry["value"]), entry["proof"])


def test_anchoring_is_limited_to_claimant_reviewer_and_hospitals() -> None:
    chain = Chain()
    alice, bob = key("alice"), key("bob")
    chain.enroll_many([alice, bob])
    chain.advance_to(GENESIS_MS + 92 * DAY_MS)
    chain.run(alice, "claim.submit", {"condition": "ACCIDENT", "diagnosis_ms": chain.time_ms,
                                      "amount_fen": 1, "evidence_root": sha256(b"r")})
    body = {"claim_id": 1, "documents": [{"digest": sha256(b"x"), "kind": "id"}]}
    assert chain.run(bob, "evidence.anchor", body).code == "unauthorized"
    assert chain.run(alice, "evidence.anchor", body).ok
    assert chain.run(REVIEWER, "evidence.anchor", body).ok
    assert chain.q("claim/1")["anchor_tx_ids"].__len__() == 2
    assert chain.run(HOSPITAL, "evidence.anchor", dict(body, claim_id=2)).code == "unknown_claim"


def test_query_paths_and_errors() -> None:
    import pytest

    from ledger.application import QueryError

    chain = Chain()
    alice = key("alice")
    chain.enroll(alice)
    assert chain.q(f"nonce/{REGISTRAR.public_key.hex()}")["next_nonce"] == 1
    assert chain.q(f"balance/{mid(alice).hex()}")["balance_fen"] == 0
    assert chain.q("plan/totals")["conservation_holds"] is True
    for path, code in [("member/00", "bad_path"), (f"member/{'00' * 16}", "not_found"),
                       ("claim/0", "bad_path"), ("claim/abc", "bad_path"),
                       ("claim/1", "not_found"), ("settlement/1", "not_found"),
                       ("jury/1", "not_found"), ("nope", "bad_path"), ("state/zz", "bad_path"),
                       (f"state/{b'absent'.hex()}", "not_found"), ("member/", "bad_path"),
                       (f"member/{mid(alice).hex().upper()}", "bad_path")]:
        with pytest.raises(QueryError) as info:
            chain.app.query(path)
        assert info.value.code == code, path
    value, proof = chain.app.query(f"state/{b'absent'.hex()}", prove=True)
    assert value["value"] is None
    entry = proof["entries"][0]
    assert verify_proof(chain.root, b"absent", None, entry["proof"])
    raw_key = (b"m/" + mid(alice)).hex()
    value, proof = chain.app.query(f"state/{raw_key}", prove=True)
    assert verify_proof(chain.root, bytes.fromhex(raw_key), bytes.fromhex(value["value"]),
                        proof["entries"][0]["proof"])


def test_a_document_anchored_for_two_claims_is_flagged_on_both() -> None:
    chain = Chain()
    alice, bob = key("alice"), key("bob")
    chain.enroll_many([alice, bob])
    chain.advance_to(GENESIS_MS + 92 * DAY_MS)
    for pair in (alice, bob):
        assert chain.run(pair, "claim.submit", {
            "condition": "CI001", "diagnosis_ms": chain.time_ms - DAY_MS,
            "amount_fen": 1_000_000, "evidence_root": sha256(b"r")}).ok
    invoice, report = sha256(b"invoice 2024-001"), sha256(b"pathology report")
    first = chain.run(alice, "evidence.anchor", {"claim_id": 1, "documents": [
        {"digest": invoice, "kind": "invoice"}, {"digest": report, "kind": "pathology"}]})
    assert first.ok and first.result["reused"] == []
    first_height = chain.height
    # The hospital anchors the same report for the same claim again: not a reuse.
    assert chain.run(HOSPITAL, "evidence.anchor", {"claim_id": 1, "documents": [
        {"digest": report, "kind": "pathology"}]}).result["reused"] == []
    # Bob backs his claim with Alice's invoice.
    second = chain.run(bob, "evidence.anchor", {"claim_id": 2, "documents": [
        {"digest": sha256(b"bob's id"), "kind": "id"}, {"digest": invoice, "kind": "invoice"}]})
    assert second.ok
    notice = f"document already anchored for claim #1 at height {first_height}"
    assert second.result["reused"] == [{"digest": invoice.hex(), "claim_id": 1,
                                        "height": first_height, "notice": notice}]
    bobs = chain.q("claim/2")
    assert bobs["reused_documents"] == second.result["reused"]
    # The first claim's notice names the second claim too, for its reviewer and objectors.
    alices = chain.q("claim/1")
    assert alices["reused_documents"] == [{
        "digest": invoice.hex(), "claim_id": 2, "height": chain.height,
        "notice": f"document also anchored for claim #2 at height {chain.height}"}]
