"""Ledger benchmark: decisions/s with the evidence ledger on vs. recording the decision row only.

    .venv/bin/python benchmarks/ledger_bench.py                          # 3 rounds x 5 s; 1, 16, 64 in flight
    .venv/bin/python benchmarks/ledger_bench.py --seconds 3 --rounds 5 --concurrency 16 --out ledger.json
    .venv/bin/python benchmarks/ledger_bench.py --profile 16             # + cProfile of the store's writer thread

Everything runs in this one process, without gRPC, so that the comparison isolates the cost of
recording. Each measurement builds its own runtime with `gavel.bootstrap.build(Settings(...))` on a
fresh SQLite file in a temporary directory (default settings: WAL, synchronous=NORMAL, the store's
group commit) and the repository's `rules/`, seeds a tenant and an `agent` key, and then calls
`runtime.app.decide(principal, DecideInput(...))` from N concurrent asyncio tasks for a fixed time.
The request is a `tool_call` / `read_crm` by `support-agent`, which `rules/tools.rules` allows
(`tools.allowlisted`) for an unregistered agent: each decision reads the agent (not found), evaluates
the rules, signs a decision token and writes a token row and a decision row.

- Variant A, "ledger on": Gavel as shipped. Each decision also appends its `decision.recorded`
  event to the hash chain in the same transaction (`gavel.app.ledger.record`: SELECT the chain head,
  canonical JSON of the payload, SHA-256, INSERT the event, UPDATE the head).
- Variant B, "decision row only": the same, except that `gavel.app.ledger.record` is replaced, in
  this process and only while B's decisions run, by `_benchmark_only_no_ledger_record`, which
  returns a dummy event without touching the database. Nothing in src/ changes.

Per round, for each concurrency, A runs and then B (A, B, A, B, ...), each on its own fresh database.
The table shows the median over rounds of decisions/s per variant, the cost 1 - A/B, the mean number
of write units per committed transaction (`SqlStore.committed_writes / committed_batches` over the
timed window: group commit at work) and CPU time per decision. At the end of each measurement the
database is checked: the `decisions` table holds exactly the decisions answered; for A, the ledger
verifies (`gavel.app.evidence.verify_ledger`) and has exactly one `decision.recorded` event per
decision, whose event id is the decision's `evidence_event_id`; for B, the ledger holds only the
seeding's `key.created` event.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import json
import math
import os
import platform
import pstats
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {"A": "ledger on", "B": "decision row only"}
TARGET_COST = 0.30
TENANT, ENVIRONMENT = "bench", "test"

# Gavel's defaults, not whatever the caller's shell exports (as service_bench.py does for its servers).
for _name in [n for n in os.environ if n.startswith("GAVEL_")]:
    del os.environ[_name]


# ---- variant B: the benchmark-only replacement of the ledger ---------------------------------


def _benchmark_only_no_ledger_record(uow, tenant_id, environment, *, type, subject, data, at, random_bytes,
                                     decision_id=None, event_id=None):
    """BENCHMARK ONLY (variant B): stands in for `gavel.app.ledger.record` and writes nothing.

    Returns a dummy `LedgerEvent` (sequence 0, zero hashes, empty payload) without reading or writing
    the database, so a decision writes only its decision row (and its token row, as usual). The
    caller still builds the `data` dict it passes in, so B keeps that small part of the ledger's cost.
    """
    from gavel.app.model import LedgerEvent
    from gavel.ledger.chain import ZERO_HASH

    return LedgerEvent(tenant_id, environment, 0, event_id or "evt_benchmark_dummy", type, subject, "",
                       ZERO_HASH, ZERO_HASH, at)


@contextlib.contextmanager
def ledger_variant(variant: str):
    """Variant B: monkeypatch `gavel.app.ledger.record` (this process only) for the duration."""
    from gavel.app import ledger

    if variant == "A":
        yield
        return
    original = ledger.record
    ledger.record = _benchmark_only_no_ledger_record  # BENCHMARK ONLY: see the docstring above
    try:
        yield
    finally:
        ledger.record = original


# ---- one measurement -------------------------------------------------------------------------


def bench_input():
    """The request of service_bench.py as `convert.decide_input` would build it from the proto."""
    from gavel.app.requests import ACTION_FIELDS, ACTOR_FIELDS, DecideInput

    action = dict.fromkeys(ACTION_FIELDS, "")
    action.update(type="tool_call", tool="read_crm", resource="crm/contacts/c_18233")
    actors = dict.fromkeys(ACTOR_FIELDS, "")
    actors.update(requester_type="user", requester_id="u_4411", user_id="u_4411")
    return DecideInput(
        action=action,
        args={"contact_id": "c_18233", "fields": ["name", "email", "plan", "open_tickets"]},
        agent_id="support-agent", session_id="sess_7f3a9c", actors=actors,
        rationale="The customer asked about their open tickets; read their CRM contact to answer.",
        context={"customer_id": "cus_91f2", "goal": "answer a support question", "granted_scope": "read"},
        confidence=None, input_hash="sha256:" + "ab" * 32, mode=None, idempotency_key="", correlation_id="",
    )


def seed(runtime) -> str:
    """A tenant and an `agent` key (as `gavel tenants create` / `gavel keys create` do); the key's secret."""
    from gavel.app import admin

    now = datetime.now(UTC)

    def unit(uow):
        admin.create_tenant(uow, TENANT, TENANT, now)
        return admin.create_key(uow, None, tenant=TENANT, environment=ENVIRONMENT, roles=["agent"],
                                principal="bench", description="", now=now, random_bytes=os.urandom)["secret"]

    return runtime.store.run_sync(unit)


