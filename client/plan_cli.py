"""The plan's commands: members, evidence, claims, jury, governance, settlements, chain views.

Every transaction command signs with ``--key FILE``, sends to ``--node URL`` and by default
waits until the transaction is committed, then prints its receipt (``--no-wait`` returns once
the node admitted it). A committed transaction whose receipt failed is an error (exit 1, the
reason code on one line). ``register`` adds these groups, ``keys`` and ``audit`` to ``huzhu``.
"""

from __future__ import annotations

import datetime
import json
import re
import secrets
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import click

from client.api import Client, ClientError
from client.cli_common import (
    EXIT_MISMATCH,
    HuzhuCommand,
    HuzhuGroup,
    fail,
    handle_errors,
    json_option,
    key_option,
    load_key,
    make_client,
    node_option,
    output,
    parse_hex,
    print_json,
    print_mapping,
    print_rows,
    stdout_console,
)
from client import identity
from client.keys_cli import keys_group
from client.txs import TxOutcome, TxSender, result_value
from ledger import codec
from ledger.hashing import sha256
from ledger.keys import PUBLIC_KEY_BYTES, KeyPair

MEMBER_ID_BYTES = 16  # contracts.layout.ID_BYTES: the first 16 bytes of SHA-256(public key)
SALT_BYTES = 32
DOCUMENT_KINDS = ("diagnosis", "pathology", "imaging", "lab", "invoice", "discharge",
                  "prescription", "id", "objection", "other")
REJECT_REASONS = ("not_covered", "insufficient_evidence", "pre_existing_condition",
                  "misrepresentation", "waiting_period", "not_active_at_diagnosis", "over_age",
                  "other")
OBJECTION_REASONS = ("pre_existing_condition", "misrepresentation", "forged_evidence",
                     "not_covered", "other")
VOTES = ("pay", "reject")
ROLES = ("registrar", "treasurer", "reviewer", "hospital")
FEN_PER_YUAN = 100
SALT_FILE_SUFFIX = ".jury.json"
IDENTITY_INDEX_PREFIX = b"i/"  # contracts.layout.identity_key: commitment -> active member
MAX_BATCH_ROWS_SHOWN = 8

wait_option = click.option("--no-wait", "no_wait", is_flag=True,
                           help="Return once the node admitted the transaction.")


def tx_options(command: Any) -> Any:
    """--node, --key, --no-wait, --json, and one-line errors: every transaction command."""
    for decorate in (handle_errors, json_option, wait_option, key_option, node_option):
        command = decorate(command)
    return command


def view_options(command: Any) -> Any:
    """--node, --json, and one-line errors: every command that only reads."""
    for decorate in (handle_errors, json_option, node_option):
        command = decorate(command)
    return command


# --- argument parsing -----------------------------------------------------------------------

def member_id_of(public_key: bytes) -> bytes:
    return sha256(public_key)[:MEMBER_ID_BYTES]


def parse_member(text: str) -> bytes:
    """A member given as a key file, a public key (64 hex) or a member id (32 hex)."""
    path = Path(text)
    if path.is_file():
        return member_id_of(KeyPair.load(path).public_key)
    hex_text = text.lower().removeprefix("0x")
    if len(hex_text) == 2 * PUBLIC_KEY_BYTES:
        return member_id_of(parse_hex(hex_text, PUBLIC_KEY_BYTES, "public key"))
    if len(hex_text) == 2 * MEMBER_ID_BYTES:
        return parse_hex(hex_text, MEMBER_ID_BYTES, "member id")
    fail(f"{text!r} is neither a key file, a public key (64 hex) nor a member id (32 hex)")
    raise AssertionError  # unreachable


def parse_public_key(text: str) -> bytes:
    path = Path(text)
    if path.is_file():
        return KeyPair.load(path).public_key
    return parse_hex(text.lower(), PUBLIC_KEY_BYTES, "public key")


