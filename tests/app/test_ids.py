"""Identifiers: prefix + 26 Crockford base32 characters, ordered by time, then random."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from gavel.app.ids import new_id

CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def reference_id(prefix: str, millis: int, random_part: bytes) -> str:
    """Five bits per character, most significant first, written out the slow way."""
    value = (millis << 80) | int.from_bytes(random_part, "big")
    bits = format(value, "0130b")
    return prefix + "_" + "".join(CROCKFORD[int(bits[i:i + 5], 2)] for i in range(0, 130, 5))


@given(st.integers(0, 253_402_300_799_000),  # up to the last millisecond datetime can hold
       st.binary(min_size=10, max_size=10))
def test_ids_encode_time_then_randomness_in_crockford_base32(millis, random_part):
    now = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis)
    assert new_id("dec", now, lambda n: random_part) == reference_id("dec", millis, random_part)


def test_ids_sort_by_time():
    earlier = new_id("evt", datetime(2026, 11, 22, 10, 0, tzinfo=UTC), lambda n: b"\xff" * n)
    later = new_id("evt", datetime(2026, 11, 22, 10, 0, 0, 1000, tzinfo=UTC), lambda n: b"\x00" * n)
    assert earlier < later and len(earlier) == len("evt_") + 26
