"""Per tenant + environment fixed-window rate limit (requests per minute)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Quota:
    allowed: bool
    limit: int
    remaining: int
    retry_after: int  # seconds until the window resets


class FixedWindowLimiter:
    WINDOW = 60.0

    def __init__(self, per_minute: int, clock: Callable[[], float]):
        self.per_minute = per_minute
        self._clock = clock
        self._windows: dict[tuple, tuple[int, int]] = {}  # key → (window index, count)

    def take(self, key: tuple) -> Quota:
        if self.per_minute <= 0:
            return Quota(True, 0, 0, 0)
        now = self._clock()
        window = int(now // self.WINDOW)
        index, count = self._windows.get(key, (window, 0))
        if index != window:
            index, count = window, 0
        retry = max(1, math.ceil((window + 1) * self.WINDOW - now))
        if count >= self.per_minute:
            return Quota(False, self.per_minute, 0, retry)
        self._windows[key] = (index, count + 1)
        if len(self._windows) > 100_000:
            self._windows = {k: v for k, v in self._windows.items() if v[0] == window}
        return Quota(True, self.per_minute, self.per_minute - count - 1, retry)