def parse_amount_fen(text: str) -> int:
    """RMB yuan with at most two decimals ("300000", "19.99") as integer fen, no floats."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        fail(f"amount {text!r} is not a number of yuan")
    fen = value * FEN_PER_YUAN
    if not value.is_finite() or fen != fen.to_integral_value() or fen <= 0:
        fail(f"amount {text!r} must be positive with at most two decimals")
    return int(fen)


_RELATIVE = re.compile(r"^now(?:-(\d+)(ms|s|m|h|d))?$")
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_time_ms(text: str) -> int:
    """``YYYY-MM-DD`` (UTC midnight), an ISO date-time, ``now``, ``now-30s``, or integer ms."""
    text = text.strip()
    if re.fullmatch(r"-?\d{9,}", text):
        return int(text)
    match = _RELATIVE.match(text)
    if match:
        now_ms = int(datetime.datetime.now(datetime.timezone.utc).timestamp() * 1000)
        if match.group(1):
            now_ms -= int(match.group(1)) * _UNIT_MS[match.group(2)]
        return now_ms
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        fail(f"{text!r} is not a date (YYYY-MM-DD), a time, 'now', 'now-30s' or milliseconds")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return int(moment.timestamp() * 1000)


def format_time_ms(time_ms: Any) -> str:
    if type(time_ms) is not int:
        return "-"
    moment = datetime.datetime.fromtimestamp(time_ms / 1000, tz=datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def format_fen(fen: Any) -> str:
    if type(fen) is not int:
        return "-"
    sign = "-" if fen < 0 else ""
    return f"{sign}¥{abs(fen) // FEN_PER_YUAN:,}.{abs(fen) % FEN_PER_YUAN:02d}"


def parse_documents(files: Sequence[str], default_kind: str) -> list[tuple[str, str]]:
    """FILE or KIND:FILE arguments as (kind, path)."""
    result = []
    for item in files:
        kind, sep, rest = item.partition(":")
        if sep and kind in DOCUMENT_KINDS and not Path(item).exists():
            result.append((kind, rest))
        else:
            result.append((default_kind, item))
    for _, path in result:
        if not Path(path).is_file():
            fail(f"no such file: {path}")
    return result


# --- sending and printing -------------------------------------------------------------------

def sender(node: str | None, key: str | None) -> TxSender:
    return TxSender(make_client(node), load_key(key))


def finish(outcome: TxOutcome, as_json: bool, title: str, extra: dict | None = None) -> None:
    """Print one transaction's outcome; a failed receipt is an error."""
    data = outcome.to_json()
    if extra:
        data.update(extra)
    if outcome.status == "committed" and not outcome.ok:
        if as_json:
            print_json(data)
        fail(outcome.failure_message())
    if as_json:
        print_json(data)
        return
    rows: dict[str, Any] = {"transaction": outcome.tx_id.hex(), "status": outcome.status}
    if outcome.height is not None:
        rows["height"] = outcome.height
    if outcome.code is not None:
        rows["receipt"] = outcome.code
    for name, value in list((outcome.result or {}).items()) + list((extra or {}).items()):
        rows[name if name not in rows else f"result {name}"] = value
    print_mapping(title, rows)


def finish_many(outcomes: Sequence[TxOutcome], as_json: bool, title: str,
                labels: Sequence[str], label_name: str, result_field: str | None = None) -> None:
    failed = [o for o in outcomes if o.status == "committed" and not o.ok]
    if as_json:
        print_json({"transactions": [dict(o.to_json(), **{label_name: label})
                                     for o, label in zip(outcomes, labels)],
                    "failed": len(failed)})
    else:
        columns = [label_name, "tx", "height", "receipt"] + ([result_field] if result_field else [])
        rows = [(label, o.tx_id.hex()[:16] + "…", o.height, o.code or o.status)
                + ((result_value(o, result_field),) if result_field else ())
                for o, label in zip(outcomes, labels)]
        if len(rows) > MAX_BATCH_ROWS_SHOWN:
            # A long batch shows its failures and its first rows; the rest are summed up.
            shown = [row for row, o in zip(rows, outcomes) if o in failed][:MAX_BATCH_ROWS_SHOWN]
            shown = shown or rows[:MAX_BATCH_ROWS_SHOWN]
            rows = shown + [(f"… {len(rows) - len(shown)} more",) + ("",) * (len(columns) - 1)]
        print_rows(title, columns, rows)
        heights = sorted({o.height for o in outcomes if o.height is not None})
        if heights:
            stdout_console.print(f"{len(outcomes) - len(failed)} of {len(outcomes)} ok, "
                                 f"committed at height {heights[0]}"
                                 + (f"–{heights[-1]}" if len(heights) > 1 else ""))
    if failed:
        fail(f"{len(failed)} of {len(outcomes)} transactions failed; first: "
             f"{failed[0].failure_message()}")


def query_value(client: Client, path: str) -> Any:
    return client.state(path)["value"]


# --- members ----------------------------------------------------------------------------------

@click.group("member", cls=HuzhuGroup)
def member_group() -> None:
    """Enroll members, record payments, exits, juror qualification; show a member."""


registrar_secret_option = click.option(
    "--registrar-secret", "secret_path", type=click.Path(dir_okay=False),
    help=f"The registrar's identity secret file (default: the --key file's name + "
         f"{identity.SECRET_FILE_SUFFIX}; made on first use).")


def _registrar_secrets(secret_path: str | None, key: str | None,
                       create: bool) -> tuple[identity.RegistrarSecrets, Path]:
    path = Path(secret_path) if secret_path else identity.secret_file_for(_key_path(key))
    try:
        if create:
            return identity.RegistrarSecrets.load_or_create(path), path
        if not path.exists():
            fail(f"{path} does not exist; it is made by the first enrollment")
        return identity.RegistrarSecrets.load(path), path
    except identity.IdentityError as exc:
        fail(str(exc))
        raise AssertionError from None  # unreachable


def _identity_body(registrar: identity.RegistrarSecrets, tx_sender: TxSender,
                   national_id: str) -> dict:
    """The enroll body's identity fields, after checking the person holds no active
    membership under a retired secret (the chain only sees commitments under one key)."""
    try:
        committed = registrar.commitment(national_id)
        retired = registrar.retired_commitments(national_id)
    except identity.IdentityError as exc:
        fail(str(exc))
        raise AssertionError from None  # unreachable
    for key_id, old_commitment in retired:
        try:
            tx_sender.client.state(f"state/{(IDENTITY_INDEX_PREFIX + old_commitment).hex()}")
        except ClientError as exc:
            if exc.code == "not_found":
                continue
            raise
        fail(f"this person already has an active membership (committed under retired "
             f"identity secret {key_id}); not sent")
    return {"identity": committed, "identity_key_id": registrar.current}


@member_group.command("enroll")
@click.option("--member", "member_key", metavar="KEYFILE|PUBKEY",
              help="The new member's key file or public key (hex).")
