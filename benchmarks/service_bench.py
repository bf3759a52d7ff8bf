"""Service benchmark: Gavel's `Decide` / `DecideStream` end to end vs. a trivial grpc.aio echo.

    .venv/bin/python benchmarks/service_bench.py                     # 3 rounds x 5 s per measurement
    .venv/bin/python benchmarks/service_bench.py --seconds 3 --rounds 5 --out results.json
    .venv/bin/python benchmarks/service_bench.py --profile           # + py-spy of the server, 16 in flight

Processes (three, so that the client and the servers do not share a GIL):

- Gavel: `gavel serve` in a subprocess, default settings except `--rate-limit-per-minute 0`,
  on a temporary `--data-dir` (a fresh SQLite file: WAL, synchronous=NORMAL, the default), with
  the repository's `rules/`. Every decision is recorded durably before it is answered: nothing
  is disabled. A tenant and an `agent` key are made first with `gavel tenants create` and
  `gavel keys create --roles agent` on the same data dir.
- Echo: this script with `--serve-echo` in a subprocess of the same kind (CPython, asyncio's
  default loop, `grpc.aio.server` with the same channel options as Gavel's server). It serves
  `/bench.v1.Echo/Unary` and a bidi `/bench.v1.Echo/Stream` through
  `grpc.method_handlers_generic_handler`, typed with `DecideRequest` both ways: the server
  parses the request and serializes it back, so the echo moves the same request bytes and pays
  the same request (de)serialization as Gavel. No new proto.
- Client: this process, one `grpc.aio` channel per server, the same request and metadata
  (`authorization: Bearer <agent key>`) for both.

Per round, each scenario is run on the echo and then on Gavel (echo, gavel, echo, gavel, ...):
`unary x1` (one caller, sequential: p50/p99), `unary x16` and `unary x64` (that many callers on
one channel: requests/s, p50/p99), `stream` (one bidi stream, at most `--stream-window`
messages outstanding: messages/s, p50/p99 of per-message round trips) and `mixed` (16 callers,
each operation Decide -> ConsumeToken -> ReportExecution, every 10th a Decide that the rules
answer with require_approval; the echo makes the same number of RPCs; see `run_mixed`).
`--scenarios x1,x16,x64,stream,mixed` picks some. The table shows medians over rounds and the
ratios gavel/echo. Server and client CPU time per request come from
/proc (server) and `time.process_time()` (client). The JSON has every round.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import math
import os
import platform
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ECHO_SERVICE = "bench.v1.Echo"
SERVING = re.compile(r"serving gRPC on [^\s:]+:(\d+)")
ANOMALY = re.compile(r"\b(WARNING|ERROR|CRITICAL|Traceback|Exception)\b")
SCENARIOS = [("unary x1", 1), ("unary x16", 16), ("unary x64", 64), ("stream", 0), ("mixed", 16)]
SCENARIO_KEYS = {"x1": "unary x1", "x16": "unary x16", "x64": "unary x64", "stream": "stream", "mixed": "mixed"}
MIXED_APPROVAL_EVERY = 10  # every 10th mixed operation is a request the rules send for approval


# ---- the echo server (runs in its own process) -----------------------------------------------


def server_options() -> list[tuple[str, int]]:
    """The channel options of `gavel.adapters.grpc.server.GrpcServer`, with Gavel's defaults."""
    from gavel.config import Settings

    size = Settings.model_fields["max_message_bytes"].default
    return [("grpc.max_receive_message_length", size), ("grpc.max_send_message_length", size),
            ("grpc.so_reuseport", 0)]


