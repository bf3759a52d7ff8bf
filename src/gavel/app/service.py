"""`Application`: the use cases behind one object, which every edge (gRPC, REST, CLI) calls.

Each method is a thin sequence: validate → run a unit of work on the store → return plain
data. Wiring happens in `gavel.bootstrap`.
"""

from __future__ import annotations

from gavel.app import admin, agents, executions, settings, tokens
from gavel.app.approval_service import ApprovalMixin
from gavel.app.decide import DecideUseCase, Deps
from gavel.app.errors import Forbidden, TokenInvalid
from gavel.app.events import EventSignal
from gavel.app.evidence import MerkleCache
from gavel.app.evidence_service import EvidenceMixin
from gavel.app.executions import ExecutionInput
from gavel.app.keys import KeyCache, check_record, hash_key, parse_key
from gavel.app.policy_service import PolicyMixin
from gavel.app.principal import Principal
from gavel.app.requests import DecideInput
from gavel.app.webhook_service import WebhookMixin


class Application(EvidenceMixin, ApprovalMixin, PolicyMixin, WebhookMixin):
    def __init__(self, deps: Deps):
        self.deps = deps
        self.decisions = DecideUseCase(deps)
        self.key_cache = KeyCache()
        self.events = EventSignal()
        self.merkle = MerkleCache()

    # ---- authentication

    async def authenticate(self, key_text: str) -> Principal:
        key_id, environment = parse_key(key_text)
        digest = hash_key(key_text)
        cached = self.key_cache.get(key_id, digest)
        if cached is not None:
            return cached
        record = await self.deps.store.read(lambda uow: uow.keys.get(key_id))
        principal = check_record(record, environment, digest)
        self.key_cache.put(key_id, digest, principal)
        return principal

    # ---- decisions and tokens

    async def decide(self, p: Principal, inp: DecideInput) -> dict:
        result = await self.decisions.decide(p, inp)
        self.events.notify()
        return result

    async def _write(self, p: Principal, unit, *, own_chain: bool = True):
        """A write unit that may append ledger events: wake the event streams after it. A unit that
        may append to another chain than the caller's passes `own_chain=False` (see Store.write)."""
        chain = (p.tenant_id, p.environment) if own_chain else None
        result = await self.deps.store.write(unit, chain=chain)
        self.events.notify()
        return result

    async def get_decision(self, p: Principal, decision_id: str) -> dict:
        return await self.decisions.get(p, decision_id)

    async def consume_token(self, p: Principal, token: str, args_hash: str, accept_unenforced: bool = False) -> dict:
        now = self.deps.clock()
        claims = tokens.verify(self.deps.signing.keyset(), self.deps.token_settings, p, token, now)
        return await self._write(p, lambda uow: tokens.consume(uow, p, claims, args_hash, now, self.deps.random_bytes,
                                                               accept_unenforced))

    async def revoke_token(self, p: Principal, *, token: str = "", jti: str = "") -> dict:
        now = self.deps.clock()
        if token:
            from gavel.crypto import jws

            keys = self.deps.signing.keyset()
            try:
                claims = jws.verify_compact(token, lambda kid: keys.find(kid, now))
            except jws.TokenInvalid as exc:
                raise TokenInvalid(f"decision token refused: {exc.detail}") from None
            if claims.get("tenant") != p.tenant_id or claims.get("env") != p.environment:
                raise TokenInvalid("decision token refused: issued to another tenant or environment")
            jti = str(claims.get("jti", ""))
        return await self._write(p, lambda uow: tokens.revoke(uow, p, jti, now, self.deps.random_bytes))

    async def report_execution(self, p: Principal, inp: ExecutionInput) -> dict:
        executions.validate(inp)
        now = self.deps.clock()
        claims = executions.verify_token_for_report(self.deps.signing.keyset(), self.deps.token_settings, p,
                                                    inp.decision_token, now)
        return await self._write(p, lambda uow: executions.report(uow, p, inp, claims, now, self.deps.random_bytes))

    def jwks(self) -> dict:
        return self.deps.signing.keyset().jwks(self.deps.clock())

    # ---- agents

    async def register_agent(self, p: Principal, agent_id: str, fields: agents.AgentFields, key: str) -> dict:
        now = self.deps.clock()
        return await self._write(p, lambda uow: agents.register(uow, p, agent_id, fields, key, now,
                                                                self.deps.random_bytes))

    async def get_agent(self, p: Principal, agent_id: str) -> dict:
        now = self.deps.clock()
        return await self.deps.store.read(lambda uow: agents.get(uow, p, agent_id, now))

    async def list_agents(self, p: Principal, status: str | None, page_size: int, page_token: str) -> dict:
        now = self.deps.clock()
        return await self.deps.store.read(lambda uow: agents.list_agents(uow, p, status, page_size, page_token, now))

    async def update_agent(self, p: Principal, agent_id: str, fields: agents.AgentFields, mask: tuple[str, ...],
                           key: str) -> dict:
        now = self.deps.clock()
        return await self._write(p, lambda uow: agents.update(uow, p, agent_id, fields, mask, key, now,
                                                              self.deps.random_bytes))

    # ---- administration

    async def create_tenant(self, name: str, tenant_id: str, key: str) -> dict:
        now = self.deps.clock()
        from gavel.app.idempotency import once

        return await self.deps.store.write(lambda uow: once(
            uow, tenant_id="", environment="", operation="AdminService.CreateTenant", key=key,
            fields={"name": name, "tenant_id": tenant_id}, now=now,
            run=lambda: admin.create_tenant(uow, name, tenant_id, now), replay=lambda r: r))

    async def create_api_key(self, p: Principal, *, tenant: str, environment: str, roles: list[str], principal: str,
                             description: str, idempotency_key: str, agents: list[str] | None = None) -> dict:
        if not p.is_platform_admin and not p.is_admin:
            raise Forbidden("only an admin key may create keys")
        now = self.deps.clock()
        return await self._write(p, lambda uow: admin.create_key(
            uow, p, tenant=tenant, environment=environment, roles=roles, principal=principal,
            description=description, now=now, random_bytes=self.deps.random_bytes, idempotency_key=idempotency_key,
            agents=agents or []), own_chain=False)

    async def get_tenant_settings(self, p: Principal, tenant: str, environment: str) -> dict:
        return await self.deps.store.read(lambda uow: settings.get(uow, p, tenant, environment))

    async def update_tenant_settings(self, p: Principal, *, tenant: str, environment: str, minimum_mode: str,
                                     idempotency_key: str) -> dict:
        if not p.is_platform_admin and not p.is_admin:
            raise Forbidden("only an admin key may change a tenant's settings")
        now = self.deps.clock()
        return await self._write(p, lambda uow: settings.update(
            uow, p, tenant=tenant, environment=environment, mode=minimum_mode, now=now,
            random_bytes=self.deps.random_bytes, idempotency_key=idempotency_key), own_chain=False)

    async def list_api_keys(self, p: Principal, tenant: str, environment: str, include_revoked: bool,
                            page_size: int, page_token: str) -> dict:
        return await self.deps.store.read(lambda uow: admin.list_keys(
            uow, p, tenant, environment, include_revoked, page_size, page_token))

    async def revoke_api_key(self, p: Principal, key_id: str) -> dict:
        now = self.deps.clock()
        result = await self.deps.store.write(lambda uow: admin.revoke_key(uow, p, key_id, now, self.deps.random_bytes))
        self.events.notify()
        self.key_cache.evict(key_id)
        return result