@click.option("--national-id", help="The person's national id; only its keyed hash (HMAC "
                                    "under the registrar's secret) goes on chain.")
@click.option("--identity", "identity_hex", metavar="HEX",
              help="A ready identity commitment (HMAC-SHA256 under the registrar's secret).")
@click.option("--birth", "birth", metavar="DATE", help="Birth date, YYYY-MM-DD.")
@click.option("--batch", "batch", type=click.Path(exists=True, dir_okay=False),
              help="CSV with columns member,national_id,birth: enroll every row.")
@registrar_secret_option
@tx_options
def member_enroll(member_key: str | None, national_id: str | None, identity_hex: str | None,
                  birth: str | None, batch: str | None, secret_path: str | None,
                  node: str | None, key: str | None, no_wait: bool, as_json: bool) -> None:
    """Enroll a member (signed by the registrar). The same person always gets the same
    commitment, so the chain refuses a second active membership."""
    tx_sender = sender(node, key)
    if batch:
        registrar, _ = _registrar_secrets(secret_path, key, create=True)
        bodies, labels = [], []
        for row in _read_csv(batch, ("member", "national_id", "birth")):
            public_key = parse_public_key(row["member"])
            bodies.append({"public_key": public_key, "birth_ms": parse_time_ms(row["birth"]),
                           **_identity_body(registrar, tx_sender, row["national_id"])})
            labels.append(member_id_of(public_key).hex())
        outcomes = tx_sender.send_many("member.enroll", bodies, wait=not no_wait)
        finish_many(outcomes, as_json, f"enrolled {len(outcomes)} members", labels, "member_id")
        return
    if not member_key or not birth:
        fail("give --member and --birth (or --batch FILE)")
    public_key = parse_public_key(member_key)
    body: dict[str, Any] = {"public_key": public_key, "birth_ms": parse_time_ms(birth)}
    if identity_hex:
        body["identity"] = parse_hex(identity_hex, 32, "identity commitment")
    elif national_id:
        registrar, _ = _registrar_secrets(secret_path, key, create=True)
        body.update(_identity_body(registrar, tx_sender, national_id))
    else:
        fail("give --national-id (the commitment is computed here) or --identity HEX")
    outcome = tx_sender.send("member.enroll", body, wait=not no_wait)
    extra = {"member_id": member_id_of(public_key).hex(), "identity": body["identity"].hex(),
             "identity_key_id": body.get("identity_key_id")}
    finish(outcome, as_json, "member enrolled", extra)


@member_group.command("rotate-identity-secret", cls=HuzhuCommand)
@registrar_secret_option
@key_option
@json_option
@handle_errors
def member_rotate_identity_secret(secret_path: str | None, key: str | None,
                                  as_json: bool) -> None:
    """Start a new registrar identity secret; the old ones are kept (retired) so that a person
    enrolled under them is still found before a new enrollment is signed."""
    registrar, path = _registrar_secrets(secret_path, key, create=False)
    try:
        key_id = registrar.rotate()
    except identity.IdentityError as exc:
        fail(str(exc))
    registrar.save(path)
    retired = sorted(k for k in registrar.by_key_id if k != key_id)
    output({"identity_key_id": key_id, "retired": retired, "file": str(path)}, as_json,
           "registrar identity secret rotated")


def _read_csv(path: str, columns: Sequence[str]) -> list[dict]:
    import csv

    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            fail(f"{path} lacks column(s) {', '.join(missing)}")
        rows = [row for row in reader]
    if not rows:
        fail(f"{path} has no rows")
    return rows


@member_group.command("deposit")
@click.argument("members", nargs=-1, required=True, metavar="MEMBER...")
@click.option("--amount", "amount", required=True, metavar="YUAN",
              help="Amount credited to each member, in yuan (e.g. 20 or 19.99).")
@click.option("--reference", help="Payment reference (unique; default: random). One member only.")
@tx_options
def member_deposit(members: tuple[str, ...], amount: str, reference: str | None,
                   node: str | None, key: str | None, no_wait: bool, as_json: bool) -> None:
    """Record payments into members' plan balances (signed by the treasurer)."""
    if reference and len(members) > 1:
        fail("--reference names one payment; give one member with it")
    amount_fen = parse_amount_fen(amount)
    member_ids = [parse_member(m) for m in members]
    bodies = [{"member_id": member_id, "amount_fen": amount_fen,
               "reference": reference or f"pay-{secrets.token_hex(12)}"}
              for member_id in member_ids]
    tx_sender = sender(node, key)
    if len(bodies) == 1:
        finish(tx_sender.send("member.deposit", bodies[0], wait=not no_wait), as_json,
               "deposit recorded", {"member_id": member_ids[0].hex(), "amount_fen": amount_fen})
        return
    outcomes = tx_sender.send_many("member.deposit", bodies, wait=not no_wait)
    finish_many(outcomes, as_json, f"{len(outcomes)} deposits of {format_fen(amount_fen)}",
                [m.hex() for m in member_ids], "member_id")


@member_group.command("exit")
@tx_options
def member_exit(node: str | None, key: str | None, no_wait: bool, as_json: bool) -> None:
    """Leave the plan (signed by the member). No refund; published shares are still owed."""
    tx_sender = sender(node, key)
    finish(tx_sender.send("member.exit", {}, wait=not no_wait), as_json, "membership ended",
           {"member_id": member_id_of(tx_sender.key.public_key).hex()})


