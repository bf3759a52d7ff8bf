"""Ed25519 signing keys, their public JWKs, and the set of keys a verifier trusts.

Pure: keys come from a 32-byte seed the caller draws (`os.urandom(32)`), and every time-
dependent answer takes `now` as an argument. A key's `kid` is its RFC 7638 JWK thumbprint, so
the id is bound to the key itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

SEED_LENGTH = 32
PUBLIC_KEY_LENGTH = 32
SIGNATURE_LENGTH = 64

_BASE64URL_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")


def b64url_encode(data: bytes) -> str:
    """Encode `data` as base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url, refusing padding, other characters and non-canonical text."""
    if not isinstance(text, str) or not _BASE64URL_ALPHABET.fullmatch(text):
        raise ValueError("not unpadded base64url text")
    if len(text) % 4 == 1:
        raise ValueError("base64url text has an impossible length")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    # Unused low bits in the last character must be zero; otherwise several texts decode to
    # the same bytes and a token could be altered without touching what it says.
    if b64url_encode(data) != text:
        raise ValueError("base64url text is not in canonical form")
    return data


def jwk_thumbprint(public_key: bytes) -> str:
    """Return the RFC 7638 thumbprint (SHA-256, base64url) of an Ed25519 public key's JWK."""
    # RFC 7638 §3.2: only the required members, sorted, no whitespace.
    members = {"crv": "Ed25519", "kty": "OKP", "x": b64url_encode(public_key)}
    text = json.dumps(members, sort_keys=True, separators=(",", ":"))
    return b64url_encode(hashlib.sha256(text.encode("ascii")).digest())


@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 public key that can check signatures; `kid` is its JWK thumbprint."""

    raw: bytes
    kid: str = field(init=False)
    _verify_key: VerifyKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.raw, bytes) or len(self.raw) != PUBLIC_KEY_LENGTH:
            raise ValueError(f"an Ed25519 public key is {PUBLIC_KEY_LENGTH} bytes")
        object.__setattr__(self, "kid", jwk_thumbprint(self.raw))
        object.__setattr__(self, "_verify_key", VerifyKey(self.raw))

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, object]) -> PublicKey:
        """Read an OKP/Ed25519 public JWK; a `kid` other than the thumbprint is refused."""
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            raise ValueError("not an OKP Ed25519 JWK")
        if "d" in jwk:
            raise ValueError("the JWK holds a private key; publish only the public part")
        if jwk.get("alg", "EdDSA") != "EdDSA" or jwk.get("use", "sig") != "sig":
            raise ValueError("the JWK is not meant for EdDSA signatures")
        x = jwk.get("x")
        if not isinstance(x, str):
            raise ValueError("the JWK has no `x`")
        key = cls(b64url_decode(x))
        if jwk.get("kid", key.kid) != key.kid:
            raise ValueError(f"the JWK's kid is not its thumbprint `{key.kid}`")
        return key

    def jwk(self) -> dict[str, str]:
        """Return the public JWK (RFC 8037) with its kid, alg and use."""
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": b64url_encode(self.raw),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        }

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Return whether `signature` is this key's Ed25519 signature of `message`."""
        if not isinstance(message, bytes) or not isinstance(signature, bytes):
            return False
        if len(signature) != SIGNATURE_LENGTH:
            return False
        try:
            self._verify_key.verify(message, signature)
        except BadSignatureError:
            return False
        return True


@dataclass(frozen=True)
class Ed25519KeyPair:
    """An Ed25519 signing key made from a 32-byte seed; the seed never appears in repr."""

    seed: bytes = field(repr=False)
    public_key: bytes = field(init=False)
    kid: str = field(init=False)
    _signing_key: SigningKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.seed, bytes) or len(self.seed) != SEED_LENGTH:
            raise ValueError(f"an Ed25519 seed is {SEED_LENGTH} bytes")
        signing_key = SigningKey(self.seed)
        public_key = bytes(signing_key.verify_key)
        object.__setattr__(self, "_signing_key", signing_key)
        object.__setattr__(self, "public_key", public_key)
        object.__setattr__(self, "kid", jwk_thumbprint(public_key))

    @classmethod
    def from_seed(cls, seed: bytes) -> Ed25519KeyPair:
        """Make the key pair for `seed` (draw it with `os.urandom(32)`)."""
        return cls(seed)

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of `message`."""
        return self._signing_key.sign(message).signature

    def public(self) -> PublicKey:
        """Return the public half, for verifying."""
        return PublicKey(self.public_key)

    def public_jwk(self) -> dict[str, str]:
        """Return the public JWK of this key pair."""
        return self.public().jwk()


@dataclass(frozen=True)
class RetiredKey:
    """A public key no longer used to sign, trusted until `retire_after` has passed."""

    public_key: PublicKey
    retire_after: datetime

    def __post_init__(self) -> None:
        _require_aware(self.retire_after, "retire_after")

    def trusted_at(self, now: datetime) -> bool:
        """Return whether tokens signed by this key are still accepted at `now`."""
        return now <= self.retire_after


@dataclass(frozen=True)
class KeySet:
    """The active signing key and the retired keys whose tokens may still be in flight."""

    active: Ed25519KeyPair
    retired: tuple[RetiredKey, ...] = ()

    def jwks(self, now: datetime) -> dict[str, list[dict[str, str]]]:
        """Return the JWKS document: the active key, then retired keys still trusted at `now`."""
        return {"keys": [key.jwk() for key in self._trusted_keys(now)]}

    def find(self, kid: str, now: datetime) -> PublicKey | None:
        """Return the key with `kid` if it is trusted at `now`, else None."""
        return next((key for key in self._trusted_keys(now) if key.kid == kid), None)

    def rotate(self, new_pair: Ed25519KeyPair, now: datetime, keep_for: timedelta) -> KeySet:
        """Return a key set signing with `new_pair`, trusting the old key for `keep_for`.

        Retired keys already past their `retire_after` at `now` are dropped.
        """
        _require_aware(now, "now")
        if keep_for < timedelta(0):
            raise ValueError("keep_for must not be negative")
        still_trusted = tuple(key for key in self.retired if key.trusted_at(now))
        if new_pair.kid in {self.active.kid, *(key.public_key.kid for key in still_trusted)}:
            raise ValueError(f"key `{new_pair.kid}` is already in the key set")
        newly_retired = RetiredKey(self.active.public(), now + keep_for)
        return KeySet(active=new_pair, retired=(newly_retired, *still_trusted))

    def _trusted_keys(self, now: datetime) -> list[PublicKey]:
        _require_aware(now, "now")
        trusted = [key.public_key for key in self.retired if key.trusted_at(now)]
        return [self.active.public(), *trusted]


def _require_aware(moment: datetime, name: str) -> None:
    # A naive datetime has no single meaning across hosts; refuse it rather than guess.
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise ValueError(f"`{name}` must be a timezone-aware datetime")
