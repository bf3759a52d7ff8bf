"""Identifiers: a prefix and 26 Crockford base32 characters, time-ordered (like a ULID)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def new_id(prefix: str, now: datetime, random_bytes: Callable[[int], bytes]) -> str:
    value = (int(now.timestamp() * 1000) << 80) | int.from_bytes(random_bytes(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"
