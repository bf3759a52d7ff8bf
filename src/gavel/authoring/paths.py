"""What a dotted path means where it is written: its type, where its value comes from, and
its members. The checker's rules for names (variables, then lets, then roots), told to a
person instead of enforced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gavel.lang.data import BundleData
from gavel.lang.types import (
    DATA_ROOT,
    DYNAMIC,
    FACT_SCHEMA,
    OBJECT,
    REQUEST_SCHEMA,
    RISK_SCHEMA,
    ROOTS,
    TIME,
    Type,
)
from gavel.lang.values import type_name

ROOT_DOCS = {
    "action": "the action the agent wants to take (request)",
    "agent": "the agent: `id` and `session_id` from the request, everything else from the server's facts",
    "actors": "who asked for the action (request)",
    "rationale": "the agent's reason for the action (request)",
    "context": "free-form context the caller sends; its members are `dynamic`",
    "confidence": "the agent's confidence in the action (request)",
    "mode": "the enforcement mode: monitor, warn, enforce or strict",
    "risk": "the risk score (0–100) and tier, computed by the risk rules before any rule runs",
    "now": "the decision time (the test's `now` in tests, `--now` in gavel eval)",
    DATA_ROOT: "the bundle's data files: data/vendors.json is `data.vendors`",
}


@dataclass(frozen=True)
class PathInfo:
    path: str
    type: Type
    origin: str  # request, fact, let, variable, risk, time, data
    members: dict[str, Type] = field(default_factory=dict)
    detail: str = ""


def lookup(chain: tuple[str, ...], *, package: str | None, let_types: Mapping[tuple[str, str], Type],
           variables: Mapping[str, Type], data: BundleData | None) -> PathInfo | None:
    """The meaning of `chain` in `package` with these variables bound; None when it means nothing."""
    if not chain:
        return None
    head, rest = chain[0], chain[1:]
    dotted = ".".join(chain)
    if head in variables:
        t = _below(variables[head], rest)
        return PathInfo(dotted, t, "variable") if t is not None else None
    if package is not None and (package, head) in let_types:
        t = _below(let_types[(package, head)], rest)
        return PathInfo(dotted, t, "let") if t is not None else None
    if head == "now":
        return PathInfo(dotted, TIME, "time", detail=ROOT_DOCS["now"]) if not rest else None
    if head == "risk":
        return _walk(dotted, RISK_SCHEMA, rest, "risk", ROOT_DOCS["risk"] if not rest else "")
    if head == DATA_ROOT:
        return _data(dotted, rest, data)
    if head not in REQUEST_SCHEMA:
        return None
    request, fact = REQUEST_SCHEMA[head], FACT_SCHEMA.get(head)
    detail = ROOT_DOCS.get(head, "") if not rest else ""
    if not rest:
        merged = {**(fact if isinstance(fact, dict) else {}), **(request if isinstance(request, dict) else {})}
        if isinstance(request, Type):
            return PathInfo(dotted, request, "request", detail=detail)
        return PathInfo(dotted, OBJECT, "request", _types(merged), detail)
    if isinstance(request, dict) and rest[0] not in request and isinstance(fact, dict) and rest[0] in fact:
        return _walk(dotted, fact, rest, "fact", detail)
    return _walk(dotted, request, rest, "request", detail)


def _below(t: Type, rest: tuple[str, ...]) -> Type | None:
    for _ in rest:
        if t.kind not in ("dynamic", "object", "null"):
            return None
        t = DYNAMIC
    return t


def _walk(dotted: str, node: Any, rest: tuple[str, ...], origin: str, detail: str) -> PathInfo | None:
    for name in rest:
        if isinstance(node, Type):
            if node.kind != "dynamic":
                return None
            return PathInfo(dotted, DYNAMIC, origin, detail=detail)
        if name not in node:
            return None
        node = node[name]
    if isinstance(node, Type):
        return PathInfo(dotted, node, origin, detail=detail)
    return PathInfo(dotted, OBJECT, origin, _types(node), detail)


def _types(node: dict) -> dict[str, Type]:
    return {k: v if isinstance(v, Type) else OBJECT for k, v in sorted(node.items())}


def _data(dotted: str, rest: tuple[str, ...], data: BundleData | None) -> PathInfo:
    """`data.*`: the files' names, then the keys of the JSON values themselves."""
    if data is None:
        return PathInfo(dotted, DYNAMIC if rest else OBJECT, "data", detail=ROOT_DOCS[DATA_ROOT])
    schema: Any = data.schema
    values: Any = data.values
    file_depth = None
    for i, name in enumerate(rest):
        if isinstance(schema, dict) and name in schema:
            schema, values = schema[name], values.get(name) if isinstance(values, Mapping) else None
            if isinstance(schema, Type):
                file_depth = i
            continue
        if isinstance(schema, Type) and isinstance(values, Mapping) and name in values:
            values = values[name]
            continue
        return PathInfo(dotted, DYNAMIC, "data")
    if isinstance(schema, dict) and file_depth is None:
        return PathInfo(dotted, OBJECT, "data", _types(schema), ROOT_DOCS[DATA_ROOT] if not rest else "")
    members = {k: Type(type_name(v)) for k, v in sorted(values.items())} if isinstance(values, Mapping) else {}
    file_name = "data/" + "/".join(rest[: (file_depth or 0) + 1]) + ".json"
    return PathInfo(dotted, DYNAMIC, "data", members, f"from {file_name}; value: {type_name(values)}")


def root_members() -> dict[str, str]:
    return {r: ROOT_DOCS.get(r, "") for r in ROOTS}
