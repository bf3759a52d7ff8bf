"""Which compiled bundle decides for a tenant and environment.

The `--rules` directory given to `gavel serve` is the active bundle of both environments of
every tenant until a bundle is published for that tenant + environment; published bundles
persist across restarts and take precedence (API.md). Swapping is one assignment, so a
decision always sees one whole bundle. The directory's bundle keeps its archive, so that it
can be stored and recorded as an activation like any other (`app.rules_dir`).
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
    archive: bytes | None = None  # the --rules directory packed as a bundle archive (published ones are stored)
    manifest: dict | None = None

    @property
    def bundle_hash(self) -> str:
        return self.engine.bundle_hash


class PolicyRegistry:
    def __init__(self, initial: CompiledEngine, version: str = "rules-dir", activated_at: datetime | None = None,
                 archive: bytes | None = None, manifest: dict | None = None):
        self._initial = ActiveBundle(initial, version, activated_at, False, archive, manifest)
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

    def replace_initial(self, engine: CompiledEngine, version: str, activated_at: datetime | None = None,
                        archive: bytes | None = None, manifest: dict | None = None) -> None:
        self._initial = ActiveBundle(engine, version, activated_at, False, archive, manifest)

    @property
    def initial(self) -> ActiveBundle:
        return self._initial
