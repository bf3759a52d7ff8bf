"""Replica benchmark: durable decisions/s with 1, 2 and 3 `gavel serve` replicas on one PostgreSQL,
beside one `gavel serve` on SQLite, measured in the same run.

    .venv/bin/python benchmarks/replica_bench.py                         # 1 round, 4 s per measurement
    .venv/bin/python benchmarks/replica_bench.py --rounds 3 --seconds 5 --concurrency 16,64 --out r.json
    .venv/bin/python benchmarks/replica_bench.py --replicas 1,2 --skip-sqlite
    .venv/bin/python benchmarks/replica_bench.py --tenants 6 --route affine   # tenants pinned to replicas

Configurations, each started fresh (a new SQLite data dir, or a new PostgreSQL schema) and stopped
before the next one, in the order sqlite, pg×1, pg×2, pg×3 per round:

- `sqlite`: one `gavel serve` on a temporary `--data-dir` (WAL, synchronous=NORMAL), as in
  service_bench.py.
- `pg×N`: N `gavel serve` processes with the same `--database-url` (a fresh schema on
  --database-url, default postgresql+psycopg://postgres@127.0.0.1:5432/test), the same
  `--signing-keys-file`, their own data dirs and ports, all started at once.

Every server runs the repository's `rules/` with default settings except `--rate-limit-per-minute 0`
(the limit is per replica anyway). A tenant and an agent key are made with `gavel tenants create` and
`gavel keys create --roles agent` on the same store first. The request is service_bench.py's
`tool_call` that `rules/tools.rules` allows for an unregistered agent: each decision evaluates the
rules, signs a token and commits a decision row, a token row and a ledger event (one hash chain per
tenant and environment: bench-0/test, or `--tenants N` chains) before it is answered.

The client is this process: one grpc.aio channel per replica, and `--concurrency` callers spread
round-robin over the replicas (caller i talks to replica i mod N, as tenant (i div N) mod T), each
sending unary `Decide` calls back to back. After `--warmup` seconds, it counts answered decisions for
`--seconds`, and samples: the CPU time of every server process, of all `postgres` processes and of
the client (from /proc), the machine's busy CPU (/proc/stat), and every 50 ms what PostgreSQL's
active backends of the database wait on (pg_stat_activity). Afterwards it checks that the store
holds as many decisions as were answered, and that the ledger chains' lengths match.
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
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from service_bench import ServerProcess, bench_request, gavel_cmd, percentile  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG = os.environ.get("GAVEL_TEST_DATABASE_URL") or "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CLK = os.sysconf("SC_CLK_TCK")


# ---- processes -----------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAVEL_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def cli(*args: str) -> str:
    out = subprocess.run([*gavel_cmd(), *args], capture_output=True, text=True, env=_env(), cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"gavel {' '.join(args)} failed:\n{out.stdout}{out.stderr}")
    return out.stdout.strip().splitlines()[-1]


def seed(store_args: list[str], tenants: int) -> list[str]:
    """`tenants` tenants (so as many ledger chains) with an agent key each; returns the keys."""
    keys = []
    for i in range(tenants):
        tenant = cli("tenants", "create", f"bench-{i}", *store_args)
        keys.append(cli("keys", "create", "--tenant", tenant, "--env", "test", "--roles", "agent", "--principal",
                        "bench", *store_args))
    return keys


def postgres_cpu() -> float:
    """CPU seconds of every process named `postgres` (the server and all its backends)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        # utime, stime, and the reaped children's cutime, cstime (backends that exited)
        total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return total / CLK


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / CLK, sum(fields) / CLK


class WaitSampler:
    """Every `period` s: how many active backends of the schema's database there are and what they wait on."""

    def __init__(self, url: str, period: float = 0.05):
        import sqlalchemy as sa

        self.engine = sa.create_engine(url, pool_size=1)
        self.period = period
        self.samples = 0
        self.waits: collections.Counter = collections.Counter()
        self.active = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import sqlalchemy as sa

        q = sa.text("SELECT coalesce(wait_event_type, 'CPU') AS t, coalesce(wait_event, '') AS e, count(*) AS n "
                    "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND state = 'active' AND query NOT LIKE 'LISTEN%' GROUP BY 1, 2")
        with self.engine.connect() as conn:
            while not self._stop.is_set():
                for t, e, n in conn.execute(q):
                    self.waits[f"{t}:{e}" if e else t] += n
                    self.active += n
                conn.commit()
                self.samples += 1
                time.sleep(self.period)

    def __enter__(self) -> WaitSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.engine.dispose()

    def summary(self) -> dict:
        n = max(self.samples, 1)
        return {"samples": self.samples, "mean_active_backends": self.active / n,
                "mean_by_wait": {k: round(v / n, 3) for k, v in self.waits.most_common()}}


