"""Ed25519 keys (pynacl) with domain-separated signatures.

Every signature covers ``b"huzhu/<kind>/v1\\0" + chain_id + canonical(payload)``, so a
signature made for one purpose (a transaction, a prepare, a commit) is never valid for
another, nor on another chain.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.signing

from ledger import codec
from ledger.errors import KeyFileError

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
SEED_BYTES = 32
KEY_FILE_VERSION = 1
KEY_FILE_MODE = 0o600


def signing_message(kind: str, chain_id: str, payload: Any) -> bytes:
    """The exact bytes that are signed for ``payload`` of ``kind`` on ``chain_id``."""
    if not kind or "/" in kind or "\0" in kind:
        raise ValueError(f"bad signature domain {kind!r}")
    if "\0" in chain_id:
        # The NUL ends the chain id in the message; one inside it would make two (chain,
        # payload) pairs sign the same bytes.
        raise ValueError(f"bad chain id {chain_id!r}")
    return b"huzhu/" + kind.encode() + b"/v1\0" + chain_id.encode() + b"\0" + codec.encode(payload)


def verify(public_key: bytes, kind: str, chain_id: str, payload: Any, signature: bytes) -> bool:
    """True when ``signature`` is ``public_key``'s signature of ``payload`` in this domain."""
    return verify_message(public_key, signing_message(kind, chain_id, payload), signature)


def verify_message(public_key: bytes, message: bytes, signature: bytes) -> bool:
    if not (isinstance(public_key, bytes) and len(public_key) == PUBLIC_KEY_BYTES):
        return False
    if not (isinstance(signature, bytes) and len(signature) == SIGNATURE_BYTES):
        return False
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError, TypeError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class KeyPair:
    """An Ed25519 signing key and its public key."""

    seed: bytes
    public_key: bytes

    @classmethod
    def generate(cls) -> "KeyPair":
        return cls.from_seed(bytes(nacl.signing.SigningKey.generate()))

    @classmethod
    def from_seed(cls, seed: bytes) -> "KeyPair":
        if not (isinstance(seed, bytes) and len(seed) == SEED_BYTES):
            raise KeyFileError("bad_seed", f"an Ed25519 seed is {SEED_BYTES} bytes")
        signing_key = nacl.signing.SigningKey(seed)
        return cls(seed=seed, public_key=bytes(signing_key.verify_key))

    def sign_message(self, message: bytes) -> bytes:
        return nacl.signing.SigningKey(self.seed).sign(message).signature

    def sign(self, kind: str, chain_id: str, payload: Any) -> bytes:
        return self.sign_message(signing_message(kind, chain_id, payload))

    def __repr__(self) -> str:  # never print the seed
        return f"KeyPair(public_key={self.public_key.hex()})"

    # key files -------------------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": KEY_FILE_VERSION,
                "type": "ed25519",
                "public_key": self.public_key.hex(),
                "seed": base64.b64encode(self.seed).decode(),
            },
            indent=2,
        ) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "key file") -> "KeyPair":
        try:
            data = json.loads(text)
        except ValueError:
            raise KeyFileError("malformed", f"{source} is not JSON") from None
        if not isinstance(data, dict) or data.get("type") != "ed25519":
            raise KeyFileError("malformed", f"{source} is not an ed25519 key file")
        if type(data.get("version")) is not int or data["version"] != KEY_FILE_VERSION:
            raise KeyFileError("version", f"{source} has unsupported version {data.get('version')!r}")
        try:
            seed = base64.b64decode(data["seed"], validate=True)
            public_key = bytes.fromhex(data["public_key"])
        except (KeyError, ValueError, TypeError):
            raise KeyFileError("malformed", f"{source} lacks a valid seed and public_key") from None
        try:
            pair = cls.from_seed(seed)
        except KeyFileError as exc:
            raise KeyFileError(exc.code, f"{source}: {exc.message}") from None
        if pair.public_key != public_key:
            raise KeyFileError("mismatch", f"{source}: public_key does not match the seed")
        return pair

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the key file readable by its owner only (mode 0600)."""
        path = Path(path)
        if path.exists() and not overwrite:
            raise KeyFileError("exists", f"{path} already exists; refusing to overwrite it")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                # Created 0600, exclusively unless overwriting, before the seed goes in.
                path.touch(mode=KEY_FILE_MODE, exist_ok=overwrite)
            except FileExistsError:
                raise KeyFileError(
                    "exists", f"{path} already exists; refusing to overwrite it") from None
            path.chmod(KEY_FILE_MODE)
            path.write_text(self.to_json())
        except OSError as exc:
            raise KeyFileError("unwritable", f"cannot write key file {path}: {exc}") from None
        return path

    @classmethod
    def load(cls, path: str | Path) -> "KeyPair":
        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise KeyFileError("missing", f"key file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyFileError("unreadable", f"cannot read key file {path}: {exc}") from None
        return cls.from_json(text, source=str(path))
