"""Which compiled bundle decides for a tenant and environment.

The `--rules` directory given to `gavel serve` is the active bundle of both environments of
every tenant (API.md); published bundles (the policy lifecycle) take precedence per tenant and
environment once they exist.
"""

from __future__ import annotations

from gavel.engine.engine import CompiledEngine


class PolicyRegistry:
    def __init__(self, initial: CompiledEngine, version: str = "rules-dir"):
        self._initial = initial
        self._initial_version = version
        self._active: dict[tuple[str, str], tuple[CompiledEngine, str]] = {}

    def active(self, tenant_id: str, environment: str) -> tuple[CompiledEngine, str]:
        """(engine, version label) deciding for this tenant and environment."""
        return self._active.get((tenant_id, environment), (self._initial, self._initial_version))

    def replace_initial(self, engine: CompiledEngine, version: str) -> None:
        self._initial, self._initial_version = engine, version
