"""Read-only views of the plan's state for ``PlanApp.query``.

Each view returns a JSON-friendly value (bytes as lowercase hex) and the state keys it was
read from, so ``PlanApp.query(path, prove=True)`` can attach a Merkle proof per key. Paths:
``params``, ``plan/totals``, ``member/<id hex>``, ``balance/<id hex>``, ``claim/<id>``,
``jury/<claim id>``, ``settlement/<period>``, ``proposal/<id>``, ``nonce/<public key hex>``,
``state/<key hex>``.
"""

from __future__ import annotations

from typing import Any

from ledger import codec
from ledger.application import QueryError
from ledger.keys import PUBLIC_KEY_BYTES

from contracts import layout
from contracts.records import PlanState, Totals
from contracts.settlement import conservation_holds

MAX_ID = 2**63 - 1


def plain(value: Any) -> Any:
    """A stored value made JSON-friendly: bytes become hex, dataclasses maps."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if hasattr(value, "__dataclass_fields__"):
        return {name: plain(getattr(value, name)) for name in value.__dataclass_fields__}
    return value


def _hex_arg(text: str, size: int | None = None) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise QueryError("bad_path", f"{text!r} is not hex") from None
    if (size is not None and len(raw) != size) or raw.hex() != text:
        raise QueryError("bad_path", f"expected {size or 'some'} bytes of lowercase hex")
    return raw


def _int_arg(text: str) -> int:
    value = codec.parse_decimal(text)
    if value is None:
        raise QueryError("bad_path", f"{text!r} is not a positive integer")
    if not 0 < value <= MAX_ID:
        raise QueryError("bad_path", f"{text!r} is out of range")
    return value


def _not_found(what: str) -> QueryError:
    return QueryError("not_found", f"no {what}")


def totals_view(plan: PlanState) -> tuple[dict, list[bytes]]:
    totals = plain(plan.totals())
    totals["conservation_holds"] = conservation_holds(totals)
    return totals, [layout.TOTALS_KEY]


def _balance(member: Any, totals: Totals) -> dict:
    balance = member.balance_fen(totals.cum_index_fen)
    return {"deposits_fen": member.deposits_fen, "owed_fen": member.owed_fen(totals.cum_index_fen),
            "balance_fen": balance, "arrears_fen": max(0, -balance),
            "cum_index_fen": totals.cum_index_fen}


def member_view(plan: PlanState, member_id_hex: str) -> tuple[dict, list[bytes]]:
    member_id = _hex_arg(member_id_hex, layout.ID_BYTES)
    member = plan.member(member_id)
    if member is None:
        raise _not_found("member")
    view = plain(member)
    view.update(_balance(member, plan.totals()))
    return view, [layout.member_key(member_id), layout.TOTALS_KEY]


def balance_view(plan: PlanState, member_id_hex: str) -> tuple[dict, list[bytes]]:
    member_id = _hex_arg(member_id_hex, layout.ID_BYTES)
    member = plan.member(member_id)
    if member is None:
        raise _not_found("member")
    view = {"member_id": member_id_hex, "status": member.status}
    view.update(_balance(member, plan.totals()))
    return view, [layout.member_key(member_id), layout.TOTALS_KEY]


def claim_view(plan: PlanState, claim_id_text: str) -> tuple[dict, list[bytes]]:
    claim_id = _int_arg(claim_id_text)
    claim = plan.claim(claim_id)
    if claim is None:
        raise _not_found("claim")
    keys = [layout.claim_key(claim_id)]
    view = plain(claim)
    anchors = []
    for number in range(len(claim.anchors)):
        anchor = plan.anchor(claim_id, number)
        assert anchor is not None
        anchors.append(plain(anchor))
        keys.append(layout.anchor_key(claim_id, number))
    view["anchor_tx_ids"] = view.pop("anchors")
    view["evidence"] = anchors
    jury = plan.jury(claim_id)
    view["jury"] = None
    if jury is not None:
        keys.append(layout.jury_key(claim_id))
        view["jury"] = {"round": jury.round, "origin": jury.origin, "jurors": len(jury.jurors),
                        "commit_end_ms": jury.commit_end_ms, "reveal_end_ms": jury.reveal_end_ms,
                        "commits": jury.commits, "reveals": jury.reveals,
                        "outcome": jury.outcome}
    return view, keys


def jury_view(plan: PlanState, claim_id_text: str) -> tuple[dict, list[bytes]]:
    claim_id = _int_arg(claim_id_text)
    jury = plan.jury(claim_id)
    if jury is None:
        raise _not_found("jury")
    view = plain(jury)
    seats = []
    for member_id in jury.jurors:
        seat = plan.seat(claim_id, jury.round, member_id)
        assert seat is not None
        seats.append({"member_id": member_id.hex(), "committed": seat.commitment is not None,
                      "vote": seat.vote})
    view["seats"] = seats
    return view, [layout.jury_key(claim_id)]


def settlement_view(plan: PlanState, period_text: str) -> tuple[dict, list[bytes]]:
    period = _int_arg(period_text)
    settlement = plan.settlement(period)
    if settlement is None:
        raise _not_found("settlement")
    return plain(settlement), [layout.settlement_key(period)]


def nonce_view(plan: PlanState, sender_hex: str) -> tuple[dict, list[bytes]]:
    sender = _hex_arg(sender_hex, PUBLIC_KEY_BYTES)
    return ({"sender": sender_hex, "next_nonce": plan.nonce(sender)},
            [layout.nonce_key(sender)])


def proposal_view(plan: PlanState, proposal_id_text: str) -> tuple[dict, list[bytes]]:
    proposal_id = _int_arg(proposal_id_text)
    proposal = plan.proposal(proposal_id)
    if proposal is None:
        raise _not_found("proposal")
    return plain(proposal), [layout.proposal_key(proposal_id)]


def params_view(plan: PlanState) -> tuple[dict, list[bytes]]:
    return plan.params().to_plain(), [layout.PARAMS_KEY]


def state_view(plan: PlanState, key_hex: str, prove: bool) -> tuple[dict, list[bytes]]:
    key = _hex_arg(key_hex)
    value = plan.state.get(key)
    if value is None and not prove:
        raise _not_found("state entry")  # with prove=True the answer is a proof of absence
    return {"key": key_hex, "value": None if value is None else value.hex()}, [key]


def view(plan: PlanState, path: str, prove: bool) -> tuple[Any, list[bytes]]:
    if not isinstance(path, str):
        raise QueryError("bad_path", "the path is a string")
    head, _, rest = path.partition("/")
    if path == "params":
        return params_view(plan)
    if path == "plan/totals":
        return totals_view(plan)
    handlers = {"member": member_view, "balance": balance_view, "claim": claim_view,
                "jury": jury_view, "settlement": settlement_view, "nonce": nonce_view,
                "proposal": proposal_view}
    if head in handlers and rest and "/" not in rest:
        return handlers[head](plan, rest)
    if head == "state" and rest and "/" not in rest:
        return state_view(plan, rest, prove)
    raise QueryError("bad_path", f"unknown query path {path!r}")

