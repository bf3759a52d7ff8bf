"""How long compiling takes for policy shapes that once made it super-linear (issue 14).

    .venv/bin/python benchmarks/compile_bench.py [--sizes 2500,5000,10000] [--shapes all]

Each shape is compiled in a fresh interpreter (no engine cache, no warm-up across sizes) and
timed with `time.perf_counter`; the analysis pass (`engine.warnings`, what `ValidateRules`
returns) is timed separately. Shapes:

- `thresholds`: one file of N small rules, each one bound on `action.amount` — the shape of
  the report (5,000 rules in ~480 KB took 21.5 s, 10,000 took 77 s: building the decision
  tree tested every rule's interval against every elementary segment);
- `products`: N/100 rules with three membership sets of 90, 30 and 30 values (each rule was
  copied into 81,000 leaves before the placement budget);
- `agents`: one file of N per-agent rules (`agent.id == "agent-i" and action.amount <= …`),
  what a platform team generates;
- `generated`: `gen_policies.generate_policy(N)`, the realistic mix of `engine_bench.py`.

Doubling N should roughly double every column.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, sys, time
sys.path.insert(0, HERE)
from gen_policies import generate_policy
from gavel.api import Engine

def thresholds(n):
    ops = ("<=", "<", ">=", ">")
    return {"big.rules": "package big\n\n" + "".join(
        f'rule r{i}\n  allow "ok.r{i}"\n  when action.amount {ops[i % 4]} {i // 2}\n\n' for i in range(n))}

def products(n):
    out = []
    for i in range(max(1, n // 100)):
        t = ", ".join(f'"t{(i + j) % 97}"' for j in range(90))
        c = ", ".join(f'"c{(i + j) % 31}"' for j in range(30))
        u = ", ".join(f'"u{(i + j) % 29}"' for j in range(30))
        out.append(f'rule r{i}\n  allow "ok.r{i}"\n  when {{\n    action.type in {{{t}}}\n'
                   f'    context.channel in {{{c}}}\n    context.unit in {{{u}}}\n  }}\n\n')
    return {"sets.rules": "package sets\n\n" + "".join(out)}

def agents(n):
    return {"agents.rules": "package agents\n\n" + "".join(
        f'rule a{i}\n  allow "agent.a{i}"\n  when {{\n    agent.id == "agent-{i}"\n'
        f'    action.amount <= {i % 500 + 1}\n  }}\n\n' for i in range(n))}

shape, n = sys.argv[1], int(sys.argv[2])
sources = generate_policy(n, seed=7).sources if shape == "generated" else globals()[shape](n)
size = sum(len(t.encode()) for t in sources.values())
t0 = time.perf_counter()
engine = Engine.from_sources(sources)
t1 = time.perf_counter()
warnings = len(engine.warnings)
t2 = time.perf_counter()
print(json.dumps({"shape": shape, "n": n, "bytes": size, "compile_s": t1 - t0, "analysis_s": t2 - t1,
                  "warnings": warnings}))
"""

SHAPES = ("thresholds", "products", "agents", "generated")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2500,5000,10000")
    parser.add_argument("--shapes", default="all")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    shapes = SHAPES if args.shapes == "all" else tuple(args.shapes.split(","))
    print(f"{'shape':<11} {'rules':>7} {'bytes':>10} {'compile':>9} {'analysis':>9}")
    for shape in shapes:
        for n in (int(s) for s in args.sizes.split(",")):
            try:
                done = subprocess.run([sys.executable, "-c", CHILD.replace("HERE", repr(str(HERE))), shape, str(n)],
                                      capture_output=True, text=True, timeout=args.timeout, check=True)
            except subprocess.TimeoutExpired:
                over = f"> {args.timeout:.0f}s"
                print(f"{shape:<11} {n:>7} {'':>10} {over:>9}")
                continue
            except subprocess.CalledProcessError as exc:
                print(f"{shape:<11} {n:>7} refused: {exc.stderr.strip().splitlines()[-1]}")
                continue
            r = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{shape:<11} {n:>7} {r['bytes']:>10,} {r['compile_s']:>8.2f}s {r['analysis_s']:>8.2f}s")


if __name__ == "__main__":
    main()
