"""The unit of work: every repository, bound to one connection and its transaction.

It neither begins nor commits: `SqlStore` does, around each unit (or batch of units), so that
what a unit wrote is committed before its caller sees the result.
"""

from __future__ import annotations

from sqlalchemy import Connection

from gavel.adapters.db.repositories import (
    SqlAgentRepo,
    SqlApiKeyRepo,
    SqlApprovalRepo,
    SqlBundleRepo,
    SqlCheckpointRepo,
    SqlDecisionRepo,
    SqlDeliveryRepo,
    SqlExecutionRepo,
    SqlIdempotencyRepo,
    SqlLedgerRepo,
    SqlSpendRepo,
    SqlTenantRepo,
    SqlTenantSettingsRepo,
    SqlTokenRepo,
    SqlWebhookRepo,
)


class SqlUnitOfWork:
    def __init__(self, connection: Connection) -> None:
        self.tenants = SqlTenantRepo(connection)
        self.keys = SqlApiKeyRepo(connection)
        self.settings = SqlTenantSettingsRepo(connection)
        self.agents = SqlAgentRepo(connection)
        self.decisions = SqlDecisionRepo(connection)
        self.ledger = SqlLedgerRepo(connection)
        self.approvals = SqlApprovalRepo(connection)
        self.bundles = SqlBundleRepo(connection)
        self.webhooks = SqlWebhookRepo(connection)
        self.deliveries = SqlDeliveryRepo(connection)
        self.checkpoints = SqlCheckpointRepo(connection)
        self.tokens = SqlTokenRepo(connection)
        self.spend = SqlSpendRepo(connection)
        self.executions = SqlExecutionRepo(connection)
        self.idempotency = SqlIdempotencyRepo(connection)
