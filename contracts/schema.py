"""The checks transaction bodies are built from: exact fields, exact types, bounds.

Each kind's body shape is a row of contracts.kinds (``plain_body({...})`` or ``one_of(...)``);
``kinds.validate_body(kind, body)`` returns the body unchanged or raises ``InvalidTransaction``
with code ``bad_body`` naming the field. Bodies are canonical msgpack maps, so public keys,
ids and digests are raw bytes, amounts and times are integers, choices are short strings.
Rules that need state (who may sign, which claim is open) are in contracts.kinds and the
handlers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ledger.hashing import HASH_BYTES
from ledger.keys import PUBLIC_KEY_BYTES

from contracts.genesis import MAX_AMOUNT_FEN, PARAM_NAMES
from contracts.layout import ID_BYTES
from contracts.reasons import reject

MAX_TIME_MS = 2**62  # far beyond any block time; birth dates may be negative (before 1970)
MAX_ID = 2**63 - 1
MAX_REFERENCE_CHARS = 64
MAX_CODE_CHARS = 16
MAX_NAME_CHARS = 64
MAX_KEY_ID_CHARS = 16
MAX_DOCUMENTS = 1_024  # hard ceiling; params.max_documents_per_anchor is the live limit

DOCUMENT_KINDS = ("diagnosis", "pathology", "imaging", "lab", "invoice", "discharge",
                  "prescription", "id", "objection", "other")
REVIEW_REJECT_REASONS = ("not_covered", "insufficient_evidence", "pre_existing_condition",
                         "misrepresentation", "waiting_period", "not_active_at_diagnosis",
                         "over_age", "other")
OBJECTION_REASONS = ("pre_existing_condition", "misrepresentation", "forged_evidence",
                     "not_covered", "other")
VOTES = ("pay", "reject")

Check = Callable[[Any, str], Any]


def _bad(field: str, what: str) -> Exception:
    return reject("bad_body", f"{field}: {what}")


def fixed_bytes(size: int) -> Check:
    def check(value: Any, field: str) -> bytes:
        if not isinstance(value, bytes) or len(value) != size:
            raise _bad(field, f"must be {size} bytes")
        return value
    return check


def integer(low: int, high: int) -> Check:
    def check(value: Any, field: str) -> int:
        if type(value) is not int or not low <= value <= high:
            raise _bad(field, f"must be an integer in [{low}, {high}]")
        return value
    return check


def choice(options: tuple[str, ...]) -> Check:
    def check(value: Any, field: str) -> str:
        if not isinstance(value, str) or value not in options:
            raise _bad(field, f"must be one of {list(options)}")
        return value
    return check


def text(max_chars: int) -> Check:
    def check(value: Any, field: str) -> str:
        if not isinstance(value, str) or not 0 < len(value) <= max_chars:
            raise _bad(field, f"must be a string of 1..{max_chars} characters")
        return value
    return check


def anything(value: Any, field: str) -> Any:
    """Checked by the handler (a parameter's value is validated with the whole set)."""
    return value


PUBLIC_KEY = fixed_bytes(PUBLIC_KEY_BYTES)
DIGEST = fixed_bytes(HASH_BYTES)
MEMBER_ID = fixed_bytes(ID_BYTES)
ID = integer(1, MAX_ID)
AMOUNT = integer(1, MAX_AMOUNT_FEN)


def documents(value: Any, field: str) -> list:
    if not isinstance(value, list) or not 0 < len(value) <= MAX_DOCUMENTS:
        raise _bad(field, f"must be a list of 1..{MAX_DOCUMENTS} documents")
    seen = set()
    for index, document in enumerate(value):
        _fields(document, {"digest": DIGEST, "kind": choice(DOCUMENT_KINDS)},
                f"{field}[{index}]")
        if document["digest"] in seen:
            raise _bad(field, "a digest appears twice")
        seen.add(document["digest"])
    return value


def _fields(body: Any, spec: dict[str, Check], where: str = "body",
            optional: dict[str, Check] | None = None) -> dict:
    """Exactly the fields of ``spec``, plus any of ``optional`` (added later, so that bodies
    signed before they existed stay valid)."""
    if not isinstance(body, dict):
        raise _bad(where, "must be a map")
    optional = optional or {}
    present = set(body) - set(optional)
    if present != set(spec):
        missing = sorted(set(spec) - present)
        extra = sorted(present - set(spec))
        raise _bad(where, f"fields must be exactly {sorted(spec)} (missing {missing}, "
                          f"unexpected {extra})")
    for name, check in (*spec.items(), *optional.items()):
        if name in body:
            check(body[name], f"{where}.{name}" if where != "body" else name)
    return body


def one_of(discriminator: str, shapes: dict[str, dict[str, Check]]) -> Callable[[Any], dict]:
    """A body whose exact fields depend on the value of one of them."""
    def check(body: Any) -> dict:
        if not isinstance(body, dict):
            raise _bad("body", "must be a map")
        shape = shapes.get(body.get(discriminator)) if isinstance(body.get(discriminator),
                                                                  str) else None
        if shape is None:
            raise _bad(discriminator, f"must be one of {sorted(shapes)}")
        return _fields(body, {discriminator: anything, **shape})
    return check


def plain_body(spec: dict[str, Check],
               optional: dict[str, Check] | None = None) -> Callable[[Any], dict]:
    return lambda body: _fields(body, spec, optional=optional)
