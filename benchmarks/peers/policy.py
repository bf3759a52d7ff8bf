"""A policy family that Gavel, Cedar, Rego, Casbin and Cerbos can all express faithfully.

    model = generate(1000, seed=0)                 # PeerPolicy: packages of PeerRules
    requests = generate_requests(model, 5000, 1)   # [request dict, ...] as Gavel's engine takes them
    model.decide(request)                          # the reference outcome (a naive evaluator)

Everything is driven by seeded `random.Random`s: the same arguments give the same model, the
same policy texts and the same requests.

A rule is a conjunction of positive tests on the request:

- `action.type == T` or `action.type in {T1, T2, ...}` (or no test: any type);
- `agent.id == A` or `agent.id in {A1, A2, ...}`;
- one or two amount bounds (`>`, `>=`, `<`, `<=` against a decimal threshold);
- `action.currency == C` or `in {...}`, `action.jurisdiction == J` or `in {...}`;

with an effect `allow`, `deny` or `require_approval`. Combining is Gavel's: deny beats
require_approval beats allow, and a request that no rule matches is denied (`policy.no_match`).
A missing field makes every test on it false, in every engine. There is no negation, no package
default, no risk, no fact, no `unless` and no priority: peers cannot express those the same way
(see `gen_policies.py` for the full-featured Gavel generator). Only outcomes are compared:
Gavel also picks a winning rule and reason by specificity, which the peers have no notion of.

Shape for N rules (sizes reuse `gen_policies`): `max(20, N/5)` action types split over
`clamp(N/50, 2, 200)` domain packages, each scoped to its types (`scope action.type in {...}`),
and `min(300, N/10)` per-agent rules, a third inside the domain packages and the rest in an
unscoped `agents` package.
"""

from __future__ import annotations

import random
import sys
from bisect import bisect
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import accumulate
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gen_policies import (  # noqa: E402
    AMOUNT_STEPS,
    CURRENCIES,
    FIAT,
    FIXED_NOW,
    JURISDICTIONS,
    action_type_names,
    n_action_types,
    n_agent_rules,
    n_packages,
)

__all__ = ["FIXED_NOW", "Bound", "PeerPackage", "PeerPolicy", "PeerRule", "generate", "generate_requests",
           "matches"]

EFFECTS = ("deny", "require_approval", "allow")  # most restrictive first
APPROVAL_ROLES = ("finance_manager", "security_lead", "ops_manager")
EXOTIC = tuple(c for c in CURRENCIES if c not in FIAT)


@dataclass(frozen=True)
class Bound:
    op: str  # ">", ">=", "<", "<="
    value: str  # a decimal literal, e.g. "500"

    def holds(self, amount: Decimal) -> bool:
        v = Decimal(self.value)
        if self.op == ">":
            return amount > v
        if self.op == ">=":
            return amount >= v
        if self.op == "<":
            return amount < v
        return amount <= v


@dataclass(frozen=True)
class PeerRule:
    package: str
    name: str
    effect: str
    types: tuple[str, ...] | None  # what the rule's own `action.type` test accepts (None: no test)
    agents: tuple[str, ...] | None = None
    amount: tuple[Bound, ...] = ()
    currencies: tuple[str, ...] | None = None
    jurisdictions: tuple[str, ...] | None = None
    role: str = "finance_manager"  # the approver role of a require_approval rule (Gavel's route)

    @property
    def rule_id(self) -> str:
        return f"{self.package}.{self.name}"


@dataclass
class PeerPackage:
    name: str
    scope: tuple[str, ...] | None  # `scope action.type in {...}`, or None (unscoped)
    rules: list[PeerRule] = field(default_factory=list)


@dataclass
class PeerPolicy:
    n_rules: int
    seed: int
    packages: list[PeerPackage]
    action_types: list[str]
    rule_agents: list[str]  # agent ids that rules mention
    agent_pool: int
    _by_type: dict | None = field(default=None, repr=False)

    def rules(self) -> list[PeerRule]:
        return [r for p in self.packages for r in p.rules]

    def effective_types(self, pkg: PeerPackage, rule: PeerRule) -> tuple[str, ...] | None:
        """The action types a rule can match: its own test, else its package's scope."""
        return rule.types if rule.types is not None else pkg.scope

    def flat(self) -> list[tuple[PeerRule, tuple[str, ...] | None]]:
        """(rule, effective types) for every rule: what the peers' translators start from."""
        return [(r, self.effective_types(p, r)) for p in self.packages for r in p.rules]

    def counts(self) -> dict[str, int]:
        rules = self.rules()
        out = {"rules": len(rules), "packages": len(self.packages), "action_types": len(self.action_types),
               "agent_rules": sum(1 for r in rules if r.agents is not None)}
        for e in EFFECTS:
            out[e] = sum(1 for r in rules if r.effect == e)
        return out

    def decide(self, request: dict) -> str:
        """The reference outcome: a naive evaluator of the model's semantics (it only skips the
        rules whose type test cannot hold, through a dict built on first use)."""
        if self._by_type is None:
            self._by_type = {}
            for rule, types in self.flat():
                for t in types or (None,):
                    self._by_type.setdefault(t, []).append((rule, types))
        t = request.get("action", {}).get("type")
        candidates = self._by_type.get(None, []) + (self._by_type.get(t, []) if t is not None else [])
        effects = set()
        for rule, types in candidates:
            if matches(rule, types, request):
                effects.add(rule.effect)
        for e in EFFECTS:
            if e in effects:
                return e
        return "deny"  # no match: policy.no_match


