"""ledger.keys: domain-separated Ed25519 signatures and owner-only key files."""

from __future__ import annotations

import json
import stat

import pytest

from ledger import keys
from ledger.errors import KeyFileError

SEED = bytes(range(32))
PAYLOAD = {"amount_fen": 500, "member": b"\x01" * 32, "note": "first"}


@pytest.fixture
def pair() -> keys.KeyPair:
    return keys.KeyPair.from_seed(SEED)


def test_sign_and_verify(pair):
    signature = pair.sign("tx", "huzhu-local", PAYLOAD)
    assert len(signature) == keys.SIGNATURE_BYTES
    assert keys.verify(pair.public_key, "tx", "huzhu-local", PAYLOAD, signature)


def test_from_seed_is_deterministic_and_generate_is_not(pair):
    assert keys.KeyPair.from_seed(SEED) == pair
    assert len(pair.public_key) == keys.PUBLIC_KEY_BYTES
    assert keys.KeyPair.generate().public_key != keys.KeyPair.generate().public_key


def test_signature_for_one_domain_fails_in_another(pair):
    signature = pair.sign("prepare", "huzhu-local", PAYLOAD)
    assert keys.verify(pair.public_key, "prepare", "huzhu-local", PAYLOAD, signature)
    for other in ("commit", "tx", "checkpoint", "preparex"):
        assert not keys.verify(pair.public_key, other, "huzhu-local", PAYLOAD, signature)


def test_signature_for_one_chain_fails_on_another(pair):
    signature = pair.sign("tx", "huzhu-local", PAYLOAD)
    for other in ("huzhu-test", "huzhu-local2", "huzhu-loca", "HUZHU-LOCAL"):
        assert not keys.verify(pair.public_key, "tx", other, PAYLOAD, signature)


def test_domain_and_chain_cannot_run_into_each_other():
    # kind "a" on chain "b/v1..." and similar shifts give different messages
    messages = {
        keys.signing_message("a", "b", 1),
        keys.signing_message("ab", "", 1),
        keys.signing_message("a", "b1", 0),
    }
    assert len(messages) == 3
    assert keys.signing_message("tx", "c", [1]).startswith(b"huzhu/tx/v1\0c\0")


@pytest.mark.parametrize("kind", ["", "a/b", "a\0b"])
def test_bad_domains_refused(kind):
    with pytest.raises(ValueError):
        keys.signing_message(kind, "huzhu-local", 1)


def test_chain_id_with_nul_refused():
    with pytest.raises(ValueError):
        keys.signing_message("tx", "huzhu\0local", 1)


def test_tampered_payload_fails(pair):
    signature = pair.sign("tx", "huzhu-local", PAYLOAD)
    for changed in (
        {**PAYLOAD, "amount_fen": 501},
        {**PAYLOAD, "note": "First"},
        {**PAYLOAD, "extra": None},
        {key: PAYLOAD[key] for key in ("amount_fen", "member")},
    ):
        assert not keys.verify(pair.public_key, "tx", "huzhu-local", changed, signature)


def test_tampered_signature_or_wrong_key_fails(pair):
    signature = pair.sign("tx", "huzhu-local", PAYLOAD)
    other = keys.KeyPair.from_seed(bytes(32))
    assert not keys.verify(other.public_key, "tx", "huzhu-local", PAYLOAD, signature)
    for position in (0, 31, 32, 63):
        flipped = bytearray(signature)
        flipped[position] ^= 1
        assert not keys.verify(pair.public_key, "tx", "huzhu-local", PAYLOAD, bytes(flipped))


@pytest.mark.parametrize("public_key, signature", [
    (b"", b"\x00" * 64),
    (b"\x00" * 31, b"\x00" * 64),
    ("00" * 32, b"\x00" * 64),
    (None, b"\x00" * 64),
    (b"\x00" * 32, b"\x00" * 63),
    (b"\x00" * 32, None),
    (b"\x00" * 32, "00" * 64),
    (b"\x00" * 32, b"\x00" * 64),
    (b"\xff" * 32, b"\xff" * 64),
])
def test_malformed_keys_and_signatures_do_not_verify(public_key, signature):
    assert keys.verify(public_key, "tx", "huzhu-local", PAYLOAD, signature) is False


