"""Static types of the language and the schema of what rules can read.

The request schema mirrors `DecideRequest` (API.md); the fact schema is what the server
knows about an agent. `action.args` and `context` are free-form: their members are `dynamic`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Type:
    kind: str  # number string bool null duration time list set object dynamic
    elem: Type | None = None

    def __str__(self) -> str:
        if self.kind in ("list", "set") and self.elem is not None and self.elem.kind != "dynamic":
            return f"{self.kind}<{self.elem}>"
        return self.kind


NUMBER = Type("number")
STRING = Type("string")
BOOL = Type("bool")
NULL = Type("null")
DURATION = Type("duration")
TIME = Type("time")
DYNAMIC = Type("dynamic")
OBJECT = Type("object")


def list_of(t: Type) -> Type:
    return Type("list", t)


def set_of(t: Type) -> Type:
    return Type("set", t)


ORDERED = frozenset(("number", "string", "duration", "time"))
COLLECTIONS = frozenset(("list", "set"))


def compatible(a: Type, b: Type) -> bool:
    """Whether values of the two types may be compared for equality."""
    if "dynamic" in (a.kind, b.kind) or "null" in (a.kind, b.kind):
        return True
    if a.kind in COLLECTIONS and b.kind in COLLECTIONS:
        return compatible(a.elem or DYNAMIC, b.elem or DYNAMIC)
    return a.kind == b.kind


def unify(types: list[Type]) -> Type | None:
    """The common type of collection elements, ignoring nulls; None if they disagree."""
    kinds = [t for t in types if t.kind != "null"]
    if not kinds:
        return DYNAMIC
    first = kinds[0]
    for t in kinds[1:]:
        if t.kind == "dynamic":
            first = t
        elif not compatible(first, t):
            return None
    return first


# A schema node is either a Type (a leaf) or a dict of member name → schema node.
Schema = dict

REQUEST_SCHEMA: Schema = {
    "action": {
        "type": STRING, "subtype": STRING, "amount": NUMBER, "currency": STRING,
        "entity": STRING, "business_unit": STRING, "jurisdiction": STRING,
        "tool": STRING, "resource": STRING, "args": DYNAMIC,
    },
    "agent": {"id": STRING, "session_id": STRING},
    "actors": {
        "requester_type": STRING, "requester_id": STRING,
        "human_sponsor_id": STRING, "user_id": STRING,
    },
    "rationale": STRING,
    "context": DYNAMIC,
    "confidence": NUMBER,
    "mode": STRING,
}

FACT_SCHEMA: Schema = {
    "agent": {
        "registered": BOOL,
        "name": STRING,
        "owner": STRING,
        "human_sponsor_id": STRING,
        "status": STRING,
        "control_tier": STRING,
        "risk_level": STRING,
        "allowed_actions": set_of(STRING),
        "daily_limit": NUMBER,
        "monthly_limit": NUMBER,
        "spend": {"today": NUMBER, "month": NUMBER},
    },
}

RISK_SCHEMA: Schema = {"score": NUMBER, "tier": STRING}

# Request roots whose paths count towards a rule's specificity (LANGUAGE.md §Combining 4).
SPECIFIC_ROOTS = frozenset(("action", "actors", "context", "confidence", "mode"))
SPECIFIC_AGENT_FIELDS = frozenset(("id", "session_id"))

# Known values of enumerated strings, for did-you-mean on literals.
KNOWN_VALUES: dict[tuple[str, ...], tuple[str, ...]] = {
    ("agent", "status"): ("active", "paused", "locked"),
    ("risk", "tier"): ("low", "medium", "high", "critical"),
    ("mode",): ("monitor", "warn", "enforce", "strict"),
}
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

# The bundle's data files (`data/vendors.json` is `data.vendors`): constants, typed `dynamic`
# below a file name, never counted towards specificity.
DATA_ROOT = "data"

ROOTS = ("action", "agent", "actors", "rationale", "context", "confidence", "mode", "risk", "now", DATA_ROOT)


def counts_for_specificity(keys: tuple[str, ...]) -> bool:
    if keys[0] in SPECIFIC_ROOTS:
        return True
    return keys[0] == "agent" and len(keys) > 1 and keys[1] in SPECIFIC_AGENT_FIELDS
