"""The plan's genesis: roles, consortium orgs and every governance parameter, with defaults.

The ``app`` section of genesis.json is plain JSON (hex public keys, ints, strs) with
``"name": "plan"``. ``default_app_genesis`` builds one with the real plan's defaults;
``validate_app_genesis`` turns one into a typed ``AppGenesis`` or raises ``InvalidGenesis`` with
a reason code. ``params_from_plain`` is the same parameter validation governance uses for
``set_param`` proposals, so a parameter set that could not be loaded at genesis can never be
reached later either.

``genesis_time_ms`` lives in the app section (as well as at the top of genesis.json) because
the plan needs it for its first period boundary (``genesis_time_ms + period_ms``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ledger.errors import InvalidGenesis
from ledger.keys import PUBLIC_KEY_BYTES

from contracts.conditions import ACCIDENT_CODE, COVERED_ILLNESSES

# --- time units (integers only: a year of duration is 365.2425 days; ages count calendar
# birthdays, see contracts.members.age_years) -------------------------------------------------
SECOND_MS = 1_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
YEAR_MS = 31_556_952_000

APP_NAME = "plan"
DEFAULT_GENESIS_TIME_MS = 1_700_000_000_000

ROLES = ("registrar", "treasurer", "reviewer", "hospital")

# --- bounds on parameters (what validation accepts) ----------------------------------------
MAX_DURATION_MS = 10 * YEAR_MS
MAX_ORGS = 64
MAX_ORG_NAME_CHARS = 64
MAX_ROLE_KEYS = 256
MAX_CONDITIONS = 512
MAX_CONDITION_CODE_CHARS = 16
MAX_CONDITION_NAME_CHARS = 128
MAX_TIERS = 8
MAX_AMOUNT_FEN = 10**12  # RMB 10 billion; far above any payout, far below codec limits
MAX_JURY_SIZE = 5_000
MAX_TRANSITIONS_PER_BLOCK = 1_000_000
MAX_AGE_YEARS = 120
MAX_PER_CLAIM_LIMIT = 1_024

# Parameters that are durations of the plan itself; ``time_scale`` divides these (not ages).
SCALED_DURATIONS = ("period_ms", "waiting_ms", "notice_ms", "appeal_ms", "grace_ms",
                    "juror_seniority_ms", "commit_ms", "reveal_ms")


def default_params() -> dict:
    """Every parameter with the real plan's value (Xiang Hu Bao), as plain JSON."""
    return {
        # Settlement twice a month: half of an average Gregorian month.
        "period_ms": YEAR_MS // 24,
        "waiting_ms": 90 * DAY_MS,
        "notice_ms": 3 * DAY_MS,
        "appeal_ms": 7 * DAY_MS,
        "grace_ms": 5 * DAY_MS,
        "juror_seniority_ms": 30 * DAY_MS,
        "commit_ms": 2 * DAY_MS,
        "reveal_ms": 1 * DAY_MS,
        "proposal_ttl_ms": 30 * DAY_MS,
        "min_enroll_age_ms": 30 * DAY_MS,
        "max_enroll_age_years": 59,
        "leave_age_years": 60,
        # Cover by age at enrollment: up to 39 -> RMB 300,000; 40-59 -> RMB 100,000.
        "tiers": [{"max_age_years": 39, "cap_fen": 30_000_000},
                  {"max_age_years": 59, "cap_fen": 10_000_000}],
        "fee_bps": 800,
        # The plan promised at most RMB 188 a year per member; per half-month period that is
        # floor(18,800 / 24) = 783 fen. Anything above the cap carries to the next period.
        "share_cap_fen": 783,
        # "Paid with more than 1,000 valid votes and at least half in favour."
        "jury_size": 2_000,
        "jury_quorum": 1_001,
        "jury_threshold_bps": 5_000,
        "jury_draw_attempts_per_seat": 8,
        "max_transitions_per_block": 10_000,
        "max_objections_per_claim": 64,
        "max_anchors_per_claim": 32,
        "max_documents_per_anchor": 64,
        "max_deposit_fen": 10_000_000,
        "conditions": [{"code": code, "name": name, "name_zh": name_zh}
                       for code, name, name_zh in COVERED_ILLNESSES],
    }


