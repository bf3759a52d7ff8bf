"""The per-decision state that compiled expressions read: inputs, caches, variables."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

MISSING = object()


class Activation:
    """One decision's inputs plus memo tables (paths read once, lets computed once)."""

    __slots__ = ("request", "facts", "now", "risk_score", "risk_tier", "cache", "vars")

    def __init__(self, request: dict, facts: dict, now: datetime):
        self.request = request
        self.facts = facts
        self.now = now
        self.risk_score: Decimal | None = None
        self.risk_tier: str | None = None
        self.cache: dict[Any, Any] = {}
        self.vars: dict[int, Any] = {}