class Config:
    """One configuration: its servers, how to read back what was stored, how to clean up."""

    def __init__(self, name: str, servers: list[ServerProcess], keys: list[str], count, cleanup,
                 wait_url: str | None):
        self.name, self.servers, self.keys, self.count, self.cleanup, self.wait_url = (
            name, servers, keys, count, cleanup, wait_url)


def start_sqlite(workdir: Path, tenants: int) -> Config:
    data = workdir / "sqlite-data"
    keys = seed(["--data-dir", str(data)], tenants)
    server = ServerProcess("sqlite", [*gavel_cmd(), "serve", "--data-dir", str(data), "--rules", str(ROOT / "rules"),
                                      "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
                                      "--rate-limit-per-minute", "0"], workdir / "sqlite.log")
    server.wait_ready()

    def count() -> dict:
        with contextlib.closing(sqlite3.connect(f"file:{data / 'gavel.db'}?mode=ro", uri=True)) as conn:
            return {"decisions": conn.execute("SELECT count(*) FROM decisions").fetchone()[0],
                    "ledger_events": conn.execute("SELECT count(*) FROM ledger_events").fetchone()[0],
                    "chain_heads": conn.execute("SELECT coalesce(sum(last_sequence), 0) FROM ledger_heads")
                    .fetchone()[0]}

    return Config("sqlite", [server], keys, count, lambda: None, None)


def start_pg(workdir: Path, base_url: str, n: int, tag: str, tenants: int) -> Config:
    import sqlalchemy as sa

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base_url else "?"
    url = f"{base_url}{sep}options=-csearch_path%3D{schema}"
    keys_file = workdir / f"{tag}-signing-keys.json"
    keys = seed(["--database-url", url], tenants)
    servers = [ServerProcess(f"{tag}-{i}", [*gavel_cmd(), "serve", "--database-url", url, "--data-dir",
                                            str(workdir / f"{tag}-data-{i}"), "--signing-keys-file", str(keys_file),
                                            "--rules", str(ROOT / "rules"), "--grpc-addr", "127.0.0.1:0",
                                            "--http-addr", "127.0.0.1:0", "--rate-limit-per-minute", "0"],
                             workdir / f"{tag}-{i}.log") for i in range(n)]
    for s in servers:
        s.wait_ready()
    engine = sa.create_engine(url)

    def count() -> dict:
        with engine.connect() as conn:
            return {"decisions": conn.execute(sa.text("SELECT count(*) FROM decisions")).scalar(),
                    "ledger_events": conn.execute(sa.text("SELECT count(*) FROM ledger_events")).scalar(),
                    "chain_heads": int(conn.execute(sa.text("SELECT coalesce(sum(last_sequence), 0) FROM ledger_heads"))
                                       .scalar())}

    def cleanup() -> None:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()

    return Config(f"pg x{n}", servers, keys, count, cleanup, url)


# ---- the load ------------------------------------------------------------------------------------


