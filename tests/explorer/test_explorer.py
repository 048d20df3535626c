"""The chain explorer in a real headless Chromium against a running 4-node plan consortium.

The consortium runs a small plan scenario first (two members enrolled, a claim with anchored
evidence, approved by the reviewer). Then the browser: the dashboard shows the chain and every
validator, and a block committed meanwhile appears live (over /events) with the height; the
search box finds a block by height, a member by public key and a claim by #id; a block page
shows its header (re-hashed in the browser), transactions and commit certificate with its
signers; a transaction page marks its inclusion proof verified; the claim page shows the
evidence digests and the review. The page's Merkle verifier is also checked against the
node's own RFC 9162 implementation on trees of every small size, honest and tampered proofs.
No page logs a console error, and the phone-sized dashboard does not scroll sideways.

Set HUZHU_EXPLORER_SCREENSHOTS=DIR to keep screenshots of the dashboard at phone and desktop
widths in DIR.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from e2e_helpers import Net
from ledger import merkle
from ledger.keys import KeyPair
from ledger.types import Transaction

pytestmark = pytest.mark.e2e

WAIT_S = 30.0
PHONE_SIZE = (390, 844)
DESKTOP_SIZE = (1280, 900)
YEAR_MS = 365 * 24 * 3600 * 1000
ACCIDENT = "ACCIDENT"  # contracts.conditions.ACCIDENT_CODE: no waiting period


# --- the consortium and its plan scenario ------------------------------------------------------

class Scenario:
    """Plan transactions sent through the nodes; each batch is waited for until committed
    on every node."""

    def __init__(self, net: Net) -> None:
        self.net = net
        self.nonces: dict[bytes, int] = {}
        self.committed: dict[str, dict] = {}

    def send(self, name: str, key: KeyPair, kind: str, body: dict, node: int = 0) -> dict:
        return self.send_all([(name, key, kind, body, node)])[name]

    def send_all(self, batch: list[tuple[str, KeyPair, str, dict, int]]) -> dict[str, dict]:
        """Submit every transaction at once (one sender's in nonce order), then wait."""
        sent = []
        for name, key, kind, body, node in batch:
            nonce = self.nonces.get(key.public_key, 0)
            tx = Transaction.create(key, self.net.chain_id, nonce, kind, body)
            status, answer = self.net.post(node, "/txs",
                                           json.dumps({"tx": tx.encode().hex()}).encode())
            assert status == 202, (name, status, answer)
            self.nonces[key.public_key] = nonce + 1
            sent.append((name, node, tx.tx_id.hex()))
        for name, node, tx_id in sent:
            # Committed on every node: the next transaction may go to any of them, and their
            # admission checks read their own state.
            answers = self.net.wait_until(lambda: self._committed_everywhere(tx_id),
                                          f"{name} committed everywhere", timeout_s=WAIT_S)
            answer = answers[node]
            assert answer["receipt"]["ok"], (name, answer["receipt"])
            self.committed[name] = answer
        return {name: self.committed[name] for name, _, _ in sent}

    def _committed_everywhere(self, tx_id: str) -> list[dict] | None:
        answers = []
        for node in range(len(self.net.homes)):
            status, answer = self.net.get(node, f"/txs/{tx_id}")
            if status != 200 or answer["status"] != "committed":
                return None
            answers.append(answer)
        return answers

    def wait_for_block_time(self, time_ms: int) -> None:
        # Block times are the primary's wall clock, on this machine.
        while time.time() * 1000 <= time_ms + 50:
            time.sleep(0.05)


# A short public notice and jury windows and a one-juror quorum, voted by three of the four
# orgs, so an objected claim goes to a jury that sits, votes and decides within the test.
# The windows leave room for a slow machine: each step must land inside its window.
JURY_SETTINGS = {"notice_ms": 4_000, "juror_seniority_ms": 0, "commit_ms": 5_000,
                 "reveal_ms": 4_000, "jury_quorum": 1}


def backdate_genesis(net: Net) -> None:
    """Put genesis one settlement period and a second in the past, before any node starts:
    the chain's first block then publishes the settlement of period 1 (the next one is half
    a month away), so there is a settlement page to see."""
    path = net.layout.genesis_path
    genesis = json.loads(path.read_text())
    genesis_time_ms = int(time.time() * 1000) - genesis["app"]["params"]["period_ms"] - 1_000
    genesis["genesis_time_ms"] = genesis["app"]["genesis_time_ms"] = genesis_time_ms
    path.write_text(json.dumps(genesis, indent=2, sort_keys=True) + "\n")


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    net = Net(tmp_path_factory.mktemp("explorer") / "net", app="plan")
    backdate_genesis(net)
    try:
        net.start_all()
        yield net
    finally:
        net.close()


@pytest.fixture(scope="module")
def scenario(net: Net) -> dict[str, Any]:
    """Members, a claim with evidence, approved, objected to, decided by a jury's vote."""
    registrar = net.role_key("registrar")
    reviewer = net.role_key("reviewer")
    orgs = [net.role_key(f"org{index}") for index in range(3)]
    alice, bob, carol = KeyPair.generate(), KeyPair.generate(), KeyPair.generate()
    plan = Scenario(net)

    proposals = plan.send_all([
        (f"propose_{name}", orgs[0], "gov.propose",
         {"action": "set_param", "name": name, "value": value}, 0)
        for name, value in JURY_SETTINGS.items()])
    approvals = []
    for name, answer in proposals.items():
        proposal_id = answer["receipt"]["result"]["proposal_id"]
        approvals += [(f"approve_{name}_{org}", orgs[org], "gov.approve",
                       {"proposal_id": proposal_id}, org) for org in (1, 2)]
    plan.send_all(approvals)
    status, params = net.get(0, "/state/params")
    assert status == 200
    assert {name: params["value"][name] for name in JURY_SETTINGS} == JURY_SETTINGS, params

    now_ms = int(time.time() * 1000)
    plan.send_all([(f"enroll_{name}", registrar, "member.enroll",
                    {"public_key": member.public_key,
                     "identity": hashlib.sha256(b"salt" + name.encode()).digest(),
                     "birth_ms": now_ms - (33 + index) * YEAR_MS}, index)
                   for index, (name, member) in enumerate((("alice", alice), ("bob", bob),
                                                           ("carol", carol)))])
    plan.send("qualify_carol", registrar, "member.qualify_juror",
              {"member_id": member_id(carol)}, node=1)
    status, block = net.get(0, f"/blocks/{plan.committed['enroll_alice']['height']}")
    assert status == 200
    documents = [hashlib.sha256(b"discharge summary").digest(),
                 hashlib.sha256(b"invoice RMB 128,400").digest()]
    submitted = plan.send("claim", alice, "claim.submit",
                          {"condition": ACCIDENT, "diagnosis_ms": block["header"]["timestamp_ms"],
                           "amount_fen": 5_000_000, "evidence_root": merkle.root(documents)},
                          node=2)
    claim_id = submitted["receipt"]["result"]["claim_id"]
    plan.send_all([
        ("anchor", alice, "evidence.anchor",
         {"claim_id": claim_id, "documents": [{"digest": documents[0], "kind": "discharge"},
                                              {"digest": documents[1], "kind": "invoice"}]}, 3),
        ("review", reviewer, "claim.review",
         {"decision": "approve", "claim_id": claim_id, "amount_fen": 4_000_000}, 1)])
    objection_digest = hashlib.sha256(b"an objection letter").digest()
    plan.send("object", bob, "claim.object",
              {"claim_id": claim_id, "reason": "pre_existing_condition",
               "evidence_digest": objection_digest}, node=0)
    # Plan time moves with blocks: the jury is drawn in the first block after the notice.
    status, claim = net.get(0, f"/claims/{claim_id}")
    plan.wait_for_block_time(claim["value"]["notice_end_ms"])
    treasurer = net.role_key("treasurer")
    plan.send("deposit_after_notice", treasurer, "member.deposit",
              {"member_id": member_id(alice), "amount_fen": 1_000, "reference": "notice"})
    status, jury = net.get(0, f"/jury/{claim_id}")
    assert status == 200 and [seat["member_id"] for seat in jury["value"]["seats"]] == [
        member_id(carol).hex()], jury
    salt = hashlib.sha256(b"carol's salt").digest()
    plan.send("jury_commit", carol, "jury.commit",
              {"claim_id": claim_id, "commitment": hashlib.sha256(b"pay" + salt).digest()},
              node=2)
    plan.wait_for_block_time(jury["value"]["commit_end_ms"])
    plan.send("jury_reveal", carol, "jury.reveal",
              {"claim_id": claim_id, "vote": "pay", "salt": salt}, node=3)
    # The tally runs in the first block after the reveal window.
    plan.wait_for_block_time(jury["value"]["reveal_end_ms"])
    plan.send("deposit_after_jury", treasurer, "member.deposit",
              {"member_id": member_id(alice), "amount_fen": 1_000, "reference": "jury"})
    status, claim = net.get(0, f"/claims/{claim_id}")
    assert claim["value"]["status"] == "approved", claim
    return {"claim_id": claim_id, "documents": [digest.hex() for digest in documents],
            "objection_digest": objection_digest.hex(), "alice": alice, "carol": carol,
            "committed": plan.committed, "plan": plan}


def member_id(key: KeyPair) -> bytes:
    return hashlib.sha256(key.public_key).digest()[:16]  # contracts.layout.ID_BYTES


# --- browser helpers ---------------------------------------------------------------------------

def wait_for(driver: Any, condition: Callable[[Any], Any], what: str,
             timeout_s: float = WAIT_S) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout_s, poll_frequency=0.1).until(condition)
    except TimeoutException:
        raise AssertionError(f"timed out waiting for {what}; page text:\n"
                             f"{driver.find_element('tag name', 'body').text[:2000]}") from None


