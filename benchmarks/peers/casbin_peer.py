"""pycasbin: the model as a Casbin ABAC model with one policy line per (rule, type, agent,
currency, jurisdiction) combination, decided with the `priority` effect.

The model (`MODEL`): the request is `(type, agent, cur, jur, amt)`; a policy line holds a type,
an agent, a currency and a jurisdiction (each `*` for "any"), an amount condition (`*`, or a
key into the bounds table that the registered `amountIn` function checks with exact decimals),
the Gavel outcome and Casbin's `eft`. Rules whose tests are sets are expanded into one line per
combination, as Casbin policies are flat. Conditions live in columns with one fixed matcher
rather than `eval(p.rule)`: pycasbin re-parses an `eval()` expression for every line on every
request, which would measure the parser, not the policy.

Effects: lines are ordered deny, then require_approval, then allow, and the effect is
`priority(p.eft) || deny`, so the first matching line decides (pycasbin stops there) and no
match denies. Deny lines have `eft = deny`; require_approval and allow lines have
`eft = allow`, and `enforce_ex`'s explanation (the deciding line) gives the outcome column.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from pathlib import Path

from .policy import EFFECTS, PeerPolicy, PeerRule

MODEL = """\
[request_definition]
r = type, agent, cur, jur, amt

[policy_definition]
p = type, agent, cur, jur, amt, outcome, eft

[policy_effect]
e = priority(p.eft) || deny

[matchers]
m = (p.type == "*" || r.type == p.type) && (p.agent == "*" || r.agent == p.agent) && \
(p.cur == "*" || r.cur == p.cur) && (p.jur == "*" || r.jur == p.jur) && (p.amt == "*" || amountIn(r.amt, p.amt))
"""


def _bounds_key(rule: PeerRule) -> str:
    return "*" if not rule.amount else "&".join(f"{b.op}{b.value}" for b in rule.amount)


def lines(model: PeerPolicy) -> list[list[str]]:
    """Policy lines, most restrictive effect first (the `priority` effect takes the first match)."""
    out: list[list[str]] = []
    for effect in EFFECTS:
        eft = "deny" if effect == "deny" else "allow"
        for rule, types in model.flat():
            if rule.effect != effect:
                continue
            for t, a, c, j in itertools.product(types or ("*",), rule.agents or ("*",), rule.currencies or ("*",),
                                                rule.jurisdictions or ("*",)):
                out.append([t, a, c, j, _bounds_key(rule), effect, eft])
    return out


def policy_csv(model: PeerPolicy) -> str:
    return "".join("p, " + ", ".join(line) + "\n" for line in lines(model))


def bounds_table(model: PeerPolicy) -> dict[str, tuple]:
    """`amt` column key → ((op, Decimal), ...), resolved once at load."""
    table = {}
    for rule in model.rules():
        if rule.amount:
            table[_bounds_key(rule)] = tuple((b.op, Decimal(b.value)) for b in rule.amount)
    return table


def amount_in(table: dict[str, tuple]):
    def check(amount, key) -> bool:
        if amount is None:
            return False
        for op, v in table[key]:
            if op == ">":
                if not amount > v:
                    return False
            elif op == ">=":
                if not amount >= v:
                    return False
            elif op == "<":
                if not amount < v:
                    return False
            elif not amount <= v:
                return False
        return True

    return check


class CasbinPeer:
    name = "casbin"

    def __init__(self, model: PeerPolicy, workdir: Path):
        import casbin

        self._casbin = casbin
        self.model_path = workdir / f"casbin-{model.n_rules}.conf"
        self.policy_path = workdir / f"casbin-{model.n_rules}.csv"
        self.model_path.write_text(MODEL, encoding="utf-8")
        csv = policy_csv(model)
        self.policy_path.write_text(csv, encoding="utf-8")
        self.units = csv.count("\n")  # policy lines
        self.table = bounds_table(model)

    def load(self) -> None:
        self.enforcer = self._casbin.Enforcer(str(self.model_path), str(self.policy_path))
        self.enforcer.add_function("amountIn", amount_in(self.table))

    def decide(self, request: dict) -> str:
        action = request["action"]
        amount = action.get("amount")
        ok, line = self.enforcer.enforce_ex(action["type"], request["agent"]["id"], action.get("currency", ""),
                                            action.get("jurisdiction", ""),
                                            None if amount is None else Decimal(amount))
        return line[5] if ok else "deny"

    @staticmethod
    def version() -> str:
        from importlib.metadata import version

        return f"casbin {version('casbin')}"
