"""Column types that store domain values exactly and portably (SQLite and PostgreSQL alike).

- Money is `ExactDecimal`: the text of the `Decimal` (`str(d)`), so value *and* scale survive
  (`Decimal("120.50")` comes back as `Decimal("120.50")`). SQLite has no exact numeric type
  (SQLAlchemy's `Numeric` goes through binary floats there) and `Numeric(38, 8)` would round
  amounts with more places, so text is the only representation that is exact on both.
- Instants are `UtcMicroseconds`: integer microseconds since the Unix epoch. Exact, sortable,
  portable, and free of driver time-zone handling; naive datetimes are refused.
- Documents are `CanonicalJson`: sorted keys, compact separators, UTF-8, no NaN.
- String tuples (roles, allowed actions) are `StringTuple`: a canonical JSON array.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Dialect, Text
from sqlalchemy.types import TypeDecorator

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class ExactDecimal(TypeDecorator[Decimal]):
    """A finite `Decimal`, stored as its exact text."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"expected a Decimal, got {type(value).__name__} `{value!r}`")
        if not value.is_finite():
            raise ValueError(f"`{value}` cannot be stored: amounts must be finite")
        return str(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


class UtcMicroseconds(TypeDecorator[datetime]):
    """A timezone-aware instant, stored as integer microseconds since the epoch, read back in UTC."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__} `{value!r}`")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime `{value.isoformat()}` cannot be stored: give it a time zone")
        return (value - EPOCH) // _MICROSECOND

    def process_result_value(self, value: int | None, dialect: Dialect) -> datetime | None:
        return None if value is None else EPOCH + value * _MICROSECOND


def canonical_json_text(document: Any) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class CanonicalJson(TypeDecorator[dict[str, Any]]):
    """A JSON object, stored as canonical text. Decimals must already be strings."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: dict[str, Any] | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise TypeError(f"expected a dict, got {type(value).__name__}")
        return canonical_json_text(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> dict[str, Any] | None:
        return None if value is None else json.loads(value)


class StringTuple(TypeDecorator[tuple[str, ...]]):
    """A tuple of strings, stored as a canonical JSON array (order kept)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: tuple[str, ...] | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if isinstance(value, str):
            raise TypeError(f"expected a tuple of str, got the single string `{value}`")
        items = tuple(value)
        if not all(isinstance(item, str) for item in items):
            raise TypeError(f"expected a tuple of str, got {value!r}")
        return canonical_json_text(items)

    def process_result_value(self, value: str | None, dialect: Dialect) -> tuple[str, ...] | None:
        return None if value is None else tuple(json.loads(value))