async def drive(channels: list, keys: list[str], concurrency: int, seconds: float, req, route: str = "spread") -> dict:
    import grpc

    from gavel.v1 import common_pb2, decision_pb2_grpc

    mds = [(("authorization", f"Bearer {key}"),) for key in keys]
    stubs = [decision_pb2_grpc.DecisionServiceStub(ch) for ch in channels]
    lat: list[int] = []
    per_replica = collections.Counter()
    errors: collections.Counter = collections.Counter()
    bad = 0
    clock = time.perf_counter_ns
    deadline = clock() + int(seconds * 1e9)

    async def caller(i: int) -> None:
        nonlocal bad
        r = i % len(stubs)  # replicas round-robin
        stub = stubs[r]
        if route == "spread":  # every replica serves every tenant
            md = mds[(i // len(stubs)) % len(mds)]
        else:  # affine: tenant t only on replica t mod N (replicas share tenants only if there are fewer)
            mine = [t for t in range(len(mds)) if t % len(stubs) == r] or [r % len(mds)]
            md = mds[mine[(i // len(stubs)) % len(mine)]]
        while clock() < deadline and sum(errors.values()) < 1000:
            t0 = clock()
            try:
                d = await stub.Decide(req, metadata=md)
            except grpc.aio.AioRpcError as exc:
                errors[exc.code().name] += 1
                continue
            lat.append(clock() - t0)
            per_replica[i % len(stubs)] += 1
            if d.outcome != common_pb2.OUTCOME_ALLOW or not d.decision_token:
                bad += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(caller(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - t0
    lat.sort()
    return {"n": len(lat), "seconds": elapsed, "rate": len(lat) / elapsed, "p50_us": percentile(lat, 50),
            "p99_us": percentile(lat, 99), "errors": dict(errors), "unexpected": bad,
            "per_replica": [per_replica[i] for i in range(len(stubs))]}


async def measure(config: Config, concurrency: int, seconds: float, warmup: float, req, route: str) -> dict:
    import grpc

    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{s.port}") for s in config.servers]
    try:
        if warmup > 0:
            warm = await drive(channels, config.keys, concurrency, warmup, req, route)
        else:
            warm = {"n": 0}
        sampler = WaitSampler(config.wait_url) if config.wait_url else contextlib.nullcontext()
        with sampler:
            srv0 = [s.cpu_seconds() for s in config.servers]
            pg0, cli0, (busy0, total0) = postgres_cpu(), time.process_time(), machine_busy()
            r = await drive(channels, config.keys, concurrency, seconds, req, route)
            srv = sum(s.cpu_seconds() - a for s, a in zip(config.servers, srv0))
            pg, cli_cpu, (busy1, total1) = postgres_cpu() - pg0, time.process_time() - cli0, machine_busy()
        n = max(r["n"], 1)
        cores = os.cpu_count() or 1
        r.update({
            "config": config.name, "replicas": len(config.servers), "concurrency": concurrency,
            "warmup_decisions": warm["n"],
            "server_cpu_us_per_decision": srv / n * 1e6,
            "postgres_cpu_us_per_decision": pg / n * 1e6 if config.wait_url else 0.0,
            "client_cpu_us_per_decision": cli_cpu / n * 1e6,
            "server_cores_busy": srv / r["seconds"],
            "postgres_cores_busy": pg / r["seconds"] if config.wait_url else 0.0,
            "client_cores_busy": cli_cpu / r["seconds"],
            "machine_busy_pct": 100 * (busy1 - busy0) / max(total1 - total0, 1e-9),
            # whatever else ran on the machine meanwhile (another test run skews everything)
            "other_cores_busy": max(0.0, (busy1 - busy0) / r["seconds"] - srv / r["seconds"] - cli_cpu / r["seconds"]
                                    - (pg / r["seconds"] if config.wait_url else 0.0)),
            "cores": cores,
            "pg_waits": sampler.summary() if config.wait_url else None,
        })
        return r
    finally:
        for ch in channels:
            await ch.close()


def run_config(config: Config, args, req) -> list[dict]:
    results = []
    before = config.count()
    answered = 0

    async def all_levels() -> list[dict]:
        return [await measure(config, c, args.seconds, args.warmup, req, args.route) for c in args.concurrency]

    for r in asyncio.run(all_levels()):
        c = r["concurrency"]
        answered += r["n"] + r["warmup_decisions"]
        waits = r["pg_waits"]
        wait_text = ""
        if waits:
            top = ", ".join(f"{k} {v:.2f}" for k, v in list(waits["mean_by_wait"].items())[:4])
            wait_text = f"  pg active {waits['mean_active_backends']:.2f} ({top})"
        print(f"  {config.name:<7} x{c:<3} {r['rate']:7.0f}/s  p50 {r['p50_us'] / 1000:6.1f} ms  "
              f"p99 {r['p99_us'] / 1000:6.1f} ms  per replica {r['per_replica']}  "
              f"cpu µs/dec srv {r['server_cpu_us_per_decision']:.0f} pg {r['postgres_cpu_us_per_decision']:.0f} "
              f"cli {r['client_cpu_us_per_decision']:.0f}  machine {r['machine_busy_pct']:.0f}%"
              + (f"  errors {r['errors']}" if r["errors"] else "") + wait_text, file=sys.stderr, flush=True)
        results.append(r)
    after = config.count()
    stored = after["decisions"] - before["decisions"]
    durable = {"answered_ok": answered, "stored": stored, "chain_heads": after["chain_heads"],
               "ledger_events": after["ledger_events"]}
    ok = stored == answered and after["chain_heads"] == after["ledger_events"]
    print(f"  {config.name}: {answered} decisions answered, {stored} stored, ledger {after['ledger_events']} events, "
          f"chain heads at {after['chain_heads']}" + ("" if ok else "  <-- MISMATCH"), file=sys.stderr, flush=True)
    for r in results:
        r["durability"] = durable
    return results


# ---- report --------------------------------------------------------------------------------------


def summarise(all_results: list[dict]) -> list[dict]:
    by = collections.defaultdict(list)
    for r in all_results:
        by[(r["config"], r["concurrency"])].append(r)
    rows = []
    for (config, c), rs in by.items():
        med = {k: statistics.median(r[k] for r in rs) for k in (
            "rate", "p50_us", "p99_us", "server_cpu_us_per_decision", "postgres_cpu_us_per_decision",
            "client_cpu_us_per_decision", "server_cores_busy", "postgres_cores_busy", "client_cores_busy",
            "machine_busy_pct", "other_cores_busy")}
        lock = [sum(v for k, v in r["pg_waits"]["mean_by_wait"].items() if k.startswith("Lock"))
                for r in rs if r["pg_waits"]]
        active = [r["pg_waits"]["mean_active_backends"] for r in rs if r["pg_waits"]]
        rows.append({"config": config, "concurrency": c, "replicas": rs[0]["replicas"], "rounds": len(rs),
                     "rates": [round(r["rate"]) for r in rs], "errors": sum(sum(r["errors"].values()) for r in rs),
                     "pg_lock_waiters": statistics.median(lock) if lock else None,
                     "pg_active": statistics.median(active) if active else None, **med})
    return rows


def _opt(x: float | None) -> str:
    return "" if x is None else f"{x:.2f}"


def print_table(rows: list[dict], cores: int, tenants: int) -> None:
    print(f"\nDecisions/s (median over rounds), {cores} cores, {tenants} tenant(s); CPU in µs per decision "
          "(srv: all replicas, pg: all postgres processes, cli: this client); machine: busy CPU; "
          "other: cores used by anything else; "
          "pg act / pg lock: mean active backends / of them waiting on a row or transaction lock\n")
    head = (f"{'config':<8} {'in flight':>9} {'dec/s':>7} {'vs 1':>6} {'p50 ms':>7} {'p99 ms':>7} {'srv µs':>7} "
            f"{'pg µs':>6} {'cli µs':>6} {'machine':>7} {'other':>5} {'pg act':>6} {'pg lock':>7} {'errors':>6}")
    print(head)
    print("-" * len(head))
    base = {r["concurrency"]: r["rate"] for r in rows if r["config"] == "pg x1"}
    for r in sorted(rows, key=lambda r: (r["concurrency"], r["config"] != "sqlite", r["replicas"])):
        vs = r["rate"] / base[r["concurrency"]] if r["config"].startswith("pg") and base.get(r["concurrency"]) else None
        print(f"{r['config']:<8} {r['concurrency']:>9} {r['rate']:>7.0f} {(f'{vs:.2f}x' if vs else ''):>6} "
              f"{r['p50_us'] / 1000:>7.1f} {r['p99_us'] / 1000:>7.1f} {r['server_cpu_us_per_decision']:>7.0f} "
              f"{r['postgres_cpu_us_per_decision']:>6.0f} {r['client_cpu_us_per_decision']:>6.0f} "
              f"{r['machine_busy_pct']:>6.0f}% {r['other_cores_busy']:>5.2f} "
              f"{_opt(r['pg_active']):>6} {_opt(r['pg_lock_waiters']):>7} {r['errors']:>6}")


def bottleneck(rows: list[dict], cores: int) -> list[str]:
    """Plain-language reading of the numbers: what limits throughput at the highest concurrency."""
    lines = []
    c = max(r["concurrency"] for r in rows)
    for r in sorted((r for r in rows if r["concurrency"] == c), key=lambda r: (r["config"] != "sqlite", r["replicas"])):
        total_cpu = sum(r[k] for k in ("server_cpu_us_per_decision", "postgres_cpu_us_per_decision",
                                       "client_cpu_us_per_decision"))
        ceiling = cores * 1e6 / total_cpu if total_cpu else math.nan
        busy = r["machine_busy_pct"]
        per_replica_busy = r["server_cores_busy"] / max(r["replicas"], 1)
        lock = r["pg_lock_waiters"] or 0.0
        facts = (f"machine {busy:.0f}% busy (replicas {r['server_cores_busy']:.2f} cores, PostgreSQL "
                 f"{r['postgres_cores_busy']:.2f}, client {r['client_cores_busy']:.2f}, other "
                 f"{r['other_cores_busy']:.2f}); {per_replica_busy:.2f} cores per replica; "
                 f"{total_cpu:.0f} µs CPU per decision in all")
        if r["pg_active"] is not None:
            facts += f"; PostgreSQL: {r['pg_active']:.2f} active backends, {lock:.2f} waiting on locks"
        if busy >= 90:
            why = f"CPU-bound: the {cores} cores top out near {ceiling:.0f} decisions/s at this cost"
        elif per_replica_busy >= 0.75:
            why = ("the replica itself: one Python process (one GIL, one writer thread running the batches one "
                   "after another) is busy most of the time")
        elif lock >= 0.3:
            why = "row locks in PostgreSQL (the chain head every ledger append locks, held until commit)"
        else:
            why = "latency-bound (commit round trips); raise the concurrency"
        if r["other_cores_busy"] > 0.2:
            why += f" — WARNING: {r['other_cores_busy']:.2f} cores were busy with other work; rerun on an idle machine"
        why = f"{why}. {facts}"
        lines.append(f"{r['config']:<7} at {c} in flight, {r['rate']:.0f}/s: {why}")
    return lines


# ---- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=4.0, help="per measurement (default 4)")
    p.add_argument("--warmup", type=float, default=1.0, help="untimed seconds before each measurement (default 1)")
    p.add_argument("--rounds", type=int, default=1, help="repeat every configuration (default 1)")
    p.add_argument("--concurrency", default="16,64", help="callers in flight, comma-separated (default 16,64)")
    p.add_argument("--replicas", default="1,2,3", help="PostgreSQL replica counts (default 1,2,3)")
    p.add_argument("--database-url", default=DEFAULT_PG, help="PostgreSQL (a fresh schema per configuration)")
    p.add_argument("--tenants", type=int, default=1,
                   help="spread the callers over this many tenants, i.e. ledger chains (default 1)")
    p.add_argument("--route", choices=("spread", "affine"), default="spread",
                   help="with --tenants: spread every tenant over every replica (default), or send each tenant's "
                        "callers to one replica (tenant t on replica t mod N)")
    p.add_argument("--skip-sqlite", action="store_true", help="only the PostgreSQL configurations")
    p.add_argument("--out", help="write the JSON results here")
    p.add_argument("--keep", action="store_true", help="keep the work dir (server logs, SQLite file)")
    args = p.parse_args(argv)
    args.concurrency = [int(x) for x in args.concurrency.split(",")]
    replicas = [int(x) for x in args.replicas.split(",")]

    import sqlalchemy as sa

    try:
        engine = sa.create_engine(args.database_url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            pg_version = conn.execute(sa.text("SHOW server_version")).scalar()
        engine.dispose()
    except Exception as exc:  # noqa: BLE001
        raise SystemExit(f"no PostgreSQL at {args.database_url}: {exc}") from None

    revision = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                              cwd=ROOT).stdout.strip() or "unknown"
    workdir = Path(tempfile.mkdtemp(prefix="gavel-replica-bench-"))
    print(f"work dir {workdir}; gavel {revision}; PostgreSQL {pg_version}; {os.cpu_count()} cores; "
          f"{args.tenants} tenant(s), routed {args.route}", file=sys.stderr)
    req = bench_request()
    results: list[dict] = []
    logs: dict[str, list[str]] = {}
    try:
        for rnd in range(args.rounds):
            plan = ([] if args.skip_sqlite else ["sqlite"]) + [f"pg{n}" for n in replicas]
            for item in plan:
                tag = f"r{rnd}-{item}"
                print(f"round {rnd + 1}: {item}", file=sys.stderr, flush=True)
                config = start_sqlite(workdir / tag, args.tenants) if item == "sqlite" else start_pg(
                    workdir, args.database_url, int(item[2:]), tag, args.tenants)
                try:
                    for r in run_config(config, args, req):
                        r["round"] = rnd + 1
                        results.append(r)
                finally:
                    codes = [s.stop() for s in config.servers]
                    anomalies = [line for s in config.servers for line in s.anomalies()]
                    if anomalies:
                        logs[tag] = anomalies[:20]
                    if any(c not in (0, None) for c in codes):
                        print(f"  exit codes {codes}", file=sys.stderr)
                    config.cleanup()
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    rows = summarise(results)
    cores = os.cpu_count() or 1
    print(f"\ngavel {revision}, PostgreSQL {pg_version}, {args.tenants} tenant(s) routed {args.route}")
    print_table(rows, cores, args.tenants)
    print("\nWhere the bottleneck is:")
    for line in bottleneck(rows, cores):
        print(f"  {line}")
    for tag, lines in logs.items():
        print(f"\n{tag}: {len(lines)} warning/error log line(s), first: {lines[:3]}")
    if args.out:
        Path(args.out).write_text(json.dumps({
            "config": vars(args), "revision": revision, "machine": {"cpus": cores, "python": platform.python_version(),
                                              "platform": platform.platform(), "postgresql": pg_version},
            "summary": rows, "runs": results, "log_anomalies": logs}, indent=2, default=str))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