# (low, high) of every integer parameter.
INT_PARAMS: dict[str, tuple[int, int]] = {
    "period_ms": (1, MAX_DURATION_MS),
    "waiting_ms": (0, MAX_DURATION_MS),
    "notice_ms": (1, MAX_DURATION_MS),
    "appeal_ms": (1, MAX_DURATION_MS),
    "grace_ms": (1, MAX_DURATION_MS),
    "juror_seniority_ms": (0, MAX_DURATION_MS),
    "commit_ms": (1, MAX_DURATION_MS),
    "reveal_ms": (1, MAX_DURATION_MS),
    "proposal_ttl_ms": (1, MAX_DURATION_MS),
    "min_enroll_age_ms": (0, MAX_AGE_YEARS * YEAR_MS),
    "max_enroll_age_years": (0, MAX_AGE_YEARS),
    "leave_age_years": (1, MAX_AGE_YEARS),
    "fee_bps": (0, 10_000),
    "share_cap_fen": (1, MAX_AMOUNT_FEN),
    "jury_size": (1, MAX_JURY_SIZE),
    "jury_quorum": (1, MAX_JURY_SIZE),
    "jury_threshold_bps": (1, 10_000),
    "jury_draw_attempts_per_seat": (1, 64),
    "max_transitions_per_block": (1, MAX_TRANSITIONS_PER_BLOCK),
    "max_objections_per_claim": (1, MAX_PER_CLAIM_LIMIT),
    "max_anchors_per_claim": (1, MAX_PER_CLAIM_LIMIT),
    "max_documents_per_anchor": (1, MAX_PER_CLAIM_LIMIT),
    "max_deposit_fen": (1, MAX_AMOUNT_FEN),
}
PARAM_NAMES = tuple(sorted((*INT_PARAMS, "tiers", "conditions")))


@dataclass(frozen=True, slots=True)
class Tier:
    max_age_years: int
    cap_fen: int


@dataclass(frozen=True, slots=True)
class Condition:
    code: str
    name: str
    name_zh: str


@dataclass(frozen=True, slots=True)
class Params:
    period_ms: int
    waiting_ms: int
    notice_ms: int
    appeal_ms: int
    grace_ms: int
    juror_seniority_ms: int
    commit_ms: int
    reveal_ms: int
    proposal_ttl_ms: int
    min_enroll_age_ms: int
    max_enroll_age_years: int
    leave_age_years: int
    tiers: tuple[Tier, ...]
    fee_bps: int
    share_cap_fen: int
    jury_size: int
    jury_quorum: int
    jury_threshold_bps: int
    jury_draw_attempts_per_seat: int
    max_transitions_per_block: int
    max_objections_per_claim: int
    max_anchors_per_claim: int
    max_documents_per_anchor: int
    max_deposit_fen: int
    conditions: tuple[Condition, ...]
    condition_codes: frozenset[str]

    def covers(self, code: str) -> bool:
        return code == ACCIDENT_CODE or code in self.condition_codes

    def tier_cap_fen(self, age_years: int) -> int:
        """Cover for a member of ``age_years`` at enrollment (0 when no tier applies)."""
        for tier in self.tiers:
            if age_years <= tier.max_age_years:
                return tier.cap_fen
        return 0

    def to_plain(self) -> dict:
        plain: dict[str, Any] = {name: getattr(self, name) for name in INT_PARAMS}
        plain["tiers"] = [{"max_age_years": t.max_age_years, "cap_fen": t.cap_fen}
                          for t in self.tiers]
        plain["conditions"] = [{"code": c.code, "name": c.name, "name_zh": c.name_zh}
                               for c in self.conditions]
        return plain


def _fail(code: str, message: str) -> InvalidGenesis:
    return InvalidGenesis(code, message)


def _tiers_from_plain(value: Any) -> tuple[Tier, ...]:
    if not isinstance(value, list) or not 0 < len(value) <= MAX_TIERS:
        raise _fail("bad_tiers", f"tiers must be a list of 1..{MAX_TIERS} entries")
    tiers = []
    previous_age = -1
    for entry in value:
        if not isinstance(entry, dict) or set(entry) != {"max_age_years", "cap_fen"}:
            raise _fail("bad_tiers", "each tier is {max_age_years, cap_fen}")
        age, cap = entry["max_age_years"], entry["cap_fen"]
        if type(age) is not int or not 0 <= age <= MAX_AGE_YEARS:
            raise _fail("bad_tiers", f"tier max_age_years must be in [0, {MAX_AGE_YEARS}]")
        if type(cap) is not int or not 1 <= cap <= MAX_AMOUNT_FEN:
            raise _fail("bad_tiers", f"tier cap_fen must be in [1, {MAX_AMOUNT_FEN}]")
        if age <= previous_age:
            raise _fail("bad_tiers", "tiers must be in increasing max_age_years")
        previous_age = age
        tiers.append(Tier(age, cap))
    return tuple(tiers)


