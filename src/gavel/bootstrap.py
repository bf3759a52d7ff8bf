"""The composition root: settings in, a wired runtime out. The only place that knows which
adapter implements which port. Nothing here runs at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from gavel.adapters.compile_workers import CompileWorkers
from gavel.adapters.db.migrate import migrate
from gavel.adapters.db.store import SqlStore
from gavel.adapters.keystore import FileSigningKeys
from gavel.adapters.rest.egress import Egress
from gavel.api import Engine
from gavel.app import rules_dir
from gavel.app.decide import Deps
from gavel.app.policies import PolicyRegistry
from gavel.app.ratelimit import FixedWindowLimiter
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
    limiter: FixedWindowLimiter
    egress: Egress
    compiler: CompileWorkers

    _background: list = field(default_factory=list)

    def background_running(self) -> bool:
        return bool(self._background) and not any(t.done() for t in self._background)

    def start_background(self) -> None:
        """Start the scheduled upkeep (token expiry sweep) on the running event loop."""
        from gavel.adapters.rest.delivery import DeliveryWorker, RetryPolicy
        from gavel.app.maintenance import approvals_forever, checkpoint_forever, sweep_forever

        self._warming = asyncio.create_task(asyncio.to_thread(self.compiler.warm))  # done once: not a background task
        self._background.append(asyncio.create_task(sweep_forever(self.store, self.app.deps.clock)))
        self._background.append(asyncio.create_task(approvals_forever(self.app)))
        s = self.settings
        self._worker = DeliveryWorker(
            self.store, clock=utc_now, timeout_seconds=s.webhook_timeout_seconds, per_endpoint=s.webhook_per_endpoint,
            allow_private=s.webhook_allow_private,
            retry=RetryPolicy(base_seconds=s.webhook_retry_base_seconds,
                              cap_seconds=max(s.webhook_retry_cap_seconds, s.webhook_retry_base_seconds),
                              max_attempts=s.webhook_max_attempts))
        self._background.append(asyncio.create_task(self._worker.run_forever()))
        self._background.append(asyncio.create_task(follow_activations(self)))
        if self.settings.store_url.startswith("postgresql"):
            from gavel.adapters.db.listen import listen_forever

            self._background.append(asyncio.create_task(listen_forever(self.settings.store_url,
                                                                       self.app.events.notify)))
        if self.settings.watch:
            self._background.append(asyncio.create_task(watch_rules(self)))
        self._background.append(asyncio.create_task(checkpoint_forever(
            self.app, self.settings.checkpoint_every_seconds, self.settings.checkpoint_every_events)))

    async def close(self) -> None:
        worker = getattr(self, "_worker", None)
        if worker is not None:
            await worker.close()
        await self.compiler.close()
        warming = getattr(self, "_warming", None)
        if warming is not None:
            warming.cancel()  # the forkserver it starts outlives it; the task must not outlive the loop
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._background.clear()
        await self.store.close()


async def follow_activations(runtime: Runtime, tick: float = 0.5) -> None:
    """Bundles published or promoted through another replica become active here within a tick."""
    from gavel.app.ports import StoreUnavailable

    while True:
        await asyncio.sleep(tick)
        try:
            latest = await runtime.store.read(lambda uow: uow.bundles.latest_everywhere())
        except StoreUnavailable:
            continue
        for activation in latest:
            if rules_dir.follows_directory(activation):
                continue  # decided by this replica's own --rules directory
            info = runtime.policies.info(activation.tenant_id, activation.environment)
            if info.published and info.bundle_hash == activation.bundle_hash and info.activated_at is not None \
                    and info.activated_at >= activation.activated_at:
                continue
            try:
                await asyncio.to_thread(_activate_stored, runtime, activation)
            except Exception as exc:  # a bundle that no longer compiles must not stop the loop
                log.error("cannot activate %s for %s/%s: %s", activation.bundle_hash, activation.tenant_id,
                          activation.environment, exc)


def _activate_stored(runtime: Runtime, activation) -> None:
    from gavel.bundles import read_archive

    stored = runtime.store.run_sync(lambda uow: uow.bundles.get(activation.tenant_id, activation.bundle_hash))
    engine = Engine.from_bundle(read_archive(stored.archive))
    runtime.policies.publish(activation.tenant_id, activation.environment, engine, activation.version,
                             activation.activated_at)


async def watch_rules(runtime: Runtime, tick: float = 0.5) -> None:
    """`--watch`: recompile the rules directory when it changes (off the event loop, within the
    compile time limit); swap it in whole, or keep the running bundle and log the diagnostics
    when the edit does not compile."""
    from gavel.api import PolicyError
    from gavel.app.errors import CompileTimeExceeded
    from gavel.app.ports import StoreUnavailable
    from gavel.bundles import bundle_from_directory, write_archive
    from gavel.sources import SourceError

    current = runtime.policies.initial.bundle_hash
    refused: str | None = None
    while True:
        await asyncio.sleep(tick)
        try:
            bundle = await asyncio.to_thread(bundle_from_directory, runtime.settings.rules, "rules-dir",
                                             runtime.settings.max_rules_file_bytes)
        except (SourceError, OSError) as exc:
            log.warning("--watch: cannot read %s: %s", runtime.settings.rules, exc)
            continue
        if bundle.bundle_hash in (current, refused):
            continue
        try:
            engine = await runtime.compiler.compile(None, bundle.files)
        except (PolicyError, CompileTimeExceeded) as exc:
            refused = bundle.bundle_hash
            log.error("--watch: %s does not compile; still serving %s\n%s", runtime.settings.rules, current, exc)
            continue
        current, refused = engine.bundle_hash, None
        archive = await asyncio.to_thread(write_archive, bundle)
        runtime.policies.replace_initial(engine, f"rules-dir:{engine.bundle_hash[7:19]}", utc_now(), archive,
                                         bundle.manifest)
        log.info("--watch: now serving %s", engine.bundle_hash)
        try:
            await runtime.store.write(lambda uow: rules_dir.record_everywhere(
                uow, runtime.policies.initial, utc_now(), os.urandom))
        except StoreUnavailable:  # recorded for each environment before its next activation anyway
            log.warning("--watch: could not record the new rules directory in the bundle history")


def open_store(settings: Settings) -> SqlStore:
    """Migrate the schema (creating it on an empty database) and open the store."""
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    migrate(settings.store_url)
    return SqlStore(settings.store_url, sqlite_synchronous=settings.sqlite_synchronous)


def publisher_keys(settings: Settings) -> dict:
    """Trusted bundle publishers (kid → public key) from the `--bundle-keys` JWKS file."""
    if settings.bundle_keys is None:
        return {}
    import json

    from gavel.crypto.keys import PublicKey

    doc = json.loads(settings.bundle_keys.read_text(encoding="utf-8"))
    keys = [PublicKey.from_jwk(k) for k in doc.get("keys", [doc])]
    return {k.kid: k for k in keys}


def load_published(store: SqlStore, policies: PolicyRegistry) -> None:
    """Make every tenant + environment's last activated bundle active again (after a restart)."""
    from gavel.api import PolicyError
    from gavel.bundles import BundleError, read_archive

    def unit(uow):
        return [(a, uow.bundles.get(a.tenant_id, a.bundle_hash)) for a in uow.bundles.latest_everywhere()
                if not rules_dir.follows_directory(a)]  # the others are decided by the --rules directory

    for activation, stored in store.run_sync(unit):
        try:
            engine = Engine.from_bundle(read_archive(stored.archive))
        except (BundleError, PolicyError) as exc:  # stored bundles compiled when published; say so loudly
            log.error("bundle %s of %s/%s no longer compiles: %s", activation.bundle_hash, activation.tenant_id,
                      activation.environment, exc)
            continue
        policies.publish(activation.tenant_id, activation.environment, engine, activation.version,
                         activation.activated_at)


