"""The plan's state records and typed access to them.

Each record is a slotted dataclass stored as the canonical encoding of its fields (a map), so
the state stays readable with nothing but the codec. ``PlanState`` wraps ``contracts.state``
with typed getters and setters; every handler and transition goes through it.

Member accounting follows DOMAIN.md's cumulative share index: ``Totals.cum_index_fen`` is the
sum of every share published so far, a member records the index when they joined (and when
they left), so what they owe is one subtraction and their balance one more.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from ledger import codec
from ledger.hashing import sha256

from contracts import layout
from contracts.genesis import Params, params_from_plain
from contracts.layout import Due
from contracts.state import State

MEMBER_ACTIVE = "active"
# Why a membership ended.
MEMBER_EXITED = "exited"
MEMBER_REMOVED_ARREARS = "removed_arrears"
MEMBER_AGED_OUT = "aged_out"
MEMBER_CLAIMED = "claimed"
MEMBER_WAITING_PERIOD = "waiting_period_claim"

CLAIM_SUBMITTED = "submitted"
CLAIM_NOTICE = "notice"  # approved, in public notice
CLAIM_REJECTED = "rejected"  # rejected, inside the appeal window
CLAIM_JURY = "jury"
CLAIM_APPROVED = "approved"  # final, to be paid at the next settlement
CLAIM_PAID = "paid"
CLAIM_CLOSED = "closed"  # final without payment
OPEN_CLAIM_STATES = (CLAIM_SUBMITTED, CLAIM_NOTICE, CLAIM_REJECTED, CLAIM_JURY)

PROPOSAL_OPEN = "open"
PROPOSAL_APPLIED = "applied"
PROPOSAL_EXPIRED = "expired"
PROPOSAL_FAILED = "failed"

MAX_HISTORY_EVENTS = 64
MAX_REUSED_RECORDED = 64  # reused documents listed on one claim; more are only counted


def member_id_of(public_key: bytes) -> bytes:
    """A member's id: the first 16 bytes of SHA-256 of their public key."""
    return sha256(public_key)[:layout.ID_BYTES]


R = TypeVar("R")
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


def encode_record(record: Any) -> bytes:
    return codec.encode({name: getattr(record, name) for name in _names(type(record))})


def decode_record(cls: type[R], raw: bytes) -> R:
    plain = codec.decode(raw)
    assert set(plain) == set(_names(cls)), f"stored {cls.__name__} has other fields"
    return cls(**plain)


@dataclass(slots=True)
class Totals:
    """Plan-wide counters; the conservation identity is checked over these."""

    cum_index_fen: int = 0  # sum of every published share
    active_members: int = 0
    enrolled_total: int = 0
    deposits_fen: int = 0  # credited by the treasurer
    shares_charged_fen: int = 0  # sum over periods of share x members: debited from members
    fees_fen: int = 0
    payouts_fen: int = 0  # claims booked by settlements
    # Booked by a settlement, not yet credited: a payment runs as its own transition and the
    # block budget may put it a block (or more) after the settlement.
    payouts_unpaid_fen: int = 0
    carry_fen: int = 0
    pending_payouts_fen: int = 0  # final claims waiting for the next settlement
    pending_claims: int = 0
    paid_net_fen: int = 0  # transferred to claimants after arrears deductions
    arrears_recovered_fen: int = 0  # claimants' unpaid shares deducted from payouts
    next_period: int = 1
    next_boundary_ms: int = 0
    last_settlement_ms: int = 0
    claims_total: int = 0
    juror_slots: int = 0
    proposals_total: int = 0
    removed_arrears: int = 0


