"""Slow, vanishing and greedy clients against a real `gavel serve` process.

- a deadline shorter than the work ends the call for the client (DEADLINE_EXCEEDED) and
  nothing for the server, which keeps serving;
- streams cancelled mid-flight give back everything they held: their slot among the tenant's
  open streams, their tasks (the server goes idle again), descriptors and memory;
- the per-tenant stream limit and the per-stream decision limit refuse with RESOURCE_EXHAUSTED
  and a typed reason, and the default stream limit leaves room for far more than 1,000 watchers;
- 1,000 idle `WatchApprovals` streams do not slow `Decide` down;
- a client that stops reading cannot make the server buffer without bound.

How the server is observed without any test hook: its slot count through the limit itself (a
server with a small limit admits exactly that many streams again once the cancelled ones are
gone); its CPU time, descriptors, threads and resident memory through /proc. Every time bound
is generous (several times what the machine needs when idle) and says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import statistics
import time
from pathlib import Path

import grpc
import pytest

from gavel.config import Settings
from gavel.v1 import (
    approval_pb2,
    approval_pb2_grpc,
    common_pb2,
    decision_pb2,
    decision_pb2_grpc,
    evidence_pb2,
    evidence_pb2_grpc,
)
from tests.e2e.helpers import error_info, request
from tests.faults.serve import SERVING, Serve, md

OK = grpc.StatusCode
LIMIT = 12  # streams per tenant + environment on the `limited` server
DECISIONS_CAP = 40  # decisions per DecideStream on the `limited` server
NO_BDP = [("grpc.http2.bdp_probe", 0)]  # keep the client's receive window at its initial 64 KiB
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]  # a channel of its own, not a shared subchannel


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    """One server with small stream limits, shared by the tests that exercise them."""
    server = Serve(tmp_path_factory.mktemp("limited"),
                   env_extra={"GAVEL_MAX_STREAMS_PER_TENANT": str(LIMIT),
                              "GAVEL_MAX_DECISIONS_PER_STREAM": str(DECISIONS_CAP)})
    keys = asyncio.run(server.provision())
    server.start()
    try:
        server.wait_serving_sync()
        yield server, keys
    finally:
        server.stop()


@pytest.fixture(scope="module")
def defaults(tmp_path_factory):
    """One server with the default limits."""
    server = Serve(tmp_path_factory.mktemp("defaults"))
    keys = asyncio.run(server.provision())
    server.start()
    try:
        server.wait_serving_sync()
        yield server, keys
    finally:
        server.stop()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


async def idle_cpu(server: Serve, seconds: float = 1.5) -> float:
    """Server CPU seconds used per wall second while nobody calls."""
    before, started = cpu_seconds(server.pid), time.monotonic()
    await asyncio.sleep(seconds)
    return (cpu_seconds(server.pid) - before) / (time.monotonic() - started)


def refused_for(err: grpc.aio.AioRpcError) -> str:
    assert err.code() == OK.RESOURCE_EXHAUSTED, (err.code(), err.details())
    return error_info(err)[0]


async def first_message(call, timeout: float = 10.0):
    return await asyncio.wait_for(call.read(), timeout)


async def admitted(open_call, seconds: float = 10.0):
    """Open a stream and read its first message; while the limit is reached (cancelled streams
    not yet finalised by the server), retry for up to `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        call = open_call()
        try:
            first = await first_message(call)
        except grpc.aio.AioRpcError as err:
            if refused_for(err) != "STREAM_LIMIT_EXCEEDED" or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
            continue
        gate = getattr(call, "gate", None)
        if gate is not None:
            gate.set()
        return call, first


def decide_stream(stub, metadata, prefix: str, count: int | None = None):
    """A DecideStream that sends one request, then — once `call.gate` is set, i.e. the stream was
    admitted — `count` more (None: without end), written by a task that ends with the call.
    Writing on before the server has answered would race a refusal, and grpc.aio reports a write
    that fails as the server ends the call as INTERNAL instead of the server's status
    (grpc/grpc#36066)."""
    call = stub.DecideStream(metadata=metadata)
    gate = asyncio.Event()

    async def write_all() -> None:
        try:
            await call.write(request(amount="10", correlation_id=f"{prefix}-0"))
            await gate.wait()
            n = 1
            while count is None or n <= count:
                await call.write(request(amount="10", correlation_id=f"{prefix}-{n}"))
                n += 1
            await call.done_writing()
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            pass  # the call ended (refused, cancelled, over): nothing more to send

    writer = asyncio.get_running_loop().create_task(write_all())
    call.add_done_callback(lambda _: writer.cancel())
    call.gate = gate
    return call


# -- deadlines ------------------------------------------------------------------------------------


async def test_a_deadline_shorter_than_the_work_ends_the_call_and_not_the_server(limited) -> None:
    server, keys = limited
    agent = md(keys, "agent")
    async with grpc.aio.insecure_channel(server.addr) as channel:
        decisions = decision_pb2_grpc.DecisionServiceStub(channel)
        pending = await decisions.Decide(request(amount="500"), metadata=agent)
        assert pending.outcome == common_pb2.OUTCOME_REQUIRE_APPROVAL

        # Unary work that cannot finish in time: every write waits for SQLite's write lock, held
        # here by another connection, as a backup tool or a stuck migration would hold it.
        lock = sqlite3.connect(server.data_dir / "gavel.db", isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")
        try:
            started = time.monotonic()
            outcomes = await asyncio.gather(*(decisions.Decide(request(amount="10"), metadata=agent, timeout=0.5)
                                              for _ in range(20)), return_exceptions=True)
            waited = time.monotonic() - started
            assert [getattr(o, "code", lambda: "answered")() for o in outcomes] == [OK.DEADLINE_EXCEEDED] * 20
            assert waited < 4.0  # answered at the deadline, not after the store's 5 s busy timeout
            assert await server.health() == SERVING  # reads go on: the server is slow to write, not down
        finally:
            lock.execute("ROLLBACK")
            lock.close()

        # Streams that would run for ever (a wait on an undecided approval, a live ledger tail):
        # three times the stream limit of them expire, so each expired stream gave its slot back.
        for round_ in range(3):
            calls = [decisions.WaitDecision(decision_pb2.WaitDecisionRequest(decision_id=pending.decision_id),
                                            metadata=agent, timeout=0.6) for _ in range(LIMIT // 2)]
            calls += [evidence_pb2_grpc.EvidenceServiceStub(channel).StreamEvents(
                evidence_pb2.StreamEventsRequest(from_sequence=1 << 40), metadata=md(keys, "auditor"), timeout=0.6)
                for _ in range(LIMIT // 2)]

            async def drain(call):
                try:
                    async for _ in call:
                        pass
                except grpc.aio.AioRpcError as err:
                    return err.code(), (error_info(err)[0] if err.code() == OK.RESOURCE_EXHAUSTED else "")
                return "ended", ""

            codes = await asyncio.gather(*(drain(c) for c in calls))
            assert all(code == OK.DEADLINE_EXCEEDED for code, _ in codes), (round_, codes)
            await asyncio.sleep(0.5)  # the server sees the deadline at about the time the client does

        assert await server.health() == SERVING
        d = await decisions.Decide(request(amount="10"), metadata=agent, timeout=10)
        assert d.outcome == common_pb2.OUTCOME_ALLOW


# -- cancelled streams ----------------------------------------------------------------------------


async def test_streams_cancelled_mid_flight_give_back_slots_tasks_and_memory(limited) -> None:
    """Hundreds of streams of every kind are cancelled by the client in the middle of their work;
    afterwards the server admits exactly LIMIT streams again, is as idle as before, and holds no
    more descriptors, threads or memory than before (within generous bounds)."""
    server, keys = limited
    async with grpc.aio.insecure_channel(server.addr) as channel:
        decisions = decision_pb2_grpc.DecisionServiceStub(channel)
        approvals = approval_pb2_grpc.ApprovalServiceStub(channel)
        evidence = evidence_pb2_grpc.EvidenceServiceStub(channel)
        pending = await decisions.Decide(request(amount="700"), metadata=md(keys, "agent"))
        for _ in range(30):  # enough ledger for the tails and exports to be cut in the middle
            await decisions.Decide(request(amount="10"), metadata=md(keys, "agent"))

        kinds = {
            "WatchApprovals": lambda: approvals.WatchApprovals(approval_pb2.WatchApprovalsRequest(),
                                                              metadata=md(keys, "alice")),
            "WaitDecision": lambda: decisions.WaitDecision(
                decision_pb2.WaitDecisionRequest(decision_id=pending.decision_id), metadata=md(keys, "agent")),
            "StreamEvents": lambda: evidence.StreamEvents(evidence_pb2.StreamEventsRequest(from_sequence=1),
                                                          metadata=md(keys, "auditor")),
            "DecideStream": lambda: decide_stream(decisions, md(keys, "agent"), "cancelled"),
        }

        async def churn(rounds: int) -> None:
            for _ in range(rounds):
                opened = await asyncio.gather(*(admitted(open_call) for open_call in kinds.values()
                                                for _ in range(LIMIT // len(kinds))))
                for call, _ in opened:  # each has sent its first message and has more to do
                    call.cancel()

        await churn(3)  # warm up: reader threads, caches, allocator arenas
        await asyncio.sleep(0.5)
        baseline = {"fds": server.open_fds(), "threads": server.threads(), "rss": server.rss_bytes(),
                    "idle_cpu": await idle_cpu(server)}
        await churn(15)  # 15 rounds × 12 streams = 180 streams cancelled mid-flight
        await asyncio.sleep(0.5)

        # Every slot came back: LIMIT streams are admitted at once, the next one is refused.
        held = []
        try:
            for open_call in [kinds["WatchApprovals"], kinds["WaitDecision"]] * (LIMIT // 2):
                held.append((await admitted(open_call, seconds=5.0))[0])
            extra = kinds["WatchApprovals"]()
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await first_message(extra)
            assert refused_for(refused.value) == "STREAM_LIMIT_EXCEEDED"
        finally:
            for call in held:
                call.cancel()
        await asyncio.sleep(0.5)

        after = {"fds": server.open_fds(), "threads": server.threads(), "rss": server.rss_bytes(),
                 "idle_cpu": await idle_cpu(server)}
        # A stream whose task outlived its cancellation keeps polling the store every 0.5 s; 180
        # of them would keep a core busy. Idle the server uses a few % of a core.
        assert after["idle_cpu"] <= max(3 * baseline["idle_cpu"], 0.15), (baseline, after)
        assert after["fds"] <= baseline["fds"] + 8, (baseline, after)  # not 180 sockets: a pooled connection or two
        assert after["threads"] <= baseline["threads"] + 2, (baseline, after)
        assert after["rss"] <= baseline["rss"] + 48 * 2**20, (baseline, after)  # allocator noise, not 180 streams


# -- limits ---------------------------------------------------------------------------------------


def test_the_default_stream_limits_leave_room_for_far_more_than_a_thousand_watchers() -> None:
    fields = Settings.model_fields
    assert fields["max_streams_per_tenant"].default >= 10_000
    assert fields["max_decisions_per_stream"].default >= 1_000_000


def refused_decide_stream(addr: str, metadata) -> grpc.RpcError:
    with grpc.insecure_channel(addr) as channel:
        replies = decision_pb2_grpc.DecisionServiceStub(channel).DecideStream(iter([request(amount="10")]),
                                                                              metadata=metadata, timeout=10)
        try:
            next(replies)
        except grpc.RpcError as err:
            return err
    raise AssertionError("the stream over the limit was admitted")


async def test_too_many_streams_for_one_tenant_are_refused_with_a_typed_reason(limited) -> None:
    server, keys = limited
    async with grpc.aio.insecure_channel(server.addr) as channel:
        decisions = decision_pb2_grpc.DecisionServiceStub(channel)
        approvals = approval_pb2_grpc.ApprovalServiceStub(channel)
        pending = await decisions.Decide(request(amount="800"), metadata=md(keys, "agent"))
        held = []
        try:
            for _ in range(LIMIT):
                held.append((await admitted(lambda: approvals.WatchApprovals(
                    approval_pb2.WatchApprovalsRequest(), metadata=md(keys, "alice"))))[0])
            for refused_call in (
                approvals.WatchApprovals(approval_pb2.WatchApprovalsRequest(), metadata=md(keys, "alice")),
                decisions.WaitDecision(decision_pb2.WaitDecisionRequest(decision_id=pending.decision_id),
                                       metadata=md(keys, "agent")),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await first_message(refused_call)
                err = refused.value
                assert err.code() == OK.RESOURCE_EXHAUSTED
                assert error_info(err)[0] == "STREAM_LIMIT_EXCEEDED"
                assert "streams open" in err.details()
            # a bidirectional stream too (through the sync client: grpc.aio may report its own failed
            # write instead of the server's status when the server refuses at once, grpc/grpc#36066)
            err = await asyncio.to_thread(refused_decide_stream, server.addr, md(keys, "agent"))
            assert err.code() == OK.RESOURCE_EXHAUSTED and error_info(err)[0] == "STREAM_LIMIT_EXCEEDED"
            # unary calls are not streams, and another environment has slots of its own
            assert (await decisions.Decide(request(amount="10"), metadata=md(keys, "agent"))).decision_id
            live, first = await admitted(lambda: decide_stream(decisions, md(keys, "agent_live"), "live", count=0))
            assert first.outcome == common_pb2.OUTCOME_ALLOW
            # one stream closed: one admitted again
            held.pop().cancel()
            held.append((await admitted(lambda: approvals.WatchApprovals(
                approval_pb2.WatchApprovalsRequest(), metadata=md(keys, "alice"))))[0])
        finally:
            for call in held:
                call.cancel()


async def test_a_decide_stream_answers_what_it_accepted_then_ends_at_its_decision_limit(limited) -> None:
    server, keys = limited
    async with grpc.aio.insecure_channel(server.addr) as channel:
        decisions = decision_pb2_grpc.DecisionServiceStub(channel)
        sent = [request(amount="10", correlation_id=f"capped-{n}") for n in range(DECISIONS_CAP + 20)]
        call = decisions.DecideStream(metadata=md(keys, "agent"))
        for r in sent:  # all written (they fit the HTTP/2 window) before the server decides the first
            await call.write(r)
        await call.done_writing()
        answers = []
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            async for d in call:
                answers.append(d)
        err = ended.value
        assert err.code() == OK.RESOURCE_EXHAUSTED and error_info(err)[0] == "STREAM_DECISIONS_EXCEEDED"
        assert str(DECISIONS_CAP) in err.details()
        # exactly the first DECISIONS_CAP requests were decided, each answered, each recorded
        assert sorted(d.correlation_id for d in answers) == sorted(f"capped-{n}" for n in range(DECISIONS_CAP))
        for d in answers:
            got = await decisions.GetDecision(decision_pb2.GetDecisionRequest(decision_id=d.decision_id),
                                              metadata=md(keys, "agent"))
            assert got.correlation_id == d.correlation_id
        # a new stream carries on
        more = [d async for d in decisions.DecideStream(iter(sent[:5]), metadata=md(keys, "agent"))]
        assert len(more) == 5


# -- idle watchers and readers that stop reading ---------------------------------------------------


@pytest.mark.slow
async def test_a_thousand_idle_watchers_do_not_slow_decisions(defaults) -> None:
    server, keys = defaults
    agent = md(keys, "agent")

    async def p50(decisions, n: int = 100) -> float:
        took = []
        for _ in range(n):
            started = time.perf_counter()
            await decisions.Decide(request(amount="10"), metadata=agent, timeout=30)
            took.append(time.perf_counter() - started)
        return statistics.median(took)

    watchers = [grpc.aio.insecure_channel(server.addr, options=OWN_CONNECTION) for _ in range(4)]
    calls = []
    async with grpc.aio.insecure_channel(server.addr) as channel:
        decisions = decision_pb2_grpc.DecisionServiceStub(channel)
        try:
            await p50(decisions, 30)  # warm up
            alone = await p50(decisions)
            for n in range(1000):  # no task is pending: the watchers have nothing to send, they idle
                calls.append(approval_pb2_grpc.ApprovalServiceStub(watchers[n % 4]).WatchApprovals(
                    approval_pb2.WatchApprovalsRequest(), metadata=md(keys, "alice")))
            await asyncio.sleep(3.0)
            assert not [c for c in calls if c.done()], "a watcher was refused or ended"
            watched = await p50(decisions)
            healthy = await server.health()
            # Both medians come from the same process on the same machine a few seconds apart; twice
            # plus 5 ms leaves room for a noisy neighbour, not for work proportional to the watchers.
            assert watched <= 2 * alone + 0.005, f"Decide p50 {alone * 1e3:.1f} ms alone, {watched * 1e3:.1f} ms " \
                                                 "with 1,000 idle watchers"
            assert healthy == SERVING
            # every watcher was live all along: a new task reaches each of them
            task = await decisions.Decide(request(amount="600"), metadata=agent)
            updates = await asyncio.gather(*(first_message(c, timeout=60) for c in calls))
            assert {u.approval.approval_id for u in updates} == {task.approval.approval_id}
        finally:
            for c in calls:
                c.cancel()
            for w in watchers:
                await w.close()


def decided(server: Serve) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{server.data_dir / 'gavel.db'}?mode=ro", uri=True)) as db:
        return db.execute("SELECT count(*) FROM decisions").fetchone()[0]


async def test_a_client_that_stops_reading_a_decide_stream_stops_the_server_not_its_memory(defaults) -> None:
    """The client sends requests as fast as flow control lets it and reads no answer. The server
    must stop deciding once a window of answers waits for the client — it may not decide on and
    queue the answers in memory. Measured by the decisions recorded in the database (they stop
    growing) and the server's resident memory."""
    server, keys = defaults
    async with grpc.aio.insecure_channel(server.addr, options=NO_BDP + OWN_CONNECTION) as channel:
        decisions = decision_pb2_grpc.DecisionServiceStub(channel)
        before, rss_before = decided(server), server.rss_bytes()
        call, _ = await admitted(lambda: decide_stream(decisions, md(keys, "agent"), "unread"))
        try:
            history = [before]
            deadline = time.monotonic() + 30  # unbounded, ~500 decisions/s would go on for all of it
            while time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                history.append(decided(server))
                if len(history) >= 5 and history[-1] == history[-5] > before:
                    break  # 2 s without a new decision: the stream is parked on the unread answers
            made = history[-1] - before
            assert history[-1] == history[-5], f"the server kept deciding for an unread stream: {history}"
            # the window (64) plus the answers the 64 KiB of HTTP/2 window holds (~40), generously
            assert 0 < made <= 1000, history
            assert server.rss_bytes() - rss_before < 64 * 2**20
            # the client reads again: every decision made is delivered, and the stream goes on
            got = [await first_message(call) for _ in range(made + 10)]
            assert len({d.decision_id for d in got}) == made + 10
        finally:
            call.cancel()


async def decided_at_least(server: Serve, keys: dict[str, str], count: int) -> None:
    async with grpc.aio.insecure_channel(server.addr) as channel:
        decisions = decision_pb2_grpc.DecisionServiceStub(channel)
        while decided(server) < count:
            batch = [request(amount="10", correlation_id=f"bulk-{n}") for n in range(400)]
            assert len([d async for d in decisions.DecideStream(iter(batch), metadata=md(keys, "agent"))]) == 400


async def unread_streams_growth(server: Serve, open_call, count: int = 20) -> int:
    """Open `count` streams with `open_call(stub)` on channels whose receive window stays at
    64 KiB, read the first message of each and nothing more; how much the server's resident
    memory grew once it has had ample time (3 s) to read ahead, were it going to."""
    await asyncio.sleep(1.0)
    rss_before = server.rss_bytes()
    slow = [grpc.aio.insecure_channel(server.addr, options=NO_BDP + OWN_CONNECTION) for _ in range(4)]
    calls = []
    try:
        for n in range(count):
            calls.append(open_call(evidence_pb2_grpc.EvidenceServiceStub(slow[n % 4])))
        await asyncio.gather(*(first_message(c, timeout=30) for c in calls))
        await asyncio.sleep(3.0)
        grown = server.rss_bytes() - rss_before
        async with grpc.aio.insecure_channel(server.addr) as channel:  # the server still decides meanwhile
            d = await decision_pb2_grpc.DecisionServiceStub(channel).Decide(
                request(amount="10"), metadata=md(server.keys, "agent"), timeout=10)
            assert d.outcome == common_pb2.OUTCOME_ALLOW
        return grown
    finally:
        for c in calls:
            c.cancel()
        for channel in slow:
            await channel.close()


async def test_clients_that_stop_reading_event_tails_do_not_grow_server_memory(defaults) -> None:
    """20 StreamEvents tails over a ledger of 2,000+ events (~0.8 MB of payloads), none read
    after its first event. Each may hold one page of its reads (500 events) while it waits for
    its client; reading ahead instead would hold the whole ledger per stream. Measured: ~7 MiB
    for all 20."""
    server, keys = defaults
    await decided_at_least(server, keys, 2000)
    grown = await unread_streams_growth(server, lambda evidence: evidence.StreamEvents(
        evidence_pb2.StreamEventsRequest(from_sequence=1), metadata=md(keys, "auditor")))
    assert grown < 32 * 2**20, f"server memory grew {grown / 2**20:.0f} MiB for 20 unread event tails"


async def test_clients_that_stop_reading_exports_hold_little_memory_each(defaults) -> None:
    """20 ExportEvidence streams over 2,000+ decisions (~1.3 MB of JSON lines), none read after
    its first 64 KiB chunk. A stream should hold about what it is sending — a chunk, a small
    page — not hundreds of decoded decisions: at most 1.5 MiB each."""
    server, keys = defaults
    await decided_at_least(server, keys, 2000)
    grown = await unread_streams_growth(server, lambda evidence: evidence.ExportEvidence(
        evidence_pb2.ExportEvidenceRequest(format=evidence_pb2.EXPORT_FORMAT_JSON_LINES),
        metadata=md(keys, "auditor")))
    assert grown < 20 * 1.5 * 2**20, f"server memory grew {grown / 2**20:.0f} MiB for 20 unread exports"
