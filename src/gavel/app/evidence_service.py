"""EvidenceService use cases: packs, checkpoints, proofs, ledger verification, event streams
and exports. Mixed into `Application`, which provides `deps`, `merkle` and `events`."""

from __future__ import annotations

from gavel.app.errors import FieldViolation, InvalidRequest
from gavel.app.keys import ensure_not_revoked
from gavel.app.principal import Principal

# Decisions are whole records (request, facts, result with its explain: up to MiBs each); an export
# reads them a few at a time and keeps only the page's text while its client is slow to read.
EXPORT_PAGE = 25


class EvidenceMixin:
    """EvidenceService use cases (mixed into Application)."""

    async def evidence_pack(self, p: Principal, decision_id: str) -> str:
        from gavel.app.packs import build_pack

        now = self.deps.clock()
        keys = self.deps.signing.keyset()
        policies = self.deps.policies

        def engine_for(uow, bundle_hash: str):
            for info in (policies.info(p.tenant_id, p.environment), policies.initial):
                if info.bundle_hash == bundle_hash:
                    return info.engine
            stored = uow.bundles.get(p.tenant_id, bundle_hash)
            if stored is None:
                return None
            from gavel.api import Engine
            from gavel.bundles import read_archive

            return Engine.from_bundle(read_archive(stored.archive))  # compiled once, then cached by hash

        return await self.deps.store.write(lambda uow: build_pack(
            uow, self.merkle, keys, self.deps.token_settings.issuer, p.tenant_id, p.environment, decision_id,
            engine_for, now))

    async def checkpoint(self, p: Principal):
        from gavel.app.evidence import current_checkpoint

        now = self.deps.clock()
        keys = self.deps.signing.keyset()
        return await self.deps.store.write(lambda uow: current_checkpoint(
            uow, self.merkle, keys, self.deps.token_settings.issuer, p.tenant_id, p.environment, now))

    async def inclusion_proof(self, p: Principal, sequence: int, tree_size: int) -> dict:
        from gavel.app.evidence import inclusion_proof

        return await self.deps.store.read(lambda uow: inclusion_proof(
            uow, self.merkle, p.tenant_id, p.environment, sequence, tree_size))

    async def consistency_proof(self, p: Principal, first: int, second: int) -> dict:
        from gavel.app.evidence import consistency_proof

        return await self.deps.store.read(lambda uow: consistency_proof(
            uow, self.merkle, p.tenant_id, p.environment, first, second))

    async def verify_ledger(self, p: Principal) -> dict:
        from gavel.app.evidence import verify_ledger

        now = self.deps.clock()
        keys = self.deps.signing.keyset()
        return await self.deps.store.read(lambda uow: verify_ledger(uow, keys, p.tenant_id, p.environment, now))

    async def stream_events(self, p: Principal, from_sequence: int, idle_poll: float = 0.5):
        """The ledger from `from_sequence`, then live; ends when the caller stops iterating."""
        sequence = max(1, from_sequence)
        while True:
            def unit(uow, s=sequence):
                ensure_not_revoked(uow, p)  # a key revoked while its stream is open ends the stream
                return uow.ledger.events(p.tenant_id, p.environment, s, 500)

            batch = await self.deps.store.read(unit)
            for event in batch:
                yield event
            if batch:
                sequence = batch[-1].sequence + 1
            else:
                await self.events.wait(idle_poll)

    async def export(self, p: Principal, fmt: str, view: str, start, end):
        """Text pieces of an export (see gavel.app.export), read page by page."""
        from gavel.app.export import VIEWS, encode

        if view not in VIEWS:
            raise InvalidRequest(f"unknown view `{view}`; use one of {', '.join(VIEWS)}",
                                 (FieldViolation("view", "generic, sox, eu_ai_act or rbi"),))
        if start is not None and end is not None and end <= start:
            raise InvalidRequest("end_time must be after start_time", (FieldViolation("end_time", "≤ start_time"),))
        make_row = VIEWS[view]

        def unit(uow, after):
            """A few decisions as rows of the view, and the cursor after them: the records stay here."""
            found = uow.decisions.between(p.tenant_id, p.environment, start, end, after, EXPORT_PAGE)
            rows = [make_row(d, uow.executions.get(p.tenant_id, p.environment, d.decision_id)) for d in found]
            return rows, ((found[-1].created_at, found[-1].decision_id) if found else None)

        first = True
        after = None
        while True:
            rows, after = await self.deps.store.read(lambda uow, after=after: unit(uow, after))
            if not rows:
                break
            pieces = list(encode(rows, fmt, view))
            del rows
            if fmt == "csv" and not first:
                pieces[0] = pieces[0].split("\r\n", 1)[1]  # the header only once
            first = False
            text = "".join(pieces)
            del pieces
            yield text
            del text
        if first:
            yield "".join(encode([], fmt, view))