def percentile(sorted_ns: list[int], q: float) -> float:
    """Nearest-rank percentile, in µs."""
    if not sorted_ns:
        return math.nan
    k = max(0, min(len(sorted_ns) - 1, math.ceil(q / 100 * len(sorted_ns)) - 1))
    return sorted_ns[k] / 1000


async def drive(app, principal, inp, concurrency: int, seconds: float) -> tuple[list[int], float, int]:
    """`concurrency` tasks calling `app.decide` until the deadline: (latencies ns, elapsed s, errors)."""
    lat: list[int] = []
    errors = 0
    clock = time.perf_counter_ns
    deadline = clock() + int(seconds * 1e9)

    async def worker() -> None:
        nonlocal errors
        while clock() < deadline:
            t0 = clock()
            try:
                result = await app.decide(principal, inp)
            except Exception as exc:  # counted and shown; a healthy run has none
                errors += 1
                if errors == 1:
                    print(f"  decide failed: {exc!r}", file=sys.stderr)
                continue
            lat.append(clock() - t0)
            if result["outcome"] != "allow":
                errors += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return lat, time.perf_counter() - t0, errors


def check_database(db: Path, variant: str, answered: int) -> dict:
    """Count rows after the runtime is closed, read-only. `answered` counts every decide() that returned."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
        out = {
            "answered": answered,
            "decision_rows": one("SELECT count(*) FROM decisions"),
            "ledger_events": one("SELECT count(*) FROM ledger_events"),
            "decision_events": one("SELECT count(*) FROM ledger_events WHERE type = 'decision.recorded'"),
            "decision_event_subjects": one(
                "SELECT count(DISTINCT subject) FROM ledger_events WHERE type = 'decision.recorded'"),
            # decisions whose evidence_event_id names a decision.recorded event about that very decision
            "decisions_with_their_event": one(
                "SELECT count(*) FROM decisions d JOIN ledger_events e ON e.type = 'decision.recorded' "
                "AND e.subject = d.decision_id AND e.event_id = json_extract(d.result, '$.evidence_event_id')"),
        }
    n = out["answered"]
    if variant == "A":
        ok = (out["decision_rows"] == n and out["decision_events"] == n and out["decision_event_subjects"] == n
              and out["decisions_with_their_event"] == n and out["ledger_events"] == n + 1)  # + key.created
    else:
        ok = out["decision_rows"] == n and out["ledger_events"] == 1 and out["decision_events"] == 0
    out["ok"] = ok
    return out


async def measure(variant: str, concurrency: int, args: argparse.Namespace, data_dir: Path,
                  instrument=None) -> dict:
    """One timed run on a fresh database. `instrument(store)`, if given, is a context manager entered
    around the timed decisions only (the profilers)."""
    from gavel.app.evidence import verify_ledger
    from gavel.bootstrap import build
    from gavel.config import Settings

    runtime = build(Settings(data_dir=data_dir, rules=Path(args.rules)))
    store, app = runtime.store, runtime.app
    try:
        principal = await app.authenticate(seed(runtime))  # seeded with the real ledger in both variants
        inp = bench_input()
        answered = 0
        with ledger_variant(variant):
            first = await app.decide(principal, inp)
            answered += 1
            if first["outcome"] != "allow" or not first["decision_token"]:
                raise SystemExit(f"the benchmark request is not allowed: {first['outcome']} {first['reason_code']}")
            if args.warmup > 0:
                lat, _, errors = await drive(app, principal, inp, concurrency, args.warmup)
                answered += len(lat)
            gc.collect()
            b0, w0, f0 = store.committed_batches, store.committed_writes, store.failed_batches
            with instrument(store) if instrument else contextlib.nullcontext():
                cpu0 = time.process_time()
                lat, elapsed, errors = await drive(app, principal, inp, concurrency, args.seconds)
                cpu = time.process_time() - cpu0
            batches, writes = store.committed_batches - b0, store.committed_writes - w0
            failed = store.failed_batches - f0
        answered += len(lat)
        verdict = None
        if variant == "A":
            keys = app.deps.signing.keyset()
            now = app.deps.clock()
            verdict = await store.read(lambda uow: verify_ledger(uow, keys, TENANT, ENVIRONMENT, now))
    finally:
        await runtime.close()
    rows = check_database(data_dir / "gavel.db", variant, answered)
    if variant == "A":
        rows["verify_ledger"] = verdict
        rows["ok"] = rows["ok"] and bool(verdict and verdict["ok"]) and verdict["checked"] == answered + 1
    lat.sort()
    n = len(lat)
    return {
        "variant": variant, "concurrency": concurrency, "n": n, "seconds": round(elapsed, 3),
        "rate": n / elapsed if elapsed > 0 else math.nan,
        "p50_us": percentile(lat, 50), "p99_us": percentile(lat, 99),
        "cpu_us_per_decision": cpu / n * 1e6 if n else math.nan,
        "cpu_util": cpu / elapsed if elapsed > 0 else math.nan,
        "batches": batches, "batched_writes": writes, "failed_batches": failed,
        "mean_batch": writes / batches if batches else math.nan,
        "errors": errors, "check": rows,
    }


# ---- profiling (cProfile on the store's writer thread) ---------------------------------------


@contextlib.contextmanager
def profile_writer(store, profile: cProfile.Profile):
    """Profile every batch the writer commits meanwhile. cProfile only sees the thread that enables
    it, and the decision units all run on the writer thread inside `SqlStore._commit`."""
    commit = store._commit

    def profiled_commit(batch):
        profile.enable()
        try:
            commit(batch)
        finally:
            profile.disable()

    store._commit = profiled_commit
    try:
        yield
    finally:
        del store._commit


def _profile_parts() -> list[tuple[str, object]]:
    """(label, function or built-in's profile name): the parts of the decision unit worth naming."""
    from gavel.adapters.db.repositories import SqlDecisionRepo, SqlLedgerRepo, SqlTokenRepo
    from gavel.adapters.db.store import SqlStore
    from gavel.app import decide, ids, ledger, tokens
    from gavel.engine.engine import CompiledEngine
    from gavel.ledger import canonical, chain

    return [
        ("writer: SqlStore._commit (all the writer's work)", SqlStore._commit),
        ("  sqlite3 commit", "<method 'commit' of 'sqlite3.Connection' objects>"),
        ("  decision unit (DecideUseCase._decide)", decide.DecideUseCase._decide),
        ("    engine.decide_at", CompiledEngine.decide_at),
        ("    tokens.issue (sign the token)", tokens.issue),
        ("    tokens.add (INSERT token row)", SqlTokenRepo.add),
        ("    decisions.add (INSERT decision row)", SqlDecisionRepo.add),
        ("    ledger.record (all of it)", ledger.record),
        ("      ledger.head (SELECT chain head)", SqlLedgerRepo.head),
        ("      ledger.append (INSERT event + UPDATE head)", SqlLedgerRepo.append),
        ("      canonical_json (every caller)", canonical.canonical_json),
        ("      event_hash (SHA-256)", chain.event_hash),
        ("      new_id (every caller)", ids.new_id),
        ("  sqlite3 execute (every statement)", "<method 'execute' of 'sqlite3.Cursor' objects>"),
    ]


def _cumulative(stats: pstats.Stats, target) -> float:
    """Cumulative seconds of a Python function (matched by its code object) or a built-in (by name)."""
    if isinstance(target, str):
        return sum(v[3] for (_f, _l, name), v in stats.stats.items() if name == target)
    code = getattr(target, "__wrapped__", target).__code__
    key = (code.co_filename, code.co_firstlineno, code.co_name)
    return stats.stats[key][3] if key in stats.stats else 0.0


def profile_report(profile: cProfile.Profile, decisions: int) -> list[tuple[str, float]]:
    stats = pstats.Stats(profile)
    return [(label, _cumulative(stats, target) / max(decisions, 1) * 1e6) for label, target in _profile_parts()]


@contextlib.contextmanager
def part_timers(store, totals: dict[str, int]):
    """Time parts of the decision unit with `time.thread_time_ns` (CPU time of the writer thread, so a
    GIL hand-over to the event loop in the middle is not counted), by wrapping them for the duration.
    Far lighter than cProfile (two clock reads per call), so the split is close to the real one."""
    from gavel.adapters.db.repositories import SqlDecisionRepo, SqlLedgerRepo, SqlTokenRepo
    from gavel.app import decide, ledger

    clock = time.thread_time_ns

    def timed(label: str, fn):
        def wrapper(*a, **kw):
            t0 = clock()
            try:
                return fn(*a, **kw)
            finally:
                totals[label] = totals.get(label, 0) + clock() - t0
        return wrapper

    patches = [  # (owner, attribute, label); `ledger.canonical_json` etc. are the ledger module's own names
        (store, "_commit", "writer: SqlStore._commit (all the writer's work)"),
        (decide.DecideUseCase, "_decide", "  decision unit (DecideUseCase._decide)"),
        (SqlTokenRepo, "add", "    tokens.add (INSERT token row)"),
        (SqlDecisionRepo, "add", "    decisions.add (INSERT decision row)"),
        (ledger, "record", "    ledger.record (all of it)"),
        (SqlLedgerRepo, "head", "      ledger.head (SELECT chain head)"),
        (ledger, "canonical_json", "      canonical_json of the event payload"),
        (ledger, "event_hash", "      event_hash (SHA-256)"),
        (SqlLedgerRepo, "append", "      ledger.append (INSERT event + UPDATE head)"),
    ]
    saved = []
    for owner, name, label in patches:
        original = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name)
        saved.append((owner, name, original, name in vars(owner)))
        setattr(owner, name, timed(label, getattr(owner, name)))
        totals.setdefault(label, 0)
    try:
        yield
    finally:
        for owner, name, original, own in reversed(saved):
            if own:
                setattr(owner, name, original)
            else:
                delattr(owner, name)


