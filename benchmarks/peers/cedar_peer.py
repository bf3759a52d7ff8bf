"""Cedar (through `cedarpy`): the model as Cedar policies, decided with a pre-parsed PolicySet.

Mapping. Principal `Agent::"<agent.id>"`, action `Action::"<action.type>"`, one fixed resource
`Request::"r"`; amount, currency and jurisdiction go in the context (the amount as a Cedar
`decimal`, which keeps exact decimal comparisons). A rule's type test is the policy's action
scope (`action == Action::"t"` / `action in [...]`); an agent test is `principal == Agent::"a"`
or `principal in [...]`; other tests are `when` conditions guarded with `context has ...` (a
missing field makes the test false, as in Gavel).

Effects. `deny` → `forbid`; `allow` → `permit`; `require_approval` → `permit` annotated
`@id("require_approval:...")`. Cedar answers Deny when a forbid matches or no permit does
(deny beats everything, default deny); on Allow the outcome is require_approval when one of the
satisfied policies (the diagnostics' `reasons`) carries the approval annotation, else allow.
"""

from __future__ import annotations

import json

from .policy import PeerPolicy, PeerRule

RESOURCE = {"type": "Request", "id": "r"}
EMPTY_ENTITIES_JSON = "[]"


def _s(v: str) -> str:
    return json.dumps(v)


def _decimal(v: str) -> str:
    """Cedar decimals need a point and at most four decimals."""
    return v if "." in v else v + ".0"


_CMP = {">": "greaterThan", ">=": "greaterThanOrEqual", "<": "lessThan", "<=": "lessThanOrEqual"}


def _membership(expr: str, values: tuple[str, ...]) -> str:
    if len(values) == 1:
        return f"{expr} == {_s(values[0])}"
    return f"[{', '.join(_s(v) for v in values)}].contains({expr})"


def policy_text(rule: PeerRule, types: tuple[str, ...] | None) -> str:
    head = {"deny": "forbid", "allow": "permit", "require_approval": "permit"}[rule.effect]
    principal = "principal"
    conds: list[str] = []
    if rule.agents is not None:
        if len(rule.agents) == 1:
            principal = f"principal == Agent::{_s(rule.agents[0])}"
        else:
            conds.append(f"principal in [{', '.join(f'Agent::{_s(a)}' for a in rule.agents)}]")
    if types is None:
        action = "action"
    elif len(types) == 1:
        action = f"action == Action::{_s(types[0])}"
    else:
        action = f"action in [{', '.join(f'Action::{_s(t)}' for t in types)}]"
    if rule.amount:
        conds.append(" && ".join(["context has amount"] + [
            f"context.amount.{_CMP[b.op]}(decimal({_s(_decimal(b.value))}))" for b in rule.amount]))
    if rule.currencies is not None:
        conds.append(f"context has currency && {_membership('context.currency', rule.currencies)}")
    if rule.jurisdictions is not None:
        conds.append(f"context has jurisdiction && {_membership('context.jurisdiction', rule.jurisdictions)}")
    text = f'@id("{rule.effect}:{rule.rule_id}")\n{head} ({principal}, {action}, resource)'
    if conds:
        text += "\nwhen {\n  " + " &&\n  ".join(conds) + "\n}"
    return text + ";\n"


def policies(model: PeerPolicy) -> str:
    return "\n".join(policy_text(rule, types) for rule, types in model.flat())


def to_cedar(request: dict) -> dict:
    """The common request dict → a Cedar request (counted in Cedar's per-call time)."""
    action = request["action"]
    context = {}
    amount = action.get("amount")
    if amount is not None:
        context["amount"] = {"__extn": {"fn": "decimal", "arg": _decimal(amount)}}
    currency = action.get("currency")
    if currency is not None:
        context["currency"] = currency
    jurisdiction = action.get("jurisdiction")
    if jurisdiction is not None:
        context["jurisdiction"] = jurisdiction
    return {"principal": {"type": "Agent", "id": request["agent"]["id"]},
            "action": {"type": "Action", "id": action["type"]}, "resource": RESOURCE, "context": context}


class CedarPeer:
    name = "cedar"

    def __init__(self, model: PeerPolicy):
        import cedarpy

        self.text = policies(model)
        self.units = model.n_rules  # Cedar policies
        self._cedarpy = cedarpy

    def load(self) -> None:
        cedarpy = self._cedarpy
        self.policy_set = cedarpy.PolicySet.from_str(self.text)
        self.entities = cedarpy.Entities.from_json_str(EMPTY_ENTITIES_JSON)

    def decide(self, request: dict) -> str:
        result = self._cedarpy.is_authorized(to_cedar(request), self.policy_set, self.entities)
        diagnostics = result.diagnostics
        if diagnostics.errors:
            raise RuntimeError(f"cedar: {diagnostics.errors}")
        if not result.allowed:
            return "deny"
        for annotation in diagnostics.id_annotations_by_reason.values():
            if annotation.startswith("require_approval:"):
                return "require_approval"
        return "allow"

    @staticmethod
    def version() -> str:
        from importlib.metadata import version

        return f"cedarpy {version('cedarpy')}"
