"""ReportExecution: what actually happened, reconciled against what was authorised.

Once per decision (a second report is ALREADY_REPORTED). The token must belong to the decision;
it may already have been burned by ConsumeToken at the tool boundary (the normal flow).
Reconciliation: FAILED when the execution failed; MATCHED when amount and currency equal what
the decision authorised; otherwise MISMATCHED with `variance = executed − authorised`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from gavel.app import budgets, ledger, tokens
from gavel.app.errors import (
    AlreadyReported,
    FieldViolation,
    InvalidRequest,
    InvalidTransition,
    MissingField,
    NotFound,
    TokenInvalid,
)
from gavel.app.idempotency import once
from gavel.app.model import ExecutionRecord
from gavel.app.ports import Conflict, UnitOfWork
from gavel.app.principal import Principal
from gavel.app.requests import AMOUNT, CURRENCY
from gavel.ledger.canonical import canonical_decimal


@dataclass(frozen=True)
class ExecutionInput:
    decision_id: str
    decision_token: str
    status: str  # "succeeded" | "failed"
    executed_at: datetime | None
    amount: str
    currency: str
    external_transaction_id: str = ""
    error_code: str = ""
    error_message: str = ""
    idempotency_key: str = ""


def validate(inp: ExecutionInput) -> None:
    missing = [FieldViolation(f, "required") for f, v in (("decision_id", inp.decision_id),
                                                            ("decision_token", inp.decision_token),
                                                            ("status", inp.status)) if not v]
    if missing:
        raise MissingField("missing required fields: " + ", ".join(v.field for v in missing), tuple(missing))
    problems = []
    if inp.status not in ("succeeded", "failed"):
        problems.append(FieldViolation("status", "must be SUCCEEDED or FAILED"))
    if inp.amount and not AMOUNT.fullmatch(inp.amount):
        problems.append(FieldViolation("amount", "must be a decimal string ≥ 0, e.g. \"120.00\""))
    if inp.currency and not CURRENCY.fullmatch(inp.currency):
        problems.append(FieldViolation("currency", "must be 3 upper-case letters"))
    for name in ("external_transaction_id", "error_code"):
        if len(getattr(inp, name)) > 256:
            problems.append(FieldViolation(name, "longer than 256 characters"))
    if len(inp.error_message) > 2000:
        problems.append(FieldViolation("error_message", "longer than 2000 characters"))
    if problems:
        raise InvalidRequest("invalid execution report: " + "; ".join(f"{v.field} {v.description}" for v in problems),
                             tuple(problems))


def reconcile(status: str, authorised: Decimal | None, authorised_currency: str | None, executed: Decimal | None,
              currency: str | None) -> tuple[str, Decimal | None]:
    if status == "failed":
        return "failed", None
    if executed is None or authorised is None:
        return ("matched", None) if executed == authorised else ("mismatched", None)
    variance = executed - authorised
    same_currency = not currency or not authorised_currency or currency == authorised_currency
    return ("matched" if variance == 0 and same_currency else "mismatched"), variance


def _report_dict(e: ExecutionRecord) -> dict:
    dec = lambda v: canonical_decimal(v) if v is not None else ""  # noqa: E731
    return {
        "decision_id": e.decision_id, "status": e.status, "executed_at": e.executed_at.isoformat(),
        "amount": dec(e.amount), "currency": e.currency or "", "external_transaction_id": e.external_transaction_id,
        "error_code": e.error_code, "error_message": e.error_message,
        "reconciliation": {"status": e.reconciliation_status, "authorized_amount": dec(e.authorized_amount),
                           "executed_amount": dec(e.executed_amount), "variance": dec(e.variance)},
    }


def report(uow: UnitOfWork, p: Principal, inp: ExecutionInput, claims: dict, now: datetime,
           random_bytes: Callable[[int], bytes]) -> dict:
    def run() -> dict:
        decision = uow.decisions.get(p.tenant_id, p.environment, inp.decision_id)
        if decision is None:
            raise NotFound(f"no decision `{inp.decision_id}`")
        if claims.get("decision_id") != decision.decision_id or claims.get("jti") != decision.token_jti:
            raise TokenInvalid("decision token refused: it belongs to another decision")
        if decision.state not in ("approved",):
            if uow.executions.get(p.tenant_id, p.environment, decision.decision_id) is not None:
                raise AlreadyReported(f"decision `{decision.decision_id}` already has an execution report")
            raise InvalidTransition(f"decision `{decision.decision_id}` is {decision.state}; nothing was authorised")
        executed = Decimal(inp.amount) if inp.amount else None
        status, variance = reconcile(inp.status, decision.amount, decision.currency, executed, inp.currency or None)
        record = ExecutionRecord(
            decision_id=decision.decision_id, tenant_id=p.tenant_id, environment=p.environment, status=inp.status,
            executed_at=inp.executed_at or now, amount=executed, currency=inp.currency or None,
            external_transaction_id=inp.external_transaction_id, error_code=inp.error_code,
            error_message=inp.error_message, reconciliation_status=status, authorized_amount=decision.amount,
            executed_amount=executed if inp.status == "succeeded" else None, variance=variance, created_at=now)
        try:
            uow.executions.add(record)
        except Conflict:
            raise AlreadyReported(f"decision `{decision.decision_id}` already has an execution report") from None
        new_state = "executed" if inp.status == "succeeded" else "execution_failed"
        uow.decisions.set_state(p.tenant_id, p.environment, decision.decision_id, new_state,
                                {**decision.result, "state": new_state})
        budgets.settle(uow, decision.decision_id, executed if inp.status == "succeeded" else None)
        report_doc = _report_dict(record)
        ledger.record(uow, p.tenant_id, p.environment, type="execution.reported", subject=decision.decision_id,
                      decision_id=decision.decision_id, at=now, random_bytes=random_bytes,
                      data={**report_doc, "reported_by": p.principal})
        return report_doc

    def replay(response: dict) -> dict:
        return response

    if p.agents:  # a bound key: checked before an idempotent replay could answer with another agent's report
        named = uow.decisions.get(p.tenant_id, p.environment, inp.decision_id)
        if named is not None:
            p.check_acts_for(named.agent_id)
    fields = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in inp.__dict__.items()
              if k != "idempotency_key"}
    return once(uow, tenant_id=p.tenant_id, environment=p.environment, operation="DecisionService.ReportExecution",
                key=inp.idempotency_key, fields=fields, now=now, run=run, replay=replay)


def verify_token_for_report(keys, settings: tokens.TokenSettings, p: Principal, token: str, now: datetime) -> dict:
    """The report's token must be genuine and ours; expiry does not matter once it was issued."""
    try:
        return tokens.verify(keys, settings, p, token, now)
    except TokenInvalid as exc:
        if "expired" not in exc.message:
            raise
    from gavel.crypto import jws

    claims = jws.verify_compact(token, lambda kid: keys.find(kid, now))
    if claims.get("tenant") != p.tenant_id or claims.get("env") != p.environment:
        raise TokenInvalid("decision token refused: issued to another tenant or environment")
    return claims
