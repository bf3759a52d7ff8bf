"""Identifiers: a prefix and 26 Crockford base32 characters, time-ordered (like a ULID)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


_PAIRS = [high + low for high in _ALPHABET for low in _ALPHABET]  # 10 bits → two characters


def new_id(prefix: str, now: datetime, random_bytes: Callable[[int], bytes]) -> str:
    """`prefix_` + 26 characters: 48 bits of milliseconds since the epoch, then 80 random bits."""
    millis = (now - _EPOCH) // _MILLISECOND  # exact: timestamp() * 1000 rounds through a float
    value = (millis << 80) | int.from_bytes(random_bytes(10), "big")
    pairs = []
    for _ in range(13):  # two characters at a time: this runs several times per decision
        pairs.append(_PAIRS[value & 1023])
        value >>= 10
    pairs.reverse()
    return f"{prefix}_{''.join(pairs)}"
