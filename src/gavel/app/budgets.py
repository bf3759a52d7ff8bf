"""Agent budgets: spend today and this month, reserved at decide time.

An allowed decision reserves its amount (so concurrent decisions cannot overshoot a limit
together); a succeeded execution commits the executed amount instead; a failed execution or an
expired, unused token releases it. Periods are UTC days and months.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from gavel.app.model import AgentRecord, Reservation
from gavel.app.ports import UnitOfWork
from gavel.ledger.canonical import canonical_decimal


def periods(at: datetime) -> tuple[str, str]:
    return f"day:{at.date().isoformat()}", f"month:{at.strftime('%Y-%m')}"


def facts_for(uow: UnitOfWork, agent: AgentRecord | None, now: datetime) -> dict:
    """The server-side facts the rules read (LANGUAGE.md §Facts)."""
    if agent is None:
        return {"agent": {"registered": False}}
    day, month = periods(now)
    spend_today = uow.spend.total(agent.tenant_id, agent.environment, agent.agent_id, day)
    spend_month = uow.spend.total(agent.tenant_id, agent.environment, agent.agent_id, month)
    facts: dict = {
        "registered": True, "name": agent.name, "owner": agent.owner, "human_sponsor_id": agent.human_sponsor_id,
        "status": agent.status, "control_tier": agent.control_tier, "risk_level": agent.risk_level,
        "allowed_actions": list(agent.allowed_actions),
        "spend": {"today": canonical_decimal(spend_today), "month": canonical_decimal(spend_month)},
    }
    if agent.daily_limit is not None:
        facts["daily_limit"] = canonical_decimal(agent.daily_limit)
    if agent.monthly_limit is not None:
        facts["monthly_limit"] = canonical_decimal(agent.monthly_limit)
    return {"agent": {k: v for k, v in facts.items() if v != ""}}


def reserve(uow: UnitOfWork, agent: AgentRecord, decision_id: str, amount: Decimal, now: datetime) -> None:
    day, month = periods(now)
    uow.spend.add_reservation(Reservation(decision_id, agent.tenant_id, agent.environment, agent.agent_id,
                                          amount, day.removeprefix("day:"), month.removeprefix("month:")))
    uow.spend.add(agent.tenant_id, agent.environment, agent.agent_id, day, amount)
    uow.spend.add(agent.tenant_id, agent.environment, agent.agent_id, month, amount)


def settle(uow: UnitOfWork, decision_id: str, executed: Decimal | None) -> None:
    """Commit the executed amount (None: release the reservation)."""
    r = uow.spend.get_reservation(decision_id)
    if r is None or r.state != "reserved":
        return
    delta = (executed if executed is not None else Decimal(0)) - r.amount
    if delta:
        uow.spend.add(r.tenant_id, r.environment, r.agent_id, f"day:{r.day}", delta)
        uow.spend.add(r.tenant_id, r.environment, r.agent_id, f"month:{r.month}", delta)
    uow.spend.set_reservation(decision_id, "committed" if executed is not None else "released", executed)