def ledger_callees(profile: cProfile.Profile, decisions: int, top: int = 12) -> list[tuple[str, float]]:
    """The functions called directly by ledger.record, by cumulative µs per decision."""
    stats = pstats.Stats(profile)
    out = []
    for (file, line, func), (_cc, _nc, _tt, _ct, callers) in stats.stats.items():
        for (cf, _cl, cfn), v in callers.items():
            if cfn == "record" and cf.replace("\\", "/").endswith("app/ledger.py"):
                short = file.split("/src/")[-1].split("site-packages/")[-1]
                out.append((f"{func} ({short}:{line})", v[3] / max(decisions, 1) * 1e6))
    return sorted(out, key=lambda x: -x[1])[:top]


# ---- reporting -------------------------------------------------------------------------------


def summarise(results: list[dict], concurrencies: list[int]) -> list[dict]:
    rows = []
    for c in concurrencies:
        row: dict = {"concurrency": c}
        for v in VARIANTS:
            rs = [r for r in results if r["variant"] == v and r["concurrency"] == c]
            row[v] = {f: statistics.median(r[f] for r in rs) for f in
                      ("rate", "p50_us", "p99_us", "cpu_us_per_decision", "mean_batch")}
            row[v]["rates"] = [round(r["rate"]) for r in rs]
            row[v]["errors"] = sum(r["errors"] for r in rs)
            row[v]["checks_ok"] = all(r["check"]["ok"] for r in rs)
        row["cost"] = 1 - row["A"]["rate"] / row["B"]["rate"]
        a = [r for r in results if r["variant"] == "A" and r["concurrency"] == c]
        b = [r for r in results if r["variant"] == "B" and r["concurrency"] == c]
        row["cost_per_round"] = [round(1 - x["rate"] / y["rate"], 3) for x, y in zip(a, b, strict=True)]
        row["cpu_cost"] = 1 - row["B"]["cpu_us_per_decision"] / row["A"]["cpu_us_per_decision"]
        row["pass"] = row["cost"] < TARGET_COST
        rows.append(row)
    return rows


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    print(f"\nMedians over {args.rounds} round(s) of {args.seconds:g} s per measurement "
          f"(A = ledger on, B = decision row only; cost = 1 - A/B)\n")
    head = (f"{'in flight':>9} | {'A dec/s':>8} {'B dec/s':>8} {'cost':>6} {'target':>7} | {'A batch':>7} "
            f"{'B batch':>7} | {'A CPU µs':>8} {'B CPU µs':>8} | {'A p50 µs':>8} {'B p50 µs':>8} | "
            f"{'A p99 µs':>8} {'B p99 µs':>8} | per-round cost")
    print(head)
    print("-" * len(head))
    for r in rows:
        a, b = r["A"], r["B"]
        print(f"{r['concurrency']:>9} | {a['rate']:>8.0f} {b['rate']:>8.0f} {100 * r['cost']:>5.1f}% "
              f"{'PASS' if r['pass'] else 'MISS':>7} | {a['mean_batch']:>7.1f} {b['mean_batch']:>7.1f} | "
              f"{a['cpu_us_per_decision']:>8.0f} {b['cpu_us_per_decision']:>8.0f} | {a['p50_us']:>8.0f} "
              f"{b['p50_us']:>8.0f} | {a['p99_us']:>8.0f} {b['p99_us']:>8.0f} | "
              + ", ".join(f"{100 * x:.1f}%" for x in r["cost_per_round"]))
    print("\nbatch = mean write units per committed transaction (group commit); CPU = process CPU time "
          "(event loop + writer thread) per decision; rates per round: "
          + "; ".join(f"x{r['concurrency']} A {r['A']['rates']} B {r['B']['rates']}" for r in rows))


