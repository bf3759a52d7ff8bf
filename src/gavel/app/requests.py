"""Decide requests as the use cases see them, and their validation (API.md §Key messages)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from gavel.app.errors import FieldViolation, InvalidRequest, MissingField
from gavel.app.model import MODES
from gavel.ledger.canonical import JsonNumber, canonical_decimal

AMOUNT = re.compile(r"[0-9]{1,18}(\.[0-9]{1,8})?")  # ASCII digits only: `\d` also matches `١٢٣` and `９`
CURRENCY = re.compile(r"[A-Z]{3}")
INPUT_HASH = re.compile(r"sha256:[0-9a-f]{64}")
IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}")
ACTION_FIELDS = ("type", "subtype", "amount", "currency", "entity", "business_unit", "jurisdiction", "tool",
                 "resource")
ACTOR_FIELDS = ("requester_type", "requester_id", "human_sponsor_id", "user_id")
MAX_RATIONALE = 2000
MAX_TEXT = 256
MAX_DEPTH = 16
MAX_KEYS = 1000
MAX_KEY_LENGTH = 256
MAX_IDEMPOTENCY_KEY = 255
MAX_SAFE_NUMBER = 2**53 - 1  # I-JSON (RFC 7493): beyond it a JSON number is not exact everywhere


@dataclass(frozen=True)
class DecideInput:
    action: Mapping[str, str]  # the scalar action fields, as sent ("" when absent)
    args: Mapping[str, Any] | None
    agent_id: str
    session_id: str = ""
    actors: Mapping[str, str] = field(default_factory=dict)
    rationale: str = ""
    context: Mapping[str, Any] | None = None
    confidence: float | None = None
    input_hash: str = ""
    mode: str | None = None
    idempotency_key: str = ""
    correlation_id: str = ""


def _violation(problems: list[FieldViolation], name: str, description: str) -> None:
    problems.append(FieldViolation(name, description))


def _check_struct(value: Any, name: str, problems: list[FieldViolation]) -> None:
    """Depth and size limits for free-form JSON (`args`, `context`)."""
    stack = [(value, 1, name)]
    keys = 0
    while stack:
        node, depth, where = stack.pop()
        if depth > MAX_DEPTH:
            _violation(problems, where, f"nested deeper than {MAX_DEPTH} levels")
            return
        if isinstance(node, Mapping):
            keys += len(node)
            for k, v in node.items():
                if len(k) > MAX_KEY_LENGTH:
                    _violation(problems, where, f"a key is longer than {MAX_KEY_LENGTH} characters")
                    return
                stack.append((v, depth + 1, f"{where}.{k}"))
        elif isinstance(node, list | tuple):
            keys += len(node)
            stack.extend((v, depth + 1, f"{where}[{i}]") for i, v in enumerate(node))
        elif isinstance(node, float) and not math.isfinite(node):
            _violation(problems, where, "numbers must be finite")
        elif isinstance(node, int | float) and not isinstance(node, bool) and abs(node) > MAX_SAFE_NUMBER:
            _violation(problems, where, "numbers must be within ±(2**53 - 1) (I-JSON); send larger ones as strings")
        if keys > MAX_KEYS:
            _violation(problems, name, f"more than {MAX_KEYS} keys and items")
            return


def _check_text(value: str, name: str, problems: list[FieldViolation], limit: int = MAX_TEXT) -> None:
    """A text field: at most `limit` characters and no NUL, which PostgreSQL text cannot hold
    (refused on every store, so a request means the same everywhere)."""
    if len(value) > limit:
        _violation(problems, name, f"longer than {limit} characters")
    elif "\x00" in value:
        _violation(problems, name, "must not contain NUL (U+0000) characters")


def validate(inp: DecideInput) -> None:
    """Raise MissingField / InvalidRequest (with every field violation) for bad input."""
    missing = []
    if not inp.action.get("type"):
        missing.append(FieldViolation("action.type", "required"))
    if not inp.agent_id:
        missing.append(FieldViolation("agent.id", "required"))
    if missing:
        raise MissingField("missing required fields: " + ", ".join(v.field for v in missing), tuple(missing))
    problems: list[FieldViolation] = []
    for name in ACTION_FIELDS:
        _check_text(inp.action.get(name, ""), f"action.{name}", problems)
    amount = inp.action.get("amount", "")
    if amount and not AMOUNT.fullmatch(amount):
        _violation(problems, "action.amount",
                   "must be a decimal string ≥ 0 with at most 18 digits before and 8 after the point, e.g. \"120.00\"")
    currency = inp.action.get("currency", "")
    if currency and not CURRENCY.fullmatch(currency):
        _violation(problems, "action.currency", "must be an ISO 4217 code: 3 upper-case letters")
    if not IDENTIFIER.fullmatch(inp.agent_id):
        _violation(problems, "agent.id", "1–128 letters, digits and . _ : @ / -, starting with a letter or digit")
    _check_text(inp.session_id, "agent.session_id", problems)
    for name in ACTOR_FIELDS:
        _check_text(inp.actors.get(name, ""), f"actors.{name}", problems)
    _check_text(inp.rationale, "rationale", problems, MAX_RATIONALE)
    if inp.confidence is not None and not (math.isfinite(inp.confidence) and 0 <= inp.confidence <= 1):
        _violation(problems, "confidence", "must be between 0 and 1")
    if inp.input_hash and not INPUT_HASH.fullmatch(inp.input_hash):
        _violation(problems, "input_hash", "must be sha256: followed by 64 lower-case hex digits")
    if inp.mode is not None and inp.mode not in MODES:
        _violation(problems, "mode", f"unknown mode; use one of {', '.join(m.upper() for m in MODES)}")
    _check_text(inp.idempotency_key, "idempotency_key", problems, MAX_IDEMPOTENCY_KEY)
    _check_text(inp.correlation_id, "correlation_id", problems)
    if inp.args is not None:
        _check_struct(inp.args, "action.args", problems)
    if inp.context is not None:
        _check_struct(inp.context, "context", problems)
    if problems:
        raise InvalidRequest("invalid request: " + "; ".join(f"{v.field} {v.description}" for v in problems),
                             tuple(problems))


def modified_action(change: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a MODIFY changes, checked like a Decide's action (same limits and messages,
    named `modified_action.*`), with Struct numbers as JCS numbers; InvalidRequest listing every
    problem otherwise. For both edges: the REST callback and gRPC's ResolveApproval."""
    problems: list[FieldViolation] = []
    out: dict[str, Any] = {}
    for name, value in change.items():
        where = f"modified_action.{name}"
        if value is None:
            continue
        if name == "args":
            if not isinstance(value, Mapping):
                _violation(problems, where, "must be an object")
                continue
            _check_struct(value, where, problems)
            out[name] = json_number(value)
        elif name in ACTION_FIELDS:
            if not isinstance(value, str):
                _violation(problems, where, "must be a string")
                continue
            _check_text(value, where, problems)
            if name == "amount" and value and not AMOUNT.fullmatch(value):
                _violation(problems, where, "must be a decimal string ≥ 0 with at most 18 digits before and 8 "
                                            "after the point, e.g. \"120.00\"")
            if name == "currency" and value and not CURRENCY.fullmatch(value):
                _violation(problems, where, "must be an ISO 4217 code: 3 upper-case letters")
            out[name] = value
        else:
            _violation(problems, where, f"unknown field; an action has {', '.join((*ACTION_FIELDS, 'args'))}")
    if problems:
        raise InvalidRequest("invalid modified_action: " + "; ".join(f"{v.field} {v.description}" for v in problems),
                             tuple(problems))
    return out


