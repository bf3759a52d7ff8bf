"""The server's `--rules` directory as an activation like any other.

A tenant + environment that never published, promoted or rolled back *follows* the directory:
its decisions are made by whatever the directory holds. Each time a new directory bundle
becomes active for it — the server starts or reloads (`--watch`) with a different directory,
or, at the latest, just before the environment's first publish, promote or rollback — that is
recorded as a `rules-dir` activation in its history and a `bundle.activated` event in its
ledger, and the directory's archive is stored (once, under no tenant: every tenant follows the
same directory). So ListBundleHistory shows it, RollbackBundle can go back to it, and
GetBundle returns the exact text that decided.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from gavel.app import ledger
from gavel.app.model import Activation, StoredBundle
from gavel.app.policies import ActiveBundle
from gavel.app.ports import UnitOfWork

RULES_DIR_ACTION = "rules-dir"
RULES_DIR_BY = "gavel serve --rules"
SHARED_TENANT = ""  # no tenant has an empty id: the --rules directory's archives are stored under it
ENVIRONMENTS = ("live", "test")  # sorted: a unit appending to several chains visits them in order
ALL_ACTIVATIONS = 100_000


def follows_directory(latest: Activation | None) -> bool:
    """Whether an environment whose newest activation is `latest` is decided by the directory."""
    return latest is None or latest.action == RULES_DIR_ACTION


def record(uow: UnitOfWork, tenant_id: str, environment: str, directory: ActiveBundle, now: datetime,
           random_bytes: Callable[[int], bytes]) -> Activation | None:
    """Record the directory's bundle as active in this tenant + environment, if the environment
    follows the directory and this is not already its newest activation.

    The activation is dated when the directory began to decide for the tenant (the server's
    start or reload, or the tenant's creation if later); its ledger event is dated now."""
    newest = uow.bundles.history(tenant_id, environment, 1, None)
    latest = newest[0] if newest else None
    if directory.archive is None or not follows_directory(latest) or (
            latest is not None and latest.bundle_hash == directory.bundle_hash):
        return None
    since = directory.activated_at or now
    tenant = uow.tenants.get(tenant_id)
    if tenant is not None and tenant.created_at > since:
        since = tenant.created_at
    uow.bundles.put(StoredBundle(SHARED_TENANT, directory.bundle_hash, directory.archive, directory.manifest or {},
                                 now))
    activation = uow.bundles.activate(tenant_id, environment, directory.bundle_hash, directory.version, since,
                                      RULES_DIR_ACTION, RULES_DIR_BY)
    ledger.record(uow, tenant_id, environment, type="bundle.activated", subject=directory.bundle_hash, at=now,
                  random_bytes=random_bytes,
                  data={"bundle_hash": directory.bundle_hash, "version": directory.version,
                        "action": RULES_DIR_ACTION, "by": RULES_DIR_BY, "sequence": activation.sequence,
                        "activated_at": since.isoformat()})
    return activation


def record_everywhere(uow: UnitOfWork, directory: ActiveBundle, now: datetime,
                      random_bytes: Callable[[int], bytes]) -> int:
    """`record` for every environment of every tenant (at start and on a reload); how many."""
    recorded = 0
    for tenant_id in sorted(uow.tenants.ids()):
        for environment in ENVIRONMENTS:
            recorded += record(uow, tenant_id, environment, directory, now, random_bytes) is not None
    return recorded


def stored_if_ran(uow: UnitOfWork, tenant_id: str, environment: str, bundle_hash: str) -> StoredBundle | None:
    """The stored archive of `bundle_hash` if this tenant + environment ever activated it."""
    ran = [a for a in uow.bundles.history(tenant_id, environment, ALL_ACTIVATIONS, None)
           if a.bundle_hash == bundle_hash]
    if not ran:
        return None
    own = uow.bundles.get(tenant_id, bundle_hash)
    if own is not None:
        return own
    return uow.bundles.get(SHARED_TENANT, bundle_hash) if any(a.action == RULES_DIR_ACTION for a in ran) else None