def text_of(driver: Any, element_id: str) -> str:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        return driver.find_element("id", element_id).text
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


def search(driver: Any, text: str) -> None:
    box = driver.find_element("id", "search-input")
    box.clear()
    box.send_keys(text)
    driver.find_element("css selector", "#search button").click()


def console_errors(driver: Any) -> list[dict]:
    """Console messages at error level since the last call (the log is drained)."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def screenshot(driver: Any, name: str) -> None:
    directory = os.environ.get("HUZHU_EXPLORER_SCREENSHOTS")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(directory) / f"{name}.png"))


def assert_fits_a_phone(driver: Any, name: str) -> None:
    """At phone width the page must not scroll sideways (wide tables scroll in their box)."""
    driver.set_window_size(*PHONE_SIZE)
    wait_for(driver, lambda d: d.execute_script("return window.innerWidth") <= PHONE_SIZE[0],
             "the phone-sized window")
    overflow = driver.execute_script(
        "return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the phone-sized {name} page scrolls sideways by {overflow}px"
    assert driver.find_element("id", "search-input").is_displayed()
    screenshot(driver, f"{name}-phone")
    driver.set_window_size(*DESKTOP_SIZE)


def height_shown(driver: Any) -> int:
    text = text_of(driver, "stat-height").replace(",", "")
    return int(text) if text.isdigit() else -1


def block_rows(driver: Any) -> list[int]:
    rows = driver.find_elements("css selector", "#blocks-table tbody tr")
    heights = []
    for row in rows:
        try:
            heights.append(int(row.get_attribute("data-height")))
        except Exception:  # the table was re-rendered under us; read it again next poll
            return []
    return heights


@pytest.fixture
def page(browser: Any, net: Net, scenario: dict):
    """The browser on node 0's explorer; each test must leave no console errors behind."""
    browser.set_window_size(*DESKTOP_SIZE)
    browser.get(net.url(0, "/"))
    wait_for(browser, lambda d: height_shown(d) >= 1, "the dashboard")
    console_errors(browser)  # start each test from an empty log
    yield browser
    errors = console_errors(browser)
    assert not errors, f"console errors: {errors}"


