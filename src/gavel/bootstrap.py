"""The composition root: settings in, a wired runtime out. The only place that knows which
adapter implements which port. Nothing here runs at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from gavel.adapters.db.migrate import migrate
from gavel.adapters.db.store import SqlStore
from gavel.adapters.keystore import FileSigningKeys
from gavel.api import Engine
from gavel.app.decide import Deps
from gavel.app.policies import PolicyRegistry
from gavel.app.service import Application
from gavel.app.tokens import TokenSettings
from gavel.config import Settings

log = logging.getLogger("gavel")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    settings: Settings
    store: SqlStore
    signing: FileSigningKeys
    policies: PolicyRegistry
    app: Application

    _background: list = field(default_factory=list)

    def start_background(self) -> None:
        """Start the scheduled upkeep (token expiry sweep) on the running event loop."""
        from gavel.app.maintenance import approvals_forever, checkpoint_forever, sweep_forever

        self._background.append(asyncio.create_task(sweep_forever(self.store, self.app.deps.clock)))
        self._background.append(asyncio.create_task(approvals_forever(self.app)))
        self._background.append(asyncio.create_task(checkpoint_forever(
            self.app, self.settings.checkpoint_every_seconds, self.settings.checkpoint_every_events)))

    async def close(self) -> None:
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._background.clear()
        await self.store.close()


def open_store(settings: Settings) -> SqlStore:
    """Migrate the schema (creating it on an empty database) and open the store."""
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    migrate(settings.store_url)
    return SqlStore(settings.store_url, sqlite_synchronous=settings.sqlite_synchronous)


def build(settings: Settings) -> Runtime:
    """Wire everything. Raises PolicyError for broken rules, before anything listens."""
    engine = Engine.load(settings.rules)
    for w in engine.compilation.warnings:  # checker warnings; `gavel check` also runs the analysis
        log.warning("%s", w.headline())
    signing = FileSigningKeys(settings.data_dir)
    signing.ensure()
    store = open_store(settings)
    policies = PolicyRegistry(engine, version=f"rules-dir:{engine.bundle_hash[7:19]}")
    deps = Deps(
        store=store, policies=policies, signing=signing,
        token_settings=TokenSettings(settings.token_issuer, settings.token_audience,
                                     timedelta(seconds=settings.token_ttl_seconds)),
        clock=utc_now, random_bytes=os.urandom, sod_conflicts=settings.sod_conflicts,
    )
    return Runtime(settings, store, signing, policies, Application(deps))
