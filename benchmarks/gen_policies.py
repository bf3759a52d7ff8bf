"""Deterministic generator of realistic Gavel policies and of requests that exercise them.

Used by `benchmarks/engine_bench.py` and `tests/engine/test_tree_oracle.py`.

    policy = generate_policy(1000, seed=7)          # GeneratedPolicy
    engine = Engine.from_sources(policy.sources)     # {path: text}, several packages and files
    cases = generate_requests(policy, 20_000, seed=1)  # [(request, facts), ...]

Everything is driven by one seeded `random.Random`, so the same arguments always give the same
policy text and the same requests (byte for byte).

Shape of a generated policy of N rules (N counts `rule` declarations; risk rules and package
defaults come on top):

- T action types (`max(20, N // 5)`, i.e. 2,000 for 10,000 rules), named `domain_verb[_variant]`,
  partitioned over P domain packages (`clamp(N // 50, 2, 200)`); each package declares
  `scope action.type in {...}` over its types (a third of them also borrow a neighbour's type,
  so scopes overlap) and some packages are split over two files;
- per-agent rules (`min(300, N // 10)`): `agent.id == "agent-17"` / `agent.id in {...}`, mostly
  in an unscoped `agents` package, some inside the domain packages;
- domain rules mixing: equality on `action.type` / currency / jurisdiction / business unit,
  membership sets, amount thresholds and ranges, fact checks
  (`agent.spend.today + action.amount <= agent.daily_limit`), `context.*` tests, quantifiers over
  `action.args.items`, built-ins on `now` and strings, `unless` blocks, priorities, `with`
  obligations, `require_approval` rules with a `route`, rules reading `risk.tier`, risk rules
  and package defaults.

Requests hit types with a Zipf-like skew, name agents that rules mention about a quarter of the
time, and include misses (unknown types, unknown agents) and null/missing fields in realistic
proportions; `malformed_rate` adds values that make evaluation fail (e.g. amount "abc").
"""

from __future__ import annotations

import random
from bisect import bisect
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import accumulate

DOMAINS = (
    "refund", "payment", "payout", "invoice", "transfer", "subscription", "vendor", "expense",
    "payroll", "card", "loan", "account", "crm", "ticket", "email", "deploy", "data_export",
    "user", "contract", "inventory",
)
VERBS = ("create", "approve", "cancel", "update", "read", "delete", "issue", "close", "export", "escalate")
VARIANTS = ("", "_bulk", "_eu", "_us", "_apac", "_internal", "_partner", "_sandbox", "_batch", "_manual")
FIAT = ("USD", "EUR", "GBP")
CURRENCIES = (*FIAT, "JPY", "CHF", "CAD", "AUD", "SEK", "BRL", "INR")
JURISDICTIONS = ("US", "EU", "UK", "SG", "JP", "BR", "IN", "CA")
BUSINESS_UNITS = ("retail", "wholesale", "enterprise", "smb", "marketplace", "internal")
CHANNELS = ("web", "api", "batch", "chat", "email")
TOOLS = ("sql", "http", "shell", "crm_api", "ledger_api", "email_api")
RESOURCE_PREFIXES = ("prod/", "staging/", "dev/", "finance/", "hr/")
AMOUNT_STEPS = ("10", "50", "100", "250", "500", "1000", "2500", "5000", "10000", "25000", "50000")
STATUSES = ("active", "paused", "locked")
TIERS = ("standard", "restricted", "trusted")
RISK_LEVELS = ("low", "medium", "high")
FIXED_NOW = datetime(2025, 3, 14, 10, 30, tzinfo=UTC)  # a Friday morning


@dataclass
class GeneratedPolicy:
    n_rules: int
    seed: int
    sources: dict[str, str]
    action_types: list[str]
    packages: dict[str, list[str]]  # package → the action types of its scope
    rule_agents: list[str]  # agent ids that rules mention
    agent_pool: int  # requests pick agents from agent-0 … agent-{agent_pool-1}
    skus: list[str]
    counts: dict[str, int] = field(default_factory=dict)  # rules, risks, defaults, packages, files, …

    @property
    def total_rules(self) -> int:
        return self.counts.get("rules", 0)