def print_checks(results: list[dict]) -> bool:
    ok = all(r["check"]["ok"] and r["errors"] == 0 and r["failed_batches"] == 0 for r in results)
    a = [r for r in results if r["variant"] == "A"]
    answered = sum(r["check"]["answered"] for r in a)
    events = sum(r["check"]["decision_events"] for r in a)
    print(f"\nChecks: A (ledger on): {len(a)} databases, {answered} decisions answered, {events} decision.recorded "
          f"events, verify_ledger ok in {sum(bool(r['check']['verify_ledger']['ok']) for r in a)}/{len(a)}; "
          f"B: only the seed's key.created event in every database; errors "
          f"{sum(r['errors'] for r in results)}, failed batches {sum(r['failed_batches'] for r in results)}"
          f" -> {'OK' if ok else 'FAILED'}")
    for r in results:
        if not r["check"]["ok"]:
            print(f"  check failed: {r['variant']} x{r['concurrency']} round {r['round']}: {r['check']}")
    return ok


# ---- main ------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, workdir: Path, concurrencies: list[int]) -> tuple[list[dict], dict | None]:
    results: list[dict] = []
    for i in range(args.rounds):
        for c in concurrencies:
            for v in VARIANTS:
                data_dir = workdir / f"r{i + 1}-x{c}-{v}"
                r = await measure(v, c, args, data_dir)
                r["round"] = i + 1
                results.append(r)
                print(f"round {i + 1} x{c:<3} {v} {VARIANTS[v]:<17} {r['rate']:7.0f} dec/s  p50 {r['p50_us']:7.0f} µs"
                      f"  p99 {r['p99_us']:7.0f} µs  CPU {r['cpu_us_per_decision']:5.0f} µs/dec "
                      f"({100 * r['cpu_util']:.0f}%)  batch {r['mean_batch']:5.1f}  "
                      f"check {'ok' if r['check']['ok'] else 'FAILED'}"
                      + (f"  errors {r['errors']}" if r["errors"] else ""), file=sys.stderr)
                if not args.keep:
                    shutil.rmtree(data_dir, ignore_errors=True)
    profile = None
    if args.profile:
        profile = {"concurrency": args.profile, "seconds": args.profile_seconds, "timers": {}, "cprofile": {}}
        sub = argparse.Namespace(**{**vars(args), "seconds": args.profile_seconds})
        for v in VARIANTS:
            totals: dict[str, int] = {}
            r = await measure(v, args.profile, sub, workdir / f"timers-{v}",
                              lambda store, t=totals: part_timers(store, t))
            n = max(r["n"], 1)
            profile["timers"][v] = {"rate": r["rate"], "n": r["n"], "cpu_us_per_decision": r["cpu_us_per_decision"],
                                    "parts_us": {k: ns / n / 1000 for k, ns in totals.items()}}
            print(f"timers x{args.profile} {v}: {r['rate']:.0f} dec/s", file=sys.stderr)
        for v in VARIANTS:
            prof = cProfile.Profile()
            r = await measure(v, args.profile, sub, workdir / f"cprofile-{v}",
                              lambda store, p=prof: profile_writer(store, p))
            print(f"cProfile x{args.profile} {v}: {r['rate']:.0f} dec/s under cProfile", file=sys.stderr)
            profile["cprofile"][v] = {"rate": r["rate"], "n": r["n"], "parts_us": profile_report(prof, r["n"]),
                                      "ledger_callees_us": ledger_callees(prof, r["n"]) if v == "A" else []}
    return results, profile


