"""Webhook delivery against real aiohttp receivers on loopback, over a real SQLite store.

Receivers verify every signature with `verify_signature` and record what they saw; they can be
told to fail, answer 4xx / 429 / 3xx, or hang. The egress guard is exercised with
`allow_private=False` (and a stub resolver for names: the machine has no network).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import socket
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver
from multidict import CIMultiDict

from gavel.adapters.db import SqlStore, migrate, sqlite_url
from gavel.adapters.rest.delivery import (
    DeliveryWorker,
    Pacing,
    RetryPolicy,
    classify,
    parse_retry_after,
    sign,
    verify_signature,
)
from gavel.adapters.rest.egress import (
    Egress,
    EgressRefused,
    GuardedResolver,
    check_url,
    forbidden_kind,
)
from gavel.app.errors import InvalidRequest
from gavel.app.model import Delivery, WebhookEndpoint
from gavel.app.ports import StoreUnavailable

SECRET = "whsec_3b1f0c2e9d8a7f6e5d4c3b2a19081726"
FAST = RetryPolicy(base_seconds=0.05, cap_seconds=1.0, max_attempts=5, jitter=0.2)


def utcnow() -> datetime:
    return datetime.now(UTC)


# -- receivers ----------------------------------------------------------------------------------


@dataclass
class Seen:
    at: float  # time.monotonic() on arrival
    path: str
    headers: CIMultiDict
    body: bytes
    valid: bool  # the signature verified


@dataclass
class Receiver:
    """An aiohttp app on 127.0.0.1 that answers `script` first, then `default`."""

    secret: str = SECRET
    script: list[tuple[int, dict]] = field(default_factory=list)
    default: tuple[int, dict] = (200, {})
    hang: bool = False
    delay: float = 0.0
    drop: int = 0  # close the connection without answering this many times
    requests: list[Seen] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    port: int = 0
    runner: web.AppRunner | None = None
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        valid = verify_signature(self.secret, body, request.headers.get("X-Gavel-Timestamp", ""),
                                 request.headers.get("X-Gavel-Signature", ""), time.time())
        self.requests.append(Seen(time.monotonic(), request.path, CIMultiDict(request.headers), body, valid))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.drop > 0:
                self.drop -= 1
                assert request.transport is not None
                request.transport.close()
                return web.Response(status=500)
            if self.hang:
                await self.release.wait()
            elif self.delay:
                await asyncio.sleep(self.delay)
            status, headers = self.script.pop(0) if self.script else self.default
            return web.Response(status=status, headers=headers, text="thanks")
        finally:
            self.in_flight -= 1

    async def start(self, port: int = 0) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5, handler_cancellation=True)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.port = self.runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        self.release.set()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


class StubResolver(AbstractResolver):
    """Names to addresses, without the network."""

    def __init__(self, table: dict[str, list[str]]):
        self.table = table
        self.calls: list[str] = []

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET):
        self.calls.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [{"hostname": host, "host": address, "port": port,
                 "family": socket.AF_INET6 if ":" in address else socket.AF_INET, "proto": 0,
                 "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV} for address in self.table[host]]

    async def close(self) -> None:
        pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def database_url(tmp_path) -> str:
    url = sqlite_url(tmp_path / "gavel.db")
    migrate(url)
    return url


@pytest.fixture
async def store(database_url):
    store = SqlStore(database_url)
    yield store
    await store.close()


@pytest.fixture
async def receivers():
    made: list[Receiver] = []

    async def make(port: int = 0, **settings) -> Receiver:
        receiver = Receiver(**settings)
        made.append(receiver)
        return await receiver.start(port)

    yield make
    for receiver in made:
        await receiver.stop()


@pytest.fixture
async def workers(store, receivers):
    """make(**settings) → a worker (allow_private, FAST retries, a 20 ms tick unless told);
    run(worker) starts run_forever. All are closed before the receivers stop."""
    made: list[DeliveryWorker] = []
    tasks: list[asyncio.Task] = []

    def make(**settings) -> DeliveryWorker:
        settings.setdefault("clock", utcnow)
        settings.setdefault("retry", FAST)
        settings.setdefault("allow_private", True)
        settings.setdefault("tick", 0.02)
        settings.setdefault("rng", random.Random(7))
        worker = DeliveryWorker(settings.pop("store", store), **settings)
        made.append(worker)
        return worker

    def run(worker: DeliveryWorker) -> asyncio.Task:
        task = asyncio.create_task(worker.run_forever())
        tasks.append(task)
        return task

    make.run = run  # type: ignore[attr-defined]
    yield make
    for worker in made:
        await worker.close(grace_seconds=0.5)
    for task in tasks:
        await asyncio.wait_for(task, 2.0)


async def add_endpoint(store, url: str, *, secret: str = SECRET, enabled: bool = True) -> WebhookEndpoint:
    now = utcnow()
    endpoint = WebhookEndpoint(endpoint_id=f"whe_{uuid.uuid4().hex[:12]}", tenant_id="ten_a", environment="test",
                               url=url, events=("approval.requested",), enabled=enabled, description="",
                               secret=secret, created_at=now, updated_at=now)
    await store.write(lambda uow: uow.webhooks.add(endpoint))
    return endpoint


async def add_delivery(store, endpoint: WebhookEndpoint, *, event: str = "approval.requested",
                       due: datetime | None = None) -> Delivery:
    now = utcnow()
    delivery_id = f"whd_{uuid.uuid4().hex[:16]}"
    body = json.dumps({"id": delivery_id, "type": event, "created_at": now.isoformat(),
                       "data": {"approval_id": "apr_1", "amount": "750.00", "note": "café"}},
                      separators=(",", ":"), ensure_ascii=False)
    delivery = Delivery(delivery_id=delivery_id, tenant_id=endpoint.tenant_id, environment=endpoint.environment,
                        endpoint_id=endpoint.endpoint_id, event=event, body=body, status="pending", attempts=0,
                        next_attempt_at=due or now, last_error="", created_at=now)
    await store.write(lambda uow: uow.deliveries.add(delivery))
    return delivery


async def load(store, delivery_id: str) -> Delivery:
    row = await store.read(lambda uow: uow.deliveries.get(delivery_id))
    assert row is not None
    return row


async def until(store, delivery_id: str, check=lambda row: row.status != "pending", timeout: float = 5.0) -> Delivery:
    deadline = time.monotonic() + timeout
    while True:
        row = await load(store, delivery_id)
        if check(row):
            return row
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting on {row}")
        await asyncio.sleep(0.01)


async def settled_after(store, endpoint: WebhookEndpoint) -> Delivery:
    """Add one more delivery for `endpoint` and wait until the worker has settled it: the worker
    has then run its claims again, so a retry of an earlier row that was due would have come."""
    later = await add_delivery(store, endpoint)
    return await until(store, later.delivery_id)


# -- delivering and retrying --------------------------------------------------------------------


async def test_retried_until_delivered_with_a_stable_id_and_valid_signatures(store, receivers, workers):
    receiver = await receivers(script=[(500, {}), (503, {})])
    endpoint = await add_endpoint(store, receiver.url())
    delivery = await add_delivery(store, endpoint)
    workers.run(workers())

    row = await until(store, delivery.delivery_id)

    assert (row.status, row.attempts, row.last_error, row.lease_until) == ("delivered", 3, "", None)
    assert row.delivered_at is not None and row.delivered_at >= row.created_at
    assert len(receiver.requests) == 3
    for seen in receiver.requests:
        assert seen.valid
        assert seen.path == "/hook"
        assert seen.body == delivery.body.encode()
        assert seen.headers["X-Gavel-Delivery-Id"] == delivery.delivery_id
        assert seen.headers["X-Gavel-Event"] == "approval.requested"
        assert seen.headers["Content-Type"] == "application/json"
        assert seen.headers["User-Agent"] == "gavel-webhooks/1"
        assert abs(int(seen.headers["X-Gavel-Timestamp"]) - time.time()) < 10
        expected = sign(SECRET, seen.headers["X-Gavel-Timestamp"], delivery.body)
        assert seen.headers["X-Gavel-Signature"] == expected


async def test_the_first_attempt_comes_within_a_second(store, receivers, workers):
    receiver = await receivers()
    endpoint = await add_endpoint(store, receiver.url())
    workers.run(workers(tick=0.2))  # the default tick
    await asyncio.sleep(0.3)
    started = time.monotonic()
    delivery = await add_delivery(store, endpoint)
    await until(store, delivery.delivery_id)
    assert receiver.requests[0].at - started < 1.0


async def test_a_4xx_fails_after_one_attempt(store, receivers, workers):
    receiver = await receivers(default=(404, {}))
    endpoint = await add_endpoint(store, receiver.url())
    delivery = await add_delivery(store, endpoint)
    workers.run(workers())

    row = await until(store, delivery.delivery_id)
    await settled_after(store, endpoint)  # no retry follows

    assert (row.status, row.attempts, row.last_error) == ("failed", 1, "HTTP 404")
    assert [seen.headers["X-Gavel-Delivery-Id"] for seen in receiver.requests].count(delivery.delivery_id) == 1
    assert (await load(store, delivery.delivery_id)).attempts == 1


async def test_429_with_retry_after_waits_that_long(store, receivers, workers):
    receiver = await receivers(script=[(429, {"Retry-After": "1"})])
    delivery = await add_delivery(store, await add_endpoint(store, receiver.url()))
    workers.run(workers())

    first = await until(store, delivery.delivery_id, lambda row: row.attempts == 1)
    assert first.status == "pending" and first.last_error == "HTTP 429"
    assert first.next_attempt_at - first.created_at >= timedelta(seconds=0.95)
    row = await until(store, delivery.delivery_id)

    assert (row.status, row.attempts) == ("delivered", 2)
    assert receiver.requests[1].at - receiver.requests[0].at >= 0.95


async def test_retry_after_is_capped(store, receivers, workers):
    receiver = await receivers(script=[(429, {"Retry-After": "3600"})])
    delivery = await add_delivery(store, await add_endpoint(store, receiver.url()))
    workers.run(workers(retry=replace(FAST, cap_seconds=0.3)))

    row = await until(store, delivery.delivery_id, timeout=3.0)

    assert (row.status, row.attempts) == ("delivered", 2)


async def test_always_500_is_dead_after_max_attempts(store, receivers, workers):
    receiver = await receivers(default=(500, {}))
    endpoint = await add_endpoint(store, receiver.url())
    delivery = await add_delivery(store, endpoint)
    workers.run(workers())

    row = await until(store, delivery.delivery_id)
    await settled_after(store, endpoint)  # no attempt follows the last one

    assert (row.status, row.attempts, row.last_error) == ("dead", FAST.max_attempts, "HTTP 500")
    ours = [seen for seen in receiver.requests if seen.headers["X-Gavel-Delivery-Id"] == delivery.delivery_id]
    assert len(ours) == FAST.max_attempts
    assert all(seen.valid for seen in ours)


async def test_a_redirect_is_not_followed(store, receivers, workers):
    target = await receivers()
    receiver = await receivers(default=(302, {"Location": target.url("/elsewhere")}))
    endpoint = await add_endpoint(store, receiver.url())
    delivery = await add_delivery(store, endpoint)
    workers.run(workers())

    row = await until(store, delivery.delivery_id)
    await settled_after(store, endpoint)  # no retry, and no request to the redirect's target

    assert (row.status, row.attempts) == ("failed", 1)
    assert row.last_error == "HTTP 302: redirects are not followed"
    assert [seen.headers["X-Gavel-Delivery-Id"] for seen in receiver.requests].count(delivery.delivery_id) == 1
    assert target.requests == []


async def test_a_dropped_connection_is_retried(store, receivers, workers):
    receiver = await receivers(drop=1)
    delivery = await add_delivery(store, await add_endpoint(store, receiver.url()))
    workers.run(workers(retry=replace(FAST, base_seconds=0.3)))

    first = await until(store, delivery.delivery_id, lambda row: row.attempts >= 1)
    row = await until(store, delivery.delivery_id)

    assert (first.status, first.last_error) == ("pending", "the server closed the connection without answering")
    assert (row.status, row.attempts) == ("delivered", 2)
    assert len(receiver.requests) == 2


async def test_a_receiver_that_comes_up_later_gets_the_delivery(store, receivers, workers):
    port = free_port()
    endpoint = await add_endpoint(store, f"http://127.0.0.1:{port}/hook")
    delivery = await add_delivery(store, endpoint)
    workers.run(workers(retry=RetryPolicy(base_seconds=0.05, cap_seconds=0.2, max_attempts=50)))

    down = await until(store, delivery.delivery_id, lambda row: row.attempts >= 2)
    assert down.status == "pending" and down.last_error == "connection refused"
    receiver = await receivers(port=port)
    row = await until(store, delivery.delivery_id)

    assert row.status == "delivered" and row.attempts > down.attempts
    assert len(receiver.requests) == 1 and receiver.requests[0].valid


async def test_a_hanging_endpoint_does_not_delay_another(store, receivers, workers):
    hanging = await receivers(hang=True)
    fast = await receivers()
    slow_endpoint = await add_endpoint(store, hanging.url())
    stuck = [await add_delivery(store, slow_endpoint) for _ in range(6)]
    workers.run(workers(timeout_seconds=1.0, per_endpoint=2))
    deadline = time.monotonic() + 2
    while hanging.in_flight < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert hanging.in_flight == 2

    other = await add_delivery(store, await add_endpoint(store, fast.url()))
    row = await until(store, other.delivery_id)

    assert row.status == "delivered"
    # delivered while both hanging requests were still in flight, before their timeout ended any
    assert hanging.in_flight == 2
    assert [(await load(store, d.delivery_id)).attempts for d in stuck] == [0] * 6, "the other endpoint waited"
    timed_out = await until(store, stuck[0].delivery_id, lambda row: row.attempts >= 1)
    assert timed_out.last_error == "timed out after 1 s"
    assert hanging.max_in_flight == 2  # per_endpoint


async def test_a_slow_endpoints_backlog_is_handed_back_not_hoarded(store, receivers, workers):
    hanging = await receivers(hang=True)
    fast = await receivers()
    slow_endpoint = await add_endpoint(store, hanging.url())
    backlog = [await add_delivery(store, slow_endpoint) for _ in range(60)]
    other = await add_delivery(store, await add_endpoint(store, fast.url()))  # claimed after the whole backlog
    worker = workers(timeout_seconds=1.0, per_endpoint=2, batch_size=20)
    hold = 2 * (1 + int((worker.lease_seconds - 1.0 - 5.0) / 2 / 1.0))  # at the assumed pace of 1 s

    workers.run(worker)
    row = await until(store, other.delivery_id)

    assert row.status == "delivered"
    in_flight_when_delivered = hanging.in_flight
    rows = [await load(store, d.delivery_id) for d in backlog]
    # delivered while the backlog's first requests still hung, not after their timeouts
    assert in_flight_when_delivered == 2 and all(r.attempts == 0 for r in rows)
    handed_back = [r for r in rows if r.lease_until is None]
    assert len(handed_back) == len(backlog) - hold
    assert all(r.status == "pending" and r.attempts == 0 and r.next_attempt_at > utcnow() for r in handed_back)
    assert hanging.max_in_flight == 2


def test_pacing_keeps_what_an_endpoint_gets_through_and_spaces_the_rest():
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    pacing = Pacing({"fast": 0.01, "slow": 10.0}, {}, per_endpoint=4, wait_budget=25.0, max_hold=128, min_defer=0.2)
    assert pacing.hold("slow") == 8  # one round in flight, one waiting: 12.5 s of waiting at 10 s a round
    assert pacing.hold("unknown") == 4 * 13  # assumed 1 s an attempt
    assert pacing.hold("fast") == 128  # the cap (half the worker's slots)
    dues = [pacing.defer("slow", now, 8) for _ in range(3)]
    assert [(due - now).total_seconds() for due in dues] == [20.0, 22.5, 25.0]  # after the 8 held, 4 per 10 s
    assert (pacing.defer("fast", now, 128) - now).total_seconds() == 0.32
    assert (pacing.defer("fast", now, 0) - now).total_seconds() == pytest.approx(0.3225)  # after the row before it
    far = [pacing.defer("slow", now, 8) for _ in range(50)]
    assert max(far) == now + timedelta(seconds=60)  # never pushed further than a minute


async def test_per_endpoint_concurrency_is_bounded(store, receivers, workers):
    receiver = await receivers(delay=0.15)
    endpoint = await add_endpoint(store, receiver.url())
    deliveries = [await add_delivery(store, endpoint) for _ in range(12)]
    workers.run(workers(per_endpoint=3))

    for delivery in deliveries:
        assert (await until(store, delivery.delivery_id)).status == "delivered"

    assert receiver.max_in_flight == 3
    assert sorted(seen.headers["X-Gavel-Delivery-Id"] for seen in receiver.requests) == sorted(
        d.delivery_id for d in deliveries)


async def test_a_disabled_endpoint_fails_its_deliveries_without_sending(store, receivers, workers):
    receiver = await receivers()
    delivery = await add_delivery(store, await add_endpoint(store, receiver.url(), enabled=False))
    workers.run(workers())

    row = await until(store, delivery.delivery_id)

    assert (row.status, row.attempts, row.last_error) == ("failed", 0, "the endpoint is disabled")
    assert receiver.requests == []


# -- egress: refused without a connection -------------------------------------------------------


@pytest.mark.parametrize(("host", "table", "error"), [
    ("127.0.0.1", {}, "refused: 127.0.0.1 is a loopback address"),
    ("localhost", None, "refused: localhost resolves to "),
    ("10.0.0.5", {}, "refused: 10.0.0.5 is a private address"),
    ("[::1]", {}, "refused: ::1 is a loopback address"),
    ("[::ffff:127.0.0.1]", {}, "refused: ::ffff:7f00:1 (127.0.0.1) is a loopback address"),
    ("169.254.169.254", {}, "refused: 169.254.169.254 is a link-local address"),
    ("hooks.example.test", {"hooks.example.test": ["127.0.0.1"]},
     "refused: hooks.example.test resolves to 127.0.0.1, a loopback address"),
    ("rebind.example.test", {"rebind.example.test": ["93.184.216.34", "127.0.0.1"]},
     "refused: rebind.example.test resolves to 127.0.0.1, a loopback address"),
    ("127.1", {}, "refused: 127.1 is not a canonical IP address"),
])
async def test_private_targets_are_refused_at_delivery(store, receivers, workers, host, table, error):
    receiver = await receivers()
    delivery = await add_delivery(store, await add_endpoint(store, f"http://{host}:{receiver.port}/hook"))
    resolver = None if table is None else StubResolver(table)
    worker = workers(allow_private=False, resolver=resolver)

    assert await worker.run_once() == 1
    row = await load(store, delivery.delivery_id)

    assert (row.status, row.attempts) == ("failed", 1)
    assert row.last_error.startswith(error)
    if host == "localhost":
        assert row.last_error.endswith("a loopback address")
    assert receiver.requests == []


async def test_a_name_is_resolved_by_the_guarded_resolver(store, receivers, workers):
    receiver = await receivers()
    resolver = StubResolver({"receiver.example.test": ["127.0.0.1"]})
    delivery = await add_delivery(store, await add_endpoint(store, receiver.url(host="receiver.example.test")))
    worker = workers(allow_private=True, resolver=resolver)

    await worker.run_once()

    assert (await load(store, delivery.delivery_id)).status == "delivered"
    assert resolver.calls == ["receiver.example.test"]
    assert receiver.requests[0].headers["Host"] == f"receiver.example.test:{receiver.port}"


@pytest.mark.parametrize(("url", "message"), [
    ("ftp://example.com/hook", "the scheme must be http or https"),
    ("http://user:pw@example.com/", "may not contain a user name or password"),
    ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is a link-local address"),
    ("http://[fd00::1]/", "fd00::1 is a private address"),
    ("http://[fe80::1]/", "fe80::1 is a link-local address"),
    ("http://[::ffff:10.0.0.1]/", "::ffff:a00:1 (10.0.0.1) is a private address"),
    ("http://[64:ff9b::a9fe:a9fe]/", "64:ff9b::a9fe:a9fe (169.254.169.254) is a link-local address"),
    ("http://100.64.0.1/", "is a private address"),
    ("http://198.18.0.1/", "is a reserved address"),
    ("http://224.0.0.1/", "is a multicast address"),
    ("http://0.0.0.0/", "is an unspecified address"),
    ("http://[::]/", "is an unspecified address"),
    ("http://2130706433/", "not a canonical IP address"),
    ("http:///hook", "no host"),
    ("/relative/hook", "scheme"),
    ("", "empty"),
    ("https://internal.example/hook", "internal.example resolves to 10.1.2.3, a private address"),
    ("https://twofaced.example/hook", "twofaced.example resolves to 192.168.1.9, a private address"),
])
async def test_check_url_refuses(url, message):
    resolver = StubResolver({"internal.example": ["10.1.2.3"], "twofaced.example": ["93.184.216.34", "192.168.1.9"]})
    with pytest.raises(EgressRefused) as refused:
        await check_url(url, False, resolver)
    assert message in refused.value.message
    assert isinstance(refused.value, InvalidRequest)
    assert refused.value.violations[0].field == "url"


async def test_check_url_accepts_public_targets():
    resolver = StubResolver({"example.com": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]})
    await check_url("https://example.com/hook", False, resolver)
    await check_url("https://93.184.216.34:8443/hook", False, resolver)
    await check_url("https://not-yet-in-dns.example/hook", False, resolver)  # decided at delivery
    assert resolver.calls == ["example.com", "not-yet-in-dns.example"]
    await Egress(resolver=resolver).check_url("https://example.com/hook")
    with pytest.raises(EgressRefused):
        await Egress().check_url("http://10.0.0.5/")


async def test_check_url_with_allow_private_does_not_resolve():
    resolver = StubResolver({})
    for url in ("http://127.0.0.1:8080/hook", "http://localhost/hook", "http://10.0.0.5/", "http://[::1]/"):
        await check_url(url, True, resolver)
    assert resolver.calls == []
    with pytest.raises(EgressRefused):
        await check_url("http://user@localhost/", True, resolver)


async def test_guarded_resolver_refuses_any_forbidden_answer():
    inner = StubResolver({"ok.example": ["93.184.216.34"], "mixed.example": ["93.184.216.34", "fd12::1"]})
    guard = GuardedResolver(inner)
    assert [r["host"] for r in await guard.resolve("ok.example", 443)] == ["93.184.216.34"]
    with pytest.raises(EgressRefused, match="mixed.example resolves to fd12::1, a private address"):
        await guard.resolve("mixed.example", 443)
    assert len(await GuardedResolver(inner, allow_private=True).resolve("mixed.example", 443)) == 2


@pytest.mark.parametrize(("address", "kind"), [
    ("8.8.8.8", None), ("93.184.216.34", None), ("2606:4700:4700::1111", None), ("::ffff:8.8.8.8", None),
    ("64:ff9b::808:808", None), ("64:ff9b::a00:1", "private"),
    ("127.0.0.1", "loopback"), ("127.255.0.9", "loopback"), ("::1", "loopback"), ("::ffff:127.0.0.1", "loopback"),
    ("10.0.0.5", "private"), ("172.16.0.1", "private"), ("172.31.255.255", "private"), ("192.168.0.1", "private"),
    ("100.64.0.1", "private"), ("100.127.255.254", "private"), ("fc00::1", "private"), ("fdff::1", "private"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"), ("fe80::1%eth0", "link-local"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("224.0.0.1", "multicast"), ("239.255.255.250", "multicast"), ("ff02::1", "multicast"),
    ("198.18.0.1", "reserved"), ("198.19.255.255", "reserved"), ("192.0.2.1", "reserved"), ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"), ("2001:db8::1", "reserved"), ("2002:a00:5::1", "reserved"),
    ("::a00:5", "reserved"), ("not-an-address", "invalid"),
])
def test_forbidden_kind(address, kind):
    assert forbidden_kind(address) == kind


# -- leases, restarts, store trouble ------------------------------------------------------------


async def test_a_crashed_workers_lease_expires_and_the_row_is_delivered_once(store, receivers, workers):
    receiver = await receivers()
    endpoint = await add_endpoint(store, receiver.url())
    now = utcnow()
    live = await add_delivery(store, endpoint, due=now - timedelta(minutes=5))
    # another worker holds this one right now: it is not taken
    await store.write(lambda uow: uow.deliveries.claim(now, now + timedelta(minutes=1), 10))
    assert (await load(store, live.delivery_id)).lease_until > now
    expired = await add_delivery(store, endpoint, due=now - timedelta(minutes=5))
    # a worker claimed this one a while ago, then died before recording anything
    claimed = await store.write(lambda uow: uow.deliveries.claim(now - timedelta(minutes=2),
                                                                 now - timedelta(minutes=1), 10))
    assert [row.delivery_id for row in claimed] == [expired.delivery_id]
    assert (await load(store, expired.delivery_id)).lease_until < now
    worker = workers()

    assert await worker.run_once() == 1
    assert await worker.run_once() == 0

    row = await load(store, expired.delivery_id)
    assert (row.status, row.attempts, row.lease_until) == ("delivered", 1, None)
    assert [seen.headers["X-Gavel-Delivery-Id"] for seen in receiver.requests] == [expired.delivery_id]
    assert (await load(store, live.delivery_id)).status == "pending"


async def test_a_fresh_worker_delivers_what_the_first_left_pending(database_url, receivers):
    receiver = await receivers(script=[(500, {})])
    first_store = SqlStore(database_url)
    endpoint = await add_endpoint(first_store, receiver.url())
    tried = await add_delivery(first_store, endpoint)
    first = DeliveryWorker(first_store, clock=utcnow, retry=replace(FAST, base_seconds=0.3), allow_private=True)
    assert await first.run_once() == 1
    await first.close()
    after = await load(first_store, tried.delivery_id)
    assert (after.status, after.attempts, after.last_error) == ("pending", 1, "HTTP 500")
    untried = await add_delivery(first_store, endpoint)  # written while no worker runs
    await first_store.close()

    second_store = SqlStore(database_url)  # a restarted process
    second = DeliveryWorker(second_store, clock=utcnow, retry=FAST, allow_private=True, tick=0.02)
    task = asyncio.create_task(second.run_forever())
    try:
        done = [await until(second_store, d.delivery_id) for d in (tried, untried)]
    finally:
        await second.close()
        await task
        await second_store.close()

    assert [(row.status, row.attempts) for row in done] == [("delivered", 2), ("delivered", 1)]
    ids = [seen.headers["X-Gavel-Delivery-Id"] for seen in receiver.requests]
    assert sorted(ids) == sorted([tried.delivery_id, tried.delivery_id, untried.delivery_id])


async def test_close_hands_back_rows_not_yet_sent(store, receivers, workers):
    receiver = await receivers(delay=0.3)
    endpoint = await add_endpoint(store, receiver.url())
    deliveries = [await add_delivery(store, endpoint) for _ in range(3)]
    worker = workers(per_endpoint=1)
    task = workers.run(worker)
    while not receiver.requests:
        await asyncio.sleep(0.01)

    await worker.close(grace_seconds=2.0)
    await task

    rows = [await load(store, d.delivery_id) for d in deliveries]
    assert sorted(row.status for row in rows) == ["delivered", "pending", "pending"]
    assert all(row.lease_until is None for row in rows)  # claimable at once by the next worker
    assert len(receiver.requests) == 1
    assert await workers().run_once() == 2


class FlakyStore:
    """The real store, except that the first `failures` writes raise StoreUnavailable."""

    def __init__(self, store, failures: int):
        self.store = store
        self.failures = failures

    def write(self, unit):
        if self.failures > 0:
            self.failures -= 1
            future = asyncio.get_running_loop().create_future()
            future.set_exception(StoreUnavailable("database is locked"))
            return future
        return self.store.write(unit)

    def read(self, unit):
        return self.store.read(unit)


async def test_store_errors_do_not_stop_the_loop(store, receivers, workers):
    receiver = await receivers()
    delivery = await add_delivery(store, await add_endpoint(store, receiver.url()))
    flaky = FlakyStore(store, failures=4)
    task = workers.run(workers(store=flaky))

    row = await until(store, delivery.delivery_id)

    assert row.status == "delivered" and flaky.failures == 0
    assert not task.done()


async def test_a_closed_store_is_waited_out(database_url, receivers):
    store = SqlStore(database_url)
    await store.close()
    worker = DeliveryWorker(store, clock=utcnow, tick=0.01)
    task = asyncio.create_task(worker.run_forever())
    await asyncio.sleep(0.2)
    assert not task.done()
    await worker.close()
    await asyncio.wait_for(task, 1.0)


# -- policies and signatures --------------------------------------------------------------------


def test_retry_policy_doubles_up_to_the_cap():
    rng = random.Random(1)
    policy = RetryPolicy(jitter=0.0)
    assert [policy.delay(n, rng) for n in range(1, 12)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600]
    assert policy.delay(10_000, rng) == 600
    jittered = RetryPolicy()
    for attempt in range(1, 15):
        plain = min(2.0 ** (attempt - 1), 600.0)
        assert plain * 0.8 <= jittered.delay(attempt, rng) <= min(plain * 1.2, 600.0)
    assert RetryPolicy() == RetryPolicy(base_seconds=1.0, cap_seconds=600.0, max_attempts=10, jitter=0.2)
    with pytest.raises(AttributeError):
        policy.max_attempts = 3  # type: ignore[misc]
    for bad in ({"base_seconds": 0}, {"cap_seconds": 0.5}, {"max_attempts": 0}, {"jitter": 1.0}):
        with pytest.raises(ValueError):
            RetryPolicy(**bad)


def test_status_classification():
    assert classify(204, None).delivered
    assert classify(301, None) == classify(301, None) and not classify(301, None).retry
    assert not classify(400, None).retry and not classify(410, None).retry
    assert classify(429, 7.0).retry and classify(429, 7.0).retry_after == 7.0
    assert classify(503, 3.0).retry_after == 3.0
    assert classify(500, 3.0).retry and classify(500, 3.0).retry_after is None


def test_retry_after_parsing():
    now = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=90), usegmt=True), now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("-5", now) is None
    assert parse_retry_after(None, now) is None


def test_signatures():
    body = '{"id":"whd_1","type":"approval.requested","created_at":"2026-11-22T12:00:00+00:00","data":{}}'
    signature = sign("s3cret", 1795000000, body)
    assert signature == hmac.new(b"s3cret", b"1795000000." + body.encode(), hashlib.sha256).hexdigest()
    assert verify_signature("s3cret", body, "1795000000", signature, 1795000100)
    assert verify_signature("s3cret", body.encode(), 1795000000, signature.encode(), 1795000000)
    assert verify_signature("s3cret", body, "1795000000", signature, datetime.fromtimestamp(1795000200, UTC))
    assert not verify_signature("s3cret", body, "1795000000", signature, 1795000301)  # too old
    assert not verify_signature("s3cret", body, "1795000000", signature, 1794999699)  # from the future
    assert not verify_signature("other", body, "1795000000", signature, 1795000000)
    assert not verify_signature("s3cret", body + " ", "1795000000", signature, 1795000000)
    assert not verify_signature("s3cret", body, "1795000001", signature, 1795000000)
    assert not verify_signature("s3cret", body, "", signature, 1795000000)
    assert not verify_signature("s3cret", body, "1795000000.5", signature, 1795000000)
    assert not verify_signature("s3cret", body, "1795000000", "é" * 64, 1795000000)
    assert not verify_signature("s3cret", body, "1795000000", signature.upper(), 1795000000)
    assert sign("clé", 1, "é") == hmac.new("clé".encode(), "1.é".encode(), hashlib.sha256).hexdigest()
