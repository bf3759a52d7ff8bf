"""What an approval's outcome does to its decision: the state, the approval block, the approvers'
note, and — when approved — the decision token (bound to the modified action if an approver
changed it, which the decision then carries as `approved_action`) and the budget reservation,
all in the resolving unit of work."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from gavel.app import approvals, budgets, ledger, tokens
from gavel.app.ids import new_id
from gavel.app.model import ApprovalRecord, DecisionRecord
from gavel.app.ports import UnitOfWork
from gavel.app.requests import json_number
from gavel.app.verdict import withheld_after_approval
from gavel.crypto.jws import args_hash

STATE_OF = approvals.DECISION_STATE


@dataclass
class Finalizer:
    signing: tokens.SigningKeys
    token_settings: tokens.TokenSettings
    random_bytes: Any

    def __call__(self, uow: UnitOfWork, task: ApprovalRecord, decision: DecisionRecord, verdict: str | None,
                 now: datetime) -> None:
        result = {**decision.result, "approval": approvals.summary(task)}
        note = approvals.approval_note(task)
        if note:
            result["approval_note"] = note
        state = decision.state
        if verdict is not None:
            state = STATE_OF[verdict]
            if state == "approved":
                state = self._judged_again(uow, task, decision, result, now)
            result["state"] = state
            if state == "approved":
                result["decision_token"] = self._grant(uow, task, decision, now)
                if approvals.approved_action(task) is not None:
                    result["approved_action"] = task.modified_action
        uow.decisions.set_state(decision.tenant_id, decision.environment, decision.decision_id, state, result)

    def _judged_again(self, uow: UnitOfWork, task: ApprovalRecord, decision: DecisionRecord, result: dict,
                      now: datetime) -> str:
        """People approved what the rules routed to them; the shared verdict (`gavel.app.verdict`)
        still refuses a paused or locked agent and STRICT's checks against the agent as it is now.
        Then the decision is denied without a token, the reason in its warnings and the ledger."""
        agent = uow.agents.get(decision.tenant_id, decision.environment, decision.agent_id)
        withheld = withheld_after_approval(decision, agent, json_number(task.modified_action or task.action))
        if withheld is None:
            return "approved"
        result["warnings"] = [*result.get("warnings", []), withheld]
        ledger.record(uow, decision.tenant_id, decision.environment, type="token.withheld",
                      subject=decision.decision_id, decision_id=decision.decision_id, at=now,
                      random_bytes=self.random_bytes, data={"reason": withheld})
        return "denied"

    def _grant(self, uow: UnitOfWork, task: ApprovalRecord, decision: DecisionRecord, now: datetime) -> str:
        action = json_number(task.modified_action or task.action)
        amount = Decimal(action["amount"]) if action.get("amount") else None
        jti = new_id("tok", now, self.random_bytes)
        text, record = tokens.issue(
            self.signing.keyset(), self.token_settings, jti=jti, tenant_id=decision.tenant_id,
            environment=decision.environment, decision_id=decision.decision_id, agent_id=decision.agent_id,
            action_type=action.get("type", ""), amount=amount, currency=action.get("currency") or None,
            args_hash=args_hash(action), now=now, enforced=decision.enforced, outcome=decision.outcome)
        uow.tokens.add(record)
        uow.decisions.bind_token(decision.tenant_id, decision.environment, decision.decision_id, jti, amount,
                                 action.get("currency") or None)
        agent = uow.agents.get(decision.tenant_id, decision.environment, decision.agent_id)
        if agent is not None and amount is not None:
            budgets.reserve(uow, agent, decision.decision_id, amount, now)
        return text