def _conditions_from_plain(value: Any) -> tuple[Condition, ...]:
    if not isinstance(value, list) or not 0 < len(value) <= MAX_CONDITIONS:
        raise _fail("bad_conditions", f"conditions must be a list of 1..{MAX_CONDITIONS}")
    conditions = []
    codes: set[str] = set()
    for entry in value:
        if not isinstance(entry, dict) or set(entry) != {"code", "name", "name_zh"}:
            raise _fail("bad_conditions", "each condition is {code, name, name_zh}")
        code, name, name_zh = entry["code"], entry["name"], entry["name_zh"]
        if (not isinstance(code, str) or not 0 < len(code) <= MAX_CONDITION_CODE_CHARS
                or not code.isascii() or not code.isalnum() or code == ACCIDENT_CODE):
            raise _fail("bad_conditions", f"condition code {code!r} must be short ASCII "
                                          f"letters and digits, and not {ACCIDENT_CODE}")
        for text in (name, name_zh):
            if not isinstance(text, str) or not 0 < len(text) <= MAX_CONDITION_NAME_CHARS:
                raise _fail("bad_conditions", f"condition {code} needs short names")
        if code in codes:
            raise _fail("bad_conditions", f"condition code {code} appears twice")
        codes.add(code)
        conditions.append(Condition(code, name, name_zh))
    return tuple(conditions)


def params_from_plain(plain: Any) -> Params:
    """Validate a complete parameter set; ``InvalidGenesis`` names the first problem."""
    if not isinstance(plain, dict):
        raise _fail("bad_params", "params must be a map")
    missing = sorted(set(PARAM_NAMES) - set(plain))
    if missing:
        raise _fail("missing_param", f"params lack {missing}")
    unknown = sorted(set(plain) - set(PARAM_NAMES))
    if unknown:
        raise _fail("unknown_param", f"unknown params {unknown}")
    values: dict[str, Any] = {}
    for name, (low, high) in INT_PARAMS.items():
        value = plain[name]
        if type(value) is not int or not low <= value <= high:
            raise _fail("bad_param", f"{name} must be an integer in [{low}, {high}]")
        values[name] = value
    tiers = _tiers_from_plain(plain["tiers"])
    conditions = _conditions_from_plain(plain["conditions"])
    if values["max_enroll_age_years"] >= values["leave_age_years"]:
        raise _fail("bad_param", "max_enroll_age_years must be below leave_age_years")
    if values["min_enroll_age_ms"] >= values["max_enroll_age_years"] * YEAR_MS + YEAR_MS:
        raise _fail("bad_param", "min_enroll_age_ms must be below the maximum enrollment age")
    if tiers[-1].max_age_years < values["max_enroll_age_years"]:
        raise _fail("bad_tiers", "the tiers must cover every age up to max_enroll_age_years")
    if values["jury_quorum"] > values["jury_size"]:
        raise _fail("bad_param", "jury_quorum cannot exceed jury_size")
    if values["max_transitions_per_block"] < values["jury_size"] + 1:
        # A jury draw or tally is one bounded step of jury_size units; a block must fit one.
        raise _fail("bad_param", "max_transitions_per_block must exceed jury_size")
    return Params(**values, tiers=tiers, conditions=conditions,
                  condition_codes=frozenset(c.code for c in conditions))


# --- the app section --------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Org:
    name: str
    gov_key: bytes


@dataclass(frozen=True, slots=True)
class AppGenesis:
    genesis_time_ms: int
    orgs: tuple[Org, ...]
    roles: dict[str, tuple[bytes, ...]]
    params: Params

    def to_plain(self) -> dict:
        return {
            "name": APP_NAME,
            "genesis_time_ms": self.genesis_time_ms,
            "orgs": [{"name": org.name, "gov_key": org.gov_key.hex()} for org in self.orgs],
            "roles": {role: [key.hex() for key in self.roles[role]] for role in ROLES},
            "params": self.params.to_plain(),
        }