def record_rules_dir(store: SqlStore, policies: PolicyRegistry, at: datetime, attempts: int = 5) -> None:
    """Record the --rules directory as active for every tenant + environment that follows it.

    Replicas starting together race for the same history rows: the loser runs again and sees
    the winner's. Should it keep losing, the server starts anyway; each environment records the
    directory before its next activation."""
    from gavel.app.ports import RetryUnit

    for _ in range(attempts):
        try:
            store.run_sync(lambda uow: rules_dir.record_everywhere(uow, policies.initial, at, os.urandom))
            return
        except RetryUnit:
            continue
    log.error("could not record the rules directory %s in the bundle history (other replicas kept writing)",
              policies.initial.bundle_hash)


def build(settings: Settings) -> Runtime:
    """Wire everything. Raises PolicyError for broken rules, before anything listens."""
    from gavel.bundles import bundle_from_directory, write_archive

    directory = bundle_from_directory(settings.rules, max_file_bytes=settings.max_rules_file_bytes)
    engine = Engine.from_bundle(directory)
    for w in engine.compilation.warnings:  # checker warnings; `gavel check` also runs the analysis
        log.warning("%s", w.headline())
    signing = FileSigningKeys(settings.data_dir, path=settings.signing_keys_file)
    signing.ensure()
    store = open_store(settings)
    started = utc_now()
    policies = PolicyRegistry(engine, version=f"rules-dir:{engine.bundle_hash[7:19]}", activated_at=started,
                              archive=write_archive(directory), manifest=directory.manifest)
    load_published(store, policies)
    record_rules_dir(store, policies, started)
    compiler = CompileWorkers(settings.compile_timeout_seconds, settings.max_compiles_per_tenant,
                              settings.compile_workers, settings.max_rules_file_bytes)
    deps = Deps(
        store=store, policies=policies, signing=signing, compiler=compiler,
        token_settings=TokenSettings(settings.token_issuer, settings.token_audience,
                                     timedelta(seconds=settings.token_ttl_seconds)),
        clock=utc_now, random_bytes=os.urandom, sod_conflicts=settings.sod_conflicts,
        require_signed_bundles=settings.require_signed_bundles, publisher_keys=publisher_keys(settings),
    )
    limiter = FixedWindowLimiter(settings.rate_limit_per_minute, time.monotonic)  # shared by gRPC and REST
    egress = Egress(allow_private=settings.webhook_allow_private)  # the SSRF guard for webhook targets
    return Runtime(settings, store, signing, policies, Application(deps), limiter, egress, compiler)
