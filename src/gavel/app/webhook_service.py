"""Webhook use cases (mixed into `Application`): manage subscriptions, send a test, list and
redeliver deliveries. URLs are vetted at the edge (SSRF guard) before they reach here."""

from __future__ import annotations

from gavel.app import webhooks
from gavel.app.errors import Forbidden, NotFound
from gavel.app.idempotency import once
from gavel.app.principal import Principal


def _admin(p: Principal) -> None:
    if not p.is_admin:
        raise Forbidden("webhooks are managed with an admin key of the tenant and environment")


class WebhookMixin:
    async def create_webhook(self, p: Principal, url: str, events: list, description: str, key: str) -> dict:
        _admin(p)
        kinds = webhooks.validate_events(events)
        now = self.deps.clock()
        return await self.deps.store.write(lambda uow: once(
            uow, tenant_id=p.tenant_id, environment=p.environment, operation="REST.CreateWebhook", key=key,
            fields={"url": url, "events": list(kinds), "description": description}, now=now,
            run=lambda: webhooks.create(uow, p.tenant_id, p.environment, url, kinds, description, now,
                                        self.deps.random_bytes),
            replay=lambda r: r))

    async def list_webhooks(self, p: Principal) -> dict:
        _admin(p)
        rows = await self.deps.store.read(lambda uow: uow.webhooks.list(p.tenant_id, p.environment))
        return {"webhooks": [webhooks.endpoint_dict(e) for e in rows]}

    async def get_webhook(self, p: Principal, endpoint_id: str) -> dict:
        _admin(p)
        e = await self.deps.store.read(lambda uow: webhooks.get(uow, p.tenant_id, p.environment, endpoint_id))
        return webhooks.endpoint_dict(e)

    async def update_webhook(self, p: Principal, endpoint_id: str, changes: dict) -> dict:
        _admin(p)
        if "events" in changes:
            changes["events"] = webhooks.validate_events(changes["events"])
        now = self.deps.clock()
        return await self.deps.store.write(lambda uow: webhooks.update(uow, p.tenant_id, p.environment, endpoint_id,
                                                                       changes, now))

    async def delete_webhook(self, p: Principal, endpoint_id: str) -> None:
        _admin(p)
        gone = await self.deps.store.write(lambda uow: uow.webhooks.delete(p.tenant_id, p.environment, endpoint_id))
        if not gone:
            raise NotFound(f"no webhook `{endpoint_id}`")

    async def test_webhook(self, p: Principal, endpoint_id: str, key: str) -> dict:
        _admin(p)
        now = self.deps.clock()
        return await self.deps.store.write(lambda uow: once(
            uow, tenant_id=p.tenant_id, environment=p.environment, operation="REST.TestWebhook", key=key,
            fields={"endpoint_id": endpoint_id}, now=now,
            run=lambda: webhooks.send_test(uow, p.tenant_id, p.environment, endpoint_id, now,
                                           self.deps.random_bytes),
            replay=lambda r: r))

    async def webhook_deliveries(self, p: Principal, endpoint_id: str, limit: int = 100) -> dict:
        _admin(p)

        def unit(uow):
            webhooks.get(uow, p.tenant_id, p.environment, endpoint_id)
            return [webhooks.delivery_dict(d) for d in uow.deliveries.recent(endpoint_id, limit)]

        return {"deliveries": await self.deps.store.read(unit)}

    async def redeliver(self, p: Principal, endpoint_id: str, delivery_id: str, key: str) -> dict:
        _admin(p)
        now = self.deps.clock()
        return await self.deps.store.write(lambda uow: once(
            uow, tenant_id=p.tenant_id, environment=p.environment, operation="REST.Redeliver", key=key,
            fields={"endpoint_id": endpoint_id, "delivery_id": delivery_id}, now=now,
            run=lambda: webhooks.redeliver(uow, p.tenant_id, p.environment, endpoint_id, delivery_id, now),
            replay=lambda r: r))