# --- tests -------------------------------------------------------------------------------------

def test_dashboard_shows_validators_and_grows_live(page: Any, net: Net, scenario: dict) -> None:
    wait_for(page, lambda d: text_of(d, "live") == "live", "the /events WebSocket")
    status = net.status(0)
    assert height_shown(page) >= scenario["committed"]["review"]["height"]
    assert text_of(page, "stat-view") == str(status["view"])
    rows = page.find_elements("css selector", "#validators-table tbody tr")
    assert len(rows) == 4
    table = text_of(page, "validators-table")
    assert "this node" in table and table.count("connected") == 3 and "disconnected" not in table
    for validator in net.genesis["validators"]:
        assert validator["name"] in table
    before = height_shown(page)
    shown_before = set(block_rows(page))

    # A block committed now reaches the open page over /events: a new row and a new height.
    scenario["plan"].send("live_deposit", net.role_key("treasurer"), "member.deposit",
                          {"member_id": member_id(scenario["alice"]), "amount_fen": 2_000,
                           "reference": "live-test"}, node=1)
    wait_for(page, lambda d: height_shown(d) > before, "the height to grow")
    wait_for(page, lambda d: any(height > max(shown_before) for height in block_rows(d)),
             "a live block row")
    wait_for(page, lambda d: text_of(d, "stat-rate") not in ("", "—"), "a tx rate")
    screenshot(page, "dashboard-desktop")

    assert_fits_a_phone(page, "dashboard")