def print_profile(p: dict) -> None:
    t = p["timers"]
    print(f"\nWhere the writer thread's CPU goes, x{p['concurrency']}, {p['seconds']:g} s per variant "
          "(thread CPU µs per decision, from light wrappers):\n")
    print(f"{'':<50} {'A':>7} {'B':>7} {'A - B':>7}")
    a, b = t["A"]["parts_us"], t["B"]["parts_us"]
    for label in a:
        print(f"{label:<50} {a[label]:>7.0f} {b.get(label, 0):>7.0f} {a[label] - b.get(label, 0):>7.0f}")
    ca, cb = t["A"]["cpu_us_per_decision"], t["B"]["cpu_us_per_decision"]
    print(f"{'process CPU per decision (loop + writer + rest)':<50} {ca:>7.0f} {cb:>7.0f} {ca - cb:>7.0f}")
    print(f"(with the wrappers: A {t['A']['rate']:.0f} dec/s, B {t['B']['rate']:.0f} dec/s)")

    c = p["cprofile"]
    print(f"\ncProfile of the writer thread, x{p['concurrency']} (cumulative µs per decision; cProfile inflates "
          "code made of many small Python calls, so compare A with B rather than with the table)\n")
    a, b = dict(c["A"]["parts_us"]), dict(c["B"]["parts_us"])
    print(f"{'':<52} {'A':>8} {'B':>8} {'A - B':>8}")
    for label, _ in c["A"]["parts_us"]:
        print(f"{label:<52} {a[label]:>8.0f} {b[label]:>8.0f} {a[label] - b[label]:>8.0f}")
    print(f"(under cProfile: A {c['A']['rate']:.0f} dec/s, B {c['B']['rate']:.0f} dec/s)")
    print("\nCalled directly by ledger.record (A, cProfile), cumulative µs per decision:")
    for name, us in c["A"]["ledger_callees_us"]:
        print(f"  {us:7.1f}  {name}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=5.0, help="per measurement (default 5)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of A/B pairs (default 3)")
    p.add_argument("--concurrency", default="1,16,64", help="tasks calling decide() at once (default 1,16,64)")
    p.add_argument("--warmup", type=float, default=1.0,
                   help="seconds of untimed decisions on each fresh database first (default 1)")
    p.add_argument("--rules", default=str(ROOT / "rules"), help="rules directory (default: rules/)")
    p.add_argument("--profile", type=int, metavar="N", default=0,
                   help="then profile the writer thread with cProfile at N in flight, A and B")
    p.add_argument("--profile-seconds", type=float, default=5.0)
    p.add_argument("--out", help="write the JSON results here")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (the SQLite files)")
    args = p.parse_args(argv)
    concurrencies = [int(c) for c in args.concurrency.split(",") if c.strip()]

    workdir = Path(tempfile.mkdtemp(prefix="gavel-ledger-bench-"))
    print(f"work dir {workdir}", file=sys.stderr)
    try:
        results, profile = asyncio.run(run(args, workdir, concurrencies))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    rows = summarise(results, concurrencies) if args.rounds else []
    if rows:
        print_table(rows, args)
        for r in rows:
            print(f"  x{r['concurrency']}: the ledger costs {100 * r['cost']:.1f}% of throughput "
                  f"({'<' if r['pass'] else '>='} {100 * TARGET_COST:.0f}%: {'PASS' if r['pass'] else 'MISS'}); "
                  f"{100 * r['cpu_cost']:.1f}% of the CPU per decision")
    ok = print_checks(results) if results else True
    if profile:
        print_profile(profile)
    if args.out:
        Path(args.out).write_text(json.dumps({
            "config": vars(args),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "summary": rows, "results": results, "profile": profile,
        }, indent=2, default=str))
        print(f"wrote {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
