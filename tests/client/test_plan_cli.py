"""The plan commands' argument parsing and local files (no node needed)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from client.cli import main
from client.cli_common import CommandFailed
from client.evidence import evidence_root, file_digest
from client.plan_cli import (
    _load_salts,
    _save_salts,
    member_id_of,
    parse_amount_fen,
    parse_documents,
    parse_member,
    parse_time_ms,
    salt_file_for,
    vote_commitment,
)
from contracts import jury
from contracts.records import member_id_of as contract_member_id
from ledger.keys import KeyPair


@pytest.mark.parametrize("text,fen", [("20", 2_000), ("19.99", 1_999), ("0.1", 10),
                                      ("300000", 30_000_000), ("1e3", 100_000)])
def test_amounts_are_yuan_to_integer_fen(text, fen):
    assert parse_amount_fen(text) == fen


@pytest.mark.parametrize("text", ["0", "-5", "0.001", "abc", "NaN", "Infinity", ""])
def test_bad_amounts_are_refused(text):
    with pytest.raises(CommandFailed):
        parse_amount_fen(text)


def test_times():
    assert parse_time_ms("2000-01-01") == 946_684_800_000
    assert parse_time_ms("2000-01-01T08:00:00+08:00") == 946_684_800_000
    assert parse_time_ms("946684800000") == 946_684_800_000
    assert parse_time_ms("now") - parse_time_ms("now-2d") >= 2 * 86_400_000
    with pytest.raises(CommandFailed):
        parse_time_ms("yesterday")


def test_member_arguments_resolve_to_the_contracts_member_id(tmp_path):
    pair = KeyPair.from_seed(b"k" * 32)
    path = pair.save(tmp_path / "alice.json")
    expected = contract_member_id(pair.public_key)
    assert member_id_of(pair.public_key) == expected
    assert parse_member(str(path)) == expected
    assert parse_member(pair.public_key.hex()) == expected
    assert parse_member(expected.hex()) == expected
    with pytest.raises(CommandFailed):
        parse_member("abcd")


def test_vote_commitment_matches_what_the_contract_checks():
    salt = bytes(range(32))
    for vote in ("pay", "reject"):
        assert vote_commitment(vote, salt) == jury.vote_commitment(vote, salt)
    assert vote_commitment("pay", salt) != vote_commitment("reject", salt)


def test_salt_file_is_private_and_round_trips(tmp_path):
    key_path = tmp_path / "juror.json"
    path = salt_file_for(str(key_path))
    assert path.name == "juror.json.jury.json"
    _save_salts(path, {"chain/7/1": {"vote": "pay", "salt": "00" * 32}})
    assert path.stat().st_mode & 0o777 == 0o600
    assert _load_salts(path) == {"chain/7/1": {"vote": "pay", "salt": "00" * 32}}
    path.write_text("not json")
    with pytest.raises(CommandFailed):
        _load_salts(path)


def test_documents_take_an_optional_kind_prefix(tmp_path):
    report = tmp_path / "report.txt"
    report.write_text("x")
    assert parse_documents([f"pathology:{report}", str(report)], "other") == [
        ("pathology", str(report)), ("other", str(report))]
    with pytest.raises(CommandFailed):
        parse_documents([str(tmp_path / "missing.txt")], "other")


def test_evidence_digest_command_prints_digests_and_root(tmp_path):
    files = []
    for name in ("a.txt", "b.txt", "c.txt"):
        path = tmp_path / name
        path.write_text(name * 3)
        files.append(path)
    result = CliRunner().invoke(main, ["evidence", "digest", *map(str, files), "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    digests = [file_digest(path) for path in files]
    assert [f["digest"] for f in answer["files"]] == [d.hex() for d in digests]
    assert answer["root"] == evidence_root(digests).hex()


def test_keys_new_count_names_files_and_reports_member_ids(tmp_path):
    result = CliRunner().invoke(main, ["keys", "new", "--out", str(tmp_path / "m-{n}.json"),
                                       "--count", "3", "--json"])
    assert result.exit_code == 0, result.output
    keys = json.loads(result.output)["keys"]
    assert [k["file"] for k in keys] == [str(tmp_path / f"m-{n}.json") for n in (1, 2, 3)]
    for entry in keys:
        pair = KeyPair.load(entry["file"])
        assert entry["member_id"] == contract_member_id(pair.public_key).hex()
    refused = CliRunner().invoke(main, ["keys", "new", "--out", str(tmp_path / "x.json"),
                                        "--count", "2"])
    assert refused.exit_code == 1 and "{n}" in refused.output


def test_commands_without_a_node_fail_with_one_line(monkeypatch, tmp_path):
    monkeypatch.delenv("HUZHU_NODE", raising=False)
    monkeypatch.setenv("HUZHU_NET", str(tmp_path / "nothing-here"))
    result = CliRunner().invoke(main, ["claim", "show", "1"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: no node given: pass --node URL or set HUZHU_NODE"]


def test_review_needs_exactly_one_decision(monkeypatch):
    monkeypatch.setenv("HUZHU_NODE", "http://127.0.0.1:9")
    result = CliRunner().invoke(main, ["claim", "review", "3", "--key", "x.json"])
    assert result.exit_code == 1
    assert "exactly one of --approve" in result.output


# --- enrollment against an in-process chain ---------------------------------------------------

class ChainSender:
    """Stands in for TxSender: each send is one block of a contracts test chain."""

    def __init__(self, chain, key: KeyPair) -> None:
        from client.api import ClientError
        from client.txs import TxOutcome

        self.chain, self.key, self._outcome, self._error = chain, key, TxOutcome, ClientError
        self.client = self

    def state(self, path: str) -> dict:  # the Client method the CLI reads with
        from ledger.application import QueryError

        try:
            return {"value": self.chain.app.query(path)[0]}
        except QueryError as exc:
            raise self._error(str(exc), "not_found") from None

    def send_many(self, kind: str, bodies, wait: bool = True) -> list:
        txs = [self.chain.tx(self.key, kind, body) for body in bodies]
        receipts = self.chain.block(txs)
        return [self._outcome(tx.tx_id, kind, tx.nonce, "committed", self.chain.height,
                              receipt.code, receipt.result) for tx, receipt in zip(txs, receipts)]

    def send(self, kind: str, body: dict, wait: bool = True):
        return self.send_many(kind, [body], wait)[0]


@pytest.fixture
def enroll_cli(monkeypatch, tmp_path):
    from client import plan_cli
    from tests.contracts.contract_helpers import REGISTRAR, Chain

    chain = Chain()
    key_path = REGISTRAR.save(tmp_path / "registrar.json")
    monkeypatch.setattr(plan_cli, "sender", lambda node, key: ChainSender(chain, KeyPair.load(key)))

    def run(*args: str):
        return CliRunner().invoke(main, ["member", "enroll", *args, "--key", str(key_path),
                                         "--node", "http://127.0.0.1:9", "--json"])
    return chain, key_path, run


def test_one_person_enrolled_twice_is_refused_even_with_new_keys(enroll_cli, tmp_path):
    chain, key_path, run = enroll_cli
    people = [KeyPair.from_seed(bytes([n]) * 32) for n in range(4)]
    first = run("--member", people[0].public_key.hex(), "--national-id", "11010119900101123x",
                "--birth", "1990-01-01")
    assert first.exit_code == 0, first.output
    identity = json.loads(first.output)["identity"]
    # The registrar's secret was made next to its key, private, and names its key id.
    secret_path = tmp_path / "registrar.json.identity.json"
    assert secret_path.stat().st_mode & 0o777 == 0o600
    assert chain.member(people[0])["identity_key_id"] == json.loads(first.output)["identity_key_id"]
    # Not a plain hash of the id: an outsider cannot test guesses against the chain.
    from ledger.hashing import sha256
    assert identity != sha256(b"11010119900101123X").hex()

    # The same person again (the id typed in lower or upper case), with a new member key.
    again = run("--member", people[1].public_key.hex(), "--national-id", "11010119900101123X",
                "--birth", "1990-01-01")
    assert again.exit_code == 1 and "identity_enrolled" in again.output
    batch = tmp_path / "enroll.csv"
    batch.write_text("member,national_id,birth\n"
                     f"{people[2].public_key.hex()},11010119900101123x,1990-01-01\n"
                     f"{people[3].public_key.hex()},110101198501015678,1985-01-01\n")
    batched = run("--batch", str(batch))
    assert batched.exit_code == 1  # a batch with a failed receipt is an error
    outcomes = json.JSONDecoder().raw_decode(batched.output)[0]["transactions"]
    assert [o["code"] for o in outcomes] == ["identity_enrolled", "ok"]


def test_after_rotating_the_registrar_secret_the_old_commitments_still_count(enroll_cli):
    chain, key_path, run = enroll_cli
    people = [KeyPair.from_seed(bytes([n]) * 32) for n in range(3)]
    assert run("--member", people[0].public_key.hex(), "--national-id", "110101199001011234",
               "--birth", "1990-01-01").exit_code == 0
    rotated = CliRunner().invoke(main, ["member", "rotate-identity-secret", "--key",
                                        str(key_path), "--json"])
    assert rotated.exit_code == 0, rotated.output
    new_key_id = json.loads(rotated.output)["identity_key_id"]
    assert new_key_id != chain.member(people[0])["identity_key_id"]
    # Under the new secret the same person has another commitment; the CLI checks the retired
    # secrets' commitments against the chain before it signs.
    again = run("--member", people[1].public_key.hex(), "--national-id", "110101199001011234",
                "--birth", "1990-01-01")
    assert again.exit_code == 1 and "already has an active membership" in again.output
    fresh = run("--member", people[2].public_key.hex(), "--national-id", "110101198501015678",
                "--birth", "1985-01-01")
    assert fresh.exit_code == 0 and json.loads(fresh.output)["identity_key_id"] == new_key_id


def test_claim_show_warns_of_a_document_anchored_for_another_claim(monkeypatch):
    from client import plan_cli
    from tests.contracts.contract_helpers import GENESIS_MS, Chain, key

    chain = Chain()
    alice, bob = key("alice"), key("bob")
    chain.enroll_many([alice, bob])
    chain.advance_to(GENESIS_MS + 92 * 86_400_000)
    invoice = {"digest": bytes(range(32)), "kind": "invoice"}
    for claim_id, pair in ((1, alice), (2, bob)):
        assert chain.run(pair, "claim.submit", {
            "condition": "CI001", "diagnosis_ms": chain.time_ms - 86_400_000,
            "amount_fen": 1_000_000, "evidence_root": bytes(32)}).ok
        assert chain.run(pair, "evidence.anchor", {"claim_id": claim_id,
                                                   "documents": [invoice]}).ok
    first_height = chain.q("claim/1")["evidence"][0]["height"]
    monkeypatch.setattr(plan_cli, "make_client", lambda node: ChainSender(chain, alice))
    shown = CliRunner().invoke(main, ["claim", "show", "2", "--node", "http://127.0.0.1:9"])
    assert shown.exit_code == 0, shown.output
    assert "documents also anchored for other claims (1)" in shown.output
    assert f"document already anchored for claim #1 at height {first_height}" in shown.output
