"""Ed25519 key pairs, JWKs and thumbprints, base64url, and key rotation."""

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gavel.crypto.keys import (
    Ed25519KeyPair,
    KeySet,
    PublicKey,
    RetiredKey,
    b64url_decode,
    b64url_encode,
    jwk_thumbprint,
)

# RFC 8032 §7.1, TEST 1
RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_EMPTY_MESSAGE_SIGNATURE = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def pair(byte: int) -> Ed25519KeyPair:
    return Ed25519KeyPair.from_seed(bytes([byte]) * 32)


# --- base64url --------------------------------------------------------------------------------


@given(st.binary(max_size=100))
def test_b64url_round_trip(data):
    text = b64url_encode(data)
    assert "=" not in text and "+" not in text and "/" not in text
    assert b64url_decode(text) == data


@pytest.mark.parametrize(
    "text",
    [
        "AA==",  # padding
        "AA=",
        "A+B/",  # standard alphabet, not url-safe
        "AB C",
        "A",  # no byte sequence encodes to one character
        "AB",  # 'B' leaves non-zero unused bits: the canonical text for b"\x00" is "AA"
        "é",
        "AA\n",
    ],
)
def test_b64url_decode_is_strict(text):
    refusal = "^(not unpadded base64url text|base64url text (has an impossible length|is not in canonical form))$"
    with pytest.raises(ValueError, match=refusal):
        b64url_decode(text)


def test_b64url_decode_refuses_non_text():
    with pytest.raises(ValueError, match="^not unpadded base64url text$"):
        b64url_decode(b"AA")  # type: ignore[arg-type]


# --- Ed25519 (RFC 8032 test 1) ---------------------------------------------------------------


def test_rfc8032_test_1_public_key_and_signature():
    key = Ed25519KeyPair.from_seed(RFC8032_SEED)
    assert key.public_key == RFC8032_PUBLIC
    assert key.sign(b"") == RFC8032_EMPTY_MESSAGE_SIGNATURE


def test_rfc8032_test_1_verifies():
    public = PublicKey(RFC8032_PUBLIC)
    assert public.verify(b"", RFC8032_EMPTY_MESSAGE_SIGNATURE)
    assert not public.verify(b"x", RFC8032_EMPTY_MESSAGE_SIGNATURE)


def test_rfc8037_jws_example_verifies():
    # RFC 8037 §A.4: the same key signs "Example of Ed25519 signing" under {"alg":"EdDSA"}.
    signing_input = b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
    signature = b64url_decode(
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
    )
    assert Ed25519KeyPair.from_seed(RFC8032_SEED).sign(signing_input) == signature
    assert PublicKey(RFC8032_PUBLIC).verify(signing_input, signature)


def test_verify_never_raises_on_bad_input():
    public = pair(1).public()
    signature = pair(1).sign(b"message")
    assert public.verify(b"message", signature)
    assert not public.verify(b"message", signature[:-1])
    assert not public.verify(b"message", signature + b"\x00")
    assert not public.verify(b"message", b"")
    assert not public.verify(b"message", bytes(64))
    assert not public.verify(b"message", "not bytes")  # type: ignore[arg-type]
    assert not public.verify("message", signature)  # type: ignore[arg-type]
    assert not pair(2).public().verify(b"message", signature)


@pytest.mark.parametrize("seed", [b"", bytes(31), bytes(33), "x" * 32])
def test_seed_must_be_32_bytes(seed):
    with pytest.raises(ValueError, match="32 bytes"):
        Ed25519KeyPair.from_seed(seed)


def test_seed_is_not_in_repr():
    key = Ed25519KeyPair.from_seed(RFC8032_SEED)
    assert RFC8032_SEED.hex() not in repr(key)
    assert repr(RFC8032_SEED) not in repr(key)
    assert key.kid in repr(key)


def test_key_pairs_compare_by_value():
    assert pair(1) == pair(1)
    assert pair(1) != pair(2)


# --- JWK and thumbprint (RFC 7638 / RFC 8037) -------------------------------------------------


def test_kid_is_rfc7638_thumbprint_computed_independently():
    key = Ed25519KeyPair.from_seed(RFC8032_SEED)
    x = base64.urlsafe_b64encode(RFC8032_PUBLIC).rstrip(b"=").decode()
    assert x == "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"  # RFC 8037 §A.2
    required_members = '{"crv":"Ed25519","kty":"OKP","x":"' + x + '"}'
    digest = hashlib.sha256(required_members.encode()).digest()
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert key.kid == expected
    assert key.kid == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"  # RFC 8037 §A.3
    assert jwk_thumbprint(RFC8032_PUBLIC) == expected


