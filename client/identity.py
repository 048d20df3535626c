"""The registrar's identity commitments: the same person always gets the same commitment, and
nobody without the registrar's secret can compute or test one.

commitment = HMAC-SHA256(secret, "huzhu/identity/v1\\0" || normalized national id)

A salted hash with a fresh salt per enrollment would give the same person a new commitment
every time, so the chain's one-active-membership check could never fire; a plain hash of the
id would let anyone confirm a guessed id against the chain (ids have little entropy). The key
is the registrar's secret, kept in a private file next to its signing key. Each secret has a
key id (derived from the secret, so they cannot disagree) that goes on chain with the
commitment; rotating the secret keeps the retired ones in the file, and enrollment checks the
person's commitments under retired secrets against the chain before it signs.

The file: ``{"current": KEY_ID, "secrets": {KEY_ID: HEX, ...}}``, mode 0600.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from pathlib import Path

from ledger.hashing import sha256

SECRET_FILE_SUFFIX = ".identity.json"
SECRET_BYTES = 32
PRIVATE_FILE_MODE = 0o600
COMMITMENT_DOMAIN = b"huzhu/identity/v1\0"
KEY_ID_DOMAIN = b"huzhu/identity-key-id/v1\0"
KEY_ID_BYTES = 4  # 8 hex characters on chain
MAX_SECRETS = 64  # retired secrets kept for the cross-rotation check
_NATIONAL_ID = re.compile(r"[0-9A-Z]{1,64}")


class IdentityError(Exception):
    """A bad national id or secret file; the message is one line for the user."""


def secret_file_for(key_path: str | Path) -> Path:
    return Path(str(key_path) + SECRET_FILE_SUFFIX)


def normalize_national_id(text: str) -> str:
    """One spelling per person: no spaces, upper case (the check character X of PRC ids)."""
    normalized = text.strip().replace(" ", "").upper()
    if not _NATIONAL_ID.fullmatch(normalized):
        raise IdentityError(f"national id {text!r} must be 1..64 letters and digits")
    return normalized


def key_id_of(secret: bytes) -> str:
    return sha256(KEY_ID_DOMAIN + secret)[:KEY_ID_BYTES].hex()


def commitment(secret: bytes, national_id: str) -> bytes:
    message = COMMITMENT_DOMAIN + normalize_national_id(national_id).encode()
    return hmac.new(secret, message, hashlib.sha256).digest()


class RegistrarSecrets:
    """The current secret and the retired ones, read from and written to one private file."""

    def __init__(self, current: str, by_key_id: dict[str, bytes]) -> None:
        assert current in by_key_id
        self.current = current
        self.by_key_id = by_key_id

    @classmethod
    def fresh(cls) -> RegistrarSecrets:
        secret = secrets.token_bytes(SECRET_BYTES)
        return cls(key_id_of(secret), {key_id_of(secret): secret})

    @classmethod
    def load(cls, path: Path) -> RegistrarSecrets:
        try:
            data = json.loads(path.read_text())
            by_key_id = {key_id: bytes.fromhex(value) for key_id, value in data["secrets"].items()}
            current = data["current"]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            raise IdentityError(f"{path} is not a registrar identity secret file") from None
        if current not in by_key_id or any(key_id_of(secret) != key_id or
                                           len(secret) != SECRET_BYTES
                                           for key_id, secret in by_key_id.items()):
            raise IdentityError(f"{path}: a key id does not match its secret")
        return cls(current, by_key_id)

    @classmethod
    def load_or_create(cls, path: Path) -> RegistrarSecrets:
        if path.exists():
            return cls.load(path)
        made = cls.fresh()
        made.save(path)
        return made

    def save(self, path: Path) -> None:
        data = {"current": self.current,
                "secrets": {key_id: secret.hex() for key_id, secret in self.by_key_id.items()}}
        write_private_json(path, data)

    def rotate(self) -> str:
        """A new current secret; the old ones stay, retired. Returns the new key id."""
        if len(self.by_key_id) >= MAX_SECRETS:
            raise IdentityError(f"at most {MAX_SECRETS} secrets; archive old ones first")
        secret = secrets.token_bytes(SECRET_BYTES)
        self.current = key_id_of(secret)
        self.by_key_id[self.current] = secret
        return self.current

    def commitment(self, national_id: str) -> bytes:
        return commitment(self.by_key_id[self.current], national_id)

    def retired_commitments(self, national_id: str) -> list[tuple[str, bytes]]:
        return [(key_id, commitment(secret, national_id))
                for key_id, secret in sorted(self.by_key_id.items()) if key_id != self.current]


def write_private_json(path: Path, data: dict) -> None:
    """Replace ``path`` atomically with ``data``, readable by its owner only."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.touch(mode=PRIVATE_FILE_MODE)
    temporary.chmod(PRIVATE_FILE_MODE)
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    temporary.replace(path)
