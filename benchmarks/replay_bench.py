"""Replay speed: recorded decisions re-evaluated against a candidate bundle, per second.

    .venv/bin/python benchmarks/replay_bench.py [--decisions 50000] [--rounds 3]

Records `--decisions` decisions through the real decide path (SQLite, the repo's rules/, a mix
of refunds, payments, tool calls and invoices from registered and unregistered agents), then
replays them twice per round against a candidate bundle whose refund threshold differs:

- end to end: `Application.replay` — reading the stored requests and facts page by page from the
  store, evaluating, comparing, building both explains for every changed decision;
- engine only: the compiled candidate over the same stored (request, facts, time) triples.

Both run on one core (one process, one thread doing the work). Reports decisions/s medians.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gavel.app.principal import Principal  # noqa: E402
from gavel.app.requests import DecideInput  # noqa: E402
from gavel.bootstrap import build  # noqa: E402
from gavel.bundles import build_archive  # noqa: E402
from gavel.config import Settings  # noqa: E402
from tests.e2e.conftest import seed_keys  # noqa: E402

REQUESTS = [
    ({"type": "refund_approve", "amount": "120.00", "currency": "USD"}, "support-refund-agent", {"order_id": "o1"}),
    ({"type": "refund_approve", "amount": "700.00", "currency": "EUR"}, "support-refund-agent", {"order_id": "o2"}),
    ({"type": "refund_create", "amount": "450.00", "currency": "GBP"}, "support-refund-agent", None),
    ({"type": "tool_call", "tool": "read_crm", "resource": "crm/customers/7"}, "support-agent", None),
    ({"type": "tool_call", "tool": "shell_exec"}, "ops-agent", None),
    ({"type": "payment", "amount": "99.00", "currency": "USD"}, "payments-bot", None),
]


async def record(runtime, principal: Principal, n: int) -> None:
    async def one(i: int) -> None:
        action, agent, context = REQUESTS[i % len(REQUESTS)]
        await runtime.app.decide(principal, DecideInput(action=action, args=None, agent_id=agent, context=context))

    for start in range(0, n, 256):
        await asyncio.gather(*(one(i) for i in range(start, min(n, start + 256))))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gavel-replay-"))
    try:
        runtime = build(Settings(data_dir=work / "data", rules=ROOT / "rules", rate_limit_per_minute=0))
        keys = seed_keys(runtime)
        principal = await runtime.app.authenticate(keys["admin_test"])
        t0 = time.perf_counter()
        await record(runtime, principal, args.decisions)
        print(f"recorded {args.decisions} decisions in {time.perf_counter() - t0:.1f} s")
        candidate_dir = work / "candidate"
        shutil.copytree(ROOT / "rules", candidate_dir)
        text = (candidate_dir / "refunds.rules").read_text()
        (candidate_dir / "refunds.rules").write_text(text.replace("let small = 500", "let small = 800"))
        archive = build_archive(candidate_dir, version="candidate", author="bench", now=datetime.now(UTC))
        _, engine = await runtime.app._engine_of(principal, archive)
        rows = await runtime.store.read(lambda uow: uow.decisions.between(
            "acme", "test", None, None, None, args.decisions + 10))
        triples = [(r.request, r.facts, r.created_at) for r in rows]
        e2e, engine_only = [], []
        for _ in range(args.rounds):
            t = time.perf_counter()
            changed = 0
            async for r in runtime.app.replay(principal, archive, timedelta(days=1)):
                if "summary" in r:
                    evaluated = r["summary"]["evaluated"]
                else:
                    changed += 1
            e2e.append(evaluated / (time.perf_counter() - t))
            t = time.perf_counter()
            for request, facts, at in triples:
                engine.decide_at(request, facts, at)
            engine_only.append(len(triples) / (time.perf_counter() - t))
        print(f"end to end (store → engine → compare): {statistics.median(e2e):,.0f} decisions/s "
              f"(rounds: {', '.join(f'{x:,.0f}' for x in e2e)}); {changed} changed per replay")
        print(f"engine only: {statistics.median(engine_only):,.0f} decisions/s "
              f"(rounds: {', '.join(f'{x:,.0f}' for x in engine_only)})")
        verdict = {True: "PASS", False: "MISS"}
        print(f"target ≥ 20,000 decisions/s per core: end to end {verdict[statistics.median(e2e) >= 20_000]}, "
              f"engine {verdict[statistics.median(engine_only) >= 20_000]}")
        await runtime.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