@dataclass(slots=True)
class Member:
    member_id: bytes
    public_key: bytes
    identity: bytes
    birth_ms: int
    enrolled_ms: int
    age_out_ms: int
    tier_cap_fen: int
    join_index_fen: int
    deposits_fen: int = 0
    status: str = MEMBER_ACTIVE
    end_ms: int | None = None
    end_index_fen: int | None = None
    arrears_index_fen: int | None = None  # this member's key in the arrears index, if any
    arrears_since_ms: int | None = None
    grace_due_ms: int | None = None
    juror_slot: int | None = None
    juror_since_ms: int | None = None
    open_claim: int | None = None
    claims: list[int] = field(default_factory=list)
    identity_key_id: str | None = None  # which registrar secret made ``identity``
    # Conditions whose claim was finally rejected, as [condition, diagnosis_ms]: a new claim
    # for one of them would be an appeal past its deadline (bounded by the claims limit).
    rejected_conditions: list[list] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.status == MEMBER_ACTIVE

    def owed_fen(self, cum_index_fen: int) -> int:
        """Every share published while this member was in the plan."""
        end = self.end_index_fen if self.end_index_fen is not None else cum_index_fen
        return end - self.join_index_fen

    def balance_fen(self, cum_index_fen: int) -> int:
        return self.deposits_fen - self.owed_fen(cum_index_fen)

    def runout_index_fen(self) -> int:
        """The share index above which this member's deposits no longer cover their shares."""
        return self.join_index_fen + self.deposits_fen


@dataclass(slots=True)
class Claim:
    claim_id: int
    member_id: bytes
    condition: str
    diagnosis_ms: int
    requested_fen: int
    evidence_root: bytes
    submitted_ms: int
    submit_tx: bytes
    status: str = CLAIM_SUBMITTED
    approved_fen: int = 0
    review: dict | None = None
    notice_end_ms: int | None = None
    appeal_end_ms: int | None = None
    objections: list[dict] = field(default_factory=list)
    appealed: bool = False
    anchors: list[bytes] = field(default_factory=list)  # tx ids of evidence.anchor
    outcome: str | None = None
    final_ms: int | None = None
    period: int | None = None
    paid_net_fen: int = 0
    arrears_deducted_fen: int = 0
    history: list[dict] = field(default_factory=list)
    # Documents also anchored for another claim, for the reviewer and objectors to see:
    # {digest, claim_id, height, notice}, at most MAX_REUSED_RECORDED (then only counted).
    reused_documents: list[dict] = field(default_factory=list)
    reused_documents_total: int = 0

    def record_reuse(self, entry: dict) -> None:
        self.reused_documents_total += 1
        if len(self.reused_documents) < MAX_REUSED_RECORDED:
            self.reused_documents.append(entry)

    def record(self, time_ms: int, event: str) -> None:
        # Bounded: a claim has a fixed number of lifecycle steps, far below the limit.
        assert len(self.history) < MAX_HISTORY_EVENTS
        self.history.append({"event": event, "time_ms": time_ms})


@dataclass(slots=True)
class Anchor:
    claim_id: int
    number: int
    tx_id: bytes
    signer: bytes
    time_ms: int
    height: int
    digests: list[bytes]
    kinds: list[str]
    root: bytes


@dataclass(slots=True)
class Jury:
    claim_id: int
    origin: str  # "objection" or "appeal"
    round: int
    seed: bytes
    jurors: list[bytes]
    opened_ms: int
    commit_end_ms: int
    reveal_end_ms: int
    commits: int = 0
    reveals: int = 0
    pay_votes: int = 0
    rounds: list[dict] = field(default_factory=list)  # summaries of finished rounds
    outcome: str | None = None


@dataclass(slots=True)
class Seat:
    commitment: bytes | None = None
    vote: str | None = None


@dataclass(slots=True)
class Settlement:
    period: int
    boundary_ms: int
    payouts_fen: int
    claims: int
    fee_fen: int
    carry_in_fen: int
    total_fen: int
    members: int
    share_fen: int
    carry_fen: int
    cum_index_fen: int


@dataclass(slots=True)
class Proposal:
    proposal_id: int
    action: dict
    proposer: str
    approvals: list[str]
    status: str
    created_ms: int
    expires_ms: int
    closed_ms: int | None = None
    failure: str | None = None


@dataclass(slots=True)
class ChainInfo:
    chain_id: str
    genesis_time_ms: int
    org_count: int


@dataclass(slots=True)
class Clock:
    time_ms: int
    height: int


