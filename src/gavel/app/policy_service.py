"""PolicyService use cases (mixed into `Application`): validate, publish, promote, roll back,
history, explain (a dry run) and replay (a candidate against recorded decisions)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from gavel.app import ledger, rules_dir
from gavel.app.decide import _result
from gavel.app.errors import FieldViolation, Forbidden, InvalidRequest, InvalidTransition, NotFound
from gavel.app.idempotency import once
from gavel.app.model import StoredBundle
from gavel.app.principal import Principal
from gavel.app.requests import DecideInput, validate
from gavel.app.verdict import judge, rejudge
from gavel.ledger.canonical import canonical_json

log = logging.getLogger("gavel.policies")
MAX_REPLAY_PAGE = 1000
YIELD_EVERY_SECONDS = 0.005  # a replay hands the event loop back this often while it evaluates
MAX_REPLAY_SINCE = timedelta(days=3653)  # 10 years; further back overflows datetime


def diagnostic_dicts(diags) -> list[dict]:
    return [d.to_dict() for d in diags]


def _bundle_error(message: str, diags=()) -> InvalidRequest:
    violations = tuple(FieldViolation(f"bundle/{d.span.file}:{d.span.line}:{d.span.column}",
                                      f"{d.code}: {d.message}") for d in diags if d.is_error)
    return InvalidRequest(message, violations or (FieldViolation("bundle", message),))


class PolicyMixin:
    # ---- compiling bundles (the edge between bytes and engines)

    async def _engine_of(self, p: Principal, archive: bytes, server_rules: bool = False):
        """(bundle, engine) for an archive, or a typed refusal. Unpacking and compiling run off
        the event loop (`deps.compiler`), within the compile time limit and the tenant's share.
        `server_rules`: the server's own --rules directory, which no publisher signs."""
        from gavel.api import PolicyError
        from gavel.bundles import BundleError, read_archive, signature_status

        try:
            bundle = await asyncio.to_thread(read_archive, archive)
        except BundleError as exc:
            raise InvalidRequest(f"not a valid bundle: {exc}", (FieldViolation("bundle", str(exc)),)) from None
        status = signature_status(bundle, self._publisher_key)
        if status in ("invalid", "unknown_key") or (self.deps.require_signed_bundles and status != "valid"
                                                    and not server_rules):
            raise InvalidRequest(f"bundle signature refused: {status}",
                                 (FieldViolation("bundle", f"signature {status}"),))
        try:
            engine = await self.deps.compiler.compile(p.tenant_id, bundle.files)
        except PolicyError as exc:
            raise _bundle_error(f"the bundle does not compile:\n{exc}", exc.diagnostics) from None
        return bundle, engine

    def _publisher_key(self, kid: str):
        return self.deps.publisher_keys.get(kid)

    def _activate(self, p: Principal, environment: str, bundle, engine, action: str, archive: bytes | None,
                  now: datetime, key: str = "") -> dict:
        version = bundle.manifest.get("version", "")

        def unit(uow):
            def run() -> dict:
                # an environment that followed the --rules directory until now: record that first
                rules_dir.record(uow, p.tenant_id, environment, self.deps.policies.initial, now,
                                 self.deps.random_bytes)
                if archive is not None:
                    uow.bundles.put(StoredBundle(p.tenant_id, engine.bundle_hash, archive, bundle.manifest, now))
                act = uow.bundles.activate(p.tenant_id, environment, engine.bundle_hash, version, now, action,
                                           p.principal)
                ledger.record(uow, p.tenant_id, environment, type="bundle.activated", subject=engine.bundle_hash,
                              at=now, random_bytes=self.deps.random_bytes,
                              data={"bundle_hash": engine.bundle_hash, "version": version, "action": action,
                                    "by": p.principal, "sequence": act.sequence})
                return {"bundle_hash": engine.bundle_hash, "version": version, "activated_at": now.isoformat(),
                        "environment": environment,
                        "diagnostics": diagnostic_dicts(engine.compilation.warnings)}

            return once(uow, tenant_id=p.tenant_id, environment=p.environment, operation=f"PolicyService.{action}",
                        key=key, fields={"bundle_hash": engine.bundle_hash, "environment": environment}, now=now,
                        run=run, replay=lambda r: r)

        return unit

    # ---- the RPCs

    async def validate_rules(self, p: Principal, files: dict[str, str]) -> dict:
        if not files:
            raise InvalidRequest("files: give at least one .rules file", (FieldViolation("files", "empty"),))
        if sum(len(t) for t in files.values()) > 16 * 1024 * 1024:
            raise InvalidRequest("files: more than 16 MiB of text", (FieldViolation("files", "too large"),))
        report = await self.deps.compiler.check(p.tenant_id, files, analysis=True)
        return {"ok": report.ok, "diagnostics": diagnostic_dicts(report.diagnostics)}

    async def publish_bundle(self, p: Principal, archive: bytes, key: str) -> dict:
        bundle, engine = await self._engine_of(p, archive)
        now = self.deps.clock()
        result = await self._write(p, self._activate(p, p.environment, bundle, engine, "publish", archive, now, key))
        self.deps.policies.publish(p.tenant_id, p.environment, engine, result["version"], now)
        return result

    async def active_bundle(self, p: Principal) -> dict:
        info = self.deps.policies.info(p.tenant_id, p.environment)
        return {"bundle_hash": info.bundle_hash, "version": info.version, "environment": p.environment,
                "activated_at": info.activated_at.isoformat() if info.activated_at else ""}

    async def _stored(self, p: Principal, bundle_hash: str, environment: str):
        """(bundle, engine, archive to store under the tenant or None, whether `environment` ran it)."""
        def unit(uow):
            ran = rules_dir.stored_if_ran(uow, p.tenant_id, environment, bundle_hash)
            return ran or uow.bundles.get(p.tenant_id, bundle_hash), ran is not None

        stored, ran = await self.deps.store.read(unit)
        if stored is None:
            raise NotFound(f"no bundle `{bundle_hash}`")
        directory = stored.tenant_id == rules_dir.SHARED_TENANT
        bundle, engine = await self._engine_of(p, stored.archive, server_rules=directory)
        # a --rules directory bundle becomes the tenant's own once it is pinned by a rollback or promote
        return bundle, engine, stored.archive if directory else None, ran

    async def promote_bundle(self, p: Principal, bundle_hash: str, key: str) -> dict:
        if p.environment != "live" or not p.is_admin:
            raise Forbidden("promotion needs an admin key of the live environment")
        bundle, engine, archive, ran_in_test = await self._stored(p, bundle_hash, "test")
        if not ran_in_test:
            raise InvalidTransition(f"bundle `{bundle_hash}` was never published to TEST")
        now = self.deps.clock()
        result = await self._write(p, self._activate(p, "live", bundle, engine, "promote", archive, now, key),
                                   own_chain=False)
        self.deps.policies.publish(p.tenant_id, "live", engine, result["version"], now)
        return result

    async def rollback_bundle(self, p: Principal, bundle_hash: str, key: str) -> dict:
        bundle, engine, archive, ran = await self._stored(p, bundle_hash, p.environment)
        if not ran:
            raise InvalidTransition(f"bundle `{bundle_hash}` never ran in {p.environment}; publish or promote it")
        now = self.deps.clock()
        result = await self._write(p, self._activate(p, p.environment, bundle, engine, "rollback", archive, now,
                                                     key))
        self.deps.policies.publish(p.tenant_id, p.environment, engine, result["version"], now)
        return result

    async def bundle_history(self, p: Principal, page_size: int, page_token: str) -> dict:
        if page_size < 0:
            raise InvalidRequest("page_size must not be negative", (FieldViolation("page_size", "< 0"),))
        if page_token and not (page_token.isascii() and page_token.isdigit() and len(page_token) <= 18):
            # `²` is a digit too, and 19+ digits overflow the database's integer
            raise InvalidRequest("page_token is malformed", (FieldViolation("page_token", "malformed"),))
        limit = min(page_size or 50, 1000)
        rows = await self.deps.store.read(lambda uow: uow.bundles.history(
            p.tenant_id, p.environment, limit + 1, int(page_token) if page_token else None))
        more = len(rows) > limit
        rows = rows[:limit]
        return {"activations": [{"bundle_hash": a.bundle_hash, "version": a.version,
                                 "activated_at": a.activated_at.isoformat(), "action": a.action, "by": a.by}
                                for a in rows],
                "next_page_token": str(rows[-1].sequence) if more and rows else ""}

    async def get_bundle(self, p: Principal, bundle_hash: str) -> dict:
        """The stored archive of a bundle this environment ran (or runs now), with its manifest."""
        stored = await self.deps.store.read(
            lambda uow: rules_dir.stored_if_ran(uow, p.tenant_id, p.environment, bundle_hash))
        if stored is not None:
            archive, manifest = stored.archive, stored.manifest
        else:
            current = self.deps.policies.info(p.tenant_id, p.environment)
            if current.published or current.bundle_hash != bundle_hash or current.archive is None:
                raise NotFound(f"no bundle `{bundle_hash}`")
            archive, manifest = current.archive, current.manifest or {}  # followed, not recorded yet
        return {"bundle_hash": bundle_hash, "version": manifest.get("version") or "", "archive": archive,
                "manifest_json": canonical_json(manifest)}

    async def explain(self, p: Principal, inp: DecideInput, archive: bytes) -> dict:
        """A dry run: no record, no token, no reservation."""
        validate(inp)
        if archive:
            _, engine = await self._engine_of(p, archive)
            version = "candidate"
        else:
            engine, version = self.deps.policies.active(p.tenant_id, p.environment)
        now = self.deps.clock()
        judged = await self.deps.store.read(lambda uow: judge(uow, p, inp, engine, now))
        v = judged.verdict
        return _result("", judged.decision, v, warnings=[*v.warnings, "dry run: nothing was recorded"], token="",
                       agent_id=inp.agent_id, version=version, now=now, correlation_id=inp.correlation_id,
                       approval=None)

    async def replay(self, p: Principal, archive: bytes, since: timedelta) -> AsyncIterator[dict]:
        """Changed decisions (dicts), then a final {"summary": …}."""
        if since <= timedelta(0):
            raise InvalidRequest("since must be a positive duration", (FieldViolation("since", "≤ 0"),))
        if since > MAX_REPLAY_SINCE:
            raise InvalidRequest("since must be at most 10 years", (FieldViolation("since", "> 10 years"),))
        _, engine = await self._engine_of(p, archive)
        now = self.deps.clock()
        start = now - since
        evaluated = changed = 0
        transitions: dict[str, int] = {}
        after = None
        yield_at = time.monotonic() + YIELD_EVERY_SECONDS
        while True:
            page = await self.deps.store.read(lambda uow, after=after: uow.decisions.between(
                p.tenant_id, p.environment, start, now, after, MAX_REPLAY_PAGE))
            if not page:
                break
            for record in page:
                if time.monotonic() > yield_at:  # a large candidate decides slowly: let other calls run
                    await asyncio.sleep(0)
                    yield_at = time.monotonic() + YIELD_EVERY_SECONDS
                evaluated += 1
                new = engine.decide_at(record.request, record.facts, record.created_at)
                v = rejudge(record, new)
                if v.outcome == record.outcome and v.reason_code == record.reason_code:
                    continue
                changed += 1
                key = f"{record.outcome}→{v.outcome}"
                transitions[key] = transitions.get(key, 0) + 1
                yield {"decision_id": record.decision_id, "old_outcome": record.outcome, "new_outcome": v.outcome,
                       "old_reason_code": record.reason_code, "new_reason_code": v.reason_code,
                       "old_explain_json": record.result["explain"]["json"],
                       "new_explain_json": _result("", new, v, warnings=[], token="", agent_id=record.agent_id,
                                                   version="candidate", now=record.created_at,
                                                   correlation_id="", approval=None)["explain"]["json"],
                       "decided_at": record.created_at.isoformat()}
            after = (page[-1].created_at, page[-1].decision_id)
        yield {"summary": {"evaluated": evaluated, "changed": changed, "transitions": transitions,
                           "bundle_hash": engine.bundle_hash}}