def n_action_types(n_rules: int) -> int:
    return max(20, n_rules // 5)


def n_packages(n_rules: int) -> int:
    return max(2, min(200, n_rules // 50))


def n_agent_rules(n_rules: int) -> int:
    return max(1, min(300, n_rules // 10))


def action_type_names(t: int) -> list[str]:
    names = [f"{d}_{v}{x}" for x in VARIANTS for d in DOMAINS for v in VERBS]
    if t > len(names):
        names += [f"custom_action_{i}" for i in range(t - len(names))]
    return names[:t]


def _q(s: str) -> str:
    return '"' + s + '"'


def _set(items) -> str:
    return "{" + ", ".join(_q(i) for i in items) + "}"


class _PolicyWriter:
    def __init__(self, n_rules: int, seed: int):
        self.rng = random.Random(f"policy:{n_rules}:{seed}")
        self.n_rules = n_rules
        self.seed = seed
        self.types = action_type_names(n_action_types(n_rules))
        self.agent_pool = max(200, 4 * n_agent_rules(n_rules) * 3)
        self.skus = [f"SKU-{i}" for i in range(40)]
        self.rule_agents: set[str] = set()
        self.counts = {"rules": 0, "risks": 0, "defaults": 0, "packages": 0, "files": 0,
                       "agent_rules": 0, "require_approval": 0, "unless": 0, "priority": 0}

    # ---- helpers -------------------------------------------------------------------------
    def agent(self) -> str:
        a = f"agent-{self.rng.randrange(self.agent_pool // 3)}"
        self.rule_agents.add(a)
        return a

    def amount(self) -> str:
        return self.rng.choice(AMOUNT_STEPS)

    def effect(self) -> str:
        return self.rng.choices(("allow", "deny", "require_approval"), (50, 30, 20))[0]

    def route(self) -> str:
        role = self.rng.choice(("finance_manager", "finance_manager", "security_lead", "ops_manager"))
        timeout = self.rng.choice(("24h", "24h", "4h", "2d"))
        on_timeout = self.rng.choice(("deny", "deny", "allow", "escalate"))
        extra = '\n    escalate_to: "cfo"' if on_timeout == "escalate" else ""
        return (f'  route {{\n    role: "{role}"\n    approvals: {self.rng.choice((1, 1, 2))}\n'
                f"    timeout: {timeout}\n    on_timeout: {on_timeout}{extra}\n  }}\n")

    # ---- rule bodies ---------------------------------------------------------------------
    def conditions(self, types: list[str]) -> tuple[str, list[str]]:
        """(shape name, condition lines) for one domain rule of a package over `types`."""
        rng = self.rng
        t = rng.choice(types)
        shape = rng.choices(
            ("type_amount", "type_set_currency", "range", "budget", "jurisdiction", "context",
             "quantifier", "currency_deny", "risk_gated", "time", "resource", "agent_status",
             "confidence", "monthly"),
            (22, 10, 14, 8, 8, 8, 5, 2, 5, 3, 5, 3, 4, 3),
        )[0]
        if shape == "type_amount":
            op = rng.choice((">", ">=", "<=", "<"))
            return shape, [f'action.type == "{t}"', f"action.amount {op} {self.amount()}"]
        if shape == "type_set_currency":
            some = rng.sample(types, min(len(types), rng.randint(2, 4)))
            cur = rng.choice(("action.currency in fiat", f'action.currency == "{rng.choice(CURRENCIES)}"'))
            return shape, [f"action.type in {_set(some)}", cur]
        if shape == "range":
            lo, hi = sorted(rng.sample(range(len(AMOUNT_STEPS)), 2))
            lo_op = rng.choice((">", ">="))
            hi_op = rng.choice(("<", "<="))
            conds = [f'action.type == "{t}"', f"action.amount {lo_op} {AMOUNT_STEPS[lo]}",
                     f"action.amount {hi_op} {AMOUNT_STEPS[hi]}"]
            if rng.random() < 0.3:
                conds.append(f'action.currency == "{rng.choice(FIAT)}"')
            return shape, conds
        if shape == "budget":
            return shape, [f'action.type == "{t}"', "action.amount <= small",
                           "agent.spend.today + action.amount <= agent.daily_limit"]
        if shape == "jurisdiction":
            units = rng.sample(BUSINESS_UNITS, rng.randint(1, 3))
            conds = [f'action.jurisdiction == "{rng.choice(JURISDICTIONS)}"', f"action.business_unit in {_set(units)}"]
            if rng.random() < 0.6:
                conds.insert(0, f'action.type == "{t}"')
            return shape, conds
        if shape == "context":
            conds = [f'action.type == "{t}"'] if rng.random() < 0.7 else []
            conds.append(rng.choice((
                f'context.channel == "{rng.choice(CHANNELS)}"',
                "context.order_id == null",
                "context.verified == true",
                "context.attempt >= 3",
                f"context.channel in {_set(rng.sample(CHANNELS, 2))}",
            )))
            return shape, conds
        if shape == "quantifier":
            body = rng.choice((
                f'any it in action.args.items: it.sku == "{rng.choice(self.skus)}"',
                "all it in action.args.items: it.qty <= 10",
                f"any it in action.args.items: it.qty * it.price > {self.amount()}",
                "len(action.args.items) > 3",
            ))
            return shape, [f'action.type == "{t}"', body]
        if shape == "currency_deny":
            return shape, ["action.currency not in fiat"]
        if shape == "risk_gated":
            return shape, [f'action.type == "{t}"', rng.choice(('risk.tier in {"high", "critical"}',
                                                                 "risk.score >= 50"))]
        if shape == "time":
            return shape, [f'action.type == "{t}"', rng.choice((
                'day_of_week(now) in {"saturday", "sunday"}', "hour(now) < 6", "hour(now) >= 22")),
                "action.amount >= large"]
        if shape == "resource":
            conds = [f'action.type == "{t}"', f'action.tool == "{rng.choice(TOOLS)}"']
            conds.append(rng.choice((
                f'startswith(action.resource, "{rng.choice(RESOURCE_PREFIXES)}")',
                'glob(action.resource, "prod/*/secrets*")',
                f'matches(action.resource, "^{rng.choice(RESOURCE_PREFIXES)}[a-z]+")',
            )))
            return shape, conds
        if shape == "agent_status":
            return shape, [rng.choice(('agent.status != "active"', 'agent.control_tier == "restricted"',
                                       'agent.risk_level in {"high"}'))]
        if shape == "confidence":
            return shape, [f'action.type == "{t}"', f"confidence < 0.{rng.randint(5, 8)}"]
        # monthly
        return shape, [f'action.type == "{t}"', "agent.spend.month + action.amount > agent.monthly_limit"]

    def rule(self, name: str, conds: list[str], effect: str | None = None, can_unless: bool = True) -> str:
        rng = self.rng
        effect = effect or self.effect()
        self.counts["rules"] += 1
        head = f"rule {name}"
        if rng.random() < 0.2:
            head += f" priority {rng.randint(1, 20)}"
            self.counts["priority"] += 1
        reason = f"{name.split('_')[0]}.{name}"
        lines = [head, f'  {effect} "{reason}"']
        if rng.random() < 0.1:
            lines.append(f'  message "generated rule {name}"')
        if len(conds) == 1:
            lines.append(f"  when {conds[0]}")
        else:
            lines.append("  when {")
            lines += [f"    {c}" for c in conds]
            lines.append("  }")
        if can_unless and rng.random() < 0.15:
            self.counts["unless"] += 1
            lines.append(rng.choice((
                "  unless agent.id in trusted",
                '  unless {\n    context.override == "break_glass"\n    agent.control_tier == "trusted"\n  }',
                '  unless action.business_unit == "internal"',
            )))
        text = "\n".join(lines) + "\n"
        if effect == "require_approval":
            self.counts["require_approval"] += 1
            text += self.route()
        if rng.random() < 0.05:
            text += '  with { notify: "finance-ops", ticket: true }\n'
        return text + "\n"

    # ---- packages ------------------------------------------------------------------------
    def package_header(self, pkg: str, types: list[str]) -> str:
        rng = self.rng
        trusted = _set(sorted({self.agent() for _ in range(rng.randint(1, 4))}))
        blocked = _set(sorted({self.agent() for _ in range(rng.randint(1, 3))}))
        out = [
            f"package {pkg}", "",
            f"let small   = {rng.choice(('100', '250', '500', '1000'))}",
            f"let large   = {rng.choice(('5000', '10000', '25000'))}",
            f"let fiat    = {_set(FIAT)}",
            f"let trusted = {trusted}",
            f"let blocked = {blocked}", "",
            f"scope action.type in {_set(types)}", "",
        ]
        for i in range(rng.randint(1, 3)):
            self.counts["risks"] += 1
            out.append(rng.choice((
                f'risk {rng.choice((10, 20, 30))} "large_amount_{i}" when action.amount > large',
                f'risk {rng.choice((10, 20))} "no_order_ref_{i}" when context.order_id == null',
                f'risk {rng.choice((15, 25))} "foreign_currency_{i}" when action.currency not in fiat',
                f'risk -10 "trusted_agent_{i}" when agent.id in trusted',
                f'risk 40 "night_{i}" when {{\n  hour(now) < 6\n  action.amount > small\n}}',
            )))
        out.append("")
        if rng.random() < 0.6:
            self.counts["defaults"] += 1
            eff = rng.choices(("deny", "allow", "require_approval"), (50, 35, 15))[0]
            line = f'default {eff} "{pkg}.default"'
            if eff == "require_approval":
                line += " " + self.route().strip()
            out += [line, ""]
        out += ["rule blocked_agent", f'  deny "{pkg}.agent_blocked"', "  when agent.id in blocked", ""]
        self.counts["rules"] += 1
        return "\n".join(out) + "\n"

    def agent_rule(self, i: int, types_hint: list[str] | None) -> str:
        rng = self.rng
        self.counts["agent_rules"] += 1
        if rng.random() < 0.7:
            conds = [f'agent.id == "{self.agent()}"']
        else:
            conds = [f"agent.id in {_set(sorted({self.agent() for _ in range(rng.randint(2, 6))}))}"]
        extra = rng.random()
        if types_hint and extra < 0.5:
            conds.append(f"action.type in {_set(rng.sample(types_hint, min(3, len(types_hint))))}")
        elif extra < 0.8:
            conds.append(f"action.amount {rng.choice(('<=', '>'))} {self.amount()}")
        effect = rng.choices(("allow", "deny", "require_approval"), (45, 40, 15))[0]
        return self.rule(f"agent_rule_{i}", conds, effect, can_unless=False)

    def build(self) -> GeneratedPolicy:
        rng = self.rng
        n_pkg = n_packages(self.n_rules)
        n_agent = n_agent_rules(self.n_rules)
        # the `blocked_agent` rule of each package counts towards N
        n_domain = max(0, self.n_rules - n_agent - n_pkg)
        agent_in_domain = n_agent // 3
        chunks = [self.types[i::n_pkg] for i in range(n_pkg)]  # interleaved: domains spread over packages
        packages: dict[str, list[str]] = {}
        sources: dict[str, str] = {}
        per_pkg = [n_domain // n_pkg + (1 if i < n_domain % n_pkg else 0) for i in range(n_pkg)]
        agent_per_pkg = [agent_in_domain // n_pkg + (1 if i < agent_in_domain % n_pkg else 0) for i in range(n_pkg)]
        agent_idx = 0
        for p in range(n_pkg):
            types = list(chunks[p])
            if rng.random() < 0.33:
                types.append(rng.choice(chunks[(p + 1) % n_pkg]))
            domain = types[0].split("_")[0]
            pkg = f"{domain}.p{p}"
            packages[pkg] = types
            body = [self.package_header(pkg, types)]
            for r in range(per_pkg[p]):
                shape, conds = self.conditions(types)
                body.append(self.rule(f"{shape}_{r}", conds))
            for _ in range(agent_per_pkg[p]):
                body.append(self.agent_rule(agent_idx, types))
                agent_idx += 1
            self.counts["packages"] += 1
            if len(body) > 6 and rng.random() < 0.3:  # split the package over two files
                cut = len(body) // 2
                sources[f"rules/{pkg.replace('.', '/')}/a.rules"] = "".join(body[:cut])
                sources[f"rules/{pkg.replace('.', '/')}/b.rules"] = f"package {pkg}\n\n" + "".join(body[cut:])
            else:
                sources[f"rules/{pkg.replace('.', '/')}.rules"] = "".join(body)
        agent_body = ["package agents\n\n"]
        while agent_idx < n_agent:
            hint = rng.sample(self.types, 3) if rng.random() < 0.3 else None
            agent_body.append(self.agent_rule(agent_idx, hint))
            agent_idx += 1
        sources["rules/agents.rules"] = "".join(agent_body)
        self.counts["packages"] += 1
        self.counts["files"] = len(sources)
        return GeneratedPolicy(
            n_rules=self.n_rules, seed=self.seed, sources=sources, action_types=self.types,
            packages=packages, rule_agents=sorted(self.rule_agents), agent_pool=self.agent_pool,
            skus=self.skus, counts=dict(self.counts),
        )


def generate_policy(n_rules: int, seed: int = 0) -> GeneratedPolicy:
    """A policy of exactly `n_rules` rules (for n_rules ≥ 10), deterministic in (n_rules, seed)."""
    return _PolicyWriter(n_rules, seed).build()


# ---- requests ------------------------------------------------------------------------------

MALFORMED_AMOUNTS = ("abc", "", "NaN", "1,000", "Infinity", True, [1], {"v": 1})


class _RequestWriter:
    def __init__(self, policy: GeneratedPolicy, seed: int, malformed_rate: float):
        self.rng = random.Random(f"requests:{policy.n_rules}:{policy.seed}:{seed}")
        self.p = policy
        self.malformed = malformed_rate
        weights = [1 / (rank + 1) ** 1.1 for rank in range(len(policy.action_types))]
        self.type_cum = list(accumulate(weights))
        order = list(policy.action_types)
        self.rng.shuffle(order)  # which types are popular is random, not alphabetical
        self.types_by_popularity = order

    def pick_type(self) -> str | None:
        r = self.rng.random()
        if r < 0.05:
            return None
        if r < 0.13:
            return f"unknown_action_{self.rng.randrange(50)}"
        i = bisect(self.type_cum, self.rng.random() * self.type_cum[-1])
        return self.types_by_popularity[min(i, len(self.types_by_popularity) - 1)]

    def amount(self):
        rng = self.rng
        r = rng.random()
        if r < self.malformed:
            return rng.choice(MALFORMED_AMOUNTS)
        if r < self.malformed + 0.04:
            return None  # missing
        if r < self.malformed + 0.09:
            return rng.choice(AMOUNT_STEPS)  # exactly on a threshold
        v = min(rng.lognormvariate(5.0, 1.8), 250_000)
        r = rng.random()
        if r < 0.10:
            return int(v)
        if r < 0.12:
            return round(v, 2)  # a float
        return f"{v:.2f}"

    def request(self) -> tuple[dict, dict | None]:
        rng = self.rng
        p = self.p
        action: dict = {}
        t = self.pick_type()
        if t is not None:
            action["type"] = t
        amount = self.amount()
        if amount is not None:
            action["amount"] = amount
        if rng.random() < 0.95:
            action["currency"] = rng.choices(CURRENCIES, [40, 25, 15, 5, 3, 3, 3, 2, 2, 2])[0]
        if rng.random() < 0.8:
            action["jurisdiction"] = rng.choice(JURISDICTIONS)
        if rng.random() < 0.8:
            action["business_unit"] = rng.choice(BUSINESS_UNITS)
        if rng.random() < 0.4:
            action["tool"] = rng.choice(TOOLS)
            action["resource"] = rng.choice(RESOURCE_PREFIXES) + rng.choice(("app", "db", "x/secrets1", "ledger"))
        if rng.random() < 0.5:
            items = []
            for _ in range(rng.randint(0, 5)):
                item = {"sku": rng.choice(p.skus), "qty": rng.randint(1, 15), "price": round(rng.uniform(1, 500), 2)}
                if rng.random() < self.malformed:
                    item["qty"] = "many"
                items.append(item)
            action["args"] = {"items": items}
        agent: dict = {}
        r = rng.random()
        if r < 0.25 and p.rule_agents:
            agent["id"] = rng.choice(p.rule_agents)
        elif r < 0.97:
            agent["id"] = f"agent-{rng.randrange(p.agent_pool)}"
        if rng.random() < 0.5:
            agent["session_id"] = f"s-{rng.randrange(10**6)}"
        context: dict = {}
        if rng.random() < 0.7:
            context["order_id"] = f"ord-{rng.randrange(10**6)}"
        if rng.random() < 0.8:
            context["channel"] = rng.choice(CHANNELS)
        if rng.random() < 0.3:
            context["verified"] = rng.random() < 0.7
        if rng.random() < 0.2:
            context["attempt"] = rng.randint(1, 5)
        if rng.random() < 0.02:
            context["override"] = "break_glass"
        request: dict = {"action": action, "agent": agent}
        if context:
            request["context"] = context
        if rng.random() < 0.6:
            request["confidence"] = f"0.{rng.randint(30, 99)}"
        if rng.random() < 0.3:
            request["mode"] = rng.choice(("monitor", "enforce"))
        return request, self.facts()

    def facts(self) -> dict | None:
        rng = self.rng
        if rng.random() < 0.05:
            return None
        limit = rng.choice((500, 1000, 2000, 5000, 20000))
        a: dict = {
            "spend": {"today": f"{rng.uniform(0, limit * 1.2):.2f}", "month": f"{rng.uniform(0, limit * 20):.2f}"},
            "daily_limit": str(limit),
            "monthly_limit": str(limit * 20),
            "status": rng.choices(STATUSES, (90, 7, 3))[0],
            "control_tier": rng.choices(TIERS, (70, 15, 15))[0],
            "risk_level": rng.choices(RISK_LEVELS, (70, 20, 10))[0],
        }
        if rng.random() < 0.1:
            del a["spend"]  # no spend recorded yet: the budget checks see null
        if rng.random() < self.malformed:
            a["daily_limit"] = "unlimited"
        return {"agent": a}


def generate_requests(policy: GeneratedPolicy, n: int, seed: int = 0,
                      malformed_rate: float = 0.0) -> list[tuple[dict, dict | None]]:
    """`n` (request, facts) pairs for `policy`, deterministic in (policy, n-prefix, seed)."""
    w = _RequestWriter(policy, seed, malformed_rate)
    return [w.request() for _ in range(n)]


if __name__ == "__main__":  # print a small policy, e.g. `python benchmarks/gen_policies.py 20`
    import sys

    size = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    gp = generate_policy(size, seed=int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    for path, text in sorted(gp.sources.items()):
        print(f"# ==== {path}\n{text}")
    print(f"# counts: {gp.counts}")