class PlanState:
    """Typed reads and writes of the plan's records over a journaled ``State``."""

    def __init__(self, state: State) -> None:
        self.state = state
        self._params_raw: bytes | None = None
        self._params: Params | None = None

    # parameters, chain, clock, totals ---------------------------------------------------

    def params(self) -> Params:
        raw = self.state.get(layout.PARAMS_KEY)
        assert raw is not None, "params are written at genesis"
        if raw != self._params_raw:
            # Parsing the condition list on every transaction would dominate; reparse only
            # when the stored bytes change (genesis or a governance decision).
            self._params = params_from_plain(codec.decode(raw))
            self._params_raw = raw
        assert self._params is not None
        return self._params

    def put_params(self, plain: dict) -> None:
        self.state.set(layout.PARAMS_KEY, codec.encode(plain))

    def chain(self) -> ChainInfo:
        raw = self.state.get(layout.CHAIN_KEY)
        assert raw is not None
        return decode_record(ChainInfo, raw)

    def clock(self) -> Clock | None:
        raw = self.state.get(layout.CLOCK_KEY)
        return None if raw is None else decode_record(Clock, raw)

    def put_clock(self, clock: Clock) -> None:
        self.state.set(layout.CLOCK_KEY, encode_record(clock))

    def totals(self) -> Totals:
        raw = self.state.get(layout.TOTALS_KEY)
        assert raw is not None
        return decode_record(Totals, raw)

    def put_totals(self, totals: Totals) -> None:
        self.state.set(layout.TOTALS_KEY, encode_record(totals))

    # roles, orgs, nonces ------------------------------------------------------------------

    def has_role(self, role: str, public_key: bytes) -> bool:
        return self.state.get(layout.role_key(role, public_key)) is not None

    def set_role(self, role: str, public_key: bytes, granted: bool) -> None:
        if granted:
            self.state.set(layout.role_key(role, public_key), b"\x01")
        else:
            self.state.delete(layout.role_key(role, public_key))

    def org_of(self, gov_key: bytes) -> str | None:
        raw = self.state.get(layout.gov_key_key(gov_key))
        return None if raw is None else raw.decode()

    def org_gov_key(self, name: str) -> bytes | None:
        return self.state.get(layout.org_key(name))

    def set_org_key(self, name: str, gov_key: bytes) -> None:
        old = self.org_gov_key(name)
        if old is not None:
            self.state.delete(layout.gov_key_key(old))
        self.state.set(layout.org_key(name), gov_key)
        self.state.set(layout.gov_key_key(gov_key), name.encode())

    def nonce(self, sender: bytes) -> int:
        raw = self.state.get(layout.nonce_key(sender))
        return 0 if raw is None else int.from_bytes(raw, "big")

    def set_nonce(self, sender: bytes, value: int) -> None:
        self.state.set(layout.nonce_key(sender), layout.be64(value))

    # members ---------------------------------------------------------------------------

    def member(self, member_id: bytes) -> Member | None:
        raw = self.state.get(layout.member_key(member_id))
        return None if raw is None else decode_record(Member, raw)

    def put_member(self, member: Member) -> None:
        self.state.set(layout.member_key(member.member_id), encode_record(member))

    def identity_holder(self, commitment: bytes) -> bytes | None:
        return self.state.get(layout.identity_key(commitment))

    def set_identity(self, commitment: bytes, member_id: bytes | None) -> None:
        if member_id is None:
            self.state.delete(layout.identity_key(commitment))
        else:
            self.state.set(layout.identity_key(commitment), member_id)

    def juror_at(self, slot: int) -> bytes | None:
        return self.state.get(layout.juror_slot_key(slot))

    def set_juror_at(self, slot: int, member_id: bytes | None) -> None:
        if member_id is None:
            self.state.delete(layout.juror_slot_key(slot))
        else:
            self.state.set(layout.juror_slot_key(slot), member_id)

    # claims, evidence, juries ----------------------------------------------------------

    def claim(self, claim_id: int) -> Claim | None:
        raw = self.state.get(layout.claim_key(claim_id))
        return None if raw is None else decode_record(Claim, raw)

    def put_claim(self, claim: Claim) -> None:
        self.state.set(layout.claim_key(claim.claim_id), encode_record(claim))

    def anchor(self, claim_id: int, number: int) -> Anchor | None:
        raw = self.state.get(layout.anchor_key(claim_id, number))
        return None if raw is None else decode_record(Anchor, raw)

    def put_anchor(self, anchor: Anchor) -> None:
        self.state.set(layout.anchor_key(anchor.claim_id, anchor.number), encode_record(anchor))

    def document_first_anchored(self, digest: bytes) -> tuple[int, int] | None:
        """(claim id, height) where ``digest`` was first anchored, or None."""
        raw = self.state.get(layout.document_key(digest))
        if raw is None:
            return None
        return int.from_bytes(raw[:8], "big"), int.from_bytes(raw[8:], "big")

    def set_document_anchored(self, digest: bytes, claim_id: int, height: int) -> None:
        self.state.set(layout.document_key(digest), layout.be64(claim_id) + layout.be64(height))

    def jury(self, claim_id: int) -> Jury | None:
        raw = self.state.get(layout.jury_key(claim_id))
        return None if raw is None else decode_record(Jury, raw)

    def put_jury(self, jury: Jury) -> None:
        self.state.set(layout.jury_key(jury.claim_id), encode_record(jury))

    def seat(self, claim_id: int, round_number: int, member_id: bytes) -> Seat | None:
        raw = self.state.get(layout.seat_key(claim_id, round_number, member_id))
        return None if raw is None else decode_record(Seat, raw)

    def put_seat(self, claim_id: int, round_number: int, member_id: bytes, seat: Seat) -> None:
        self.state.set(layout.seat_key(claim_id, round_number, member_id), encode_record(seat))

    # settlements, proposals ------------------------------------------------------------

    def settlement(self, period: int) -> Settlement | None:
        raw = self.state.get(layout.settlement_key(period))
        return None if raw is None else decode_record(Settlement, raw)

    def put_settlement(self, settlement: Settlement) -> None:
        self.state.set(layout.settlement_key(settlement.period), encode_record(settlement))

    def proposal(self, proposal_id: int) -> Proposal | None:
        raw = self.state.get(layout.proposal_key(proposal_id))
        return None if raw is None else decode_record(Proposal, raw)

    def put_proposal(self, proposal: Proposal) -> None:
        self.state.set(layout.proposal_key(proposal.proposal_id), encode_record(proposal))

    # the time queue and the arrears index ------------------------------------------------

    def enqueue(self, due_ms: int, kind: Due, ident: bytes) -> None:
        self.state.set(layout.queue_key(due_ms, kind, ident), b"\x01")

    def dequeue(self, due_ms: int, kind: Due, ident: bytes) -> None:
        key = layout.queue_key(due_ms, kind, ident)
        assert self.state.get(key) is not None, "dequeue of an item that is not queued"
        self.state.delete(key)

    def next_due(self, now_ms: int) -> tuple[int, Due, bytes] | None:
        entry = self.state.first(layout.QUEUE_PREFIX, layout.queue_stop(now_ms))
        return None if entry is None else layout.parse_queue_key(entry[0])

    def index_arrears(self, member: Member) -> None:
        """Put an active member in the arrears index at the point their deposits run out."""
        assert member.arrears_index_fen is None
        member.arrears_index_fen = member.runout_index_fen()
        self.state.set(layout.arrears_key(member.arrears_index_fen, member.member_id), b"\x01")

    def unindex_arrears(self, member: Member) -> None:
        if member.arrears_index_fen is not None:
            self.state.delete(layout.arrears_key(member.arrears_index_fen, member.member_id))
            member.arrears_index_fen = None

    def in_arrears_unflagged(self, cum_index_fen: int, limit: int) -> list[bytes]:
        """Up to ``limit`` members whose deposits ran out below ``cum_index_fen``."""
        found = []
        stop = layout.ARREARS_PREFIX + layout.be64(cum_index_fen)
        for key, _ in self.state.iterate(layout.ARREARS_PREFIX, stop):
            found.append(key[len(layout.ARREARS_PREFIX) + 8:])
            if len(found) >= limit:
                break
        return found