async def _serve_echo(addr: str) -> int:
    import grpc

    from gavel.v1 import decision_pb2

    async def unary(request, context):
        return request

    async def stream(request_iterator, context):
        async for request in request_iterator:
            yield request

    parse, dump = decision_pb2.DecideRequest.FromString, decision_pb2.DecideRequest.SerializeToString
    handler = grpc.method_handlers_generic_handler(ECHO_SERVICE, {
        "Unary": grpc.unary_unary_rpc_method_handler(unary, request_deserializer=parse, response_serializer=dump),
        "Stream": grpc.stream_stream_rpc_method_handler(stream, request_deserializer=parse,
                                                        response_serializer=dump),
    })
    server = grpc.aio.server(options=server_options())
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(addr)
    await server.start()
    print(f"echo: serving gRPC on {addr.rpartition(':')[0]}:{port}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1)
    return 0


# ---- server processes ------------------------------------------------------------------------


def _clean_env() -> dict[str, str]:
    """The environment for the servers: no GAVEL_* overrides, so Gavel runs on its defaults."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAVEL_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def gavel_cmd() -> list[str]:
    return [sys.executable, "-m", "gavel.cli"]


class ServerProcess:
    def __init__(self, name: str, argv: list[str], log_path: Path):
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=_clean_env(),
                                     cwd=ROOT, start_new_session=True)
        self.port = 0

    def wait_ready(self, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = SERVING.search(self.log_path.read_text(errors="replace"))
            if m:
                self.port = int(m.group(1))
                return self.port
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise SystemExit(f"{self.name} did not start:\n{self.log_path.read_text(errors='replace')}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process (all its threads), from /proc."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            return math.nan
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def thread_cpu(self) -> dict[int, tuple[str, float]]:
        """{thread id: (OS thread name, CPU seconds)} for every thread of the server."""
        out = {}
        clk = os.sysconf("SC_CLK_TCK")
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{self.pid}/task").iterdir():
                try:
                    fields = (task / "stat").read_text().rpartition(")")[2].split()
                    comm = (task / "comm").read_text().strip()
                except OSError:
                    continue
                out[int(task.name)] = (comm, (int(fields[11]) + int(fields[12])) / clk)
        return out

    def rss_mb(self) -> float:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return math.nan

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def anomalies(self) -> list[str]:
        return [line for line in self.log_path.read_text(errors="replace").splitlines() if ANOMALY.search(line)]


def seed(data_dir: Path) -> str:
    """A tenant and an agent key via the CLI, on the data dir the server will use; returns the key."""
    def run(*args: str) -> str:
        out = subprocess.run([*gavel_cmd(), *args, "--data-dir", str(data_dir)], capture_output=True, text=True,
                             env=_clean_env(), cwd=ROOT)
        if out.returncode != 0:
            raise SystemExit(f"gavel {' '.join(args)} failed:\n{out.stdout}{out.stderr}")
        return out.stdout.strip().splitlines()[-1]

    tenant = run("tenants", "create", "bench")
    return run("keys", "create", "--tenant", tenant, "--env", "test", "--roles", "agent", "--principal", "bench")


# ---- the client ------------------------------------------------------------------------------


def bench_request():
    """A tool call that rules/tools.rules allows for an unregistered agent (tools.allowlisted)."""
    from google.protobuf import struct_pb2

    from gavel.v1 import common_pb2, decision_pb2

    args = struct_pb2.Struct()
    args.update({"contact_id": "c_18233", "fields": ["name", "email", "plan", "open_tickets"]})
    req = decision_pb2.DecideRequest(
        action=common_pb2.Action(type="tool_call", tool="read_crm", resource="crm/contacts/c_18233", args=args),
        agent=decision_pb2.AgentRef(id="support-agent", session_id="sess_7f3a9c"),
        actors=decision_pb2.Actors(requester_type="user", requester_id="u_4411", user_id="u_4411"),
        rationale="The customer asked about their open tickets; read their CRM contact to answer.",
        input_hash="sha256:" + "ab" * 32,
    )
    req.context.update({"customer_id": "cus_91f2", "goal": "answer a support question", "granted_scope": "read"})
    return req


class Target:
    def __init__(self, name: str, server: ServerProcess, channel, unary, stream, ok, stub=None):
        self.name, self.server, self.channel = name, server, channel
        self.unary, self.stream, self.ok = unary, stream, ok
        self.stub = stub  # Gavel's DecisionServiceStub (the mixed workload's ConsumeToken/ReportExecution)
        self.ok_calls = 0  # successful Decide calls over the whole run (for the durability check)
        self.mixed = MixedLedger()  # what the mixed workload did, over the whole run (for its check)


def percentile(sorted_ns: list[int], q: float) -> float:
    """Nearest-rank percentile, in µs."""
    if not sorted_ns:
        return math.nan
    k = max(0, min(len(sorted_ns) - 1, math.ceil(q / 100 * len(sorted_ns)) - 1))
    return sorted_ns[k] / 1000


def _summary(target: Target, kind: str, concurrency: int, lat_ns: list[int], elapsed: float, cpu_srv: float,
             cpu_cli: float, errors: collections.Counter, bad: int) -> dict:
    lat_ns.sort()
    n = len(lat_ns)
    target.ok_calls += n
    return {
        "target": target.name, "kind": kind, "concurrency": concurrency, "n": n, "seconds": round(elapsed, 3),
        "rate": n / elapsed if elapsed > 0 else math.nan,
        "p50_us": percentile(lat_ns, 50), "p90_us": percentile(lat_ns, 90), "p99_us": percentile(lat_ns, 99),
        "max_us": lat_ns[-1] / 1000 if n else math.nan,
        "server_cpu_us_per_req": cpu_srv / n * 1e6 if n else math.nan,
        "server_cpu_util": cpu_srv / elapsed if elapsed > 0 else math.nan,
        "client_cpu_us_per_req": cpu_cli / n * 1e6 if n else math.nan,
        "errors": dict(errors), "unexpected_responses": bad,
    }


async def run_unary(target: Target, concurrency: int, seconds: float, req, md) -> dict:
    import grpc

    lat: list[int] = []
    errors: collections.Counter = collections.Counter()
    bad = 0
    clock = time.perf_counter_ns
    deadline = clock() + int(seconds * 1e9)
    call, ok = target.unary, target.ok

    async def worker() -> None:
        nonlocal bad
        while clock() < deadline and sum(errors.values()) < 1000:
            t0 = clock()
            try:
                resp = await call(req, metadata=md)
            except grpc.aio.AioRpcError as exc:
                errors[exc.code().name] += 1
                continue
            lat.append(clock() - t0)
            if not ok(resp):
                bad += 1

    srv0, cli0, t0 = target.server.cpu_seconds(), time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    return _summary(target, "unary", concurrency, lat, elapsed, target.server.cpu_seconds() - srv0,
                    time.process_time() - cli0, errors, bad)


async def run_stream(target: Target, seconds: float, window: int, base, md) -> dict:
    """One bidi stream: a writer keeps up to `window` messages outstanding; a reader matches the
    responses by correlation_id. Counts every response, including the drain after the deadline."""
    import grpc

    from gavel.v1 import decision_pb2

    lat: list[int] = []
    errors: collections.Counter = collections.Counter()
    bad = 0
    sent: dict[str, int] = {}
    credit = asyncio.Semaphore(window)
    clock = time.perf_counter_ns
    deadline = clock() + int(seconds * 1e9)
    call = target.stream(metadata=md)

    async def writer() -> None:
        i = 0
        while clock() < deadline:
            await credit.acquire()
            msg = decision_pb2.DecideRequest()
            msg.CopyFrom(base)
            msg.correlation_id = cid = f"c{i}"
            i += 1
            sent[cid] = clock()
            await call.write(msg)
        await call.done_writing()

    srv0, cli0, t0 = target.server.cpu_seconds(), time.process_time(), time.perf_counter()
    last = t0
    write_task = asyncio.create_task(writer())
    try:
        while True:
            resp = await call.read()
            if resp is grpc.aio.EOF:
                break
            now = clock()
            started = sent.pop(resp.correlation_id, None)
            if started is None or not target.ok(resp):
                bad += 1
            else:
                lat.append(now - started)
            last = time.perf_counter()
            credit.release()
        await write_task
    except grpc.aio.AioRpcError as exc:
        errors[exc.code().name] += 1
        write_task.cancel()
        with contextlib.suppress(BaseException):
            await write_task
    elapsed = last - t0
    return _summary(target, "stream", window, lat, elapsed, target.server.cpu_seconds() - srv0,
                    time.process_time() - cli0, errors, bad)


# ---- the mixed workload ----------------------------------------------------------------------


def approval_request(i: int = 0):
    """A refund that rules/refunds.rules answers with require_approval (refund.medium_needs_approval:
    500 < amount <= 10,000, routed to a finance manager) for an unregistered agent."""
    from gavel.v1 import common_pb2, decision_pb2

    req = decision_pb2.DecideRequest(
        action=common_pb2.Action(type="refund_approve", amount="2500.00", currency="USD"),
        agent=decision_pb2.AgentRef(id="support-refund-agent", session_id=f"sess_r{i % 1000}"),
        actors=decision_pb2.Actors(requester_type="user", requester_id="u_4411", user_id="u_4411"),
        rationale="The customer returned a damaged order; refund it in full.",
        input_hash="sha256:" + "cd" * 32,
    )
    req.context.update({"order_id": f"ord_{i}", "customer_id": "cus_91f2", "reason_code": "damaged"})
    return req


class MixedLedger:
    """What the mixed workload did on one target, accumulated over warm-up and rounds."""

    def __init__(self) -> None:
        self.allowed: list[str] = []  # decision ids of the allow decisions whose flow completed
        self.consumed = 0  # ConsumeToken answered valid=true for the right decision
        self.reported = 0  # ReportExecution answered SUCCEEDED + MATCHED
        self.approvals: list[str] = []  # decision ids answered REQUIRE_APPROVAL
        self.decisions = 0  # Decide calls answered OK (allow + approval)
        self.unexpected = 0


async def _mixed_flow(target: Target, i: int, allow_req, md, lat: dict[str, list[int]],
                      errors: collections.Counter) -> int:
    """One operation; returns the number of RPCs that completed OK. Gavel: every
    MIXED_APPROVAL_EVERY-th operation is one Decide answered require_approval; the others are
    Decide (allow) -> ConsumeToken(token) -> ReportExecution(decision, token, SUCCEEDED). The echo
    makes the same number of unary RPCs with the request (no equivalent of the three methods)."""
    import grpc

    clock = time.perf_counter_ns
    book = target.mixed
    approval = i % MIXED_APPROVAL_EVERY == MIXED_APPROVAL_EVERY - 1
    rpcs = 0
    try:
        if target.stub is None:  # the echo: 1 or 3 round trips of the request
            for _ in range(1 if approval else 3):
                t0 = clock()
                await target.unary(allow_req, metadata=md)
                lat["echo"].append(clock() - t0)
                rpcs += 1
            return rpcs
        from google.protobuf import timestamp_pb2

        from gavel.v1 import common_pb2, decision_pb2

        stub = target.stub
        t0 = clock()
        d = await stub.Decide(approval_request(i) if approval else allow_req, metadata=md)
        lat["decide_approval" if approval else "decide_allow"].append(clock() - t0)
        rpcs += 1
        book.decisions += 1
        target.ok_calls += 1
        if approval:
            if d.outcome == common_pb2.OUTCOME_REQUIRE_APPROVAL and d.approval.approval_id and not d.decision_token:
                book.approvals.append(d.decision_id)
            else:
                book.unexpected += 1
            return rpcs
        if d.outcome != common_pb2.OUTCOME_ALLOW or not d.decision_token:
            book.unexpected += 1
            return rpcs
        t0 = clock()
        c = await stub.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=d.decision_token), metadata=md)
        lat["consume"].append(clock() - t0)
        rpcs += 1
        if c.valid and c.decision_id == d.decision_id:
            book.consumed += 1
        else:
            book.unexpected += 1
        executed_at = timestamp_pb2.Timestamp()
        executed_at.GetCurrentTime()
        t0 = clock()
        r = await stub.ReportExecution(decision_pb2.ReportExecutionRequest(
            decision_id=d.decision_id, decision_token=d.decision_token,
            status=decision_pb2.EXECUTION_STATUS_SUCCEEDED, executed_at=executed_at,
            external_transaction_id=f"crm_read_{i}"), metadata=md)
        lat["report"].append(clock() - t0)
        rpcs += 1
        if (r.status == decision_pb2.EXECUTION_STATUS_SUCCEEDED
                and r.reconciliation.status == decision_pb2.RECONCILIATION_STATUS_MATCHED):
            book.reported += 1
        else:
            book.unexpected += 1
        book.allowed.append(d.decision_id)
    except grpc.aio.AioRpcError as exc:
        errors[exc.code().name] += 1
    return rpcs


async def run_mixed(target: Target, concurrency: int, seconds: float, req, md) -> dict:
    """`concurrency` callers, each running operations back to back (see `_mixed_flow`) until the
    deadline; an operation in progress at the deadline is finished (its RPCs count). rate =
    operations/s; p50/p99 = whole operations; per-RPC latencies in `mixed.per_rpc`."""
    lat: dict[str, list[int]] = collections.defaultdict(list)
    ops: list[int] = []
    errors: collections.Counter = collections.Counter()
    clock = time.perf_counter_ns
    deadline = clock() + int(seconds * 1e9)
    counter = iter(range(1 << 62))
    rpcs = 0
    book = target.mixed
    decisions0, unexpected0 = book.decisions, book.unexpected

    async def worker() -> None:
        nonlocal rpcs
        while clock() < deadline and sum(errors.values()) < 1000:
            t0 = clock()
            n = await _mixed_flow(target, next(counter), req, md, lat, errors)
            rpcs += n
            ops.append(clock() - t0)

    ok_before = target.ok_calls
    srv0, cli0, t0 = target.server.cpu_seconds(), time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    target.ok_calls = ok_before  # _summary adds the operations; put back the Decide count below
    r = _summary(target, "mixed", concurrency, ops, elapsed, target.server.cpu_seconds() - srv0,
                 time.process_time() - cli0, errors, book.unexpected - unexpected0)
    decisions = book.decisions - decisions0
    target.ok_calls = ok_before + decisions
    per_rpc = {}
    for name, xs in sorted(lat.items()):
        xs.sort()
        per_rpc[name] = {"n": len(xs), "p50_us": percentile(xs, 50), "p99_us": percentile(xs, 99)}
    r["mixed"] = {"operations_per_s": r["rate"], "rpcs_per_s": rpcs / elapsed if elapsed > 0 else math.nan,
                  "decisions_per_s": decisions / elapsed if elapsed > 0 else math.nan,
                  "rpcs": rpcs, "decisions": decisions, "per_rpc": per_rpc}
    return r


def check_mixed(db: Path, book: MixedLedger) -> dict:
    """After the run: every allow decision of the mixed workload has its token consumed (state
    `consumed`) and one execution row; the store holds exactly as many consumed tokens as
    ConsumeToken calls succeeded (only this workload consumes tokens), as many execution rows as
    reports, and one pending approval task per require_approval answer."""
    out: dict = {"allowed_flows": len(book.allowed), "consume_ok": book.consumed, "report_ok": book.reported,
                 "approval_decisions": len(book.approvals), "unexpected_responses": book.unexpected}
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            conn.execute("CREATE TEMP TABLE flow (decision_id TEXT PRIMARY KEY)")
            conn.executemany("INSERT INTO flow VALUES (?)", ((d,) for d in book.allowed))
            q = conn.execute
            out["flow_tokens_consumed"] = q("SELECT count(*) FROM tokens JOIN flow USING (decision_id) "
                                            "WHERE tokens.state = 'consumed' AND consumed_at IS NOT NULL").fetchone()[0]
            out["flow_tokens"] = q("SELECT count(*) FROM tokens JOIN flow USING (decision_id)").fetchone()[0]
            out["flow_executions"] = q("SELECT count(*) FROM executions JOIN flow USING (decision_id)").fetchone()[0]
            out["db_tokens_consumed"] = q("SELECT count(*) FROM tokens WHERE state = 'consumed'").fetchone()[0]
            out["db_executions"] = q("SELECT count(*) FROM executions").fetchone()[0]
            out["db_approvals_pending"] = q("SELECT count(*) FROM approvals WHERE status = 'pending'").fetchone()[0]
            out["db_approvals"] = q("SELECT count(*) FROM approvals").fetchone()[0]
    except sqlite3.Error as exc:
        out["error"] = str(exc)
        out["ok"] = False
        return out
    n = len(book.allowed)
    out["ok"] = (book.unexpected == 0 and book.consumed == n and book.reported == n
                 and out["flow_tokens"] == n and out["flow_tokens_consumed"] == n and out["flow_executions"] == n
                 and out["db_tokens_consumed"] == book.consumed and out["db_executions"] == book.reported
                 and out["db_approvals"] == len(book.approvals) == out["db_approvals_pending"])
    return out


async def measure(target: Target, scenario: tuple[str, int], seconds: float, window: int, req, md) -> dict:
    name, concurrency = scenario
    if name == "mixed":
        r = await run_mixed(target, concurrency, seconds, req, md)
    elif concurrency:
        r = await run_unary(target, concurrency, seconds, req, md)
    else:
        r = await run_stream(target, seconds, window, req, md)
    r["scenario"] = name
    return r


# ---- profiling -------------------------------------------------------------------------------


def py_spy_path() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def _frame_name(frame: str) -> str:
    """`decide_at (gavel/engine/engine.py:123)` -> `decide_at (gavel/engine/engine.py)`."""
    m = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame)
    if not m:
        return frame
    func, path = m.groups()
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{func} ({path})"


def _bucket(frame: str, thread: str) -> str:
    if "_poll_wrapper" in thread:
        return "grpc runtime (poller thread)"
    f = frame.lower()
    for needle, name in (("sqlalchemy", "SQLAlchemy + sqlite3"), ("sqlite3", "SQLAlchemy + sqlite3"),
                         ("gavel/adapters/db", "gavel store adapter"), ("gavel/engine", "gavel rule engine"),
                         ("gavel/lang", "gavel rule engine"), ("gavel/crypto", "gavel crypto (JWS, hashing)"),
                         ("nacl", "gavel crypto (JWS, hashing)"), ("gavel/ledger", "gavel canonical JSON"),
                         ("gavel/adapters/grpc", "gavel gRPC adapter"), ("gavel/app", "gavel app (use case)"),
                         ("grpc", "grpc runtime"), ("protobuf", "protobuf"),
                         # Handle._run's own time is mostly grpc.aio's Cython callbacks (no Python frames)
                         ("asyncio", "asyncio loop + grpc.aio Cython"), ("selectors", "asyncio loop + grpc.aio Cython"),
                         ("json", "json"), ("threading", "threads/queues"), ("queue", "threads/queues")):
        if needle in f:
            return name
    return "other"


def analyse_profile(raw: Path, top: int = 25) -> dict:
    """Self time, inclusive time and buckets from py-spy's raw (collapsed) output."""
    self_t: collections.Counter = collections.Counter()
    incl: collections.Counter = collections.Counter()
    threads: collections.Counter = collections.Counter()
    buckets: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        thread = frames[0].split(": ", 1)[-1] if frames[0].startswith("thread") else "?"
        thread = re.sub(r"[_-]\d+(_\d+)?$", "", thread)
        frames = [_frame_name(f) for f in frames[1:]] if frames[0].startswith("thread") else frames
        total += n
        threads[thread] += n
        if frames:
            self_t[frames[-1]] += n
            buckets[_bucket(frames[-1], thread)] += n
        for f in set(frames):
            incl[f] += n

    def pct(counter: collections.Counter, k: int) -> list[tuple[str, float]]:
        return [(name, round(100 * c / total, 1)) for name, c in counter.most_common(k)] if total else []

    return {"samples": total, "threads_pct": pct(threads, 10), "buckets_pct": pct(buckets, 20),
            "self_pct": pct(self_t, top), "inclusive_pct": pct(incl, top * 2)}


async def profile_server(target: Target, seconds: float, req, md, out: Path, native: bool,
                         gil: bool) -> dict | None:
    spy = py_spy_path()
    if spy is None:
        print("profile: py-spy not found (`.venv/bin/pip install py-spy`); skipped", file=sys.stderr)
        return None
    argv = [spy, "record", "--pid", str(target.server.pid), "--duration", str(math.ceil(seconds)),
            "--rate", "200", "--format", "raw", "--threads", "--output", str(out)]
    # --native (C frames: grpc core, sqlite3, libsodium) needs to pause the process per sample;
    # without it, sample without pausing to disturb the server less.
    argv.append("--native" if native else "--nonblocking")
    if gil:
        argv.append("--gil")
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    await asyncio.sleep(0.5)  # attach
    before = target.server.thread_cpu()
    r = await run_unary(target, 16, seconds, req, md)
    after = target.server.thread_cpu()
    log = (await proc.communicate())[0].decode(errors="replace")
    if proc.returncode != 0 or not out.exists():
        print(f"profile: py-spy failed ({proc.returncode}):\n{log}", file=sys.stderr)
        return None
    result = analyse_profile(out)
    result["run"] = r
    # CPU per server thread (from /proc), named by Python's thread names where py-spy saw them.
    names = dict(re.findall(r"^thread \((\d+)\): ([^;]+);", out.read_text(errors="replace"), re.M))
    per_thread: collections.Counter = collections.Counter()
    for tid, (comm, cpu) in after.items():
        name = re.sub(r"[_-]\d+(_\d+)?$", "", names.get(str(tid), f"[{comm}]"))
        per_thread[name] += cpu - before.get(tid, (comm, 0.0))[1]
    n = max(r["n"], 1)
    result["thread_cpu_us_per_req"] = [(name, round(cpu / n * 1e6)) for name, cpu in per_thread.most_common()
                                       if cpu > 0]
    result["thread_cpu_util"] = [(name, round(cpu / r["seconds"], 2)) for name, cpu in per_thread.most_common()
                                 if cpu > 0]
    result["raw_file"] = str(out)
    return result


# ---- reporting -------------------------------------------------------------------------------


FIELDS = ("rate", "p50_us", "p99_us", "server_cpu_us_per_req", "client_cpu_us_per_req")


def summarise(rounds: list[list[dict]], scenarios: list[tuple[str, int]] = SCENARIOS) -> dict:
    by: dict[tuple[str, str], list[dict]] = collections.defaultdict(list)
    for rnd in rounds:
        for r in rnd:
            by[(r["scenario"], r["target"])].append(r)
    summary = {}
    for scenario, _ in scenarios:
        row = {}
        for target in ("echo", "gavel"):
            rs = by.get((scenario, target), [])
            row[target] = {f: statistics.median(r[f] for r in rs) if rs else math.nan for f in FIELDS}
            row[target]["errors"] = sum(sum(r["errors"].values()) for r in rs)
            row[target]["unexpected_responses"] = sum(r["unexpected_responses"] for r in rs)
        e, g = row["echo"], row["gavel"]
        paired = [(gr["p50_us"] / er["p50_us"], gr["rate"] / er["rate"])
                  for er, gr in zip(by[(scenario, "echo")], by[(scenario, "gavel")], strict=False)]
        row["ratio"] = {"p50": g["p50_us"] / e["p50_us"], "p99": g["p99_us"] / e["p99_us"],
                        "throughput": g["rate"] / e["rate"],
                        "per_round_p50": [round(p, 2) for p, _ in paired],
                        "per_round_throughput": [round(t, 3) for _, t in paired]}
        if scenario == "mixed":
            for target in ("echo", "gavel"):
                row[target]["mixed"] = _mixed_medians([r["mixed"] for r in by.get((scenario, target), [])])
        summary[scenario] = row
    return summary


def _mixed_medians(runs: list[dict]) -> dict:
    """Medians over rounds of the mixed workload's rates and per-RPC p50/p99."""
    if not runs:
        return {}
    rates = ("operations_per_s", "rpcs_per_s", "decisions_per_s")
    out: dict = {k: statistics.median(r[k] for r in runs) for k in rates}
    names = sorted({name for r in runs for name in r["per_rpc"]})
    out["per_rpc"] = {name: {f: statistics.median(r["per_rpc"][name][f] for r in runs if name in r["per_rpc"])
                             for f in ("p50_us", "p99_us")} for name in names}
    return out


def print_table(summary: dict, rounds: int, seconds: float, scenarios: list[tuple[str, int]] = SCENARIOS) -> None:
    print(f"\nMedians over {rounds} round(s) of {seconds:g} s per measurement "
          "(latency µs; rate = requests or stream messages per second; CPU µs per request)\n")
    head = (f"{'scenario':<10} {'target':<6} {'rate/s':>9} {'p50 µs':>9} {'p99 µs':>9} {'srv CPU':>8} "
            f"{'cli CPU':>8} {'errors':>6}")
    print(head)
    print("-" * len(head))
    for scenario, _ in scenarios:
        row = summary[scenario]
        for target in ("echo", "gavel"):
            r = row[target]
            print(f"{scenario if target == 'echo' else '':<10} {target:<6} {r['rate']:>9.0f} {r['p50_us']:>9.0f} "
                  f"{r['p99_us']:>9.0f} {r['server_cpu_us_per_req']:>8.0f} {r['client_cpu_us_per_req']:>8.0f} "
                  f"{r['errors'] + r['unexpected_responses']:>6}")
        x = row["ratio"]
        print(f"{'':<10} {'g/e':<6} {x['throughput']:>8.3f}x {x['p50']:>8.2f}x {x['p99']:>8.2f}x")
    print("\nRatios gavel/echo (ratio of the medians; per-round ratios in the JSON):")
    for scenario, _ in scenarios:
        x = summary[scenario]["ratio"]
        print(f"  {scenario:<10} p50 x{x['p50']:.2f}   p99 x{x['p99']:.2f}   throughput x{x['throughput']:.3f} "
              f"(gavel reaches {100 * x['throughput']:.1f} % of the echo's rate)")
    if "mixed" in summary:
        print_mixed(summary["mixed"])


def print_mixed(row: dict) -> None:
    g, e = row["gavel"].get("mixed") or {}, row["echo"].get("mixed") or {}
    if not g:
        return
    print(f"\nMixed workload, 16 in flight (an operation = Decide -> ConsumeToken -> ReportExecution, every "
          f"{MIXED_APPROVAL_EVERY}th a single Decide answered require_approval; the echo makes the same number of "
          "unary RPCs; medians over rounds):")
    print(f"  gavel: {g['operations_per_s']:.0f} operations/s, {g['decisions_per_s']:.0f} decisions/s, "
          f"{g['rpcs_per_s']:.0f} RPCs/s")
    if e:
        print(f"  echo:  {e['operations_per_s']:.0f} operations/s, {e['rpcs_per_s']:.0f} RPCs/s "
              f"(gavel/echo operations x{g['operations_per_s'] / e['operations_per_s']:.3f})")
    print(f"  {'RPC':<16} {'p50 µs':>9} {'p99 µs':>9}")
    for name, v in {**g["per_rpc"], **({"echo (any)": e["per_rpc"]["echo"]} if e.get("per_rpc", {}).get("echo")
                                        else {})}.items():
        print(f"  {name:<16} {v['p50_us']:>9.0f} {v['p99_us']:>9.0f}")
    print(f"  {'operation':<16} {row['gavel']['p50_us']:>9.0f} {row['gavel']['p99_us']:>9.0f}")


def print_profile(p: dict) -> None:
    run = p["run"]
    print(f"\nServer profile (py-spy, {p['samples']} samples, Gavel unary x16: {run['rate']:.0f} req/s, "
          f"p50 {run['p50_us']:.0f} µs, server CPU {run['server_cpu_us_per_req']:.0f} µs/req)")
    print("  CPU per server thread, µs/req (/proc): "
          + ", ".join(f"{n} {v}" for n, v in p["thread_cpu_us_per_req"]))
    print("  CPU per server thread, cores busy: " + ", ".join(f"{n} {v}" for n, v in p["thread_cpu_util"]))
    print("  threads (% of non-idle samples): " + ", ".join(f"{n} {v}%" for n, v in p["threads_pct"]))
    print("  by component (self time):")
    for name, v in p["buckets_pct"]:
        print(f"    {v:5.1f}%  {name}")
    print("  top functions, self time:")
    for name, v in p["self_pct"][:20]:
        print(f"    {v:5.1f}%  {name}")
    print("  top gavel functions, inclusive time:")
    shown = 0
    for name, v in p["inclusive_pct"]:
        if "gavel/" in name and shown < 25:
            print(f"    {v:5.1f}%  {name}")
            shown += 1


# ---- main ------------------------------------------------------------------------------------


async def run_bench(args: argparse.Namespace, gavel: ServerProcess, echo: ServerProcess, key: str) -> dict:
    import grpc

    from gavel.v1 import common_pb2, decision_pb2, decision_pb2_grpc

    req = bench_request()
    md = (("authorization", f"Bearer {key}"),)
    g_channel = grpc.aio.insecure_channel(f"127.0.0.1:{gavel.port}")
    e_channel = grpc.aio.insecure_channel(f"127.0.0.1:{echo.port}")
    stub = decision_pb2_grpc.DecisionServiceStub(g_channel)
    parse, dump = decision_pb2.DecideRequest.FromString, decision_pb2.DecideRequest.SerializeToString
    targets = {
        "echo": Target("echo", echo, e_channel,
                       e_channel.unary_unary(f"/{ECHO_SERVICE}/Unary", request_serializer=dump,
                                             response_deserializer=parse),
                       e_channel.stream_stream(f"/{ECHO_SERVICE}/Stream", request_serializer=dump,
                                               response_deserializer=parse),
                       lambda r: r.agent.id == "support-agent"),
        "gavel": Target("gavel", gavel, g_channel, stub.Decide, stub.DecideStream,
                        lambda r: r.outcome == common_pb2.OUTCOME_ALLOW, stub=stub),
    }
    # Check what we are about to measure.
    first = await stub.Decide(req, metadata=md)
    if first.outcome != common_pb2.OUTCOME_ALLOW or not first.decision_token:
        raise SystemExit(f"the benchmark request is not allowed:\n{first}")
    targets["gavel"].ok_calls += 1
    echoed = await targets["echo"].unary(req, metadata=md)
    if echoed != req:
        raise SystemExit("the echo does not echo")
    sizes = {"request_bytes": req.ByteSize(), "decision_bytes": first.ByteSize(),
             "metadata_bytes": sum(len(k) + len(v) for k, v in md)}
    print(f"request {sizes['request_bytes']} B, Gavel decision {sizes['decision_bytes']} B "
          f"(echo replies with the request), auth metadata {sizes['metadata_bytes']} B", file=sys.stderr)

    if args.warmup > 0:
        print(f"warming up ({args.warmup:g} s per scenario and server)…", file=sys.stderr)
        for scenario in args.scenario_list:
            for name in ("echo", "gavel"):
                await measure(targets[name], scenario, args.warmup, args.stream_window, req, md)

    rounds: list[list[dict]] = []
    for i in range(args.rounds):
        results = []
        for scenario in args.scenario_list:
            for name in ("echo", "gavel"):
                r = await measure(targets[name], scenario, args.seconds, args.stream_window, req, md)
                r["round"] = i + 1
                results.append(r)
                print(f"round {i + 1} {scenario[0]:<10} {name:<6} {r['rate']:8.0f}/s  p50 {r['p50_us']:7.0f} µs  "
                      f"p99 {r['p99_us']:7.0f} µs  srv {r['server_cpu_us_per_req']:5.0f} µs/req "
                      f"({100 * r['server_cpu_util']:.0f}% CPU)  cli {r['client_cpu_us_per_req']:4.0f} µs/req"
                      + (f"  errors {r['errors']}" if r["errors"] else "")
                      + (f"  unexpected {r['unexpected_responses']}" if r["unexpected_responses"] else ""),
                      file=sys.stderr)
        rounds.append(results)

    profile = None
    if args.profile:
        print("profiling the Gavel server (unary x16)…", file=sys.stderr)
        profile = await profile_server(targets["gavel"], args.profile_seconds, req, md,
                                       Path(args.workdir) / "gavel-server.pyspy.txt", args.native, args.gil)
    rss = {"gavel_mb": gavel.rss_mb(), "echo_mb": echo.rss_mb()}
    await g_channel.close()
    await e_channel.close()
    return {"sizes": sizes, "rounds": rounds, "profile": profile, "rss_end": rss,
            "ok_calls": {n: t.ok_calls for n, t in targets.items()}, "mixed_book": targets["gavel"].mixed}


def recorded_decisions(db: Path) -> int | None:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            return conn.execute("SELECT count(*) FROM decisions").fetchone()[0]
    except sqlite3.Error:
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=5.0, help="per measurement (default 5)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of echo/gavel pairs (default 3)")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds per scenario and server first (default 2)")
    p.add_argument("--stream-window", type=int, default=128,
                   help="messages outstanding on a stream (default 128; Gavel works on 64 at a time per stream)")
    p.add_argument("--rules", default=str(ROOT / "rules"), help="rules directory for Gavel (default: rules/)")
    p.add_argument("--scenarios", default=",".join(SCENARIO_KEYS),
                   help=f"comma-separated, from {','.join(SCENARIO_KEYS)} (default: all)")
    p.add_argument("--out", help="write the JSON results here")
    p.add_argument("--profile", action="store_true", help="then py-spy the Gavel server during unary x16")
    p.add_argument("--profile-seconds", type=float, default=10.0)
    p.add_argument("--native", action="store_true", help="py-spy --native (C frames too; pauses the server per sample)")
    p.add_argument("--gil", action="store_true", help="py-spy --gil (only the thread holding the GIL)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, SQLite, profile)")
    p.add_argument("--serve-echo", metavar="ADDR", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve_echo:
        return asyncio.run(_serve_echo(args.serve_echo))
    try:
        wanted = {SCENARIO_KEYS[k.strip()] for k in args.scenarios.split(",") if k.strip()}
    except KeyError as exc:
        p.error(f"unknown scenario {exc}; choose from {', '.join(SCENARIO_KEYS)}")
    args.scenario_list = [sc for sc in SCENARIOS if sc[0] in wanted]

    workdir = Path(tempfile.mkdtemp(prefix="gavel-service-bench-"))
    args.workdir = str(workdir)
    print(f"work dir {workdir}", file=sys.stderr)
    try:
        return _bench(args, workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _bench(args: argparse.Namespace, workdir: Path) -> int:
    data_dir = workdir / "data"
    key = seed(data_dir)
    gavel = ServerProcess("gavel", [*gavel_cmd(), "serve", "--data-dir", str(data_dir), "--rules", args.rules,
                                    "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
                                    "--rate-limit-per-minute", "0"],
                          workdir / "gavel.log")
    echo = ServerProcess("echo", [sys.executable, str(Path(__file__).resolve()), "--serve-echo", "127.0.0.1:0"],
                         workdir / "echo.log")
    codes: dict[str, int | None] = {}
    try:
        gavel.wait_ready()
        echo.wait_ready()
        print(f"gavel pid {gavel.pid} port {gavel.port}; echo pid {echo.pid} port {echo.port}", file=sys.stderr)
        result = asyncio.run(run_bench(args, gavel, echo, key))
    finally:
        codes = {"gavel": gavel.stop(), "echo": echo.stop()}

    summary = summarise(result["rounds"], args.scenario_list)
    if args.rounds:
        print_table(summary, args.rounds, args.seconds, args.scenario_list)
    if result["profile"]:
        print_profile(result["profile"])
    recorded = recorded_decisions(data_dir / "gavel.db")
    anomalies = {"gavel": gavel.anomalies(), "echo": echo.anomalies()}
    print(f"\nDurability: {result['ok_calls']['gavel']} decisions answered OK, {recorded} rows in `decisions`"
          f"{'' if recorded == result['ok_calls']['gavel'] else '  <-- MISMATCH'}")
    print(f"Server exit codes: {codes}; RSS at the end: gavel {result['rss_end']['gavel_mb']:.0f} MB, "
          f"echo {result['rss_end']['echo_mb']:.0f} MB")
    mixed_check = None
    if any(sc[0] == "mixed" for sc in args.scenario_list):
        mixed_check = check_mixed(data_dir / "gavel.db", result["mixed_book"])
        mc = mixed_check
        print(f"Mixed workload check: {mc['allowed_flows']} allow flows, {mc['consume_ok']} tokens consumed OK, "
              f"{mc['report_ok']} executions reported; in the store: {mc.get('flow_tokens_consumed')} of their "
              f"tokens consumed, {mc.get('flow_executions')} execution rows, {mc.get('db_tokens_consumed')} "
              f"consumed tokens in all, {mc.get('db_approvals')} approval tasks for {mc['approval_decisions']} "
              f"require_approval answers -> {'OK' if mc['ok'] else 'MISMATCH'}")
    for name, lines in anomalies.items():
        if lines:
            print(f"{name} log: {len(lines)} warning/error line(s), first: {lines[:5]}")
    out = {
        "config": {k: v for k, v in vars(args).items() if k not in ("serve_echo", "scenario_list")},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "versions": _versions(),
        "sizes": result["sizes"], "summary": summary, "rounds": result["rounds"], "profile": result["profile"],
        "durability": {"answered_ok": result["ok_calls"]["gavel"], "recorded": recorded},
        "mixed_check": mixed_check,
        "server_exit_codes": codes, "server_log_anomalies": anomalies, "rss_end_mb": result["rss_end"],
    }
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2, default=str))
        print(f"wrote {args.out}")
    return 0


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("grpcio", "protobuf", "SQLAlchemy", "PyNaCl"):
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


if __name__ == "__main__":
    sys.exit(main())
