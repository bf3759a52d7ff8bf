"""Who is calling, and what each kind of key may call (API.md §Calling)."""

from __future__ import annotations

from dataclasses import dataclass

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
    "AdminService.RevokeApiKey",
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

    @property
    def is_platform_admin(self) -> bool:
        return self.tenant_id is None

    @property
    def is_admin(self) -> bool:
        return not self.is_platform_admin and (not self.roles or "admin" in self.roles)

    @property
    def approver_roles(self) -> frozenset[str]:
        return frozenset(r for r in self.roles if r not in RESERVED_ROLES)

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
