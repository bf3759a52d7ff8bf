"""A tenant's settings per environment: today its minimum enforcement mode.

No decision in the environment runs in a looser mode than the minimum (see `gavel.app.verdict`):
an agent registered in MONITOR, or a request asking for MONITOR, gets the minimum instead. It is
ENFORCE until an operator changes it — the tenant's admin key for its own environment, a platform
key for any tenant, or `gavel tenants settings` — and every change is recorded in the
environment's ledger (`settings.updated`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from gavel.app import ledger
from gavel.app.errors import FieldViolation, Forbidden, InvalidRequest, MissingField, NotFound
from gavel.app.idempotency import once
from gavel.app.model import ENVIRONMENTS, MODES, TenantSettings
from gavel.app.ports import UnitOfWork
from gavel.app.principal import Principal

DEFAULT_MINIMUM_MODE = "enforce"


def minimum_mode(uow: UnitOfWork, tenant_id: str, environment: str) -> str:
    return minimum_mode_of(uow.settings.get(tenant_id, environment))


def settings_dict(tenant_id: str, environment: str, stored: TenantSettings | None) -> dict:
    return {"tenant": tenant_id, "environment": environment,
            "minimum_mode": minimum_mode_of(stored),
            "updated_at": stored.updated_at.isoformat() if stored else "",
            "updated_by": stored.updated_by if stored else ""}


def _target(uow: UnitOfWork, caller: Principal | None, tenant: str, environment: str) -> tuple[str, str]:
    """The tenant + environment a caller may read or change; `caller` None is the local CLI."""
    if caller is not None and not caller.is_platform_admin:
        if tenant and tenant != caller.tenant_id:
            raise NotFound(f"no tenant `{tenant}`")
        if environment and environment != caller.environment:
            raise Forbidden("an admin key reads and changes its own environment's settings only")
        tenant, environment = caller.tenant_id, caller.environment
    if not tenant:
        raise MissingField("tenant: required", (FieldViolation("tenant", "required with a platform key"),))
    if environment not in ENVIRONMENTS:
        raise InvalidRequest("environment must be TEST or LIVE", (FieldViolation("environment", "TEST or LIVE"),))
    if uow.tenants.get(tenant) is None:
        raise NotFound(f"no tenant `{tenant}`")
    return tenant, environment


def get(uow: UnitOfWork, caller: Principal | None, tenant: str, environment: str) -> dict:
    tenant, environment = _target(uow, caller, tenant, environment)
    return settings_dict(tenant, environment, uow.settings.get(tenant, environment))


def update(uow: UnitOfWork, caller: Principal | None, *, tenant: str, environment: str, mode: str,
           now: datetime, random_bytes: Callable[[int], bytes], idempotency_key: str = "") -> dict:
    if not mode:
        raise MissingField("minimum_mode: required", (FieldViolation("minimum_mode", "required"),))
    if mode not in MODES:
        raise InvalidRequest("minimum_mode: unknown mode", (FieldViolation(
            "minimum_mode", f"one of {', '.join(m.upper() for m in MODES)}"),))
    tenant, environment = _target(uow, caller, tenant, environment)
    by = caller.principal if caller is not None else "gavel-cli"

    def run() -> dict:
        before = minimum_mode_of(uow.settings.get(tenant, environment))
        stored = TenantSettings(tenant, environment, mode, now, by)
        uow.settings.put(stored)
        ledger.record(uow, tenant, environment, type="settings.updated", subject=f"settings:{tenant}/{environment}",
                      at=now, random_bytes=random_bytes,
                      data={"minimum_mode": {"from": before, "to": mode}, "by": by})
        return settings_dict(tenant, environment, stored)

    return once(uow, tenant_id=tenant, environment=environment, operation="AdminService.UpdateTenantSettings",
                key=idempotency_key, fields={"minimum_mode": mode}, now=now, run=run,
                replay=lambda r: r)


def minimum_mode_of(stored: TenantSettings | None) -> str:
    return stored.minimum_mode if stored is not None else DEFAULT_MINIMUM_MODE