def _key_hex(value: Any) -> str:
    """A public key given as bytes or hex, as lowercase hex (for building genesis)."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, str):
        return value.lower()
    raise _fail("bad_key", "public keys are bytes or hex strings")


def _parse_key(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or len(value) != 2 * PUBLIC_KEY_BYTES:
        raise _fail("bad_key", f"{what} must be {PUBLIC_KEY_BYTES} bytes of lowercase hex")
    try:
        key = bytes.fromhex(value)
    except ValueError:
        raise _fail("bad_key", f"{what} is not hex") from None
    if key.hex() != value:
        raise _fail("bad_key", f"{what} must be lowercase hex")
    return key


def default_app_genesis(orgs: Sequence[Mapping[str, Any]], roles: Mapping[str, Sequence[Any]],
                        params_overrides: Mapping[str, Any] | None = None, time_scale: int = 1,
                        genesis_time_ms: int = DEFAULT_GENESIS_TIME_MS) -> dict:
    """The app section with the real plan's defaults.

    ``orgs``: ``[{"name", "gov_key"}]``; ``roles``: ``{role: [public keys]}`` (bytes or hex;
    roles left out are empty). ``time_scale`` divides the plan's durations (waiting period,
    notice, appeal, jury windows, juror seniority, period, grace), never ages; overrides are
    applied after scaling. The result is validated before it is returned.
    """
    if type(time_scale) is not int or time_scale < 1:
        raise _fail("bad_time_scale", "time_scale must be a positive integer")
    params = default_params()
    for name in SCALED_DURATIONS:
        params[name] = max(1, params[name] // time_scale)
    for name, value in (params_overrides or {}).items():
        if name not in PARAM_NAMES:
            raise _fail("unknown_param", f"unknown param {name!r}")
        params[name] = value
    unknown_roles = sorted(set(roles) - set(ROLES))
    if unknown_roles:
        raise _fail("unknown_role", f"unknown roles {unknown_roles}")
    app = {
        "name": APP_NAME,
        "genesis_time_ms": genesis_time_ms,
        "orgs": [{"name": org["name"], "gov_key": _key_hex(org["gov_key"])} for org in orgs],
        "roles": {role: [_key_hex(key) for key in roles.get(role, ())] for role in ROLES},
        "params": params,
    }
    validate_app_genesis(app)
    return app


def validate_app_genesis(app: Any) -> AppGenesis:
    """Check every field of the app section; raise ``InvalidGenesis(code)`` on the first error."""
    fields = {"name", "genesis_time_ms", "orgs", "roles", "params"}
    if not isinstance(app, dict):
        raise _fail("not_a_map", "the app section must be a map")
    if set(app) != fields:
        raise _fail("bad_fields", f"app section fields must be exactly {sorted(fields)}")
    if app["name"] != APP_NAME:
        raise _fail("bad_name", f"app name must be {APP_NAME!r}")
    genesis_time_ms = app["genesis_time_ms"]
    if type(genesis_time_ms) is not int or not 0 <= genesis_time_ms < 2**62:
        raise _fail("bad_genesis_time", "genesis_time_ms must be a non-negative integer")

    orgs_plain = app["orgs"]
    if not isinstance(orgs_plain, list) or not 0 < len(orgs_plain) <= MAX_ORGS:
        raise _fail("bad_orgs", f"orgs must be a list of 1..{MAX_ORGS} orgs")
    orgs = []
    names: set[str] = set()
    gov_keys: set[bytes] = set()
    for entry in orgs_plain:
        if not isinstance(entry, dict) or set(entry) != {"name", "gov_key"}:
            raise _fail("bad_orgs", "each org is {name, gov_key}")
        name = entry["name"]
        if not isinstance(name, str) or not 0 < len(name) <= MAX_ORG_NAME_CHARS:
            raise _fail("bad_orgs", "org names are short non-empty strings")
        key = _parse_key(entry["gov_key"], f"gov_key of {name}")
        if name in names:
            raise _fail("duplicate_org", f"org {name} appears twice")
        if key in gov_keys:
            raise _fail("duplicate_key", f"gov_key of {name} is used by another org")
        names.add(name)
        gov_keys.add(key)
        orgs.append(Org(name, key))

    roles_plain = app["roles"]
    if not isinstance(roles_plain, dict) or set(roles_plain) != set(ROLES):
        raise _fail("bad_roles", f"roles must map exactly {list(ROLES)} to key lists")
    roles: dict[str, tuple[bytes, ...]] = {}
    for role in ROLES:
        keys = roles_plain[role]
        if not isinstance(keys, list) or len(keys) > MAX_ROLE_KEYS:
            raise _fail("bad_roles", f"{role} must be a list of at most {MAX_ROLE_KEYS} keys")
        parsed = tuple(_parse_key(key, f"{role} key") for key in keys)
        if len(set(parsed)) != len(parsed):
            raise _fail("duplicate_key", f"a {role} key appears twice")
        roles[role] = parsed

    return AppGenesis(genesis_time_ms, tuple(orgs), roles, params_from_plain(app["params"]))