def test_block_page_shows_header_transactions_and_certificate(page: Any, net: Net,
                                                              scenario: dict) -> None:
    review = scenario["committed"]["review"]
    search(page, str(review["height"]))
    wait_for(page, lambda d: d.current_url.endswith(f"#/block/{review['height']}"),
             "the block page")
    wait_for(page, lambda d: "matches" in text_of(d, "header-check"), "the header hash check")
    assert review["block_hash"] in text_of(page, "block-header")
    signers = page.find_elements("css selector", "#certificate-signers tbody tr")
    assert len(signers) >= 3  # 2f + 1 of 4
    assert "quorum" in page.find_element("tag name", "body").text
    screenshot(page, "block")
    assert_fits_a_phone(page, "block")
    tx_link = page.find_element("css selector", f"#block-txs a[href='#/tx/{review['tx_id']}']")
    assert "claim.review" in text_of(page, "block-txs")
    tx_link.click()
    wait_for(page, lambda d: "verified" in (d.find_element("id", "proof-status")
                                             .get_attribute("class") or ""),
             "the inclusion proof verified")
    assert text_of(page, "proof-status").startswith("✓ Verified")
    assert text_of(page, "tx-result") == "ok"


def test_transaction_page_verifies_its_inclusion_proof(page: Any, scenario: dict) -> None:
    anchor = scenario["committed"]["anchor"]
    search(page, anchor["tx_id"])
    wait_for(page, lambda d: d.current_url.endswith(f"#/tx/{anchor['tx_id']}"),
             "the transaction page")
    status = wait_for(page, lambda d: d.find_element("id", "proof-status"), "the proof")
    wait_for(page, lambda d: "verified" in (status.get_attribute("class") or ""),
             "the inclusion proof verified")
    screenshot(page, "transaction")
    assert_fits_a_phone(page, "transaction")
    body = page.find_element("tag name", "body").text
    assert "evidence.anchor" in body
    for digest in scenario["documents"]:
        assert digest in body