def json_number(v: Any) -> Any:
    """Struct numbers (doubles) as JCS numbers: whole ones as ints, the rest as JsonNumber."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, float):
        return int(v) if v.is_integer() and abs(v) <= 2**53 - 1 else JsonNumber(v)
    if isinstance(v, Mapping):
        return {k: json_number(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [json_number(x) for x in v]
    return v


def bound_action(inp: DecideInput) -> dict[str, Any]:
    """The action as a decision token binds it: snake_case, empty fields omitted (API.md)."""
    out: dict[str, Any] = {}
    for name in ACTION_FIELDS:
        value = inp.action.get(name, "")
        if value:
            out[name] = canonical_decimal(Decimal(value)) if name == "amount" else value
    if inp.args:
        out["args"] = json_number(inp.args)
    return out


def engine_request(inp: DecideInput, mode: str) -> dict[str, Any]:
    """The request the rules see; absent fields are simply missing (null to the rules)."""
    action: dict[str, Any] = {k: v for k in ACTION_FIELDS if (v := inp.action.get(k, ""))}
    if inp.args is not None:
        action["args"] = json_number(inp.args)
    request: dict[str, Any] = {"action": action, "agent": {"id": inp.agent_id}, "mode": mode}
    if inp.session_id:
        request["agent"]["session_id"] = inp.session_id
    actors = {k: v for k in ACTOR_FIELDS if (v := inp.actors.get(k, ""))}
    if actors:
        request["actors"] = actors
    if inp.rationale:
        request["rationale"] = inp.rationale
    if inp.context is not None:
        request["context"] = json_number(inp.context)
    if inp.confidence is not None:
        request["confidence"] = JsonNumber(inp.confidence)
    return request


def fingerprint_fields(inp: DecideInput) -> dict[str, Any]:
    """Everything that identifies a request for idempotency (not the key itself)."""
    return {
        "action": dict(inp.action), "args": json_number(inp.args), "agent_id": inp.agent_id,
        "session_id": inp.session_id, "actors": dict(inp.actors), "rationale": inp.rationale,
        "context": json_number(inp.context),
        "confidence": None if inp.confidence is None else JsonNumber(inp.confidence),
        "input_hash": inp.input_hash, "mode": inp.mode, "correlation_id": inp.correlation_id,
    }
