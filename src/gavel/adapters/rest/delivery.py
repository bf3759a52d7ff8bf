"""Webhook delivery: the worker that empties the outbox.

Deliveries are rows (`Delivery`), written in the transaction of the change they report, so
none is lost: the worker leases due rows (`DeliveryRepo.claim`), POSTs each one, and records
every attempt on the row — attempts, last_error, next_attempt_at, and delivered_at on success
— releasing the lease. A worker that dies mid-attempt leaves a lease that expires, and the row
is claimed again (so delivery is at least once: receivers deduplicate on X-Gavel-Delivery-Id,
which is stable across retries).

Outcome of an attempt:
- 2xx: `delivered`.
- network error, timeout, 5xx, 429: retried after `RetryPolicy.delay` (exponential back-off
  with jitter; a Retry-After on 429 or 503, in seconds or as an HTTP date, is honoured, within
  the cap); after `max_attempts` attempts: `dead`.
- 3xx: `failed` (redirects are not followed: they could lead to internal addresses).
- other 4xx, a target the egress guard refuses, a disabled or deleted endpoint: `failed`.

Fairness: each endpoint has at most `per_endpoint` requests in flight (a semaphore per endpoint).
The loop never waits for a send: each is a task (`max_in_flight` at most), and the loop goes on
claiming for the other endpoints. A claimed row waits for its endpoint's semaphore only as long
as its lease allows: the worker keeps, per endpoint, as many rows as that endpoint gets through
in half the time a lease leaves for waiting (12.5 s by default), at the pace it has been
answering (a moving average of attempt durations; 1 s until known; at most half the worker's
slots), and hands the rest back, due again when the endpoint should have room at that pace
(`Pacing`, at most a minute on; at most a second while its pace is not known, so that a backlog
for an endpoint not measured yet — after a restart — is not spread over a minute), so one slow
receiver's backlog neither fills the worker nor hides the others' deliveries from the claim.
A row whose lease runs short before its turn is handed back unsent.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import errno
import hashlib
import hmac
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import aiohttp
from aiohttp.abc import AbstractResolver

from gavel.adapters.rest.egress import EgressRefused, GuardedResolver, check_host, parse_target
from gavel.app.model import Delivery, WebhookEndpoint
from gavel.app.ports import Store, StoreUnavailable, UnitOfWork

log = logging.getLogger("gavel.webhooks")

USER_AGENT = "gavel-webhooks/1"
LEASE_MARGIN_SECONDS = 30.0  # a lease is the timeout plus this
SEND_MARGIN_SECONDS = 5.0  # a held row is sent only if its lease outlasts the timeout by this much
PACE_PRIOR_SECONDS = 1.0  # the assumed duration of an attempt to an endpoint not yet measured (what it holds)
UNMEASURED_DEFER_SECONDS = 1.0  # the furthest a row of an endpoint not yet measured is handed back
MAX_DEFER_SECONDS = 60.0  # the furthest a row handed back is pushed
PACED_ENDPOINTS = 10_000  # endpoints whose pace is remembered
MAX_PAUSE_SECONDS = 5.0  # the longest pause after a store error
RECORD_TRIES = 6  # attempts to record an outcome while the store is unavailable


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential back-off with jitter: about base, 2·base, 4·base … seconds, at most cap."""

    base_seconds: float = 1.0
    cap_seconds: float = 600.0
    max_attempts: int = 10
    jitter: float = 0.2  # ± this fraction of the delay

    def __post_init__(self) -> None:
        if not self.base_seconds > 0:
            raise ValueError("base_seconds must be positive")
        if not self.cap_seconds >= self.base_seconds:
            raise ValueError("cap_seconds must be at least base_seconds")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number `attempt` (1 for the first)."""
        exponent = min(max(attempt - 1, 0), 60)
        raw = min(self.base_seconds * 2.0**exponent, self.cap_seconds)
        if self.jitter:
            raw *= 1.0 + rng.uniform(-self.jitter, self.jitter)
        return max(0.0, min(raw, self.cap_seconds))


# -- signatures ---------------------------------------------------------------------------------


def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def sign(secret: str, timestamp: int | str, body: str | bytes) -> str:
    """X-Gavel-Signature: hex HMAC-SHA256, keyed with the UTF-8 secret, over `{timestamp}.{body}`."""
    return hmac.new(_bytes(secret), f"{timestamp}.".encode("ascii") + _bytes(body), hashlib.sha256).hexdigest()


def verify_signature(
    secret: str,
    body: str | bytes,
    timestamp: str | int,
    signature: str | bytes,
    now: float | datetime,
    tolerance_seconds: float = 300,
) -> bool:
    """The receiver's check: the signature matches (in constant time) and the timestamp is within
    `tolerance_seconds` of `now` (Unix seconds or an aware datetime), which limits replays.
    `body` is the raw request body; `timestamp` the X-Gavel-Timestamp header as received."""
    stamp = str(timestamp)
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 20):
        return False
    now_seconds = now.timestamp() if isinstance(now, datetime) else float(now)
    if not abs(now_seconds - int(stamp)) <= tolerance_seconds:
        return False
    try:
        given = signature.encode("ascii") if isinstance(signature, str) else bytes(signature)
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(sign(secret, stamp, body).encode("ascii"), given)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds from `now`: delta-seconds or an HTTP date; None if absent or invalid."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


# -- one attempt --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    delivered: bool
    retry: bool  # a failure that is worth another attempt
    error: str  # "" when delivered
    retry_after: float | None = None  # seconds the receiver asked us to wait


def _connect_error(exc: aiohttp.ClientConnectorError) -> str:
    os_error = exc.os_error
    if isinstance(os_error, ConnectionRefusedError) or os_error.errno == errno.ECONNREFUSED:
        return "connection refused"
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"TLS error: {os_error}"
    reason = os_error.strerror or str(os_error) or type(os_error).__name__
    return f"cannot connect: {reason}"


def _refusal_in(exc: BaseException) -> EgressRefused | None:
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        if isinstance(current, EgressRefused):
            return current
        current = current.__cause__ or current.__context__
        seen += 1
    return None


def classify(status: int, retry_after: float | None) -> Outcome:
    if 200 <= status < 300:
        return Outcome(True, False, "")
    if 300 <= status < 400:
        return Outcome(False, False, f"HTTP {status}: redirects are not followed")
    if status == 429 or status >= 500:
        honoured = retry_after if status in (429, 503) else None
        return Outcome(False, True, f"HTTP {status}", honoured)
    return Outcome(False, False, f"HTTP {status}")


# -- pacing -------------------------------------------------------------------------------------


class Pacing:
    """Which claimed rows to keep, and when to make the others due again: a snapshot of what
    the worker knows of each endpoint (mean attempt seconds, until when its slots are booked by
    rows handed back), used inside one claim and merged back afterwards."""

    def __init__(self, seconds: dict[str, float], booked: dict[str, datetime], *, per_endpoint: int,
                 wait_budget: float, max_hold: int, min_defer: float):
        self.seconds = seconds
        self.booked = booked
        self.per_endpoint = per_endpoint
        self.wait_budget = wait_budget
        self.max_hold = max_hold
        self.min_defer = min_defer

    def pace(self, key: str) -> float:
        return max(self.seconds.get(key, PACE_PRIOR_SECONDS), 0.001)

    def hold(self, key: str) -> int:
        """Rows of endpoint `key` to keep: what it gets through in half the wait budget, plus a round."""
        rounds = 1 + int(self.wait_budget / 2 / self.pace(key))
        return max(self.per_endpoint, min(self.max_hold, self.per_endpoint * rounds))

    def defer(self, key: str, now: datetime, held: int) -> datetime:
        """When a row handed back should be due again: after the `held` rows, and after the rows
        handed back before it, at the endpoint's pace. An endpoint not measured yet is not paced
        at the prior: its rows come back soon (`UNMEASURED_DEFER_SECONDS`), when its first answers
        tell its pace, and book nothing — a fast receiver's backlog (after a restart, say) is not
        pushed back by up to a minute at an assumed second an attempt."""
        if key not in self.seconds:
            soon = max(self.min_defer, min(UNMEASURED_DEFER_SECONDS, held * self.pace(key) / self.per_endpoint))
            return now + timedelta(seconds=min(soon, MAX_DEFER_SECONDS))
        interval = timedelta(seconds=self.pace(key) / self.per_endpoint)
        slot = max(self.booked.get(key, now), now + held * interval)
        self.booked[key] = slot + interval
        return min(max(slot, now + timedelta(seconds=self.min_defer)), now + timedelta(seconds=MAX_DEFER_SECONDS))


# -- the worker ---------------------------------------------------------------------------------


class DeliveryWorker:
    """Claims due deliveries and sends them; run `run_forever()` as a background task and
    `close()` at shutdown. `clock` returns aware datetimes (the time written to the rows and the
    X-Gavel-Timestamp header). `resolver` is the DNS resolver under the egress guard (tests)."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], datetime],
        rng: random.Random | None = None,
        retry: RetryPolicy | None = None,
        timeout_seconds: float = 10.0,
        per_endpoint: int = 4,
        allow_private: bool = False,
        tick: float = 0.2,
        batch_size: int = 100,
        max_in_flight: int = 256,
        resolver: AbstractResolver | None = None,
    ) -> None:
        if timeout_seconds <= 0 or per_endpoint < 1 or tick <= 0 or batch_size < 1 or max_in_flight < 1:
            raise ValueError("timeout_seconds, per_endpoint, tick, batch_size and max_in_flight must be positive")
        self._store = store
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self.retry = retry if retry is not None else RetryPolicy()
        self.timeout_seconds = float(timeout_seconds)
        self.per_endpoint = per_endpoint
        self.allow_private = allow_private
        self.tick = tick
        self.batch_size = batch_size
        self.max_in_flight = max_in_flight
        self.lease_seconds = self.timeout_seconds + LEASE_MARGIN_SECONDS
        self._pace: dict[str, float] = {}  # endpoint id → moving average of attempt seconds
        self._booked: dict[str, datetime] = {}  # endpoint id → its slots are booked until then
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None
        self._guard: GuardedResolver | None = None
        self._held: dict[str, int] = {}  # endpoint id → rows held (waiting or in flight)
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiting: dict[asyncio.Task[None], Delivery] = {}  # tasks not yet past their semaphore
        self._claiming = asyncio.Lock()
        self._stop = asyncio.Event()
        self.attempts = 0  # attempts made by this worker (metrics, tests)

    # -- running ---------------------------------------------------------------------------------

    async def run_forever(self) -> None:
        """Claim and send until `close()`; store errors are logged and waited out, never raised."""
        pause = self.tick
        while not self._stop.is_set():
            try:
                claimed, limit, started = await self._claim_and_start()
            except StoreUnavailable as exc:
                log.warning("webhook deliveries: the store is unavailable (%s); retrying in %.1f s", exc, pause)
                await self._pause(pause)
                pause = min(pause * 2, MAX_PAUSE_SECONDS)
                continue
            except Exception:
                log.exception("webhook deliveries: unexpected error while claiming; retrying in %.1f s", pause)
                await self._pause(pause)
                pause = min(pause * 2, MAX_PAUSE_SECONDS)
                continue
            pause = self.tick
            if self._stop.is_set():
                break
            if limit == 0 and self._tasks:  # every slot is busy: wait for a send to finish
                await asyncio.wait(set(self._tasks), timeout=self.tick, return_when=asyncio.FIRST_COMPLETED)
            elif claimed >= limit and started:  # a full batch, not all handed back: there may be more due
                await asyncio.sleep(0)
            else:
                await self._pause(self.tick)

    async def run_once(self) -> int:
        """Claim one batch, send it and wait for those sends; returns how many were attempted or
        handed back. For tests and tools; store errors propagate."""
        _, _, started = await self._claim_and_start()
        if started:
            await asyncio.gather(*started, return_exceptions=True)
        return len(started)

    async def close(self, grace_seconds: float | None = None) -> None:
        """Stop claiming; hand back rows not yet sent; let sends in flight finish (up to
        `grace_seconds`, by default the timeout) and close the HTTP client."""
        self._stop.set()
        async with self._claiming:  # a claim in progress hands its rows back itself
            pass
        waiting = dict(self._waiting)
        for task in waiting:
            task.cancel()
        if waiting:
            await asyncio.gather(*waiting, return_exceptions=True)
            with contextlib.suppress(StoreUnavailable):
                await self._store.write(lambda uow: [_give_back(uow, row) for row in waiting.values()])
        if self._tasks:
            grace = self.timeout_seconds + 1.0 if grace_seconds is None else grace_seconds
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()  # its lease expires and the row is claimed again
            await asyncio.gather(*pending, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._guard is not None:
            await self._guard.close()
            self._guard = None

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    # -- claiming --------------------------------------------------------------------------------

    async def _claim_and_start(self) -> tuple[int, int, list[asyncio.Task[None]]]:
        """Claim up to a batch of due rows and start a task for each one kept (the others are
        handed back); returns (rows claimed, the limit asked for, the tasks started)."""
        async with self._claiming:
            if self._stop.is_set():
                return 0, 0, []
            limit = min(self.batch_size, self.max_in_flight - len(self._tasks))
            if limit <= 0:
                return 0, 0, []
            now = self._clock()
            lease_until = now + timedelta(seconds=self.lease_seconds)
            held = dict(self._held)  # completions only lower the real counts meanwhile
            pacing = Pacing(dict(self._pace), {k: v for k, v in self._booked.items() if v > now},
                            per_endpoint=self.per_endpoint,
                            wait_budget=self.lease_seconds - self.timeout_seconds - SEND_MARGIN_SECONDS,
                            max_hold=max(self.per_endpoint, self.max_in_flight // 2), min_defer=self.tick)

            def claim(uow: UnitOfWork) -> tuple[int, list[tuple[Delivery, WebhookEndpoint]]]:
                rows = uow.deliveries.claim(now, lease_until, limit)
                endpoints: dict[str, WebhookEndpoint | None] = {}
                kept: list[tuple[Delivery, WebhookEndpoint]] = []
                for row in rows:
                    if row.endpoint_id not in endpoints:
                        endpoint = uow.webhooks.by_id(row.endpoint_id)
                        if endpoint is not None and (endpoint.tenant_id, endpoint.environment) != (
                                row.tenant_id, row.environment):
                            endpoint = None
                        endpoints[row.endpoint_id] = endpoint
                    endpoint = endpoints[row.endpoint_id]
                    if endpoint is None or not endpoint.enabled:
                        error = "the endpoint no longer exists" if endpoint is None else "the endpoint is disabled"
                        uow.deliveries.save(replace(row, status="failed", last_error=error, next_attempt_at=now,
                                                    lease_until=None))
                    elif held.get(row.endpoint_id, 0) >= pacing.hold(row.endpoint_id):  # busy: hand it back
                        due = pacing.defer(row.endpoint_id, now, held[row.endpoint_id])
                        uow.deliveries.save(replace(row, next_attempt_at=due, lease_until=None))
                    else:
                        held[row.endpoint_id] = held.get(row.endpoint_id, 0) + 1
                        kept.append((replace(row, lease_until=lease_until), endpoint))
                return len(rows), kept

            claimed, kept = await self._store.write(claim)
            self._booked = pacing.booked
            if self._stop.is_set():  # closing: do not start what was just claimed
                with contextlib.suppress(StoreUnavailable):
                    await self._store.write(lambda uow: [_give_back(uow, row) for row, _ in kept])
                return claimed, limit, []
            return claimed, limit, [self._start(row, endpoint) for row, endpoint in kept]

    def _start(self, row: Delivery, endpoint: WebhookEndpoint) -> asyncio.Task[None]:
        key = endpoint.endpoint_id
        self._held[key] = self._held.get(key, 0) + 1
        if key not in self._semaphores:
            self._semaphores[key] = asyncio.Semaphore(self.per_endpoint)
        task = asyncio.create_task(self._deliver(row, endpoint, self._semaphores[key]),
                                   name=f"webhook delivery {row.delivery_id}")
        self._tasks.add(task)
        self._waiting[task] = row
        task.add_done_callback(self._finished(key))
        return task

    def _finished(self, key: str) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            self._waiting.pop(task, None)
            left = self._held.get(key, 0) - 1
            if left > 0:
                self._held[key] = left
            else:  # nobody holds or waits on the semaphore any more
                self._held.pop(key, None)
                self._semaphores.pop(key, None)
        return done

    # -- sending ---------------------------------------------------------------------------------

    async def _deliver(self, row: Delivery, endpoint: WebhookEndpoint, semaphore: asyncio.Semaphore) -> None:
        try:
            async with semaphore:
                self._waiting.pop(asyncio.current_task(), None)  # type: ignore[arg-type]
                assert row.lease_until is not None
                left = (row.lease_until - self._clock()).total_seconds()
                if self._stop.is_set() or left < self.timeout_seconds + SEND_MARGIN_SECONDS:
                    with contextlib.suppress(StoreUnavailable):
                        await self._store.write(lambda uow: _give_back(uow, row))
                    return
                at = self._clock()
                began = asyncio.get_running_loop().time()
                outcome = await self._attempt(row, endpoint, at)
                self.attempts += 1
                self._observe(endpoint.endpoint_id, asyncio.get_running_loop().time() - began)
            await self._record(row, outcome, at)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("webhook delivery %s: unexpected error (the row is retried when its lease expires)",
                          row.delivery_id)

    def _observe(self, key: str, seconds: float) -> None:
        previous = self._pace.pop(key, None)
        self._pace[key] = seconds if previous is None else 0.7 * previous + 0.3 * seconds
        if len(self._pace) > PACED_ENDPOINTS:
            self._pace.pop(next(iter(self._pace)))  # the least recently measured

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._guard = GuardedResolver(self._resolver, allow_private=self.allow_private)
            connector = aiohttp.TCPConnector(resolver=self._guard, use_dns_cache=False, limit=self.max_in_flight)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout_seconds),
                cookie_jar=aiohttp.DummyCookieJar(),  # nothing carried from one receiver to another
                trust_env=False,  # no proxy from the environment: the guard vets the real peer
            )
        return self._session

    async def _attempt(self, row: Delivery, endpoint: WebhookEndpoint, at: datetime) -> Outcome:
        try:
            target = parse_target(endpoint.url)
            assert target.raw_host is not None
            check_host(target.raw_host, self.allow_private)  # aiohttp skips the resolver for literal hosts
        except EgressRefused as exc:
            return Outcome(False, False, exc.message)
        timestamp = str(int(at.timestamp()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Gavel-Signature": sign(endpoint.secret, timestamp, row.body),
            "X-Gavel-Timestamp": timestamp,
            "X-Gavel-Event": row.event,
            "X-Gavel-Delivery-Id": row.delivery_id,
        }
        try:
            async with self._client().post(target, data=row.body.encode("utf-8"), headers=headers,
                                           allow_redirects=False) as response:
                status = response.status
                retry_after = parse_retry_after(response.headers.get("Retry-After"), self._clock())
        except EgressRefused as exc:
            return Outcome(False, False, exc.message)
        except TimeoutError:
            return Outcome(False, True, f"timed out after {self.timeout_seconds:g} s")
        except aiohttp.ClientConnectorDNSError as exc:
            return Outcome(False, True, f"cannot resolve {target.raw_host}: {exc.os_error.strerror or exc.os_error}")
        except aiohttp.ClientConnectorError as exc:
            refusal = _refusal_in(exc)
            if refusal is not None:
                return Outcome(False, False, refusal.message)
            return Outcome(False, True, _connect_error(exc))
        except aiohttp.InvalidURL as exc:
            return Outcome(False, False, f"invalid URL: {exc}"[:500])
        except aiohttp.ServerDisconnectedError:
            return Outcome(False, True, "the server closed the connection without answering")
        except aiohttp.ClientError as exc:
            return Outcome(False, True, f"{type(exc).__name__}: {exc}"[:500])
        except OSError as exc:
            return Outcome(False, True, f"network error: {exc.strerror or exc}"[:500])
        return classify(status, retry_after)

    # -- recording -------------------------------------------------------------------------------

    def _next(self, row: Delivery, outcome: Outcome, at: datetime) -> Delivery:
        now = self._clock()
        attempts = row.attempts + 1
        if outcome.delivered:
            return replace(row, status="delivered", attempts=attempts, last_error="", delivered_at=now,
                           next_attempt_at=at, lease_until=None)
        if not outcome.retry:
            return replace(row, status="failed", attempts=attempts, last_error=outcome.error, next_attempt_at=at,
                           lease_until=None)
        if attempts >= self.retry.max_attempts:
            return replace(row, status="dead", attempts=attempts, last_error=outcome.error, next_attempt_at=at,
                           lease_until=None)
        delay = self.retry.delay(attempts, self._rng)
        if outcome.retry_after is not None:
            delay = min(max(delay, outcome.retry_after), self.retry.cap_seconds)
        return replace(row, status="pending", attempts=attempts, last_error=outcome.error,
                       next_attempt_at=now + timedelta(seconds=delay), lease_until=None)

    async def _record(self, row: Delivery, outcome: Outcome, at: datetime) -> None:
        updated = self._next(row, outcome, at)
        if updated.status != "delivered":
            log.info("webhook delivery %s to %s: attempt %d: %s (%s)", row.delivery_id, row.endpoint_id,
                     updated.attempts, outcome.error, updated.status)
        pause = 0.25
        for tries in range(1, RECORD_TRIES + 1):
            try:
                if not await self._store.write(lambda uow: _save_if_held(uow, row, updated)):
                    log.warning("webhook delivery %s changed while it was being sent; its attempt is not recorded",
                                row.delivery_id)
                return
            except StoreUnavailable as exc:
                if tries == RECORD_TRIES:
                    log.error("webhook delivery %s: cannot record the attempt (%s); it is made again when the "
                              "lease expires", row.delivery_id, exc)
                    return
                await asyncio.sleep(pause)
                pause = min(pause * 2, MAX_PAUSE_SECONDS)


def _holds(uow: UnitOfWork, row: Delivery) -> bool:
    """Whether the stored row is still the one this worker leased (not re-claimed, redelivered
    or deleted meanwhile)."""
    current = uow.deliveries.get(row.delivery_id)
    return current is not None and current.status == "pending" and current.lease_until == row.lease_until


def _save_if_held(uow: UnitOfWork, row: Delivery, updated: Delivery) -> bool:
    if not _holds(uow, row):
        return False
    uow.deliveries.save(updated)
    return True


def _give_back(uow: UnitOfWork, row: Delivery) -> None:
    if _holds(uow, row):
        uow.deliveries.save(replace(row, lease_until=None))


__all__ = ["DeliveryWorker", "Outcome", "RetryPolicy", "classify", "parse_retry_after", "sign", "verify_signature"]
