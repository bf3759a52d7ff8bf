"""Which compiled bundle decides for a tenant and environment.

The `--rules` directory given to `gavel serve` is the active bundle of both environments of
every tenant until a bundle is published for that tenant + environment; published bundles
persist across restarts and take precedence (API.md). Swapping is one assignment, so a
decision always sees one whole bundle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gavel.engine.engine import CompiledEngine


@dataclass(frozen=True)
class ActiveBundle:
    engine: CompiledEngine
    version: str
    activated_at: datetime | None
    published: bool  # False: the server's --rules directory

    @property
    def bundle_hash(self) -> str:
        return self.engine.bundle_hash


class PolicyRegistry:
    def __init__(self, initial: CompiledEngine, version: str = "rules-dir", activated_at: datetime | None = None):
        self._initial = ActiveBundle(initial, version, activated_at, False)
        self._published: dict[tuple[str, str], ActiveBundle] = {}

    def active(self, tenant_id: str, environment: str) -> tuple[CompiledEngine, str]:
        """(engine, version label) deciding for this tenant and environment."""
        info = self.info(tenant_id, environment)
        return info.engine, info.version

    def info(self, tenant_id: str, environment: str) -> ActiveBundle:
        return self._published.get((tenant_id, environment), self._initial)

    def publish(self, tenant_id: str, environment: str, engine: CompiledEngine, version: str,
                activated_at: datetime) -> None:
        self._published[(tenant_id, environment)] = ActiveBundle(engine, version, activated_at, True)

    def replace_initial(self, engine: CompiledEngine, version: str, activated_at: datetime | None = None) -> None:
        self._initial = ActiveBundle(engine, version, activated_at, False)

    @property
    def initial(self) -> ActiveBundle:
        return self._initial
