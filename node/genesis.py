"""The genesis document (genesis.json): chain id, genesis time, validators, consensus
parameters and the application's section, loaded and validated strictly.

Every node of a chain starts from the same file. ``Genesis.genesis_hash`` (SHA-256 of the
canonical encoding of ``to_plain()``, with the consensus section written out in full) is
``prev_hash`` of block 1, so two nodes with different genesis files never share a block.
Public keys are lowercase hex in JSON and 32 raw bytes in code (docs/INTERFACES.md).
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consensus.params import ConsensusParams
from ledger import codec
from ledger.errors import EncodeError, InvalidGenesis
from ledger.hashing import sha256
from ledger.keys import PUBLIC_KEY_BYTES
from ledger.types import MAX_CHAIN_ID_CHARS, MAX_REPLICAS

APP_NAMES = ("plan", "kv")
MAX_NAME_CHARS = 64
MAX_GENESIS_TIME_MS = 2**62
MAX_GENESIS_BYTES = 16 * 1024 * 1024

_CHAIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_FIELDS = ("app", "chain_id", "consensus", "genesis_time_ms", "validators")
_VALIDATOR_FIELDS = ("id", "name", "org", "public_key")


def default_consensus_params() -> dict[str, int]:
    """The consensus section with every parameter at its default."""
    return ConsensusParams().to_plain()


@dataclass(frozen=True, slots=True)
class Validator:
    id: int
    name: str
    org: str
    public_key: bytes

    def to_plain(self) -> dict:
        return {"id": self.id, "name": self.name, "org": self.org,
                "public_key": self.public_key.hex()}


def _fail(code: str, message: str) -> InvalidGenesis:
    return InvalidGenesis(code, message)


def _parse_validator(entry: Any, index: int) -> Validator:
    if not isinstance(entry, dict) or set(entry) != set(_VALIDATOR_FIELDS):
        raise _fail("bad_validator", f"validator {index} must have exactly {list(_VALIDATOR_FIELDS)}")
    if entry["id"] != index or type(entry["id"]) is not int:
        raise _fail("bad_validator", f"validator ids must be 0, 1, ... in order (entry {index})")
    for name in ("name", "org"):
        value = entry[name]
        if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME_CHARS:
            raise _fail("bad_validator", f"validator {index}: {name} must be a short string")
    key_hex = entry["public_key"]
    if (not isinstance(key_hex, str) or len(key_hex) != 2 * PUBLIC_KEY_BYTES
            or key_hex != key_hex.lower()):
        raise _fail("bad_validator", f"validator {index}: public_key must be 64 lowercase hex digits")
    try:
        key = bytes.fromhex(key_hex)
    except ValueError:
        raise _fail("bad_validator", f"validator {index}: public_key is not hex") from None
    return Validator(index, entry["name"], entry["org"], key)


def _validate_app(app: Any, genesis_time_ms: int) -> None:
    if not isinstance(app, dict) or app.get("name") not in APP_NAMES:
        raise _fail("bad_app", f"the app section must be a map whose name is one of {APP_NAMES}")
    if app["name"] == "kv":
        from node.kvapp import validate_kv_genesis
        validate_kv_genesis(app)
        return
    if importlib.util.find_spec("contracts.genesis") is None:
        return  # the plan's own checks run when the application is built
    from contracts.genesis import validate_app_genesis
    validate_app_genesis(app)
    if app.get("genesis_time_ms") != genesis_time_ms:
        raise _fail("bad_app", "app.genesis_time_ms must equal genesis_time_ms")


@dataclass(frozen=True, slots=True)
class Genesis:
    chain_id: str
    genesis_time_ms: int
    validators: tuple[Validator, ...]
    consensus: ConsensusParams
    app: dict

    # --- derived ---------------------------------------------------------------------------

    @property
    def validator_keys(self) -> tuple[bytes, ...]:
        return tuple(validator.public_key for validator in self.validators)

    @property
    def genesis_hash(self) -> bytes:
        return sha256(codec.encode(self.to_plain()))

    @property
    def app_name(self) -> str:
        return self.app["name"]

    # --- plain form and JSON -----------------------------------------------------------------

    def to_plain(self) -> dict:
        return {"app": self.app, "chain_id": self.chain_id,
                "consensus": self.consensus.to_plain(), "genesis_time_ms": self.genesis_time_ms,
                "validators": [validator.to_plain() for validator in self.validators]}

    def to_json(self) -> str:
        return json.dumps(self.to_plain(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_plain(cls, value: Any) -> Genesis:
        if not isinstance(value, dict):
            raise _fail("malformed", "genesis must be a map")
        if set(value) != set(_FIELDS):
            raise _fail("malformed", f"genesis fields must be exactly {list(_FIELDS)}")
        chain_id = value["chain_id"]
        if (not isinstance(chain_id, str) or not 0 < len(chain_id) <= MAX_CHAIN_ID_CHARS
                or not _CHAIN_ID.fullmatch(chain_id)):
            raise _fail("bad_chain_id", "chain_id must be a short identifier")
        genesis_time_ms = value["genesis_time_ms"]
        if type(genesis_time_ms) is not int or not 0 <= genesis_time_ms < MAX_GENESIS_TIME_MS:
            raise _fail("bad_genesis_time", "genesis_time_ms must be a non-negative integer")
        entries = value["validators"]
        if not isinstance(entries, list) or not 0 < len(entries) <= MAX_REPLICAS:
            raise _fail("bad_validators", f"validators must be a list of 1..{MAX_REPLICAS}")
        validators = tuple(_parse_validator(entry, index) for index, entry in enumerate(entries))
        if len({validator.public_key for validator in validators}) != len(validators):
            raise _fail("duplicate_key", "two validators share a public key")
        consensus = ConsensusParams.from_plain(value["consensus"])
        app = value["app"]
        try:
            codec.encode(app)  # the app section must have a canonical encoding (no floats)
        except EncodeError as exc:
            raise _fail("bad_app", f"the app section has no canonical encoding: {exc.message}") from None
        _validate_app(app, genesis_time_ms)
        return cls(chain_id, genesis_time_ms, validators, consensus, app)

    @classmethod
    def from_json(cls, text: str, source: str = "genesis") -> Genesis:
        try:
            plain = json.loads(text)
        except ValueError:
            raise _fail("malformed", f"{source} is not JSON") from None
        return cls.from_plain(plain)

    @classmethod
    def load(cls, path: str | Path) -> Genesis:
        path = Path(path)
        try:
            if path.stat().st_size > MAX_GENESIS_BYTES:
                raise _fail("too_large", f"{path} is larger than {MAX_GENESIS_BYTES} bytes")
            text = path.read_text()
        except FileNotFoundError:
            raise _fail("missing", f"genesis file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise _fail("unreadable", f"cannot read {path}: {exc}") from None
        return cls.from_json(text, source=str(path))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json())
        return path

    @classmethod
    def build(cls, chain_id: str, validator_keys: Sequence[bytes], genesis_time_ms: int,
              app: dict | None = None, consensus: ConsensusParams | dict | None = None,
              names: Sequence[str] | None = None) -> Genesis:
        """A validated genesis from parts (tests, the simulator, ``huzhu testnet``)."""
        if isinstance(consensus, ConsensusParams):
            consensus_plain = consensus.to_plain()
        else:
            consensus_plain = dict(default_consensus_params(), **(consensus or {}))
        validators = [{"id": index, "name": names[index] if names else f"node{index}",
                       "org": f"org{index}", "public_key": key.hex()}
                      for index, key in enumerate(validator_keys)]
        return cls.from_plain({"app": app if app is not None else {"name": "kv"},
                               "chain_id": chain_id, "consensus": consensus_plain,
                               "genesis_time_ms": genesis_time_ms, "validators": validators})
