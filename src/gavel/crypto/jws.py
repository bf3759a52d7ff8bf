"""Compact JWS signed with Ed25519 (`alg` EdDSA), and the hash that binds a token to an action.

The header never chooses how a token is checked: a header naming any algorithm but EdDSA is
refused, and the signature is always checked as Ed25519 with the key the caller's lookup
returns for `kid` (keys carried in the header, via `jwk`, `jku` or `x5u`, are ignored).
Checking claims (expiry, audience, tenant…) is the token use case's job, not this module's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal

from gavel.crypto.keys import Ed25519KeyPair, PublicKey, b64url_decode, b64url_encode
from gavel.ledger.canonical import canonical_bytes, canonical_decimal, sha256_hex_digest, strict_loads

ALGORITHM = "EdDSA"
# Decision tokens are a few hundred bytes (args are hashed, not embedded); anything far larger
# is refused before any decoding work is done on it.
MAX_TOKEN_LENGTH = 16 * 1024

_SNAKE_CASE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
_DECIMAL_STRING = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


class TokenInvalid(Exception):
    """The token is malformed, not signed by a trusted key, or uses a refused algorithm."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def sign_compact(claims: Mapping[str, object], key: Ed25519KeyPair) -> str:
    """Return a compact JWS of the canonical JSON of `claims`, signed by `key`."""
    if not isinstance(claims, Mapping):
        raise TypeError("claims must be a mapping")
    header = {"alg": ALGORITHM, "kid": key.kid, "typ": "JWT"}
    signing_input = (
        b64url_encode(canonical_bytes(header)) + "." + b64url_encode(canonical_bytes(claims))
    )
    signature = key.sign(signing_input.encode("ascii"))
    return signing_input + "." + b64url_encode(signature)


def verify_compact(token: str, keys: Callable[[str], PublicKey | None]) -> dict[str, object]:
    """Return the claims of `token` once its EdDSA signature checks out with `keys(kid)`.

    Raises TokenInvalid for any malformed, unsigned, wrongly signed or unknown-key token.
    Errors raised by `keys` itself (e.g. a store outage) are not masked.
    """
    header_part, claims_part, signature_part = _split(token)
    header = _json_object(_decode(header_part, "header"), "header")
    if header.get("alg") != ALGORITHM:
        raise TokenInvalid(f"alg must be {ALGORITHM}")
    if "crit" in header:
        raise TokenInvalid("crit header parameters are not supported")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenInvalid("missing kid")
    public_key = keys(kid)
    if public_key is None:
        raise TokenInvalid("unknown kid")
    signature = _decode(signature_part, "signature")
    signing_input = f"{header_part}.{claims_part}".encode("ascii")
    if not public_key.verify(signing_input, signature):
        raise TokenInvalid("bad signature")
    return _json_object(_decode(claims_part, "claims"), "claims")


def decode_unverified_claims(token: str) -> dict[str, object]:
    """Return the claims WITHOUT checking the signature: for diagnostics only, never trust."""
    _, claims_part, _ = _split(token)
    return _json_object(_decode(claims_part, "claims"), "claims")


def args_hash(action: Mapping[str, object]) -> str:
    """Return `sha256:<hex>` of the canonical JSON of `action`, as bound into decision tokens.

    Top-level fields that are None, "", {} or [] are omitted; `amount` (Decimal, int or
    decimal string) is written in canonical decimal form; `args` is kept as given.
    """
    bound: dict[str, object] = {}
    for name, value in action.items():
        if not isinstance(name, str) or not _SNAKE_CASE.fullmatch(name):
            # A camelCase name (e.g. protobuf's JSON mapping) would silently change the hash.
            raise ValueError(f"action field `{name}` is not a snake_case name")
        if _is_empty(value):
            continue
        bound[name] = _canonical_amount(value) if name == "amount" else value
    return sha256_hex_digest(canonical_bytes(bound))


def _is_empty(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, str | list | tuple | Mapping):
        return len(value) == 0
    return False


def _canonical_amount(amount: object) -> str:
    if isinstance(amount, bool) or not isinstance(amount, Decimal | int | str):
        raise TypeError(f"amount must be a Decimal, int or decimal string, not {amount!r}")
    if isinstance(amount, str):
        # Decimal() alone would also take " 1_0 ", "1E2" and "Infinity".
        if not _DECIMAL_STRING.fullmatch(amount):
            raise ValueError(f"amount `{amount}` is not a plain decimal string")
        amount = Decimal(amount)
    return canonical_decimal(Decimal(amount))


def _split(token: str) -> tuple[str, str, str]:
    if not isinstance(token, str):
        raise TokenInvalid("token is not a string")
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenInvalid("token is too long")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenInvalid("not a compact JWS (expected three dot-separated parts)")
    return parts[0], parts[1], parts[2]


def _decode(part: str, what: str) -> bytes:
    try:
        return b64url_decode(part)
    except ValueError:
        raise TokenInvalid(f"{what} is not base64url") from None


def _json_object(data: bytes, what: str) -> dict[str, object]:
    try:
        # Strict: `{"alg":"none","alg":"EdDSA"}` must not be read one way here and another elsewhere.
        value = strict_loads(data.decode("utf-8"), parse_float=Decimal)  # no binary floats, even from a token
    except ValueError:
        raise TokenInvalid(f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise TokenInvalid(f"{what} is not a JSON object")
    return value