@member_group.command("qualify-juror")
@click.argument("members", nargs=-1, required=True, metavar="MEMBER...")
@tx_options
def member_qualify_juror(members: tuple[str, ...], node: str | None, key: str | None,
                         no_wait: bool, as_json: bool) -> None:
    """Record that members passed the juror exam (signed by the registrar)."""
    member_ids = [parse_member(m) for m in members]
    tx_sender = sender(node, key)
    outcomes = tx_sender.send_many("member.qualify_juror",
                                   [{"member_id": m} for m in member_ids], wait=not no_wait)
    if len(outcomes) == 1:
        finish(outcomes[0], as_json, "juror qualified", {"member_id": member_ids[0].hex()})
        return
    finish_many(outcomes, as_json, f"{len(outcomes)} jurors qualified",
                [m.hex() for m in member_ids], "member_id")


@member_group.command("show")
@click.argument("member", metavar="MEMBER")
@view_options
def member_show(member: str, node: str | None, as_json: bool) -> None:
    """Show a member (MEMBER: key file, public key or member id)."""
    value = query_value(make_client(node), f"member/{parse_member(member).hex()}")
    if as_json:
        print_json(value)
        return
    for name in ("enrolled_ms", "end_ms", "birth_ms", "age_out_ms", "juror_since_ms",
                 "arrears_since_ms", "grace_due_ms"):
        if name in value:
            value[name] = format_time_ms(value[name])
    for name in list(value):
        if name.endswith("_fen") and not name.endswith("index_fen"):
            value[name] = format_fen(value[name])
    print_mapping(f"member {value.get('member_id')}", value)


# --- evidence ---------------------------------------------------------------------------------

@click.group("evidence", cls=HuzhuGroup)
def evidence_group() -> None:
    """Anchor document digests for a claim; prove later that a file was anchored."""


@evidence_group.command("digest")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@json_option
@handle_errors
def evidence_digest(files: tuple[str, ...], as_json: bool) -> None:
    """Print each file's SHA-256 and the documents' Merkle root (what claim submit uses)."""
    from client.evidence import evidence_root, file_digest

    digests = [file_digest(path) for path in files]
    root = evidence_root(digests)
    if as_json:
        print_json({"files": [{"file": f, "digest": d.hex()} for f, d in zip(files, digests)],
                    "root": root.hex()})
        return
    print_rows("evidence digests", ("file", "sha256"), zip(files, (d.hex() for d in digests)))
    stdout_console.print(f"root {root.hex()}")


@evidence_group.command("anchor")
@click.argument("files", nargs=-1, required=True, metavar="[KIND:]FILE...")
@click.option("--claim", "claim_id", required=True, type=click.IntRange(min=1))
@click.option("--kind", "default_kind", type=click.Choice(DOCUMENT_KINDS), default="other",
              show_default=True, help="Kind of the files given without KIND:.")
@tx_options
def evidence_anchor(files: tuple[str, ...], claim_id: int, default_kind: str,
                    node: str | None, key: str | None, no_wait: bool, as_json: bool) -> None:
    """Anchor the SHA-256 digests of FILEs for a claim; the files stay here."""
    from client.evidence import documents_body

    documents = documents_body(parse_documents(files, default_kind))
    outcome = sender(node, key).send("evidence.anchor",
                                     {"claim_id": claim_id, "documents": documents},
                                     wait=not no_wait)
    finish(outcome, as_json, f"evidence anchored for claim {claim_id}",
           {"documents": len(documents)})


@evidence_group.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--claim", "claim_id", required=True, type=click.IntRange(min=1))
@click.option("--genesis", "genesis_path", type=click.Path(exists=True, dir_okay=False),
              help="Trust this genesis file's validators (default: ask the node).")