def test_claim_and_member_pages(page: Any, scenario: dict) -> None:
    claim_id = scenario["claim_id"]
    search(page, f"#{claim_id}")
    wait_for(page, lambda d: d.current_url.endswith(f"#/claim/{claim_id}"), "the claim page")
    wait_for(page, lambda d: "Evidence" in d.find_element("tag name", "body").text,
             "the claim")
    screenshot(page, "claim")
    assert_fits_a_phone(page, "claim")
    body = page.find_element("tag name", "body").text
    for digest in scenario["documents"]:
        assert digest in body
    assert "discharge" in body and "invoice" in body
    assert text_of(page, "claim-review") == "approved"
    assert "¥40,000.00" in body  # the approved amount, 4,000,000 fen
    assert "approved by jury" in body  # the outcome, after the jury voted to pay
    assert scenario["objection_digest"] in text_of(page, "claim-objections")
    assert "pre_existing_condition" in text_of(page, "claim-objections")
    page.execute_script("document.getElementById('jury-seats').scrollIntoView()")
    screenshot(page, "claim-jury")
    seats = text_of(page, "jury-seats")
    assert "pay" in seats and member_id(scenario["carol"]).hex()[:12] in seats
    assert "1 pay · 0 reject" in body
    assert text_of(page, "jury-rounds").split()[-6:] == ["1", "1", "1", "1", "1", "pay"]

    alice_id = member_id(scenario["alice"]).hex()
    search(page, scenario["alice"].public_key.hex())  # a public key finds its member
    wait_for(page, lambda d: d.current_url.endswith(f"#/member/{alice_id}"), "the member page")
    wait_for(page, lambda d: "Membership" in d.find_element("tag name", "body").text,
             "the member")
    screenshot(page, "member")
    body = page.find_element("tag name", "body").text
    assert alice_id in body and "active" in body
    assert page.find_element("css selector", f"a[href='#/claim/{claim_id}']")


def test_settlement_page_from_the_dashboard(page: Any, net: Net) -> None:
    status, settlement = net.get(0, "/settlements/1")
    assert status == 200
    wait_for(page, lambda d: d.find_elements("css selector", "#plan a[href='#/settlement/1']"),
             "the plan's latest settlement")
    page.find_element("css selector", "#plan a[href='#/settlement/1']").click()
    wait_for(page, lambda d: "Settlement of period 1" in d.find_element("tag name", "body").text,
             "the settlement page")
    screenshot(page, "settlement")
    table = text_of(page, "settlement")
    assert f"members {settlement['value']['members']}" in table
    assert "share ¥0.00" in table  # nothing was paid out in the first period
    assert "boundary 20" in table  # a date, not a number of milliseconds


def test_browser_merkle_verifier_matches_rfc9162(page: Any) -> None:
    cases = []
    for size in range(1, 12):
        leaves = [hashlib.sha256(b"leaf %d/%d" % (index, size)).digest() for index in range(size)]
        root = merkle.root(leaves).hex()
        for index in range(size):
            path = [node.hex() for node in merkle.inclusion_proof(leaves, index)]
            cases.append((leaves[index].hex(), index, size, path, root, True))
            if path:  # a tampered audit path, and the right path at the wrong index
                bad = path[:-1] + [bytes(32).hex()]
                cases.append((leaves[index].hex(), index, size, bad, root, False))
                cases.append((leaves[index].hex(), (index + 1) % size, size, path, root, False))
            cases.append((bytes(32).hex(), index, size, path, root, False))
    results = page.execute_async_script("""
        const [cases, done] = arguments;
        Promise.all(cases.map(([leaf, index, size, path, root]) =>
            window.huzhuExplorer.verifyInclusion(leaf, index, size, path, root)))
          .then(done, (error) => done(String(error)));
    """, cases)
    assert isinstance(results, list), results
    wrong = [case[:3] for case, got in zip(cases, results) if got is not case[5]]
    assert not wrong, f"the browser disagrees with ledger.merkle on {wrong[:5]}"
