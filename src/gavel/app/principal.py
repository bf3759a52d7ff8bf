"""Who is calling, and what each kind of key may call (API.md §Calling).

An agent key may be bound to agents (`gavel keys create --roles agent --agent ID`): it then acts
only for them — it decides, reads, waits for, reports, consumes and revokes their decisions and
tokens, and nothing of any other agent (AGENT_MISMATCH). An unbound key acts for every agent of
its tenant and environment, except in STRICT mode, which denies what a key not bound to the
agent asks (`strict.agent_unbound`).
"""

from __future__ import annotations

from dataclasses import dataclass

from gavel.app.errors import AgentMismatch

AGENT_METHODS = frozenset({
    "DecisionService.Decide", "DecisionService.DecideStream", "DecisionService.GetDecision",
    "DecisionService.WaitDecision", "DecisionService.ReportExecution", "DecisionService.ConsumeToken",
    "DecisionService.RevokeToken", "EvidenceService.GetPublicKeys",
})
AUDITOR_METHODS = frozenset({
    "DecisionService.GetDecision", "ApprovalService.ListApprovals",
    "PolicyService.ListBundleHistory", "PolicyService.GetBundle",  # which policy text decided, and when
})
APPROVER_METHODS = frozenset({
    "ApprovalService.ListApprovals", "ApprovalService.WatchApprovals", "ApprovalService.ResolveApproval",
})
PLATFORM_METHODS = frozenset({
    "AdminService.CreateTenant", "AdminService.CreateApiKey", "AdminService.ListApiKeys",
    "AdminService.RevokeApiKey", "AdminService.GetTenantSettings", "AdminService.UpdateTenantSettings",
})
# The owner's key may do everything for its tenant and environment except resolve approvals
# (segregation of duties: approving needs the task's role) and manage tenants.
ADMIN_EXCLUDED = frozenset({"ApprovalService.ResolveApproval", "AdminService.CreateTenant"})
RESERVED_ROLES = frozenset({"admin", "agent", "auditor", "platform_admin"})


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    tenant_id: str | None
    environment: str | None
    roles: frozenset[str]
    principal: str
    agents: frozenset[str] = frozenset()  # the agents an agent key is bound to; empty: not bound

    @property
    def is_platform_admin(self) -> bool:
        return self.tenant_id is None

    @property
    def is_admin(self) -> bool:
        return not self.is_platform_admin and (not self.roles or "admin" in self.roles)

    @property
    def approver_roles(self) -> frozenset[str]:
        return frozenset(r for r in self.roles if r not in RESERVED_ROLES)

    def is_bound_to(self, agent_id: str) -> bool:
        """Whether this key was bound to `agent_id` (what STRICT mode asks for)."""
        return agent_id in self.agents

    def check_acts_for(self, agent_id: str) -> None:
        """Refuse (AGENT_MISMATCH) when this key is bound to other agents than `agent_id`."""
        if self.agents and agent_id not in self.agents:
            raise AgentMismatch(f"this key is bound to {', '.join(f'`{a}`' for a in sorted(self.agents))}; "
                                f"it cannot act for agent `{agent_id}`")

    def may_call(self, method: str) -> bool:
        if self.is_platform_admin:
            return method in PLATFORM_METHODS
        if self.is_admin and method not in ADMIN_EXCLUDED:
            return True
        if "agent" in self.roles and method in AGENT_METHODS:
            return True
        if "auditor" in self.roles and (method in AUDITOR_METHODS or method.startswith("EvidenceService.")):
            return True
        return bool(self.approver_roles) and method in APPROVER_METHODS