def test_repr_hides_the_seed(pair):
    assert SEED.hex() not in repr(pair)
    assert pair.public_key.hex() in repr(pair)


# --- key files --------------------------------------------------------------------------

def test_key_file_round_trip_with_mode_0600(pair, tmp_path):
    path = pair.save(tmp_path / "sub" / "node0.key")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = keys.KeyPair.load(path)
    assert loaded == pair
    signature = loaded.sign("tx", "huzhu-local", PAYLOAD)
    assert keys.verify(pair.public_key, "tx", "huzhu-local", PAYLOAD, signature)


def test_save_refuses_to_overwrite(pair, tmp_path):
    path = tmp_path / "node0.key"
    path.write_text("precious")
    with pytest.raises(KeyFileError) as info:
        pair.save(path)
    assert info.value.code == "exists"
    assert "already exists" in str(info.value)
    assert path.read_text() == "precious"


def test_save_overwrites_when_asked_and_tightens_the_mode(pair, tmp_path):
    path = tmp_path / "node0.key"
    path.write_text("old")
    path.chmod(0o644)
    pair.save(path, overwrite=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keys.KeyPair.load(path) == pair


def test_save_into_an_unwritable_place_is_a_key_file_error(pair, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(KeyFileError) as info:
        pair.save(blocker / "node0.key")
    assert info.value.code == "unwritable"


def test_missing_key_file(tmp_path):
    with pytest.raises(KeyFileError) as info:
        keys.KeyPair.load(tmp_path / "nope.key")
    assert info.value.code == "missing"
    assert "nope.key" in str(info.value) and "does not exist" in str(info.value)


def test_unreadable_key_file(tmp_path):
    directory = tmp_path / "dir.key"
    directory.mkdir()
    with pytest.raises(KeyFileError) as info:
        keys.KeyPair.load(directory)
    assert info.value.code == "unreadable"
    binary = tmp_path / "binary.key"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(KeyFileError) as info:
        keys.KeyPair.load(binary)
    assert info.value.code == "unreadable"


def key_file(pair: keys.KeyPair, **changes) -> str:
    data = json.loads(pair.to_json())
    for name, value in changes.items():
        if value is KeyError:
            del data[name]
        else:
            data[name] = value
    return json.dumps(data)


@pytest.mark.parametrize("build, code", [
    (lambda pair: "not json {", "malformed"),
    (lambda pair: "[1, 2]", "malformed"),
    (lambda pair: key_file(pair, type="rsa"), "malformed"),
    (lambda pair: key_file(pair, type=KeyError), "malformed"),
    (lambda pair: key_file(pair, version=2), "version"),
    (lambda pair: key_file(pair, version=True), "version"),
    (lambda pair: key_file(pair, version=KeyError), "version"),
    (lambda pair: key_file(pair, seed=KeyError), "malformed"),
    (lambda pair: key_file(pair, seed="not base64!"), "malformed"),
    (lambda pair: key_file(pair, seed=12), "malformed"),
    (lambda pair: key_file(pair, seed="AAAA"), "bad_seed"),
    (lambda pair: key_file(pair, public_key=KeyError), "malformed"),
    (lambda pair: key_file(pair, public_key="zz"), "malformed"),
    (lambda pair: key_file(pair, public_key="00" * 32), "mismatch"),
])
def test_malformed_key_files(pair, tmp_path, build, code):
    path = tmp_path / "bad.key"
    path.write_text(build(pair))
    with pytest.raises(KeyFileError) as info:
        keys.KeyPair.load(path)
    assert info.value.code == code
    assert str(path) in info.value.message


def test_bad_seed_length_refused():
    for seed in (b"", b"\x00" * 31, b"\x00" * 33, "00" * 32):
        with pytest.raises(KeyFileError):
            keys.KeyPair.from_seed(seed)
