"""Rego (through `regopy`, Microsoft's rego-cpp): the model as one Rego module.

Each rule becomes a partial-set rule named after its effect (`deny`, `approval`, `allow`) whose
body holds the rule's tests, one per line (`input.action.type == "t"`, `input.agent.id in
{...}`, `input.action.amount > 500`, ...). A missing field leaves its test undefined, so the rule
does not match, as in Gavel. `decision` computes the outcome with Gavel's combining:

    default decision := "deny"
    decision := "deny" if { count(deny) > 0 }
    else := "require_approval" if { count(approval) > 0 }
    else := "allow" if { count(allow) > 0 }

The interpreter compiles the module once into a bundle with the `decision` entrypoint; each
request then sets the input and queries that entrypoint. The amount travels as a JSON number
(Rego has no decimal type): the request's decimal string is converted with `float()` inside
the timed call. Thresholds are whole numbers and amounts have at most two decimals, so the
binary double compares exactly like Gavel's decimals here (the agreement check would show it).
"""

from __future__ import annotations

import json

from .policy import PeerPolicy, PeerRule

PACKAGE = "gavel.peers"
ENTRYPOINT = "gavel/peers/decision"
HEADS = {"deny": "deny", "require_approval": "approval", "allow": "allow"}


def _test(path: str, values: tuple[str, ...]) -> str:
    if len(values) == 1:
        return f"{path} == {json.dumps(values[0])}"
    return f"{path} in {{{', '.join(json.dumps(v) for v in values)}}}"


def rule_text(rule: PeerRule, types: tuple[str, ...] | None) -> str:
    body = []
    if types is not None:
        body.append(_test("input.action.type", types))
    if rule.agents is not None:
        body.append(_test("input.agent.id", rule.agents))
    body += [f"input.action.amount {b.op} {b.value}" for b in rule.amount]
    if rule.currencies is not None:
        body.append(_test("input.action.currency", rule.currencies))
    if rule.jurisdictions is not None:
        body.append(_test("input.action.jurisdiction", rule.jurisdictions))
    lines = "\n".join(f"\t{b}" for b in body)
    return f"# {rule.rule_id}\n{HEADS[rule.effect]} contains {json.dumps(rule.rule_id)} if {{\n{lines}\n}}\n"


DECISION = """\
default decision := "deny"

decision := "deny" if {
\tcount(deny) > 0
} else := "require_approval" if {
\tcount(approval) > 0
} else := "allow" if {
\tcount(allow) > 0
}
"""


def module(model: PeerPolicy) -> str:
    rules = "\n".join(rule_text(rule, types) for rule, types in model.flat())
    return f"package {PACKAGE}\n\nimport rego.v1\n\n{DECISION}\n{rules}"


def to_rego(request: dict) -> dict:
    """The common request dict → Rego input (counted in Rego's per-call time)."""
    action = request["action"]
    amount = action.get("amount")
    if amount is None:
        return request
    return {"action": {**action, "amount": float(amount)}, "agent": request["agent"]}


class RegoPeer:
    name = "rego"

    def __init__(self, model: PeerPolicy):
        import regopy

        self.text = module(model)
        self.units = model.n_rules  # Rego rules (plus `decision`)
        self._regopy = regopy

    def load(self) -> None:
        self.interp = self._regopy.Interpreter()
        self.interp.add_module("peers.rego", self.text)
        self.bundle = self.interp.build(None, [ENTRYPOINT])
        if not self.bundle.ok():
            raise RuntimeError("rego: the bundle did not build")

    def decide(self, request: dict) -> str:
        interp = self.interp
        interp.set_input(to_rego(request))
        out = interp.query_bundle_entrypoint(self.bundle, ENTRYPOINT)
        if not out.ok():
            raise RuntimeError(f"rego: {out}")
        return out.expressions()[0].value

    @staticmethod
    def version() -> str:
        from importlib.metadata import version

        return f"regopy {version('regopy')}"
