"""Benchmark the Gavel engine: compile time, memory, and decision latency (tree vs naive).

    .venv/bin/python benchmarks/engine_bench.py [--sizes 10,100,1000,10000] [--repeat 5]
        [--requests 20000] [--seed 0] [--json out.json] [--profile 1000] [--gc-freeze]

For every policy size (see `gen_policies.py` for what a generated policy looks like):

- load: `Engine.load(dir)` of the generated files written to a temporary directory, timed
  `--load-repeat` times (median reported);
- memory: measured in a fresh interpreter per size (so sizes do not pollute each other):
  RSS growth across `Engine.from_sources`, and tracemalloc's view of what the compiled engine
  retains and of the peak while compiling;
- latency: `engine.decide_at(request, facts, FIXED_NOW)` timed per call with
  `time.perf_counter_ns` over `--requests` pre-generated requests, for the decision tree and,
  in the same repeat, for the naive rule-by-rule evaluator (`naive=True`). The naive pass uses
  a subset of the requests at large sizes (`--naive-budget` rule evaluations per repeat) so the
  run stays in minutes. Each repeat gives a median and a p99; the report shows the median over
  repeats of each (a "median of medians", robust on a noisy machine).

Prints a table, the targets with PASS/MISS, and a JSON summary (also written to `--json`).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_policies import FIXED_NOW, generate_policy, generate_requests  # noqa: E402

from gavel.api import Engine  # noqa: E402

TARGET_MEDIAN_1000_US = 20.0
TARGET_RATIO_10K_10 = 3.0
TARGET_LOAD_10K_S = 5.0


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def percentile(sorted_values: list[int], q: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


def time_decisions(engine: Engine, cases: list, naive: bool) -> tuple[float, float, float]:
    """(median µs, p99 µs, mean µs) of per-call latencies over `cases`."""
    decide = engine.decide_at
    now = FIXED_NOW
    clock = time.perf_counter_ns
    out = [0] * len(cases)
    gc.collect()
    for i, (req, facts) in enumerate(cases):
        t0 = clock()
        decide(req, facts, now, naive)
        out[i] = clock() - t0
    out.sort()
    return statistics.median(out) / 1000, percentile(out, 0.99) / 1000, statistics.fmean(out) / 1000


def write_policy(sources: dict[str, str], root: Path) -> None:
    for rel, text in sources.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")


def memory_probe(size: int, seed: int) -> dict:
    """Run in a fresh interpreter: how much memory does a compiled engine of `size` rules take?"""
    policy = generate_policy(size, seed)
    warm = Engine.from_sources(generate_policy(10, seed + 1).sources)  # load the parser etc. first
    del warm
    gc.collect()
    before = rss_bytes()
    engine = Engine.from_sources(policy.sources)
    gc.collect()
    rss_delta = rss_bytes() - before
    del engine
    gc.collect()
    tracemalloc.start()
    engine = Engine.from_sources(policy.sources)
    gc.collect()
    retained, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert engine is not None  # alive until here: `retained` is what it holds
    return {"rss_delta_mb": rss_delta / 2**20, "traced_retained_mb": retained / 2**20,
            "traced_peak_mb": peak / 2**20}


def measure_memory(size: int, seed: int) -> dict:
    cmd = [sys.executable, __file__, "--memory-probe", str(size), "--seed", str(seed)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def candidates_per_request(engine: Engine, cases: list) -> float | None:
    """Mean number of rules the tree hands to the residual checks (diagnostic, uses internals)."""
    try:
        from gavel.engine.activation import Activation
        from gavel.engine.tree import collect
    except ImportError:
        return None
    total, n = 0, 0
    for req, facts in cases[:2000]:
        try:
            total += len(collect(engine.policy.rule_tree, Activation(req, facts or {}, FIXED_NOW)))
            n += 1
        except Exception:  # noqa: BLE001 - unreadable branch path: the engine falls back to naive
            pass
    return total / n if n else None


def tree_shape(engine: Engine) -> dict | None:
    try:
        from gavel.engine.tree import tree_stats
    except ImportError:
        return None
    return tree_stats(engine.policy.rule_tree)


def bench_size(size: int, args) -> dict:
    print(f"\n== {size} rules", flush=True)
    policy = generate_policy(size, args.seed)
    row: dict = {"size": size, "counts": policy.counts, "action_types": len(policy.action_types)}
    loads = []
    with tempfile.TemporaryDirectory(prefix=f"gavel-bench-{size}-") as tmp:
        write_policy(policy.sources, Path(tmp))
        engine = None
        for _ in range(max(1, args.load_repeat)):
            engine = None
            Engine._cache.clear()  # a cold compile each time: Engine.load reuses an unchanged directory's engine
            gc.collect()
            t0 = time.perf_counter()
            engine = Engine.load(tmp)
            loads.append(time.perf_counter() - t0)
            print(f"   load {loads[-1]:.3f} s", flush=True)
    assert engine is not None
    row["load_s"] = statistics.median(loads)
    row["load_s_all"] = loads
    row["warnings"] = len(engine.warnings)
    row["tree"] = tree_shape(engine)
    if args.gc_freeze:
        gc.collect()
        gc.freeze()

    if not args.no_memory:
        row["memory"] = measure_memory(size, args.seed)
        print(f"   memory {row['memory']}", flush=True)

    cases = generate_requests(policy, args.requests, seed=args.seed + 1)
    n_naive = min(len(cases), max(args.naive_min, args.naive_budget // max(1, size)))
    naive_cases = cases[:n_naive]
    row["requests_tree"] = len(cases)
    row["requests_naive"] = n_naive
    row["candidates_per_request"] = candidates_per_request(engine, cases)

    # agreement spot check on the naive subset (the full check lives in tests/engine)
    disagreements = 0
    outcomes: dict[str, int] = {}
    for req, facts in naive_cases:
        a = engine.decide_at(req, facts, FIXED_NOW)
        b = engine.decide_at(req, facts, FIXED_NOW, naive=True)
        key = a.outcome if not a.reason_code.startswith("policy.") else a.reason_code
        outcomes[key] = outcomes.get(key, 0) + 1
        if a.to_dict() != b.to_dict():
            disagreements += 1
    row["disagreements"] = disagreements
    row["outcomes_naive_subset"] = outcomes

    # warm up both paths (closures, caches, branch predictors of the interpreter)
    for req, facts in cases[:300]:
        engine.decide_at(req, facts, FIXED_NOW)
    tree_runs, naive_runs = [], []
    for rep in range(args.repeat):
        tree_runs.append(time_decisions(engine, cases, naive=False))
        naive_runs.append(time_decisions(engine, naive_cases, naive=True))
        print(f"   repeat {rep + 1}: tree median {tree_runs[-1][0]:.1f} µs p99 {tree_runs[-1][1]:.1f} µs | "
              f"naive median {naive_runs[-1][0]:.1f} µs p99 {naive_runs[-1][1]:.1f} µs (n={n_naive})", flush=True)
    row["tree_median_us"] = statistics.median(r[0] for r in tree_runs)
    row["tree_p99_us"] = statistics.median(r[1] for r in tree_runs)
    row["tree_mean_us"] = statistics.median(r[2] for r in tree_runs)
    row["naive_median_us"] = statistics.median(r[0] for r in naive_runs)
    row["naive_p99_us"] = statistics.median(r[1] for r in naive_runs)
    row["naive_mean_us"] = statistics.median(r[2] for r in naive_runs)
    row["tree_medians_us"] = [round(r[0], 2) for r in tree_runs]
    row["naive_medians_us"] = [round(r[0], 2) for r in naive_runs]

    if args.profile and size == args.profile:
        profile(engine, cases)
    return row


def profile(engine: Engine, cases: list) -> None:
    print(f"\n-- cProfile: {len(cases)} tree decisions, top 25 by own time", flush=True)
    prof = cProfile.Profile()
    prof.enable()
    for req, facts in cases:
        engine.decide_at(req, facts, FIXED_NOW)
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    pstats.Stats(prof).sort_stats("cumulative").print_stats(15)


def fmt(v, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def report(rows: list[dict], args) -> dict:
    print("\n" + "=" * 112)
    head = (f"{'rules':>6} {'types':>6} {'load s':>7} {'rss MB':>7} {'heap MB':>8} {'cand':>6} "
            f"{'tree med µs':>12} {'tree p99 µs':>12} {'naive med µs':>13} {'naive p99 µs':>13} "
            f"{'speedup':>8} {'n naive':>8}")
    print(head)
    print("-" * len(head))
    for r in rows:
        mem = r.get("memory") or {}
        speed = r["naive_median_us"] / r["tree_median_us"] if r["tree_median_us"] else None
        print(f"{r['size']:>6} {r['action_types']:>6} {r['load_s']:>7.2f} {fmt(mem.get('rss_delta_mb')):>7} "
              f"{fmt(mem.get('traced_retained_mb')):>8} {fmt(r['candidates_per_request']):>6} "
              f"{r['tree_median_us']:>12.1f} {r['tree_p99_us']:>12.1f} {r['naive_median_us']:>13.1f} "
              f"{r['naive_p99_us']:>13.1f} {fmt(speed, '.1f') + 'x':>8} {r['requests_naive']:>8}")
    by = {r["size"]: r for r in rows}
    summary: dict = {
        "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
        "repeat": args.repeat, "requests": args.requests, "seed": args.seed, "gc_freeze": args.gc_freeze,
        "sizes": rows, "targets": {},
    }
    targets = summary["targets"]
    print("\ntargets")
    if 1000 in by:
        v = by[1000]["tree_median_us"]
        ok = v <= TARGET_MEDIAN_1000_US
        targets["median_1000_us"] = {"value": v, "target": TARGET_MEDIAN_1000_US, "pass": ok}
        print(f"  {'PASS' if ok else 'MISS'}  median at 1,000 rules: {v:.1f} µs "
              f"(target ≤ {TARGET_MEDIAN_1000_US:g} µs)")
    if 10 in by and 10000 in by:
        ratio = by[10000]["tree_median_us"] / by[10]["tree_median_us"]
        ok = ratio <= TARGET_RATIO_10K_10
        targets["ratio_10000_over_10"] = {"value": ratio, "target": TARGET_RATIO_10K_10, "pass": ok}
        print(f"  {'PASS' if ok else 'MISS'}  median 10,000 / median 10: {ratio:.2f}x "
              f"(target ≤ {TARGET_RATIO_10K_10:g}x)")
    if 10000 in by:
        v = by[10000]["load_s"]
        ok = v < TARGET_LOAD_10K_S
        targets["load_10000_s"] = {"value": v, "target": TARGET_LOAD_10K_S, "pass": ok}
        print(f"  {'PASS' if ok else 'MISS'}  load of 10,000 rules: {v:.2f} s (target < {TARGET_LOAD_10K_S:g} s)")
    bad = sum(r["disagreements"] for r in rows)
    print(f"  tree/naive disagreements on the naive subsets: {bad}")
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10,100,1000,10000")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--load-repeat", type=int, default=3)
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--naive-budget", type=int, default=4_000_000,
                    help="rule evaluations per naive repeat: naive requests = budget / size")
    ap.add_argument("--naive-min", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the JSON summary to this file")
    ap.add_argument("--profile", type=int, help="cProfile the tree decisions of this size")
    ap.add_argument("--gc-freeze", action="store_true", help="gc.freeze() after loading (as a server would)")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory probe subprocess")
    ap.add_argument("--memory-probe", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_probe:
        print(json.dumps(memory_probe(args.memory_probe, args.seed)))
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    Engine.from_sources(generate_policy(10, args.seed + 1).sources)  # one-time parser set-up, not timed
    rows = [bench_size(s, args) for s in sizes]
    summary = report(rows, args)
    text = json.dumps(summary, indent=2, default=str)
    print("\nJSON summary")
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