def test_public_jwk():
    key = Ed25519KeyPair.from_seed(RFC8032_SEED)
    assert key.public_jwk() == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
        "kid": "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k",
        "alg": "EdDSA",
        "use": "sig",
    }
    assert "d" not in key.public_jwk()


def test_public_key_from_jwk_round_trip():
    key = pair(7)
    public = PublicKey.from_jwk(key.public_jwk())
    assert public.raw == key.public_key
    assert public.kid == key.kid
    assert public.verify(b"m", key.sign(b"m"))
    minimal = {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(key.public_key)}
    assert PublicKey.from_jwk(minimal) == public


@pytest.mark.parametrize(
    "change",
    [
        {"kty": "EC"},
        {"crv": "Ed448"},
        {"crv": "X25519"},
        {"alg": "HS256"},
        {"use": "enc"},
        {"x": "AAAA"},  # wrong length
        {"x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo="},  # padded
        {"x": None},
        {"kid": "someone-else"},
        {"d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"},
    ],
)
def test_public_key_from_bad_jwk_is_refused(change):
    jwk = {**Ed25519KeyPair.from_seed(RFC8032_SEED).public_jwk(), **change}
    with pytest.raises(ValueError):
        PublicKey.from_jwk(jwk)


# --- KeySet and rotation ----------------------------------------------------------------------


def kids(jwks: dict) -> list[str]:
    return [jwk["kid"] for jwk in jwks["keys"]]


def test_key_set_publishes_the_active_key():
    keys = KeySet(active=pair(1))
    assert keys.jwks(NOW) == {"keys": [pair(1).public_jwk()]}
    assert keys.find(pair(1).kid, NOW) == pair(1).public()
    assert keys.find(pair(2).kid, NOW) is None


def test_rotation_keeps_the_old_key_until_retire_after_then_drops_it():
    old, new = pair(1), pair(2)
    rotated = KeySet(active=old).rotate(new, NOW, keep_for=timedelta(hours=1))
    assert rotated.active == new
    retire_after = NOW + timedelta(hours=1)

    for moment in (NOW, NOW + timedelta(minutes=59), retire_after):
        assert kids(rotated.jwks(moment)) == [new.kid, old.kid]
        assert rotated.find(old.kid, moment) == old.public()

    after = retire_after + timedelta(microseconds=1)
    assert kids(rotated.jwks(after)) == [new.kid]
    assert rotated.find(old.kid, after) is None
    assert rotated.find(new.kid, after) == new.public()


def test_rotation_returns_a_new_key_set():
    original = KeySet(active=pair(1))
    original.rotate(pair(2), NOW, keep_for=timedelta(hours=1))
    assert original == KeySet(active=pair(1))


def test_rotation_drops_retired_keys_already_past_retire_after():
    keys = KeySet(active=pair(1))
    keys = keys.rotate(pair(2), NOW, keep_for=timedelta(hours=1))
    keys = keys.rotate(pair(3), NOW + timedelta(minutes=30), keep_for=timedelta(hours=1))
    assert kids(keys.jwks(NOW + timedelta(minutes=30))) == [pair(3).kid, pair(2).kid, pair(1).kid]
    keys = keys.rotate(pair(4), NOW + timedelta(hours=2), keep_for=timedelta(hours=1))
    assert [key.public_key.kid for key in keys.retired] == [pair(3).kid]


def test_rotating_to_a_key_already_in_the_set_is_refused():
    keys = KeySet(active=pair(1)).rotate(pair(2), NOW, keep_for=timedelta(hours=1))
    with pytest.raises(ValueError, match="already"):
        keys.rotate(pair(2), NOW, keep_for=timedelta(hours=1))
    with pytest.raises(ValueError, match="already"):
        keys.rotate(pair(1), NOW, keep_for=timedelta(hours=1))


def test_negative_keep_for_is_refused():
    with pytest.raises(ValueError, match="keep_for"):
        KeySet(active=pair(1)).rotate(pair(2), NOW, keep_for=timedelta(seconds=-1))


def test_naive_datetimes_are_refused():
    naive = datetime(2025, 1, 1, 12, 0)
    keys = KeySet(active=pair(1))
    with pytest.raises(ValueError, match="timezone-aware"):
        keys.jwks(naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        keys.find(pair(1).kid, naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        keys.rotate(pair(2), naive, keep_for=timedelta(hours=1))
    with pytest.raises(ValueError, match="timezone-aware"):
        RetiredKey(pair(1).public(), naive)
