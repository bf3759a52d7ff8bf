"""The agent registry: register, read, list, update (status: active, paused, locked)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from gavel.app import ledger
from gavel.app.errors import FieldViolation, InvalidRequest, MissingField, NotFound
from gavel.app.idempotency import once
from gavel.app.model import AGENT_STATUSES, MODES, AgentRecord
from gavel.app.ports import Conflict, UnitOfWork
from gavel.app.principal import Principal
from gavel.app.requests import AMOUNT, IDENTIFIER

UPDATABLE = ("name", "owner", "control_tier", "risk_level", "allowed_actions", "daily_limit", "monthly_limit",
             "human_sponsor_id", "default_mode", "status")
MAX_PAGE = 1000
DEFAULT_PAGE = 50


@dataclass(frozen=True)
class AgentFields:
    """Agent attributes as sent: strings for limits ("" = none), None for 'not given'."""

    name: str | None = None
    owner: str | None = None
    control_tier: str | None = None
    risk_level: str | None = None
    allowed_actions: tuple[str, ...] | None = None
    daily_limit: str | None = None
    monthly_limit: str | None = None
    human_sponsor_id: str | None = None
    default_mode: str | None = None  # "" = the service default
    status: str | None = None


def _limit(value: str, name: str, problems: list[FieldViolation]) -> Decimal | None:
    if not value:
        return None
    if not AMOUNT.fullmatch(value):
        problems.append(FieldViolation(name, "must be a decimal string ≥ 0, e.g. \"2000.00\""))
        return None
    return Decimal(value)


def _apply(agent: AgentRecord, fields: AgentFields, only: tuple[str, ...]) -> AgentRecord:
    problems: list[FieldViolation] = []
    changes: dict = {}
    for name in only:
        value = getattr(fields, name)
        if value is None:
            continue
        if name in ("daily_limit", "monthly_limit"):
            changes[name] = _limit(value, name, problems)
        elif name == "default_mode":
            if value and value not in MODES:
                problems.append(FieldViolation(name, "unknown mode"))
            changes[name] = value or None
        elif name == "status":
            if value not in AGENT_STATUSES:
                problems.append(FieldViolation(name, "must be ACTIVE, PAUSED or LOCKED"))
            changes[name] = value
        elif name == "allowed_actions":
            if len(value) > 1000 or any(not a or len(a) > 128 for a in value):
                problems.append(FieldViolation(name, "at most 1000 action types of 1–128 characters"))
            changes[name] = tuple(sorted(set(value)))
        else:
            if len(value) > 256:
                problems.append(FieldViolation(name, "longer than 256 characters"))
            changes[name] = value
    if problems:
        raise InvalidRequest("invalid agent: " + "; ".join(f"{v.field} {v.description}" for v in problems),
                             tuple(problems))
    return replace(agent, **changes)


def agent_dict(a: AgentRecord, spend_today: Decimal | None = None, spend_month: Decimal | None = None) -> dict:
    from gavel.ledger.canonical import canonical_decimal as dec

    return {
        "agent_id": a.agent_id, "name": a.name, "owner": a.owner, "control_tier": a.control_tier,
        "risk_level": a.risk_level, "allowed_actions": list(a.allowed_actions),
        "daily_limit": dec(a.daily_limit) if a.daily_limit is not None else "",
        "monthly_limit": dec(a.monthly_limit) if a.monthly_limit is not None else "",
        "human_sponsor_id": a.human_sponsor_id, "default_mode": a.default_mode or "", "status": a.status,
        "created_at": a.created_at.isoformat() if a.created_at else "",
        "updated_at": a.updated_at.isoformat() if a.updated_at else "",
        "spend_today": dec(spend_today) if spend_today is not None else "",
        "spend_month": dec(spend_month) if spend_month is not None else "",
    }


def _governance(doc: dict) -> dict:
    """What the ledger keeps of an agent: everything but the live spend figures."""
    return {k: v for k, v in doc.items() if k not in ("spend_today", "spend_month")}


def _with_spend(uow: UnitOfWork, a: AgentRecord, now: datetime) -> dict:
    from gavel.app.budgets import periods

    day, month = periods(now)
    return agent_dict(a, uow.spend.total(a.tenant_id, a.environment, a.agent_id, day),
                      uow.spend.total(a.tenant_id, a.environment, a.agent_id, month))


def register(uow: UnitOfWork, p: Principal, agent_id: str, fields: AgentFields, idempotency_key: str,
             now: datetime, random_bytes: Callable[[int], bytes]) -> dict:
    if not agent_id:
        raise MissingField("agent_id: required", (FieldViolation("agent_id", "required"),))
    if not IDENTIFIER.fullmatch(agent_id):
        raise InvalidRequest("agent_id: invalid",
                             (FieldViolation("agent_id", "1–128 letters, digits and . _ : @ / -"),))

    def run() -> dict:
        base = AgentRecord(p.tenant_id, p.environment, agent_id, created_at=now, updated_at=now)
        agent = _apply(base, fields, UPDATABLE)
        try:
            uow.agents.add(agent)
        except Conflict:
            raise InvalidRequest(f"agent `{agent_id}` is already registered; use UpdateAgent",
                                 (FieldViolation("agent_id", "already registered"),)) from None
        doc = _with_spend(uow, agent, now)
        ledger.record(uow, p.tenant_id, p.environment, type="agent.registered", subject=agent_id, at=now,
                      random_bytes=random_bytes, data={"agent": _governance(doc), "by": p.principal})
        return doc

    fields_doc = {"agent_id": agent_id, **{k: getattr(fields, k) for k in UPDATABLE}}
    return once(uow, tenant_id=p.tenant_id, environment=p.environment, operation="AgentService.RegisterAgent",
                key=idempotency_key, fields=fields_doc, now=now, run=run, replay=lambda r: r)


def get(uow: UnitOfWork, p: Principal, agent_id: str, now: datetime) -> dict:
    agent = uow.agents.get(p.tenant_id, p.environment, agent_id)
    if agent is None:
        raise NotFound(f"no agent `{agent_id}`")
    return _with_spend(uow, agent, now)


def list_agents(uow: UnitOfWork, p: Principal, status: str | None, page_size: int, page_token: str,
                now: datetime) -> dict:
    if page_size < 0:
        raise InvalidRequest("page_size must not be negative", (FieldViolation("page_size", "negative"),))
    limit = min(page_size or DEFAULT_PAGE, MAX_PAGE)
    rows = list(uow.agents.list(p.tenant_id, p.environment, status, limit + 1, page_token or None))
    more = len(rows) > limit
    rows = rows[:limit]
    return {"agents": [_with_spend(uow, a, now) for a in rows],
            "next_page_token": rows[-1].agent_id if more and rows else ""}


def update(uow: UnitOfWork, p: Principal, agent_id: str, fields: AgentFields, mask: tuple[str, ...],
           idempotency_key: str, now: datetime, random_bytes: Callable[[int], bytes]) -> dict:
    unknown = [m for m in mask if m not in UPDATABLE]
    if unknown:
        raise InvalidRequest(f"update_mask names unknown fields: {', '.join(unknown)}",
                             tuple(FieldViolation("update_mask", f"unknown field `{m}`") for m in unknown))

    def run() -> dict:
        agent = uow.agents.get(p.tenant_id, p.environment, agent_id)
        if agent is None:
            raise NotFound(f"no agent `{agent_id}`")
        chosen = mask or tuple(n for n in UPDATABLE if getattr(fields, n) not in (None, "", ()))
        if mask:  # a masked field that was not sent means "clear it"
            cleared = {n: ("" if n not in ("allowed_actions",) else ()) for n in mask if getattr(fields, n) is None}
            fields_full = replace(fields, **cleared) if cleared else fields
        else:
            fields_full = fields
        if "status" in chosen and not (fields_full.status or ""):
            raise InvalidRequest("status cannot be cleared", (FieldViolation("status", "required when masked"),))
        updated = replace(_apply(agent, fields_full, chosen), updated_at=now)
        uow.agents.update(updated)
        doc = _with_spend(uow, updated, now)
        kind = "agent.status_changed" if updated.status != agent.status else "agent.updated"
        ledger.record(uow, p.tenant_id, p.environment, type=kind, subject=agent_id, at=now, random_bytes=random_bytes,
                      data={"agent": _governance(doc), "previous_status": agent.status, "by": p.principal})
        return doc

    fields_doc = {"agent_id": agent_id, "mask": list(mask), **{k: getattr(fields, k) for k in UPDATABLE}}
    return once(uow, tenant_id=p.tenant_id, environment=p.environment, operation="AgentService.UpdateAgent",
                key=idempotency_key, fields=fields_doc, now=now, run=run, replay=lambda r: r)
