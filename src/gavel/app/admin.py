"""Tenants and API keys. Platform operator keys manage tenants; a tenant's admin key manages
keys of its own tenant and environment. Secrets are returned once and never stored."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from gavel.app import ledger
from gavel.app.errors import FieldViolation, Forbidden, InvalidRequest, MissingField, NotFound
from gavel.app.idempotency import once
from gavel.app.keys import mint_key
from gavel.app.model import ENVIRONMENTS, ApiKeyRecord, Tenant
from gavel.app.ports import Conflict, UnitOfWork
from gavel.app.principal import RESERVED_ROLES, Principal
from gavel.app.requests import IDENTIFIER

TENANT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
ROLE = re.compile(r"[a-z][a-z0-9_]{0,63}")
MAX_BOUND_AGENTS = 1000


def tenant_dict(t: Tenant) -> dict:
    return {"tenant_id": t.tenant_id, "name": t.name, "created_at": t.created_at.isoformat()}


def key_dict(k: ApiKeyRecord) -> dict:
    return {
        "key_id": k.key_id, "tenant": k.tenant_id or "", "environment": k.environment or "",
        "roles": list(k.roles), "principal": k.principal, "description": k.description,
        "created_at": k.created_at.isoformat(), "revoked_at": k.revoked_at.isoformat() if k.revoked_at else "",
        "agents": list(k.agents),
    }


def create_tenant(uow: UnitOfWork, name: str, tenant_id: str, now: datetime) -> dict:
    if not name:
        raise MissingField("name: required", (FieldViolation("name", "required"),))
    tenant_id = tenant_id or re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-")[:63]
    if not TENANT_ID.fullmatch(tenant_id or ""):
        raise InvalidRequest("tenant_id: invalid", (FieldViolation("tenant_id", "1–63 of a-z 0-9 _ -"),))
    tenant = Tenant(tenant_id, name, now)
    try:
        uow.tenants.add(tenant)
    except Conflict:
        raise InvalidRequest(f"tenant `{tenant_id}` already exists",
                             (FieldViolation("name", "a tenant with this name or id exists"),)) from None
    return tenant_dict(tenant)


def create_key(uow: UnitOfWork, caller: Principal | None, *, tenant: str, environment: str, roles: list[str],
               principal: str, description: str, now: datetime, random_bytes: Callable[[int], bytes],
               idempotency_key: str = "", agents: list[str] | tuple[str, ...] = ()) -> dict:
    """Create a key; `caller` None means the local CLI (full authority). `agents` binds an agent key
    to those agent ids (see `gavel.app.principal`)."""
    if caller is not None and not caller.is_platform_admin:
        if tenant and tenant != caller.tenant_id:
            raise NotFound(f"no tenant `{tenant}`")
        if environment and environment != caller.environment:
            raise Forbidden("an admin key creates keys for its own environment only")
        tenant, environment = caller.tenant_id, caller.environment
    if environment not in ENVIRONMENTS:
        raise InvalidRequest("environment must be TEST or LIVE", (FieldViolation("environment", "TEST or LIVE"),))
    bad = [r for r in roles if not ROLE.fullmatch(r) or r == "platform_admin"]
    if bad:
        raise InvalidRequest(f"invalid roles: {', '.join(bad)}",
                             (FieldViolation("roles", "lower-case names: agent, auditor, admin or an approver role"),))
    _check_agents(roles, agents)
    if len(principal) > 256 or len(description) > 256:
        raise InvalidRequest("principal and description are at most 256 characters", tuple(
            FieldViolation(name, "at most 256 characters")
            for name, value in (("principal", principal), ("description", description)) if len(value) > 256))

    def run() -> dict:
        if uow.tenants.get(tenant) is None:
            raise NotFound(f"no tenant `{tenant}`")
        new = mint_key(environment, random_bytes)
        record = ApiKeyRecord(new.key_id, tenant, environment, tuple(sorted(set(roles))), principal or new.key_id,
                              description, new.secret_hash, now, agents=tuple(sorted(set(agents))))
        uow.keys.add(record)
        ledger.record(uow, tenant, environment, type="key.created", subject=record.key_id, at=now,
                      random_bytes=random_bytes, data={"key": key_dict(record),
                                                       "by": caller.principal if caller else "gavel-cli"})
        return {"api_key": key_dict(record), "secret": new.text}

    fields = {"tenant": tenant, "environment": environment, "roles": sorted(set(roles)), "principal": principal,
              "description": description}
    if agents:  # keyed only when given, so replays of keys made before binding existed still match
        fields["agents"] = sorted(set(agents))
    # Replays return the key's metadata but never the secret again: it is not stored anywhere.
    return once(uow, tenant_id=tenant, environment=environment, operation="AdminService.CreateApiKey",
                key=idempotency_key, fields=fields, now=now, run=run, stored=lambda r: {**r, "secret": ""},
                replay=lambda r: {**r, "secret": ""}) if idempotency_key else run()


def _check_agents(roles: list[str], agents: list[str] | tuple[str, ...]) -> None:
    if not agents:
        return
    if "agent" not in roles:
        raise InvalidRequest("agents: only a key with the `agent` role can be bound to agents",
                             (FieldViolation("agents", "add the `agent` role, or bind no agents"),))
    bad = [a for a in agents if not isinstance(a, str) or not IDENTIFIER.fullmatch(a)]
    if bad:
        raise InvalidRequest(f"agents: invalid agent ids: {', '.join(f'`{a}`' for a in bad[:10])}",
                             (FieldViolation("agents", "agent ids: 1–128 letters, digits and . _ : @ / -, "
                                                       "starting with a letter or digit"),))
    if len(set(agents)) > MAX_BOUND_AGENTS:
        raise InvalidRequest(f"agents: at most {MAX_BOUND_AGENTS} agents per key",
                             (FieldViolation("agents", f"more than {MAX_BOUND_AGENTS}"),))


def create_platform_key(uow: UnitOfWork, principal: str, description: str, now: datetime,
                        random_bytes: Callable[[int], bytes]) -> str:
    new = mint_key(None, random_bytes)
    uow.keys.add(ApiKeyRecord(new.key_id, None, None, ("platform_admin",), principal or new.key_id, description,
                              new.secret_hash, now))
    return new.text


def list_keys(uow: UnitOfWork, caller: Principal, tenant: str, environment: str, include_revoked: bool,
              page_size: int, page_token: str) -> dict:
    if not caller.is_platform_admin:
        if tenant and tenant != caller.tenant_id:
            raise NotFound(f"no tenant `{tenant}`")
        tenant, environment = caller.tenant_id, caller.environment
    if page_size < 0:
        raise InvalidRequest("page_size must not be negative", (FieldViolation("page_size", "< 0"),))
    limit = min(page_size or 50, 1000)
    rows = list(uow.keys.list(tenant or None, environment or None, include_revoked, limit + 1, page_token or None))
    more = len(rows) > limit
    rows = rows[:limit]
    return {"api_keys": [key_dict(k) for k in rows], "next_page_token": rows[-1].key_id if more and rows else ""}


def revoke_key(uow: UnitOfWork, caller: Principal, key_id: str, now: datetime,
               random_bytes: Callable[[int], bytes]) -> dict:
    record = uow.keys.get(key_id)
    visible = record is not None and (caller.is_platform_admin or (
        record.tenant_id == caller.tenant_id and record.environment == caller.environment))
    if not visible:
        raise NotFound(f"no API key `{key_id}`")
    if record.revoked_at is None and uow.keys.revoke(key_id, now):
        record = uow.keys.get(key_id)
        if record.tenant_id is not None:
            ledger.record(uow, record.tenant_id, record.environment, type="key.revoked", subject=key_id, at=now,
                          random_bytes=random_bytes, data={"key": key_dict(record), "by": caller.principal})
    return key_dict(record)


__all__ = ["RESERVED_ROLES", "create_key", "create_platform_key", "create_tenant", "list_keys", "revoke_key"]