def matches(rule: PeerRule, types: tuple[str, ...] | None, request: dict) -> bool:
    action = request.get("action", {})
    if types is not None and action.get("type") not in types:
        return False
    if rule.agents is not None and request.get("agent", {}).get("id") not in rule.agents:
        return False
    if rule.amount:
        raw = action.get("amount")
        if raw is None:
            return False
        amount = Decimal(raw)
        if not all(b.holds(amount) for b in rule.amount):
            return False
    if rule.currencies is not None and action.get("currency") not in rule.currencies:
        return False
    return not (rule.jurisdictions is not None and action.get("jurisdiction") not in rule.jurisdictions)


# ---- the generator ---------------------------------------------------------------------------


class _Writer:
    def __init__(self, n_rules: int, seed: int):
        self.rng = random.Random(f"peer-policy:{n_rules}:{seed}")
        self.n_rules = n_rules
        self.seed = seed
        self.types = action_type_names(n_action_types(n_rules))
        self.agent_pool = max(200, 12 * n_agent_rules(n_rules))
        self.rule_agents: set[str] = set()

    def agent(self) -> str:
        a = f"agent-{self.rng.randrange(self.agent_pool // 3)}"
        self.rule_agents.add(a)
        return a

    def bound(self, ops=(">", ">=", "<=", "<")) -> Bound:
        return Bound(self.rng.choice(ops), self.rng.choice(AMOUNT_STEPS))

    def effect(self, weights=(20, 20, 60)) -> str:
        return self.rng.choices(EFFECTS, weights)[0]

    def rule(self, pkg: str, name: str, effect: str, **kw) -> PeerRule:
        role = self.rng.choice(APPROVAL_ROLES) if effect == "require_approval" else "finance_manager"
        return PeerRule(pkg, name, effect, role=role, **kw)

    def domain_rule(self, pkg: str, i: int, types: list[str]) -> PeerRule:
        rng = self.rng
        t = rng.choice(types)
        shape = rng.choices(
            ("type_amount", "range", "type_set_currency", "jurisdiction", "type_only", "currency_block",
             "type_amount_currency"),
            (30, 15, 12, 10, 8, 5, 20),
        )[0]
        name = f"{shape}_{i}"
        if shape == "type_amount":
            return self.rule(pkg, name, self.effect(), types=(t,), amount=(self.bound(),))
        if shape == "range":
            lo, hi = sorted(rng.sample(range(len(AMOUNT_STEPS)), 2))
            bounds = (Bound(rng.choice((">", ">=")), AMOUNT_STEPS[lo]),
                      Bound(rng.choice(("<", "<=")), AMOUNT_STEPS[hi]))
            cur = (rng.choice(FIAT),) if rng.random() < 0.3 else None
            return self.rule(pkg, name, self.effect(), types=(t,), amount=bounds, currencies=cur)
        if shape == "type_set_currency":
            some = tuple(sorted(rng.sample(types, min(len(types), rng.randint(2, 4)))))
            cur = FIAT if rng.random() < 0.5 else (rng.choice(CURRENCIES),)
            return self.rule(pkg, name, self.effect(), types=some, currencies=cur)
        if shape == "jurisdiction":
            own = (t,) if rng.random() < 0.6 else None
            jur = (rng.choice(JURISDICTIONS),) if rng.random() < 0.7 else tuple(sorted(rng.sample(JURISDICTIONS, 2)))
            cur = (rng.choice(FIAT),) if rng.random() < 0.4 else None
            return self.rule(pkg, name, self.effect(), types=own, jurisdictions=jur, currencies=cur)
        if shape == "type_only":
            return self.rule(pkg, name, self.effect((15, 15, 70)), types=(t,))
        if shape == "currency_block":
            cur = tuple(sorted(rng.sample(EXOTIC, rng.randint(1, 3))))
            return self.rule(pkg, name, self.effect((70, 30, 0)), types=None, currencies=cur)
        return self.rule(pkg, name, self.effect(), types=(t,), amount=(self.bound(),),
                         currencies=(rng.choice(CURRENCIES[:5]),))

    def agent_rule(self, pkg: str, i: int, types_hint: list[str] | None) -> PeerRule:
        rng = self.rng
        if rng.random() < 0.7:
            agents = (self.agent(),)
        else:
            agents = tuple(sorted({self.agent() for _ in range(rng.randint(2, 6))}))
        types = None
        amount: tuple[Bound, ...] = ()
        extra = rng.random()
        if types_hint and extra < 0.5:
            types = tuple(sorted(rng.sample(types_hint, min(3, len(types_hint)))))
        elif extra < 0.8:
            amount = (self.bound(("<=", ">")),)
        effect = rng.choices(EFFECTS, (40, 15, 45))[0]
        return self.rule(pkg, f"agent_rule_{i}", effect, types=types, agents=agents, amount=amount)

    def build(self) -> PeerPolicy:
        rng = self.rng
        n_pkg = n_packages(self.n_rules)
        n_agent = n_agent_rules(self.n_rules)
        n_domain = self.n_rules - n_agent
        agent_in_domain = n_agent // 3
        chunks = [self.types[i::n_pkg] for i in range(n_pkg)]  # interleaved: domains spread over packages
        per_pkg = [n_domain // n_pkg + (1 if i < n_domain % n_pkg else 0) for i in range(n_pkg)]
        agent_per_pkg = [agent_in_domain // n_pkg + (1 if i < agent_in_domain % n_pkg else 0) for i in range(n_pkg)]
        packages: list[PeerPackage] = []
        agent_idx = 0
        for p in range(n_pkg):
            types = list(chunks[p])
            name = f"{types[0].split('_')[0]}.p{p}"
            pkg = PeerPackage(name, tuple(types))
            pkg.rules += [self.domain_rule(name, r, types) for r in range(per_pkg[p])]
            for _ in range(agent_per_pkg[p]):
                pkg.rules.append(self.agent_rule(name, agent_idx, types))
                agent_idx += 1
            packages.append(pkg)
        agents = PeerPackage("agents", None)
        while agent_idx < n_agent:
            hint = rng.sample(self.types, 3) if rng.random() < 0.4 else None
            agents.rules.append(self.agent_rule("agents", agent_idx, hint))
            agent_idx += 1
        packages.append(agents)
        model = PeerPolicy(self.n_rules, self.seed, packages, self.types, sorted(self.rule_agents), self.agent_pool)
        assert len(model.rules()) == self.n_rules
        return model


def generate(n_rules: int, seed: int = 0) -> PeerPolicy:
    """A model of exactly `n_rules` rules (n_rules ≥ 10), deterministic in (n_rules, seed)."""
    return _Writer(n_rules, seed).build()


# ---- requests --------------------------------------------------------------------------------


def generate_requests(model: PeerPolicy, n: int, seed: int = 0) -> list[dict]:
    """`n` requests for `model`: Zipf-like type popularity, 8 % unknown types, about a quarter
    naming an agent that some rule mentions, log-normal amounts (6 % exactly on a threshold, 4 %
    missing), sometimes no currency or jurisdiction. Every value is well-formed: amounts are
    decimal strings with at most two decimals, as the wire carries them."""
    rng = random.Random(f"peer-requests:{model.n_rules}:{model.seed}:{seed}")
    order = list(model.action_types)
    rng.shuffle(order)  # which types are popular is random, not alphabetical
    cum = list(accumulate(1 / (rank + 1) ** 1.1 for rank in range(len(order))))
    out = []
    for _ in range(n):
        action: dict = {}
        if rng.random() < 0.08:
            action["type"] = f"unknown_action_{rng.randrange(50)}"
        else:
            action["type"] = order[min(bisect(cum, rng.random() * cum[-1]), len(order) - 1)]
        r = rng.random()
        if r < 0.04:
            pass  # no amount
        elif r < 0.10:
            action["amount"] = rng.choice(AMOUNT_STEPS)  # exactly on a threshold
        else:
            v = min(rng.lognormvariate(5.0, 1.8), 250_000)
            action["amount"] = str(int(v)) if rng.random() < 0.1 else f"{v:.2f}"
        if "amount" in action or rng.random() < 0.3:
            action["currency"] = rng.choices(CURRENCIES, (40, 25, 15, 5, 3, 3, 3, 2, 2, 2))[0]
        if rng.random() < 0.85:
            action["jurisdiction"] = rng.choice(JURISDICTIONS)
        if rng.random() < 0.25 and model.rule_agents:
            agent = rng.choice(model.rule_agents)
        else:
            agent = f"agent-{rng.randrange(model.agent_pool)}"
        out.append({"action": action, "agent": {"id": agent}})
    return out
