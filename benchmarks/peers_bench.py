"""Gavel against peer policy engines on the same policy, in the same run, decisions cross-checked.

    .venv/bin/pip install -e '.[bench]' && npm install --prefix benchmarks     # the peers
    .venv/bin/python benchmarks/peers_bench.py                                  # sizes 10,100,1000,10000
    .venv/bin/python benchmarks/peers_bench.py --sizes 100,1000 --rounds 5 --out peers.json
    .venv/bin/python benchmarks/peers_bench.py --skip-cerbos                    # in-process engines only

For each size, one seeded policy model (`peers/policy.py`) is written as Gavel `.rules`, Cedar,
Rego, a Casbin model + policy CSV and a Cerbos resource policy, and one seeded request set is
decided by every engine:

- in process: Gavel (`Engine.decide_at`), Cedar (`cedarpy`, pre-parsed `PolicySet`), Rego
  (`regopy`, a bundle built once, queried per request) and pycasbin. Each call is timed alone
  with `perf_counter_ns`, including the conversion of the common request dict into the engine's
  input and the reading of its answer back into an outcome. Slow peers decide a slice of the
  requests sized to `--peer-seconds` per pass (at least `--min-requests`); each round uses the
  next slice, and the ratio to Gavel uses Gavel's latencies on the same requests;
- over gRPC on loopback: Cerbos `CheckResources` (the npm package's server) against Gavel's
  `Decide` on a real `gavel serve` loaded with the same policy: one caller (p50, p99) and 16 in
  flight (requests/s), the two servers interleaved (cerbos, gavel, cerbos, gavel ...). Gavel's
  `Decide` also commits a decision row and a ledger event for every request, signs a token for
  every allow and opens an approval for every require_approval; Cerbos records nothing.

Every outcome is compared with Gavel's in-process decision (and Gavel's with the model's naive
reference evaluator). The run prints the disagreements per peer and exits 1 if there are any.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import cedar_peer, cerbos_peer, policy, rego_peer, rules_text, servers  # noqa: E402
from peers.casbin_peer import CasbinPeer  # noqa: E402
from peers.gavel_peer import GavelPeer, decide_request, outcome_names  # noqa: E402

IN_PROCESS = ("cedar", "rego", "casbin")
TARGET_CEDAR_RATIO_1000 = 10.0
TARGET_CERBOS_RATIO_1000 = 3.0


# ---- helpers ---------------------------------------------------------------------------------


def pct(sorted_ns: list[int], q: float) -> float:
    """Nearest-rank percentile in µs."""
    if not sorted_ns:
        return math.nan
    k = max(0, min(len(sorted_ns) - 1, math.ceil(q / 100 * len(sorted_ns)) - 1))
    return sorted_ns[k] / 1000


def med(values) -> float:
    values = [v for v in values if v == v]
    return statistics.median(values) if values else math.nan


def slice_indices(n_total: int, n: int, round_no: int) -> list[int]:
    """Round r decides requests r*n … r*n+n-1 (wrapping), so rounds cover different requests."""
    start = (round_no * n) % n_total
    return [(start + i) % n_total for i in range(n)]


def time_pass(decide, requests: list[dict], indices: list[int]) -> tuple[list[int], list[str]]:
    clock = time.perf_counter_ns
    lat = [0] * len(indices)
    outs = [""] * len(indices)
    gc.collect()
    for k, i in enumerate(indices):
        req = requests[i]
        t0 = clock()
        out = decide(req)
        lat[k] = clock() - t0
        outs[k] = out
    return lat, outs


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("gavel", "cedarpy", "regopy", "casbin", "grpcio", "protobuf"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    binary = servers.cerbos_binary()
    if binary:
        import subprocess

        done = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
        out["cerbos"] = (done.stdout.strip().splitlines() or ["?"])[0]
    return out


def make_peer(name: str, model, workdir: Path):
    if name == "cedar":
        return cedar_peer.CedarPeer(model)
    if name == "rego":
        return rego_peer.RegoPeer(model)
    if name == "casbin":
        return CasbinPeer(model, workdir)
    raise ValueError(name)


def probe_peers(names: list[str]) -> dict[str, str]:
    """{peer: why it cannot run} for the peers whose package does not import."""
    missing = {}
    modules = {"cedar": "cedarpy", "rego": "regopy", "casbin": "casbin"}
    for name in names:
        try:
            __import__(modules[name])
        except Exception as exc:  # noqa: BLE001 - any import failure means: not available here
            missing[name] = (f"`import {modules[name]}` failed: {exc!r} "
                             "(install the peers with `.venv/bin/pip install -e '.[bench]'`)")
    return missing


# ---- in process ------------------------------------------------------------------------------


def bench_in_process(model, requests: list[dict], peers: list[str], args,
                     workdir: Path) -> tuple[dict, list[str]]:
    """The in-process engines on `requests`; returns the row and Gavel's outcomes."""
    row: dict = {"engines": {}, "disagreements": {}, "examples": {}}
    gavel = GavelPeer(model)
    t0 = time.perf_counter()
    gavel.load()
    gavel_load = time.perf_counter() - t0
    expected = [gavel.decide(r) for r in requests]
    row["outcomes"] = dict(Counter(expected))
    print("   outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(row["outcomes"].items())), flush=True)
    bad_model = [i for i, r in enumerate(requests) if model.decide(r) != expected[i]]
    row["disagreements"]["model"] = len(bad_model)
    row["checked"] = {"model": len(requests)}
    row["examples"]["model"] = [{"request": requests[i], "gavel": expected[i], "model": model.decide(requests[i])}
                                for i in bad_model[:3]]
    engines = {"gavel": gavel}
    loads = {"gavel": gavel_load}
    units = {"gavel": gavel.units}
    for name in peers:
        peer = make_peer(name, model, workdir)
        t0 = time.perf_counter()
        peer.load()
        loads[name] = time.perf_counter() - t0
        engines[name] = peer
        units[name] = peer.units
        print(f"   {name:<7} loaded in {loads[name]:.3f} s ({peer.units:,} units)", flush=True)
    print(f"   gavel   loaded in {gavel_load:.3f} s ({gavel.units:,} rules)", flush=True)
    gc.collect()
    gc.freeze()  # the policies live as long as the process, as in a server (gavel serve does this too)

    # Calibrate: a few calls per engine (also the warm-up), then size each peer's slice.
    n_total = len(requests)
    counts = {"gavel": n_total}
    for name, eng in engines.items():
        lat, _ = time_pass(eng.decide, requests, list(range(min(n_total, 10 if name != "gavel" else 300))))
        per_call = statistics.median(lat) / 1e9
        if name != "gavel":
            counts[name] = max(min(args.min_requests, n_total), min(n_total, int(args.peer_seconds / per_call)))
    lat_runs: dict[str, list[list[int]]] = {n: [] for n in engines}
    idx_runs: dict[str, list[list[int]]] = {n: [] for n in engines}
    checked: dict[str, set[int]] = {n: set() for n in engines if n != "gavel"}
    bad: dict[str, dict[int, str]] = {n: {} for n in engines if n != "gavel"}
    for rnd in range(args.rounds):
        for name, eng in engines.items():
            idx = slice_indices(n_total, counts[name], rnd)
            lat, outs = time_pass(eng.decide, requests, idx)
            lat_runs[name].append(lat)
            idx_runs[name].append(idx)
            if name != "gavel":
                for i, o in zip(idx, outs):
                    checked[name].add(i)
                    if o != expected[i]:
                        bad[name][i] = o
        print(f"   round {rnd + 1}: " + "  ".join(
            f"{n} {statistics.median(lat_runs[n][-1]) / 1000:.1f} µs (n={counts[n]})" for n in engines), flush=True)

    gavel_by_index = [dict(zip(idx_runs["gavel"][r], lat_runs["gavel"][r])) for r in range(args.rounds)]
    for name in engines:
        meds = [statistics.median(lat) / 1000 for lat in lat_runs[name]]
        p99s = [pct(sorted(lat), 99) for lat in lat_runs[name]]
        e = {"load_s": loads[name], "units": units[name], "requests_per_round": counts[name],
             "median_us": med(meds), "p99_us": med(p99s), "medians_us": [round(m, 2) for m in meds],
             "p99s_us": [round(p, 2) for p in p99s]}
        if name != "gavel":
            same = [statistics.median(gavel_by_index[r][i] for i in idx_runs[name][r]) / 1000
                    for r in range(args.rounds)]
            e["gavel_same_requests_median_us"] = med(same)
            e["ratio_vs_gavel"] = e["median_us"] / e["gavel_same_requests_median_us"]
            e["ratios_per_round"] = [round(m / g, 2) for m, g in zip(meds, same)]
            row["disagreements"][name] = len(bad[name])
            row["checked"][name] = len(checked[name])
            row["examples"][name] = [{"request": requests[i], "gavel": expected[i], name: o}
                                     for i, o in list(bad[name].items())[:3]]
        row["engines"][name] = e
    gc.unfreeze()
    return row, expected


# ---- over gRPC -------------------------------------------------------------------------------


class Target:
    def __init__(self, name, server, call, messages, outcome, metadata):
        self.name, self.server, self.call = name, server, call
        self.messages, self.outcome, self.metadata = messages, outcome, metadata


async def run_sequential(t: Target, indices: list[int], expected: list[str], requests: list[dict], bad: list):
    clock = time.perf_counter_ns
    lat = []
    for i in indices:
        t0 = clock()
        resp = await t.call(t.messages[i], metadata=t.metadata)
        lat.append(clock() - t0)
        got = t.outcome(requests[i], resp)
        if got != expected[i]:
            bad.append((i, got))
    lat.sort()
    return {"n": len(lat), "p50_us": pct(lat, 50), "p99_us": pct(lat, 99)}


async def run_concurrent(t: Target, concurrency: int, seconds: float, start: int, expected: list[str],
                         requests: list[dict], bad: list) -> dict:
    clock = time.perf_counter_ns
    lat: list[int] = []
    n_total = len(requests)
    counter = iter(range(start, start + 10**9))
    deadline = clock() + int(seconds * 1e9)

    async def worker():
        while clock() < deadline:
            i = next(counter) % n_total
            t0 = clock()
            resp = await t.call(t.messages[i], metadata=t.metadata)
            lat.append(clock() - t0)
            got = t.outcome(requests[i], resp)
            if got != expected[i]:
                bad.append((i, got))

    cpu0, t0 = t.server.cpu_seconds(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    cpu = t.server.cpu_seconds() - cpu0
    lat.sort()
    return {"n": len(lat), "rate": len(lat) / elapsed, "p50_us": pct(lat, 50), "p99_us": pct(lat, 99),
            "server_cpu_us_per_req": cpu / len(lat) * 1e6 if lat else math.nan}


async def grpc_compare(requests: list[dict], expected: list[str], cerbos, gavel, key: str, args) -> dict:
    import grpc

    from gavel.v1 import decision_pb2_grpc

    msgs = cerbos_peer.CerbosMessages(f"127.0.0.1:{cerbos.port}")
    c_channel = grpc.aio.insecure_channel(f"127.0.0.1:{cerbos.port}")
    g_channel = grpc.aio.insecure_channel(f"127.0.0.1:{gavel.port}")
    names = outcome_names()
    targets = {
        "cerbos": Target("cerbos", cerbos, c_channel.unary_unary(
            msgs.METHOD, request_serializer=msgs.Request.SerializeToString,
            response_deserializer=msgs.Response.FromString), [msgs.to_cerbos(r) for r in requests],
            msgs.outcome, None),
        "gavel": Target("gavel", gavel, decision_pb2_grpc.DecisionServiceStub(g_channel).Decide,
                        [decide_request(r) for r in requests], lambda _req, resp: names.get(resp.outcome, "?"),
                        (("authorization", f"Bearer {key}"),)),
    }
    n_total = len(requests)
    bad: dict[str, list] = {"cerbos": [], "gavel": []}
    n_seq = min(args.grpc_requests, n_total)
    # warm-up (also checked): a short pass of each
    for name, t in targets.items():
        await run_sequential(t, list(range(min(50, n_total))), expected, requests, bad[name])
    rounds = []
    for rnd in range(args.rounds):
        r: dict = {}
        idx = slice_indices(n_total, n_seq, rnd)
        for name in ("cerbos", "gavel"):
            r[f"{name} x1"] = await run_sequential(targets[name], idx, expected, requests, bad[name])
        for name in ("cerbos", "gavel"):
            r[f"{name} x{args.concurrency}"] = await run_concurrent(
                targets[name], args.concurrency, args.seconds, rnd * 7919, expected, requests, bad[name])
        rounds.append(r)
        print(f"   round {rnd + 1}: " + "  ".join(
            f"{k} p50 {v['p50_us']:.0f} µs" + (f" {v['rate']:.0f}/s" if "rate" in v else "")
            for k, v in r.items()), flush=True)
    await c_channel.close()
    await g_channel.close()
    out: dict = {"rounds": rounds, "sequential_requests_per_round": n_seq, "seconds": args.seconds,
                 "concurrency": args.concurrency}
    for name in ("cerbos", "gavel"):
        x1 = [r[f"{name} x1"] for r in rounds]
        xn = [r[f"{name} x{args.concurrency}"] for r in rounds]
        out[name] = {"ready_s": targets[name].server.ready_s,
                     "x1_p50_us": med(v["p50_us"] for v in x1), "x1_p99_us": med(v["p99_us"] for v in x1),
                     "xn_rate": med(v["rate"] for v in xn), "xn_p50_us": med(v["p50_us"] for v in xn),
                     "xn_p99_us": med(v["p99_us"] for v in xn),
                     "xn_server_cpu_us_per_req": med(v["server_cpu_us_per_req"] for v in xn),
                     "responses_checked": sum(v["n"] for v in x1 + xn),
                     "disagreements": len(bad[name]),
                     "examples": [{"request": requests[i], "gavel_in_process": expected[i], name: got}
                                  for i, got in bad[name][:3]]}
    out["cerbos_over_gavel_p50"] = out["cerbos"]["x1_p50_us"] / out["gavel"]["x1_p50_us"]
    out["gavel_over_cerbos_rate"] = out["gavel"]["xn_rate"] / out["cerbos"]["xn_rate"]
    per_round = []
    for r in rounds:
        per_round.append({"cerbos_over_gavel_p50": round(r["cerbos x1"]["p50_us"] / r["gavel x1"]["p50_us"], 3),
                          "gavel_over_cerbos_rate": round(r[f"gavel x{args.concurrency}"]["rate"]
                                                          / r[f"cerbos x{args.concurrency}"]["rate"], 3)})
    out["ratios_per_round"] = per_round
    return out


def bench_grpc(size: int, model, requests: list[dict], expected: list[str], args, workdir: Path,
               state: dict) -> dict:
    rules_dir = workdir / f"rules-{size}"
    for rel, text in rules_text.sources(model).items():
        p = rules_dir / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    policy_dir = workdir / f"cerbos-{size}"
    policy_dir.mkdir()
    (policy_dir / "action.yaml").write_text(cerbos_peer.policy_yaml(model), encoding="utf-8")
    if "key" not in state:
        state["data_dir"] = workdir / "gavel-data"
        state["key"] = servers.seed_gavel(state["data_dir"])
    cerbos = gavel = None
    try:
        cerbos = servers.start_cerbos(policy_dir, workdir)
        gavel = servers.start_gavel(rules_dir, state["data_dir"], workdir)
        print(f"   cerbos ready in {cerbos.ready_s:.2f} s ({cerbos_peer.n_cerbos_rules(model):,} Cerbos rules), "
              f"gavel serve ready in {gavel.ready_s:.2f} s", flush=True)
        out = asyncio.run(grpc_compare(requests, expected, cerbos, gavel, state["key"], args))
        out["cerbos_rules"] = cerbos_peer.n_cerbos_rules(model)
        return out
    finally:
        codes = {}
        for s in (cerbos, gavel):
            if s is not None:
                codes[s.name] = s.stop()
        state.setdefault("exit_codes", []).append({"size": size, **codes})


# ---- report ----------------------------------------------------------------------------------


def fmt(v: float, spec: str = ",.1f") -> str:
    return "-" if v is None or v != v else format(v, spec)


def us(v: float) -> str:
    """Microseconds: one decimal below 100, none above."""
    return fmt(v, ",.1f" if v < 100 else ",.0f")


def print_size(row: dict) -> None:
    print(f"\n   {'engine':<7} {'load s':>8} {'units':>8} {'n/round':>8} {'med µs':>10} {'p99 µs':>10} "
          f"{'gavel µs':>9} {'peer/gavel':>10} {'disagree':>12}")
    for name, e in row["engines"].items():
        dis = row["disagreements"].get(name if name != "gavel" else "model")
        chk = row["checked"].get(name if name != "gavel" else "model")
        print(f"   {name:<7} {e['load_s']:>8.3f} {e['units']:>8,} {e['requests_per_round']:>8,} "
              f"{fmt(e['median_us']):>10} {fmt(e['p99_us']):>10} "
              f"{fmt(e.get('gavel_same_requests_median_us')):>9} "
              f"{(fmt(e['ratio_vs_gavel'], '.1f') + 'x') if 'ratio_vs_gavel' in e else '':>10} "
              f"{f'{dis}/{chk}':>12}" + ("  (vs model)" if name == "gavel" else ""))


def print_grpc(g: dict, concurrency: int) -> None:
    print(f"\n   {'server':<7} {'ready s':>8} {'x1 p50 µs':>10} {'x1 p99 µs':>10} {f'x{concurrency} req/s':>10} "
          f"{f'x{concurrency} p50':>9} {'srv CPU µs/req':>15} {'disagree':>12}")
    for name in ("cerbos", "gavel"):
        e = g[name]
        print(f"   {name:<7} {e['ready_s']:>8.2f} {fmt(e['x1_p50_us'], ',.0f'):>10} {fmt(e['x1_p99_us'], ',.0f'):>10} "
              f"{fmt(e['xn_rate'], ',.0f'):>10} {fmt(e['xn_p50_us'], ',.0f'):>9} "
              f"{fmt(e['xn_server_cpu_us_per_req'], ',.0f'):>15} "
              f"{str(e['disagreements']) + '/' + str(e['responses_checked']):>12}")
    print(f"   p50 cerbos/gavel {g['cerbos_over_gavel_p50']:.2f}x; throughput gavel/cerbos "
          f"{g['gavel_over_cerbos_rate']:.2f}x (per round: {g['ratios_per_round']})")


def summary_table(rows: list[dict], concurrency: int) -> None:
    print("\n" + "=" * 100)
    print("Medians over rounds, µs per decision (in process) and per RPC (gRPC x1 p50); "
          "ratios peer/gavel on the same requests")
    names = ["gavel", *[n for n in IN_PROCESS if any(n in r.get("in_process", {}).get("engines", {}) for r in rows)]]
    head = f"{'rules':>7} " + " ".join(f"{n:>18}" for n in names) + f" {'cerbos x1 p50':>16} {'gavel x1 p50':>14}" \
        + f" {f'cerbos x{concurrency}/s':>14} {f'gavel x{concurrency}/s':>13}"
    print(head)
    print("-" * len(head))
    for r in rows:
        ip = r.get("in_process", {}).get("engines", {})
        cells = []
        for n in names:
            e = ip.get(n)
            if e is None:
                cells.append(f"{'-':>18}")
            elif n == "gavel":
                cells.append(f"{us(e['median_us']):>18}")
            else:
                cells.append(f"{us(e['median_us']) + ' (' + fmt(e['ratio_vs_gavel'], ',.0f') + 'x)':>18}")
        g = r.get("grpc")
        if g:
            c, v = g["cerbos"], g["gavel"]
            p50 = f"{fmt(c['x1_p50_us'], ',.0f')} ({fmt(g['cerbos_over_gavel_p50'], '.2f')}x)"
            rate = f"{fmt(v['xn_rate'], ',.0f')} ({fmt(g['gavel_over_cerbos_rate'], '.2f')}x)"
            cells += [f"{p50:>16}", f"{fmt(v['x1_p50_us'], ',.0f'):>14}", f"{fmt(c['xn_rate'], ',.0f'):>14}",
                      f"{rate:>13}"]
        print(f"{r['size']:>7,} " + " ".join(cells))


def targets(rows: list[dict]) -> dict:
    out: dict = {}
    by = {r["size"]: r for r in rows}
    print("\ntargets")
    cedar = by.get(1000, {}).get("in_process", {}).get("engines", {}).get("cedar")
    if cedar:
        v = cedar["ratio_vs_gavel"]
        ok = v >= TARGET_CEDAR_RATIO_1000
        out["cedar_over_gavel_1000"] = {"value": v, "target": TARGET_CEDAR_RATIO_1000, "pass": ok}
        print(f"  {'PASS' if ok else 'MISS'}  Gavel vs cedarpy (pre-parsed PolicySet) at 1,000 rules: "
              f"{v:.1f}x faster (target ≥ {TARGET_CEDAR_RATIO_1000:g}x)")
    else:
        print("  ----  Gavel vs cedarpy at 1,000 rules: not measured")
    grpc_rows = [(r["size"], r["grpc"]) for r in rows if r.get("grpc")]
    if grpc_rows:
        for label, key in (("one caller, p50 latency (cerbos p50 / gavel p50)", "cerbos_over_gavel_p50"),
                           ("16 in flight, throughput (gavel req/s / cerbos req/s)", "gavel_over_cerbos_rate")):
            vals = {size: g[key] for size, g in grpc_rows}
            ok_all = all(v > 1 for v in vals.values())
            out[f"decide_faster_every_size_{key}"] = {"values": vals, "target": "> 1 at every size", "pass": ok_all}
            print(f"  {'PASS' if ok_all else 'MISS'}  Gavel Decide faster than Cerbos at every size, {label}: "
                  + ", ".join(f"{s:,}: {v:.2f}x" for s, v in vals.items()))
            if 1000 in vals:
                ok = vals[1000] >= TARGET_CERBOS_RATIO_1000
                out[f"decide_1000_{key}"] = {"value": vals[1000], "target": TARGET_CERBOS_RATIO_1000, "pass": ok}
                print(f"  {'PASS' if ok else 'MISS'}  Gavel Decide ≥ {TARGET_CERBOS_RATIO_1000:g}x faster than Cerbos "
                      f"at 1,000 rules, {label}: {vals[1000]:.2f}x")
    else:
        print("  ----  Gavel Decide vs Cerbos: not measured")
    return out


# ---- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10,100,1000,10000")
    ap.add_argument("--requests", type=int, default=5000, help="requests generated per size (default 5000)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per measurement (default 3; medians reported)")
    ap.add_argument("--peer-seconds", type=float, default=2.0,
                    help="in-process peers: about this many seconds per pass (default 2)")
    ap.add_argument("--min-requests", type=int, default=30,
                    help="in-process peers: at least this many requests per pass (default 30)")
    ap.add_argument("--peers", default=",".join(IN_PROCESS), help="in-process peers (default cedar,rego,casbin)")
    ap.add_argument("--skip-cerbos", action="store_true", help="no gRPC comparison (no servers started)")
    ap.add_argument("--grpc-requests", type=int, default=400, help="sequential RPCs per server and round (default 400)")
    ap.add_argument("--seconds", type=float, default=3.0, help="length of each concurrent gRPC measurement (default 3)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="write the JSON results here")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (policies in every language, logs)")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    wanted = [p for p in args.peers.split(",") if p.strip()]
    unknown = set(wanted) - set(IN_PROCESS)
    if unknown:
        ap.error(f"unknown peers {sorted(unknown)}; choose from {IN_PROCESS}")
    unavailable = probe_peers(wanted)
    peers = [p for p in wanted if p not in unavailable]
    for name, why in unavailable.items():
        print(f"peer {name} skipped: {why}", file=sys.stderr)
    grpc_skip_reason = "--skip-cerbos" if args.skip_cerbos else None
    if grpc_skip_reason is None and servers.cerbos_binary() is None:
        grpc_skip_reason = "no cerbos binary: run `npm install --prefix benchmarks`"
        print(f"gRPC comparison skipped: {grpc_skip_reason}", file=sys.stderr)

    warm = GavelPeer(policy.generate(10, args.seed + 1))
    warm.load()  # one-time set-up of Gavel's parser, not counted in the first size's load time
    del warm
    workdir = Path(tempfile.mkdtemp(prefix="gavel-peers-bench-"))
    print(f"work dir {workdir}", file=sys.stderr)
    state: dict = {}
    rows = []
    started = time.perf_counter()
    try:
        for size in sizes:
            model = policy.generate(size, args.seed)
            requests = policy.generate_requests(model, args.requests, args.seed + 1)
            print(f"\n== {size:,} rules: {model.counts()}", flush=True)
            row: dict = {"size": size, "counts": model.counts()}
            row["in_process"], expected = bench_in_process(model, requests, peers, args, workdir)
            print_size(row["in_process"])
            if grpc_skip_reason is None:
                row["grpc"] = bench_grpc(size, model, requests, expected, args, workdir, state)
                print_grpc(row["grpc"], args.concurrency)
            rows.append(row)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    summary_table(rows, args.concurrency)
    tgt = targets(rows)
    disagreements: dict[str, int] = Counter()
    for r in rows:
        for name, n in r["in_process"]["disagreements"].items():
            disagreements["gavel vs model" if name == "model" else name] += n
        if r.get("grpc"):
            disagreements["cerbos (gRPC)"] += r["grpc"]["cerbos"]["disagreements"]
            disagreements["gavel Decide (gRPC)"] += r["grpc"]["gavel"]["disagreements"]
    print("\ndisagreements with Gavel's in-process decisions: "
          + ", ".join(f"{k} {v}" for k, v in disagreements.items()))
    print(f"total time {time.perf_counter() - started:.0f} s")
    out = {
        "config": vars(args), "peers_skipped": unavailable, "grpc_skipped": grpc_skip_reason,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "versions": versions(), "sizes": rows, "targets": tgt, "disagreements": dict(disagreements),
        "server_exit_codes": state.get("exit_codes", []),
    }
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 1 if any(disagreements.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
