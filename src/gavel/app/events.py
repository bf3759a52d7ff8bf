"""Waking event streams when the ledger grows.

Writers call `notify()` after a commit (and, on PostgreSQL, the LISTEN/NOTIFY listener calls it
when another replica commits). The signal carries no data: the store is the truth. Whoever waits
on it does so with a timeout, so it also picks up events committed by other processes sharing
the database even without a notification.

`ChainFeeds` makes long-lived watchers cheap: one `ChainFeed` per (tenant, environment) with
subscribers reads what is new in that chain once per notification (or poll tick) — one store read,
whatever the number of subscribers — keeps a bounded window of what it read, checks the
subscribers' keys in the same read, and wakes only the subscribers the new events concern. Each
subscriber keeps its own cursor and filters; one that falls behind the window reads the store
itself until it is back inside it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

FEED_WINDOW = 2048  # ledger events a feed keeps for its subscribers
FEED_BATCH = 500  # ledger events a feed reads at a time


class EventSignal:
    def __init__(self) -> None:
        self._waiters: set[asyncio.Future] = set()
        self.generation = 0  # notifications so far: a waiter that saw N and finds more returns at once

    def notify(self) -> None:
        self.generation += 1
        for waiter in list(self._waiters):
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def wait(self, timeout: float, since: int | None = None) -> None:
        """Until the next notification, or `timeout` seconds; at once if a notification came after
        generation `since`. A cancellation is never swallowed, even one that arrives as the waiter
        completes (asyncio.wait, unlike wait_for over shield, does not race with it)."""
        if since is not None and since != self.generation:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            await asyncio.wait({waiter}, timeout=timeout)
        finally:
            self._waiters.discard(waiter)
            if not waiter.done():
                waiter.cancel()


@dataclass(frozen=True, slots=True)
class Entry:
    """One ledger event as a feed's subscribers see it."""

    sequence: int
    subject: str  # what the event is about (a decision id for approvals and executions)
    item: Any = None  # what watchers are sent for it (None: nothing)


@dataclass(slots=True)
class Batch:
    """What one read of a chain found: its head (the last sequence read), the events after the
    feed's head, the subscribers' keys that are revoked (or gone), and whether there may be more."""

    head: int
    entries: list[Entry] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)
    more: bool = False


# fetch(chain, after or None for "just the head", key ids to check) → Batch
Fetch = Callable[[Hashable, "int | None", list[str]], Awaitable[Batch]]


class Subscriber:
    """One watcher's handle on its chain's feed. `topic` None: every entry with an item concerns
    it; otherwise only entries whose subject is `topic`."""

    def __init__(self, feed: ChainFeed, key_id: str, topic: str | None) -> None:
        self.feed = feed
        self.key_id = key_id
        self.topic = topic
        self._wake = asyncio.Event()

    @property
    def revoked(self) -> bool:
        return self.key_id in self.feed.revoked

    def check(self) -> None:
        if self.feed.error is not None:
            raise self.feed.error

    def mark(self) -> int | None:
        """The feed's head now (None until its first read)."""
        return self.feed.head

    def since(self, position: int) -> tuple[list[Entry], int] | None:
        """Entries with an item after `position` up to the feed's head, and that head; None when the
        feed does not cover `position` (not started yet, or `position` is older than its window)."""
        feed = self.feed
        if feed.head is None or feed.base is None or position < feed.base:
            return None
        if position >= feed.head:
            return [], position
        return [e for e in feed.log if e.sequence > position and e.item is not None], feed.head

    def touched_since(self, mark: int | None) -> bool:
        """Whether the topic may have changed after the feed's head was `mark` (True when unsure)."""
        feed = self.feed
        if feed.head is None:
            return False  # nothing read yet: its first read wakes everyone
        if mark is None or feed.base is None or mark < feed.base:
            return True
        return any(e.sequence > mark and e.subject == self.topic for e in feed.log)

    async def wait(self, timeout: float | None = None) -> None:
        """Until the feed has something for this subscriber (or `timeout` seconds)."""
        self.check()
        if not self._wake.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
        self._wake.clear()
        self.check()

    def close(self) -> None:
        self.feed.leave(self)


class ChainFeed:
    def __init__(self, owner: ChainFeeds, chain: Hashable) -> None:
        self.owner = owner
        self.chain = chain
        self.head: int | None = None  # the last sequence read
        self.base: int | None = None  # the log holds every event after this one, up to head
        self.log: deque[Entry] = deque()
        self.revoked: set[str] = set()
        self.error: BaseException | None = None
        self.subscribers: set[Subscriber] = set()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"event feed {self.chain}")

    def leave(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
        if not self.subscribers:
            self.stop()

    def stop(self) -> None:
        if self.owner.feeds.get(self.chain) is self:
            del self.owner.feeds[self.chain]
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()

    async def _run(self) -> None:
        signal = self.owner.signal
        try:
            while self.subscribers:
                seen = signal.generation
                while True:
                    keys = sorted({s.key_id for s in self.subscribers})
                    batch = await self.owner.fetch(self.chain, self.head, keys)
                    self._apply(batch)
                    if not batch.more:
                        break
                await signal.wait(self.owner.poll, since=seen)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every subscriber ends with it, as it would have on its own read
            self.error = exc
            self.stop()
            for sub in list(self.subscribers):
                sub._wake.set()

    def _apply(self, batch: Batch) -> None:
        started = self.head is None
        if started:
            self.head = self.base = batch.head
        else:
            self.log.extend(batch.entries)
            while len(self.log) > self.owner.window:
                self.base = self.log.popleft().sequence
            self.head = max(self.head, batch.head)
        revoked = batch.revoked - self.revoked
        self.revoked |= batch.revoked
        if not (started or revoked or batch.entries):
            return
        items = any(e.item is not None for e in batch.entries)
        subjects = {e.subject for e in batch.entries}
        for sub in self.subscribers:
            if started or sub.key_id in revoked or (
                    items if sub.topic is None else sub.topic in subjects):
                sub._wake.set()


class ChainFeeds:
    """The feeds of the chains that have subscribers (see the module's docstring)."""

    def __init__(self, signal: EventSignal, fetch: Fetch, *, poll: float = 0.5, window: int = FEED_WINDOW) -> None:
        self.signal = signal
        self.fetch = fetch
        self.poll = poll
        self.window = window
        self.feeds: dict[Hashable, ChainFeed] = {}

    def subscribe(self, chain: Hashable, key_id: str, topic: str | None = None) -> Subscriber:
        feed = self.feeds.get(chain)
        if feed is None:
            feed = self.feeds[chain] = ChainFeed(self, chain)
            feed.start()
        sub = Subscriber(feed, key_id, topic)
        feed.subscribers.add(sub)
        return sub


__all__ = ["FEED_BATCH", "Batch", "ChainFeed", "ChainFeeds", "Entry", "EventSignal", "Subscriber"]
