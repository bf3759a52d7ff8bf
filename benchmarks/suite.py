"""The whole benchmark suite in one command, with every issue-9 target and PASS/MISS.

    .venv/bin/python benchmarks/suite.py --quick                 # about 3-4 minutes; summary in /tmp/gavel-bench/
    .venv/bin/python benchmarks/suite.py --out /tmp/bench        # the full runs (20 minutes or more)
    .venv/bin/python benchmarks/suite.py --quick --soak          # + a 1-minute soak (--soak-minutes M)
    .venv/bin/python benchmarks/suite.py --soak                  # + the 10-minute soak
    .venv/bin/python benchmarks/suite.py --only engine,serve     # some parts only

Each part runs as a subprocess writing its JSON into the output directory (its output goes to
`<part>.log` there): engine_bench.py (engine.json), service_bench.py (service.json: the echo
floor, Gavel unary/stream and the mixed workload), serve_bench.py (serve.json: startup and RSS;
the soak only with --soak), peers_bench.py (peers.json; skipped with a message if the script is
missing or its dependencies are not installed) and, with --ledger, ledger_bench.py
(ledger.json). Then it reads the JSON files and prints one markdown table with the targets,
which it also writes to `summary.md` (and the same data to `summary.json`) in that directory.

--quick uses fewer rounds, repeats and requests (same sizes where a target needs them); its
figures are noisier than a full run's. The exit code is 0 when every part ran, whatever the
targets say; 1 when a part failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PARTS = ("engine", "service", "serve", "peers", "ledger")


# ---- running the parts ---------------------------------------------------------------------------


def part_commands(args, out: Path) -> dict[str, list[str] | None]:
    py = sys.executable
    q = args.quick
    engine = [py, str(HERE / "engine_bench.py"), "--json", str(out / "engine.json")]
    engine += (["--sizes", "10,1000,10000", "--repeat", "3", "--requests", "5000", "--load-repeat", "1",
                "--naive-budget", "500000", "--naive-min", "100", "--no-memory"] if q else [])
    service = [py, str(HERE / "service_bench.py"), "--out", str(out / "service.json")]
    service += ["--seconds", "2", "--rounds", "1", "--warmup", "0.5"] if q else []
    serve = [py, str(HERE / "serve_bench.py"), "--out", str(out / "serve.json")]
    serve += ["--runs", "3", "--decisions", "1000"] if q else []
    if args.soak:
        minutes = args.soak_minutes if args.soak_minutes is not None else (1.0 if q else 10.0)
        serve += ["--soak", "--soak-minutes", f"{minutes:g}"]
        if minutes < 5:
            serve += ["--window-seconds", "10", "--warmup-windows", "1"]
    peers = None
    peers_script = HERE / "peers_bench.py"
    if peers_script.exists():
        peers = [py, str(peers_script), "--out", str(out / "peers.json")]
        if q:  # fewer rounds and shorter passes, with the flags its --help lists (same sizes)
            helptext = _help(peers_script)
            for flag, value in PEERS_QUICK:
                if flag in helptext:
                    peers += [flag] if value is None else [flag, value]
    ledger = [py, str(HERE / "ledger_bench.py"), "--out", str(out / "ledger.json")]
    ledger += ["--seconds", "2", "--rounds", "1", "--concurrency", "16"] if q else []
    return {"engine": engine, "service": service, "serve": serve, "peers": peers, "ledger": ledger}


def _help(script: Path) -> str:
    try:
        return subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True,
                              timeout=60, cwd=ROOT).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


# quick: only the peers that have a target (cedarpy in process, Cerbos over gRPC), shorter passes
PEERS_QUICK = (("--quick", None), ("--peers", "cedar"), ("--rounds", "1"), ("--peer-seconds", "0.5"),
               ("--grpc-requests", "150"), ("--seconds", "1.5"))
MISSING_DEP = ("ModuleNotFoundError", "ImportError", "No module named", "not installed", "command not found",
               "FileNotFoundError")


def run_part(name: str, cmd: list[str], out: Path, verbose: bool) -> dict:
    log = out / f"{name}.log"
    print(f"[{name}] {' '.join(Path(c).name if i < 2 else c for i, c in enumerate(cmd))}", flush=True)
    t0 = time.monotonic()
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                fh.write(line)
                if verbose:
                    sys.stdout.write(f"  {name}| {line.decode(errors='replace')}")
                    sys.stdout.flush()
            code = proc.wait()
        except BaseException:  # interrupted: let the part stop its servers (SIGINT runs its cleanup)
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
    seconds = time.monotonic() - t0
    status = "ok" if code == 0 else "failed"
    tail = log.read_text(errors="replace").strip().splitlines()[-15:]
    if code != 0 and name == "peers" and any(m in line for line in tail for m in MISSING_DEP):
        status = "skipped"
    print(f"[{name}] {status} in {seconds:.0f} s (exit {code}; log {log})", flush=True)
    if status != "ok":
        print("    " + "\n    ".join(tail[-8:]), flush=True)
    return {"status": status, "exit_code": code, "seconds": round(seconds, 1), "log": str(log),
            "tail": tail if status != "ok" else []}


def load_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# ---- the summary -----------------------------------------------------------------------------------


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def fmt(x, spec: str = ".2f") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return format(x, spec)


def _why(parts: dict, name: str, what: str) -> str:
    p = parts.get(name)
    if p is None:
        return f"n/a ({name} not run)"
    if p["status"] == "skipped":
        return f"n/a ({name} skipped: {p.get('reason') or 'dependencies missing, see ' + p['log']})"
    if p["status"] != "ok":
        return f"n/a ({name} failed, see {p['log']})"
    return f"n/a ({what})"


def engine_rows(eng: dict | None, parts: dict) -> list[dict]:
    t = (eng or {}).get("targets", {})
    by = {r["size"]: r for r in (eng or {}).get("sizes", [])}
    rows = []
    m = t.get("median_1000_us")
    rows.append({"target": "Engine median ≤ 20 µs at 1,000 rules",
                 "measured": f"{fmt(m['value'], '.1f')} µs" if m else _why(parts, "engine", "no 1,000-rule size"),
                 "result": verdict(m["pass"] if m else None), "source": "engine_bench"})
    r = t.get("ratio_10000_over_10")
    detail = ""
    if r and 10 in by and 10000 in by:
        detail = f" ({by[10000]['tree_median_us']:.1f} / {by[10]['tree_median_us']:.1f} µs)"
    rows.append({"target": "Engine median at 10,000 rules ≤ 3× the 10-rule median",
                 "measured": (f"{fmt(r['value'])}×{detail}" if r
                              else _why(parts, "engine", "sizes 10 and 10,000 needed")),
                 "result": verdict(r["pass"] if r else None), "source": "engine_bench"})
    return rows


def _walk_targets(node, path: tuple = ()):
    """(path, entry) for every dict with a `pass` key or bool under a `targets` mapping."""
    if isinstance(node, dict):
        if "pass" in node and path:
            yield path, node
            return
        for k, v in node.items():
            if isinstance(v, bool) and path and path[-1] == "targets":
                yield (*path, k), {"pass": v}
            else:
                yield from _walk_targets(v, (*path, str(k)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk_targets(v, (*path, str(i)))


def peer_rows(peers: dict | None, parts: dict) -> list[dict]:
    """peers_bench's format is its own: take every target entry (a dict with `pass`, or a bool
    inside `targets`) whose key path names cedar / cerbos; n/a when there is none."""
    found = list(_walk_targets(peers)) if peers else []
    rows = []
    for peer, label in (("cedar", "Engine ≥ 10× faster than cedarpy at 1,000 rules"),
                        ("cerbos", "Faster than Cerbos at every size and ≥ 3× at 1,000 rules")):
        hits = [(p, e) for p, e in found if any(peer in s.lower() for s in p)]
        if not hits:
            skipped = "; ".join(f"{k}: {v}" for k in ("peers_skipped", "grpc_skipped")
                                if (v := (peers or {}).get(k)))
            why = (_why(parts, "peers", "no peers.json") if peers is None
                   else f"n/a (no {peer} target in peers.json{'; ' + skipped if skipped else ''})")
            rows.append({"target": label, "measured": why, "result": "n/a", "source": "peers_bench"})
            continue
        passes = [e.get("pass") for _, e in hits]
        measured = "; ".join(f"{_label(p)}: {_val(e)}" for p, e in hits)
        ok = None if any(x is None for x in passes) else all(bool(x) for x in passes)
        rows.append({"target": label, "measured": measured, "result": verdict(ok), "source": "peers_bench"})
    return rows


def _label(path: tuple) -> str:
    name = "/".join(path[1:] if path[0] == "targets" and len(path) > 1 else path)
    for long, short in (("decide_faster_every_size_", "every size, "), ("decide_1000_", "1,000 rules, "),
                        ("cerbos_over_gavel_p50", "p50 Cerbos/Gavel"), ("gavel_over_cerbos_rate", "req/s Gavel/Cerbos"),
                        ("cedar_over_gavel_1000", "cedarpy/Gavel median at 1,000 rules")):
        name = name.replace(long, short)
    return name


def _val(e: dict) -> str:
    v = e.get("value")
    unit = e.get("unit", "")
    if v is None and isinstance(e.get("values"), dict):
        return ", ".join(f"{k}: {fmt(x, '.2f') if isinstance(x, int | float) else x}" for k, x in e["values"].items())
    if isinstance(v, int | float):
        s = fmt(float(v), ".2f") + (f" {unit}" if unit else "")
    elif v is not None:
        s = str(v)
    else:
        s = "pass" if e.get("pass") else "fail"
    if e.get("target") is not None:
        s += f" (target {e['target']})"
    return s


def service_rows(svc: dict | None, parts: dict) -> tuple[list[dict], list[dict]]:
    s = (svc or {}).get("summary", {})
    rows = []

    def ratio_row(label: str, scenario: str, key: str, limit: float, le: bool, unit_note: str):
        row = s.get(scenario)
        if not row:
            rows.append({"target": label, "measured": _why(parts, "service", f"scenario {scenario} not run"),
                         "result": "n/a", "source": "service_bench"})
            return
        v = row["ratio"][key]
        ok = v <= limit if le else v >= limit
        g, e = row["gavel"], row["echo"]
        what = (f"{g['p50_us']:.0f} / {e['p50_us']:.0f} µs" if key == "p50"
                else f"{g['rate']:.0f} / {e['rate']:.0f} {unit_note}")
        per_round = row["ratio"].get(f"per_round_{'p50' if key == 'p50' else 'throughput'}") or []
        rounds = f"; per round {', '.join(f'{x:g}' for x in per_round)}" if len(per_round) > 1 else ""
        rows.append({"target": label, "measured": f"{v:.2f}× ({what}{rounds})", "result": verdict(ok),
                     "source": "service_bench"})

    ratio_row("Decide p50 ≤ 1.3× echo p50 (one caller)", "unary x1", "p50", 1.3, True, "")
    ratio_row("Decide throughput at 16 in flight ≥ 0.7× echo's", "unary x16", "throughput", 0.7, False, "req/s")
    ratio_row("DecideStream ≥ 0.7× echo stream msgs/s", "stream", "throughput", 0.7, False, "msg/s")
    other = []
    if svc:
        d = svc.get("durability", {})
        other.append({"check": "service_bench: every decision answered is stored",
                      "measured": f"{d.get('answered_ok')} answered, {d.get('recorded')} rows",
                      "result": verdict(d.get("answered_ok") == d.get("recorded"))})
        mixed = s.get("mixed")
        if mixed:
            g = mixed["gavel"].get("mixed") or {}
            e = mixed["echo"].get("mixed") or {}
            per = g.get("per_rpc", {})
            p50s = ", ".join(f"{k} {v['p50_us'] / 1000:.1f}/{v['p99_us'] / 1000:.1f} ms" for k, v in per.items())
            other.append({"check": "mixed workload, 16 in flight (info): operations/s, decisions/s; p50/p99 per RPC",
                          "measured": f"{fmt(g.get('operations_per_s'), '.0f')} ops/s, "
                                      f"{fmt(g.get('decisions_per_s'), '.0f')} dec/s "
                                      f"(echo, same RPC count: {fmt(e.get('operations_per_s'), '.0f')} ops/s); {p50s}",
                          "result": "info"})
        mc = svc.get("mixed_check")
        if mc:
            other.append({"check": "mixed workload: every allowed token consumed once, store counts match",
                          "measured": f"{mc.get('allowed_flows')} flows, {mc.get('flow_tokens_consumed')} consumed, "
                                      f"{mc.get('flow_executions')} executions, {mc.get('db_approvals')} approvals",
                          "result": verdict(mc.get("ok"))})
    return rows, other


def serve_rows(srv: dict | None, parts: dict, soak_requested: bool) -> tuple[list[dict], list[dict]]:
    t = (srv or {}).get("targets", {})
    by = {r["size"]: r for r in (srv or {}).get("startup", [])}
    rows = []
    r = t.get("serve_ready_1000_s")
    others = ", ".join(f"{n:,}: {by[n]['ready_s_median']:.2f} s" for n in sorted(by) if n != 1000)
    rows.append({"target": "`gavel serve` ready ≤ 2 s with 1,000 rules",
                 "measured": (f"{r['value']:.2f} s (median; {others})" if r
                              else _why(parts, "serve", "no 1,000-rule size")),
                 "result": verdict(r["pass"] if r else None), "source": "serve_bench"})
    r = t.get("rss_10000_mb")
    rows.append({"target": "RSS ≤ 300 MB with 10,000 rules",
                 "measured": (f"{r['value']:.0f} MB (peak VmHWM {r.get('peak_mb', math.nan):.0f} MB)" if r
                              else _why(parts, "serve", "no 10,000-rule size")),
                 "result": verdict(r["pass"] if r else None), "source": "serve_bench"})
    soak = (srv or {}).get("soak")
    f = t.get("soak_flat")
    if soak and f:
        v = soak["verdict"]
        minutes = soak["config"]["minutes"]
        short = "" if minutes >= 10 else f"; only {minutes:g} min, the target asks for 10"
        measured = (f"RSS {100 * v['rss_second_half_growth']:+.1f} % over the 2nd half ({verdict(v['rss_ok'])}), "
                    f"p50 {v['p50_rise_us'] / 1000:+.1f} ms trend ({verdict(v['p50_ok'])}; median "
                    f"{v['p50_median_us'] / 1000:.1f} ms){short}")
        rows.append({"target": "Flat memory over a 10-minute soak", "measured": measured,
                     "result": verdict(f["pass"]) + ("" if minutes >= 10 else " (short)"), "source": "serve_bench"})
    else:
        why = ("n/a (soak not run: add --soak)" if not soak_requested
               else _why(parts, "serve", "the soak gave too few windows"))
        rows.append({"target": "Flat memory over a 10-minute soak", "measured": why, "result": "n/a",
                     "source": "serve_bench"})
    other = []
    if soak:
        c = soak["check"]
        other.append({"check": "soak: store holds every decision, consumed token and report",
                      "measured": f"{c.get('db_decisions')} decisions, {c.get('db_tokens_consumed')} consumed, "
                                  f"{c.get('db_executions')} executions; {soak['skipped']} skipped",
                      "result": verdict(c.get("ok"))})
    for n in sorted(by):
        load = by[n].get("after_load") or {}
        if load:
            other.append({"check": f"serve with {n:,} rules (info): RSS ready / after {load.get('decisions')} "
                                   "decisions, peak",
                          "measured": f"{by[n]['rss_mb_median']:.0f} / {load.get('after_rss_mb', math.nan):.0f} MB, "
                                      f"peak {load.get('after_hwm_mb', math.nan):.0f} MB; "
                                      f"{load.get('rate', math.nan):.0f} dec/s",
                          "result": "info"})
    return rows, other


def ledger_rows(led: dict | None) -> list[dict]:
    out = []
    for r in (led or {}).get("summary", []):
        out.append({"check": f"ledger cost < 30 % of throughput at {r['concurrency']} in flight "
                             "(not an issue-9 target)",
                    "measured": f"{100 * r['cost']:.1f} %", "result": verdict(r.get("pass"))})
    return out


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=ROOT, timeout=10).stdout.strip()
        return rev + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def summarise(out: Path, parts: dict, args, started: str, load: tuple) -> str:
    eng, svc, srv = load_json(out / "engine.json"), load_json(out / "service.json"), load_json(out / "serve.json")
    peers, led = load_json(out / "peers.json"), load_json(out / "ledger.json")
    targets = engine_rows(eng, parts) + peer_rows(peers, parts)
    s_rows, s_other = service_rows(svc, parts)
    v_rows, v_other = serve_rows(srv, parts, args.soak)
    targets += s_rows + v_rows
    other = s_other + v_other + ledger_rows(led)
    if eng:
        bad = sum(r.get("disagreements", 0) for r in eng.get("sizes", []))
        other.insert(0, {"check": "engine: tree and naive evaluator agree", "measured": f"{bad} disagreements",
                         "result": verdict(bad == 0)})
        ld = eng.get("targets", {}).get("load_10000_s")
        if ld:
            other.insert(1, {"check": "engine: load of 10,000 rules < 5 s (engine_bench's own target)",
                             "measured": f"{ld['value']:.2f} s", "result": verdict(ld["pass"])})

    lines = [f"# Benchmark suite: {'quick' if args.quick else 'full'} run",
             "",
             f"{started}, gavel {git_revision()}; {os.cpu_count()} cores, Python {platform.python_version()}; "
             f"load average {load[0]:.2f} at the start, {load[1]:.2f} at the end "
             "(the machine is shared: compare ratios measured in the same run).",
             "",
             "| target (issue 9) | measured | result | from |",
             "|---|---|---|---|"]
    lines += [f"| {r['target']} | {r['measured']} | {r['result']} | {r['source']} |" for r in targets]
    lines += ["", "| other checks | measured | result |", "|---|---|---|"]
    lines += [f"| {r['check']} | {r['measured']} | {r['result']} |" for r in other]
    lines += ["", "| part | status | time | log |", "|---|---|---|---|"]
    for name in PARTS:
        p = parts.get(name)
        if p is None:
            continue
        lines.append(f"| {name} | {p['status']}{' (' + p['reason'] + ')' if p.get('reason') else ''} | "
                     f"{p.get('seconds', 0):.0f} s | {Path(p['log']).name if p.get('log') else '-'} |")
    text = "\n".join(lines) + "\n"
    (out / "summary.json").write_text(json.dumps({"targets": targets, "other": other, "parts": parts,
                                                  "quick": args.quick, "started": started}, indent=2, default=str))
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="/tmp/gavel-bench", help="output directory (default /tmp/gavel-bench)")
    p.add_argument("--quick", action="store_true", help="fewer rounds, repeats and requests (about 3-4 minutes)")
    p.add_argument("--soak", action="store_true", help="also run serve_bench's soak")
    p.add_argument("--soak-minutes", type=float, help="soak length (default 10; 1 with --quick)")
    p.add_argument("--ledger", action="store_true", help="also run ledger_bench.py")
    p.add_argument("--only", help=f"comma-separated parts from {','.join(PARTS)}")
    p.add_argument("--skip", default="", help="comma-separated parts to leave out")
    p.add_argument("--verbose", action="store_true", help="stream every part's output")
    p.add_argument("--summary-only", action="store_true", help="do not run anything: summarise the JSON in --out")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM: stop the running part cleanly too

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wanted = [x.strip() for x in args.only.split(",")] if args.only else [x for x in PARTS if x != "ledger" or
                                                                           args.ledger]
    unknown = [x for x in wanted + [x for x in args.skip.split(",") if x] if x not in PARTS]
    if unknown:
        p.error(f"unknown part(s) {unknown}; choose from {', '.join(PARTS)}")
    wanted = [x for x in wanted if x not in args.skip.split(",")]
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load0 = os.getloadavg()[0]
    parts: dict[str, dict] = {}
    status_file = out / "parts.json"
    if args.summary_only:
        saved = load_json(status_file) or {}
        parts = saved.get("parts", {})
        args.quick = saved.get("quick", args.quick)
        args.soak = args.soak or "soak" in (load_json(out / "serve.json") or {})
    else:
        for name in PARTS:  # results of an earlier run must not be read as this run's
            if name in wanted:
                (out / f"{name}.json").unlink(missing_ok=True)
        cmds = part_commands(args, out)
        for name in PARTS:
            if name not in wanted:
                continue
            cmd = cmds[name]
            if cmd is None:
                msg = "benchmarks/peers_bench.py not found"
                print(f"[{name}] skipped: {msg}", flush=True)
                parts[name] = {"status": "skipped", "reason": msg, "seconds": 0, "log": ""}
                continue
            parts[name] = run_part(name, cmd, out, args.verbose)
            if parts[name]["status"] == "skipped":
                parts[name]["reason"] = "its dependencies are not installed (see the log)"
        status_file.write_text(json.dumps({"parts": parts, "quick": args.quick}, indent=2))
    text = summarise(out, parts, args, started, (load0, os.getloadavg()[0]))
    (out / "summary.md").write_text(text)
    print("\n" + text)
    print(f"wrote {out / 'summary.md'} and {out / 'summary.json'}")
    return 0 if all(p["status"] in ("ok", "skipped") for p in parts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