@click.option("--wait", "wait_s", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Seconds to wait for the block that certifies the receipt.")
@view_options
def evidence_verify(file: str, claim_id: int, genesis_path: str | None, wait_s: float,
                    node: str | None, as_json: bool) -> None:
    """Prove that exactly FILE was anchored for the claim, and when.

    Exit 0 when every proof verifies against the validators' keys, 2 when the file was not
    anchored (a single changed byte gives another digest) or a proof fails, 1 on errors.
    """
    from client.audit import genesis_facts
    from client.evidence import EvidenceMismatch, file_digest, prove_file

    client = make_client(node)
    facts = genesis_facts(client, genesis_path)
    try:
        proof = prove_file(client, file, claim_id, facts.chain_id, facts.validators,
                           facts.pipeline_depth, wait_s=wait_s)
    except EvidenceMismatch as exc:
        if as_json:
            print_json({"verified": False, "file": file, "digest": file_digest(file).hex(),
                        "claim_id": claim_id, "code": exc.code, "message": exc.message})
        fail(f"not verified: {exc.message}", EXIT_MISMATCH)
        return
    if as_json:
        print_json(dict(proof.to_json(), file=file))
        return
    print_mapping("evidence verified", {
        "file": file,
        "sha256": proof.digest.hex(),
        "claim": proof.claim_id,
        "document": f"{proof.document_index + 1} of {proof.document_count} ({proof.document_kind}), "
                    f"inclusion proof of {len(proof.document_path)} hashes",
        "document root": proof.document_root.hex(),
        "anchored by": proof.signer.hex(),
        "transaction": f"{proof.tx_id.hex()} (#{proof.tx_index} in the block, proof of "
                       f"{len(proof.tx_path)} hashes to tx_root)",
        "block": f"{proof.height} {proof.block_hash.hex()}",
        "anchored at": format_time_ms(proof.time_ms),
        "certified by": f"validators {', '.join(map(str, proof.signers))}",
        "receipt": f"ok, certified by results_hash at height {proof.receipt_height}",
    })


# --- claims -----------------------------------------------------------------------------------

@click.group("claim", cls=HuzhuGroup)
def claim_group() -> None:
    """Submit, review, object to and appeal claims; show a claim."""


@claim_group.command("submit")
@click.option("--condition", required=True,
              help="Covered illness code from the params (or the accident code).")
@click.option("--diagnosed", "diagnosed", default="now-1s", show_default=True,
              metavar="DATE", help="Diagnosis date: YYYY-MM-DD, now, now-2d, or ms.")
@click.option("--amount", "amount", required=True, metavar="YUAN", help="Amount requested.")
@click.option("--evidence", "evidence_files", multiple=True, metavar="FILE",
              help="Evidence files: their digests' root goes on chain (repeatable).")
@click.option("--evidence-root", "evidence_root_hex", metavar="HEX")
@tx_options
def claim_submit(condition: str, diagnosed: str, amount: str, evidence_files: tuple[str, ...],
                 evidence_root_hex: str | None, node: str | None, key: str | None,
                 no_wait: bool, as_json: bool) -> None:
    """File a claim (signed by the member). Anchor the files next with evidence anchor."""
    from client.evidence import evidence_root, file_digest

    if evidence_files and evidence_root_hex:
        fail("give --evidence FILE... or --evidence-root, not both")
    if evidence_files:
        root = evidence_root([file_digest(path) for path in evidence_files])
    elif evidence_root_hex:
        root = parse_hex(evidence_root_hex, 32, "evidence root")
    else:
        fail("give the evidence: --evidence FILE... (or --evidence-root HEX)")
    body = {"condition": condition, "diagnosis_ms": parse_time_ms(diagnosed),
            "amount_fen": parse_amount_fen(amount), "evidence_root": root}
    outcome = sender(node, key).send("claim.submit", body, wait=not no_wait)
    finish(outcome, as_json, "claim submitted", {"evidence_root": root.hex()})
    if not as_json and result_value(outcome, "status") == "closed":
        stdout_console.print("the diagnosis falls in the waiting period: the claim is not "
                             "covered and the membership has ended")


@claim_group.command("review")
@click.argument("claim_id", type=click.IntRange(min=1))
@click.option("--approve", "approve_amount", metavar="YUAN", help="Approve this amount.")
@click.option("--reject", "reject_reason", type=click.Choice(REJECT_REASONS),
              help="Reject with this reason.")
@tx_options
def claim_review(claim_id: int, approve_amount: str | None, reject_reason: str | None,
                 node: str | None, key: str | None, no_wait: bool, as_json: bool) -> None:
    """Approve (then public notice) or reject (then appeal window) a claim (reviewer)."""
    if bool(approve_amount) == bool(reject_reason):
        fail("give exactly one of --approve YUAN or --reject REASON")
    if approve_amount:
        body = {"claim_id": claim_id, "decision": "approve",
                "amount_fen": parse_amount_fen(approve_amount)}
    else:
        body = {"claim_id": claim_id, "decision": "reject", "reason": reject_reason}
    finish(sender(node, key).send("claim.review", body, wait=not no_wait), as_json,
           f"claim {claim_id} reviewed")


@claim_group.command("object")
@click.argument("claim_id", type=click.IntRange(min=1))
@click.option("--reason", required=True, type=click.Choice(OBJECTION_REASONS))
@click.option("--evidence", "evidence_file", type=click.Path(exists=True, dir_okay=False),
              help="A file supporting the objection (its digest goes on chain).")
@click.option("--evidence-digest", "digest_hex", metavar="HEX")
@tx_options
def claim_object(claim_id: int, reason: str, evidence_file: str | None, digest_hex: str | None,
                 node: str | None, key: str | None, no_wait: bool, as_json: bool) -> None:
    """Object to a claim during its public notice (another member); it goes to a jury."""
    from client.evidence import file_digest

    if bool(evidence_file) == bool(digest_hex):
        fail("give exactly one of --evidence FILE or --evidence-digest HEX")
    digest = file_digest(evidence_file) if evidence_file else parse_hex(digest_hex or "", 32,
                                                                        "evidence digest")
    body = {"claim_id": claim_id, "reason": reason, "evidence_digest": digest}
    finish(sender(node, key).send("claim.object", body, wait=not no_wait), as_json,
           f"objection to claim {claim_id}")


@claim_group.command("appeal")
@click.argument("claim_id", type=click.IntRange(min=1))
@tx_options
def claim_appeal(claim_id: int, node: str | None, key: str | None, no_wait: bool,
                 as_json: bool) -> None:
    """Appeal a rejected claim (the claimant); a jury is drawn at once."""
    finish(sender(node, key).send("claim.appeal", {"claim_id": claim_id}, wait=not no_wait),
           as_json, f"claim {claim_id} appealed")


@claim_group.command("show")
@click.argument("claim_id", type=click.IntRange(min=1))
@view_options
def claim_show(claim_id: int, node: str | None, as_json: bool) -> None:
    """Show a claim with its evidence, objections, jury and history."""
    value = query_value(make_client(node), f"claim/{claim_id}")
    if as_json:
        print_json(value)
        return
    summary = {name: value.get(name) for name in (
        "claim_id", "member_id", "status", "outcome", "condition")}
    summary["diagnosed"] = format_time_ms(value.get("diagnosis_ms"))
    summary["requested"] = format_fen(value.get("requested_fen"))
    summary["approved"] = format_fen(value.get("approved_fen"))
    summary["paid (net)"] = format_fen(value.get("paid_net_fen"))
    summary["notice ends"] = format_time_ms(value.get("notice_end_ms"))
    summary["period"] = value.get("period")
    summary["evidence_root"] = value.get("evidence_root")
    summary["objections"] = len(value.get("objections") or [])
    jury = value.get("jury")
    if jury:
        summary["jury"] = (f"round {jury['round']} ({jury['jurors']} jurors): "
                           f"{jury['commits']} committed, {jury['reveals']} revealed, "
                           f"outcome {jury['outcome']}")
    print_mapping(f"claim {claim_id}", summary)
    evidence = value.get("evidence") or []
    if evidence:
        print_rows("evidence", ("anchor", "height", "time", "documents", "root"),
                   [(a["number"], a["height"], format_time_ms(a["time_ms"]),
                     ", ".join(a["kinds"]), a["root"]) for a in evidence])
    reused = value.get("reused_documents") or []
    if reused:
        # The warning a reviewer and objectors must not miss: one document, two claims.
        print_rows(f"documents also anchored for other claims "
                   f"({value.get('reused_documents_total', len(reused))})",
                   ("notice", "claim", "digest"),
                   [(item["notice"], item["claim_id"], item["digest"]) for item in reused])
    history = value.get("history") or []
    if history:
        print_rows("history", ("time", "event"),
                   [(format_time_ms(h["time_ms"]), h["event"]) for h in history])


# --- jury -------------------------------------------------------------------------------------

@click.group("jury", cls=HuzhuGroup)
def jury_group() -> None:
    """Commit and reveal a juror's vote (the salt is kept for you); show a jury."""


def salt_file_for(key_path: str) -> Path:
    return Path(str(key_path) + SALT_FILE_SUFFIX)


def _load_salts(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError:
        fail(f"{path} is not valid JSON; it holds your jury salts, fix or move it")
    if not isinstance(data, dict):
        fail(f"{path} is not a jury salt file")
    return data


def _save_salts(path: Path, salts: dict) -> None:
    # Written before the commitment is sent: losing the salt would make the vote unrevealable.
    identity.write_private_json(path, salts)


def vote_commitment(vote: str, salt: bytes) -> bytes:
    """SHA-256(vote || salt), as the plan checks it at reveal (contracts.jury)."""
    return sha256(vote.encode() + salt)


def _key_path(key: str | None) -> str:
    import os

    from client.cli_common import KEY_ENV

    path = key or os.environ.get(KEY_ENV)
    if not path:
        fail(f"no key given: pass --key FILE or set {KEY_ENV}")
    return str(path)


@jury_group.command("commit")
@click.argument("claim_id", type=click.IntRange(min=1))
@click.option("--vote", required=True, type=click.Choice(VOTES))
@tx_options
def jury_commit(claim_id: int, vote: str, node: str | None, key: str | None, no_wait: bool,
                as_json: bool) -> None:
    """Commit a sealed vote. The vote and a fresh salt are saved next to the key file
    (KEY.jury.json) so that `jury reveal` can open it later."""
    key_path = _key_path(key)
    tx_sender = sender(node, key_path)
    jury = query_value(tx_sender.client, f"jury/{claim_id}")
    slot = f"{tx_sender.chain_id}/{claim_id}/{jury.get('round')}"
    salts_path = salt_file_for(key_path)
    salts = _load_salts(salts_path)
    salt = secrets.token_bytes(SALT_BYTES)
    salts[slot] = {"vote": vote, "salt": salt.hex()}
    _save_salts(salts_path, salts)
    outcome = tx_sender.send("jury.commit", {"claim_id": claim_id,
                                             "commitment": vote_commitment(vote, salt)},
                             wait=not no_wait)
    finish(outcome, as_json, f"vote committed for claim {claim_id}",
           {"round": jury.get("round"), "salt_file": str(salts_path)})


@jury_group.command("reveal")
@click.argument("claim_id", type=click.IntRange(min=1))
@tx_options
def jury_reveal(claim_id: int, node: str | None, key: str | None, no_wait: bool,
                as_json: bool) -> None:
    """Reveal the vote committed earlier with this key (read from KEY.jury.json)."""
    key_path = _key_path(key)
    tx_sender = sender(node, key_path)
    jury = query_value(tx_sender.client, f"jury/{claim_id}")
    slot = f"{tx_sender.chain_id}/{claim_id}/{jury.get('round')}"
    saved = _load_salts(salt_file_for(key_path)).get(slot)
    if not isinstance(saved, dict):
        fail(f"no committed vote for claim {claim_id} round {jury.get('round')} in "
             f"{salt_file_for(key_path)}")
    body = {"claim_id": claim_id, "vote": saved["vote"],
            "salt": parse_hex(saved["salt"], SALT_BYTES, "saved salt")}
    finish(tx_sender.send("jury.reveal", body, wait=not no_wait), as_json,
           f"vote revealed for claim {claim_id}", {"vote": saved["vote"]})


@jury_group.command("show")
@click.argument("claim_id", type=click.IntRange(min=1))
@view_options
def jury_show(claim_id: int, node: str | None, as_json: bool) -> None:
    """Show a claim's jury: seats, commits, reveals, outcome."""
    value = query_value(make_client(node), f"jury/{claim_id}")
    if as_json:
        print_json(value)
        return
    seats = value.pop("seats", [])
    value.pop("jurors", None)
    for name in ("opened_ms", "commit_end_ms", "reveal_end_ms"):
        value[name] = format_time_ms(value.get(name))
    print_mapping(f"jury of claim {claim_id}", value)
    print_rows("seats", ("juror", "committed", "vote"),
               [(s["member_id"], s["committed"], s["vote"]) for s in seats])


# --- governance -------------------------------------------------------------------------------

@click.group("gov", cls=HuzhuGroup)
def gov_group() -> None:
    """Propose and approve parameter and role changes (consortium orgs, >2/3 to apply)."""


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


@gov_group.command("propose")
@click.option("--set-param", "set_params", metavar="NAME=VALUE", multiple=True,
              help="Change a parameter (VALUE is JSON: 3, or [...]).")
@click.option("--grant-role", "grant_roles", metavar="ROLE=PUBKEY|KEYFILE", multiple=True)
@click.option("--revoke-role", "revoke_roles", metavar="ROLE=PUBKEY|KEYFILE", multiple=True)
@click.option("--set-org-key", "set_org_keys", metavar="ORG=PUBKEY|KEYFILE", multiple=True)
@tx_options
def gov_propose(set_params: tuple[str, ...], grant_roles: tuple[str, ...],
                revoke_roles: tuple[str, ...], set_org_keys: tuple[str, ...], node: str | None,
                key: str | None, no_wait: bool, as_json: bool) -> None:
    """Open proposals, one per option given (signed by an org's governance key, which
    counts as that org's approval). Each takes effect once more than 2/3 of orgs approve."""
    given = [("set_param", text) for text in set_params]
    given += [("grant_role", text) for text in grant_roles]
    given += [("revoke_role", text) for text in revoke_roles]
    given += [("set_org_key", text) for text in set_org_keys]
    if not given:
        fail("give --set-param, --grant-role, --revoke-role or --set-org-key")
    bodies = [_proposal_body(action, text) for action, text in given]
    tx_sender = sender(node, key)
    if len(bodies) == 1:
        finish(tx_sender.send("gov.propose", bodies[0], wait=not no_wait), as_json,
               "proposal opened")
        return
    outcomes = tx_sender.send_many("gov.propose", bodies, wait=not no_wait)
    finish_many(outcomes, as_json, f"{len(outcomes)} proposals opened",
                [text for _, text in given], "change", result_field="proposal_id")


def _proposal_body(action: str, text: str) -> dict:
    left, sep, right = text.partition("=")
    if not sep or not left or not right:
        fail(f"--{action.replace('_', '-')} takes NAME=VALUE")
    if action == "set_param":
        return {"action": action, "name": left, "value": _parse_value(right)}
    if action == "set_org_key":
        return {"action": action, "org": left, "public_key": parse_public_key(right)}
    if left not in ROLES:
        fail(f"roles are {', '.join(ROLES)}")
    return {"action": action, "role": left, "public_key": parse_public_key(right)}


@gov_group.command("approve")
@click.argument("proposal_ids", nargs=-1, required=True, type=click.IntRange(min=1),
                metavar="PROPOSAL_ID...")
@tx_options
def gov_approve(proposal_ids: tuple[int, ...], node: str | None, key: str | None,
                no_wait: bool, as_json: bool) -> None:
    """Approve proposals (another org's governance key)."""
    tx_sender = sender(node, key)
    bodies = [{"proposal_id": proposal_id} for proposal_id in proposal_ids]
    if len(bodies) == 1:
        finish(tx_sender.send("gov.approve", bodies[0], wait=not no_wait), as_json,
               f"proposal {proposal_ids[0]} approved")
        return
    outcomes = tx_sender.send_many("gov.approve", bodies, wait=not no_wait)
    finish_many(outcomes, as_json, f"{len(outcomes)} proposals approved",
                [str(proposal_id) for proposal_id in proposal_ids], "proposal",
                result_field="status")


@gov_group.command("show")
@click.argument("proposal_id", type=click.IntRange(min=1))
@view_options
def gov_show(proposal_id: int, node: str | None, as_json: bool) -> None:
    """Show a proposal: its action, approvals and status."""
    proposal = query_value(make_client(node), f"proposal/{proposal_id}")
    if not as_json:
        for name in ("created_ms", "expires_ms", "closed_ms"):
            proposal[name] = format_time_ms(proposal.get(name))
    output(proposal, as_json, f"proposal {proposal_id}")


@gov_group.command("params")
@view_options
def gov_params(node: str | None, as_json: bool) -> None:
    """Show the plan's current parameters."""
    value = query_value(make_client(node), "params")
    if not as_json:
        value["conditions"] = f"{len(value.get('conditions') or [])} covered conditions"
    output(value, as_json, "plan parameters")


# --- settlements ------------------------------------------------------------------------------

@click.group("settlement", cls=HuzhuGroup)
def settlement_group() -> None:
    """Show settlements (cost sharing per period) and the plan's totals."""


@settlement_group.command("show")
@click.argument("period", default="latest")
@view_options
def settlement_show(period: str, node: str | None, as_json: bool) -> None:
    """Show one settlement period (default: the latest published)."""
    client = make_client(node)
    if period == "latest":
        totals = query_value(client, "plan/totals")
        number = totals["next_period"] - 1
        if number < 1:
            fail("no settlement has been published yet")
        period = str(number)
    value = query_value(client, f"settlement/{period}")
    if as_json:
        print_json(value)
        return
    value["boundary_ms"] = format_time_ms(value.get("boundary_ms"))
    for name in list(value):
        if name.endswith("_fen") and name != "cum_index_fen":
            value[name] = format_fen(value[name])
    print_mapping(f"settlement {period}", value)


@settlement_group.command("totals")
@view_options
def settlement_totals(node: str | None, as_json: bool) -> None:
    """Plan-wide totals and whether conservation holds."""
    output(query_value(make_client(node), "plan/totals"), as_json, "plan totals")


# --- chain views ------------------------------------------------------------------------------

@click.group("tx", cls=HuzhuGroup)
def tx_group() -> None:
    """Transactions."""


@tx_group.command("status")
@click.argument("tx_id")
@view_options
def tx_status(tx_id: str, node: str | None, as_json: bool) -> None:
    """A transaction's status, receipt, block and inclusion proof."""
    answer = make_client(node).tx(parse_hex(tx_id, 32, "transaction id"))
    if as_json:
        print_json(answer)
        return
    rows = {"transaction": answer.get("tx_id"), "status": answer.get("status")}
    if answer.get("status") == "committed":
        receipt = answer.get("receipt") or {}
        certificate = answer.get("certificate") or {}
        proof = answer.get("proof") or {}
        rows.update({"height": answer.get("height"), "index": answer.get("index"),
                     "block": answer.get("block_hash"), "receipt": receipt.get("code"),
                     "result": receipt.get("result"),
                     "inclusion proof": f"{len(proof.get('path', []))} hashes to tx_root "
                                        f"{proof.get('tx_root')}",
                     "certified by": certificate.get("signers")})
    print_mapping("transaction", rows)


@click.group("block", cls=HuzhuGroup)
def block_group() -> None:
    """Blocks."""


@block_group.command("show")
@click.argument("height", default="latest")
@view_options
def block_show(height: str, node: str | None, as_json: bool) -> None:
    """A committed block: header, certificate, transactions with their receipts."""
    if height != "latest" and not codec.parse_decimal(height):
        fail("HEIGHT is a positive integer or 'latest'")
    answer = make_client(node).block(height, full=True)
    if as_json:
        answer.pop("raw", None)
        print_json(answer)
        return
    header = dict(answer.get("header") or {})
    header["time"] = format_time_ms(header.pop("timestamp_ms", None))
    header["block_hash"] = answer.get("block_hash")
    certificate = answer.get("certificate") or {}
    header["certified by"] = certificate.get("signers")
    print_mapping(f"block {answer.get('height')}", header)
    txs = answer.get("txs") or []
    receipts = answer.get("receipts") or [None] * len(txs)
    if txs:
        print_rows("transactions", ("#", "tx", "kind", "sender", "nonce", "receipt"),
                   [(i, tx["tx_id"][:16] + "…", tx["kind"], tx["sender"][:16] + "…",
                     tx["nonce"], (r or {}).get("code")) for i, (tx, r) in
                    enumerate(zip(txs, receipts))])


@click.command("status", cls=HuzhuCommand)
@view_options
def status_command(node: str | None, as_json: bool) -> None:
    """The node's status and the plan's totals."""
    client = make_client(node)
    status = client.status()
    try:
        totals = query_value(client, "plan/totals")
    except ClientError:  # a kv testnet has no plan
        totals = None
    if as_json:
        print_json({"node": status, "plan": totals})
        return
    peers = status.get("peers") or []
    print_mapping(f"node {status.get('name')}", {
        "chain": status.get("chain_id"), "height": status.get("height"),
        "view": status.get("view"), "primary": status.get("primary"),
        "validators": status.get("validators"),
        "peers connected": f"{status.get('peers_connected')} of {len(peers)}",
        "mempool": status.get("mempool_txs"), "ready": status.get("ready"),
        "latest block": status.get("latest_block_hash")})
    if totals:
        print_mapping("plan", {
            "active members": totals.get("active_members"),
            "enrolled": totals.get("enrolled_total"),
            "claims": totals.get("claims_total"),
            "next settlement period": totals.get("next_period"),
            "next boundary": format_time_ms(totals.get("next_boundary_ms")),
            "deposits": format_fen(totals.get("deposits_fen")),
            "booked for claims": format_fen(totals.get("payouts_fen")),
            "awaiting payment": format_fen(totals.get("payouts_unpaid_fen")),
            "fees": format_fen(totals.get("fees_fen")),
            "carry": format_fen(totals.get("carry_fen")),
            "conservation holds": totals.get("conservation_holds")})


def register(main: click.Group) -> None:
    """Add every client command group to the ``huzhu`` command."""
    from client.audit_cli import audit_command

    for command in (keys_group, member_group, evidence_group, claim_group, jury_group,
                    gov_group, settlement_group, tx_group, block_group, status_command,
                    audit_command):
        main.add_command(command)
