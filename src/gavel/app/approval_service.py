"""ApprovalService and WaitDecision use cases (mixed into `Application`)."""

from __future__ import annotations

from dataclasses import replace

from gavel.app import approvals
from gavel.app.errors import FieldViolation, Forbidden, InvalidRequest, NotFound, SodViolation, Unauthenticated
from gavel.app.events import FEED_BATCH, Batch, ChainFeeds, Entry
from gavel.app.idempotency import once
from gavel.app.keys import ensure_not_revoked
from gavel.app.principal import Principal
from gavel.app.verdicts import Finalizer

MAX_PAGE = 1000


def task_dict(t) -> dict:
    return {
        "approval_id": t.approval_id, "decision_id": t.decision_id, "status": t.status, "role": t.role,
        "original_role": t.original_role, "approvals_required": t.approvals_required,
        "approvals_received": len(t.approvers), "approvers": list(t.approvers), "due_at": t.due_at.isoformat(),
        "on_timeout": t.on_timeout, "escalate_to": t.escalate_to, "agent_id": t.agent_id, "action": t.action,
        "modified_action": t.modified_action, "reason_code": t.reason_code, "requester_id": t.requester_id,
        "human_sponsor_id": t.human_sponsor_id, "steps": list(t.steps), "created_at": t.created_at.isoformat(),
        "updated_at": t.updated_at.isoformat(),
    }


class ApprovalMixin:
    def _finalizer(self) -> Finalizer:
        return Finalizer(self.deps.signing, self.deps.token_settings, self.deps.random_bytes)

    def _visible_roles(self, p: Principal, role: str) -> list[str] | None:
        """The roles whose tasks this key may see (None: all of its tenant and environment)."""
        if p.is_admin or "auditor" in p.roles:
            return [role] if role else None
        mine = sorted(p.approver_roles)
        if role:
            if role not in mine:
                raise Forbidden(f"this key does not hold the role `{role}`")
            return [role]
        return mine

    def _decide_modified(self, p: Principal):
        engine, _ = self.deps.policies.active(p.tenant_id, p.environment)

        def run(decision, action: dict):
            """(outcome, reason code, route) of the rules for the decision's request with `action`."""
            request = dict(decision.request)
            request["action"] = {k: v for k, v in action.items() if v not in ("", None)}
            d = engine.decide_at(request, decision.facts, self.deps.clock())
            return d.outcome, d.reason_code, d.route

        return run

    async def resolve_approval(self, p: Principal, r: approvals.Resolution) -> dict:
        now = self.deps.clock()
        conflicts = self.deps.sod_conflicts
        finalize = self._finalizer()
        decide_modified = self._decide_modified(p)

        def unit(uow):
            def run() -> dict:
                outcome = approvals.resolve(uow, p, r, now, self.deps.random_bytes, conflicts, decide_modified,
                                            finalize)
                return {"task": task_dict(outcome.approval), "sod_refusal": outcome.sod_refusal}

            fields = {"approval_id": r.approval_id, "action": r.action, "note": r.note,
                      "modified_action": r.modified_action, "escalate_to": r.escalate_to, "by": p.principal}
            return once(uow, tenant_id=p.tenant_id, environment=p.environment,
                        operation="ApprovalService.ResolveApproval", key=r.idempotency_key, fields=fields, now=now,
                        run=run, replay=lambda resp: resp)

        result = await self._write(p, unit)
        if result["sod_refusal"]:
            raise SodViolation(result["sod_refusal"])
        return result["task"]

    async def list_approvals(self, p: Principal, status: str | None, role: str, agent_id: str, page_size: int,
                             page_token: str) -> dict:
        if page_size < 0:
            raise InvalidRequest("page_size must not be negative", (FieldViolation("page_size", "< 0"),))
        roles = self._visible_roles(p, role)
        limit = min(page_size or 50, MAX_PAGE)
        rows = await self.deps.store.read(lambda uow: uow.approvals.list(
            p.tenant_id, p.environment, status, roles, agent_id or None, limit + 1, page_token or None))
        more = len(rows) > limit
        rows = rows[:limit]
        return {"approvals": [task_dict(t) for t in rows],
                "next_page_token": rows[-1].approval_id if more and rows else ""}

    def _feeds(self) -> ChainFeeds:
        """The shared per-chain readers behind WatchApprovals and WaitDecision (see app/events.py)."""
        feeds = self.__dict__.get("_chain_feeds")
        if feeds is None:
            feeds = self._chain_feeds = ChainFeeds(self.events, self._fetch_chain)
        return feeds

    async def _fetch_chain(self, chain: tuple[str, str], after: int | None, key_ids: list[str]) -> Batch:
        tenant_id, environment = chain

        def read(uow) -> Batch:
            if after is None:
                head = uow.ledger.head(tenant_id, environment, lock=False)
                return Batch(head[0] if head else 0)
            events = uow.ledger.events(tenant_id, environment, after + 1, FEED_BATCH)
            entries = [Entry(e.sequence, e.subject, uow.approvals.for_decision(tenant_id, environment, e.subject)
                             if e.type.startswith("approval.") else None) for e in events]
            # after the events: a key revoked before the last of them is seen revoked
            revoked = set()
            for key_id in key_ids:
                record = uow.keys.get(key_id)
                if record is None or record.revoked_at is not None:
                    revoked.add(key_id)
            return Batch(events[-1].sequence if events else after, entries, revoked, len(events) == FEED_BATCH)

        return await self.deps.store.read(read)

    async def watch_approvals(self, p: Principal, role: str, cursor: str, idle_poll: float = 0.5):
        """(task dict, cursor, snapshot?) — pending tasks first, then every change after the cursor.

        Idle watchers cost no store reads of their own: the chain's feed reads what is new once
        for all of them (and checks their keys); a watcher reads the store itself only to catch up
        from a cursor older than the feed's window."""
        roles = self._visible_roles(p, role)
        visible = (lambda t: True) if roles is None else (lambda t: t.role in roles or t.original_role in roles)
        if cursor:
            if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= 18):  # `²` is a digit too
                raise InvalidRequest("cursor must come from a previous ApprovalUpdate",
                                     (FieldViolation("cursor", "malformed"),))
            position = int(cursor)
        sub = self._feeds().subscribe((p.tenant_id, p.environment), p.key_id)
        try:
            if not cursor:
                def snapshot(uow):
                    ensure_not_revoked(uow, p)
                    head = uow.ledger.head(p.tenant_id, p.environment, lock=False)
                    tasks = uow.approvals.list(p.tenant_id, p.environment, "pending", roles, None, 10_000, None)
                    return (head[0] if head else 0), tasks

                position, tasks = await self.deps.store.read(snapshot)
                for t in tasks:
                    yield task_dict(t), str(position), True
            while True:
                sub.check()
                if sub.revoked:  # a key revoked while its stream is open ends the stream
                    raise Unauthenticated("the API key was revoked")
                covered = sub.since(position)
                if covered is not None:
                    found, position_after = covered
                    found = [(e.sequence, e.item) for e in found]
                    if not found and position_after == position:
                        await sub.wait(idle_poll)
                else:  # behind the feed (or it has not read yet): read the store
                    def changes(uow, after=position):
                        ensure_not_revoked(uow, p)
                        events = uow.ledger.events(p.tenant_id, p.environment, after + 1, FEED_BATCH)
                        out = []
                        for e in events:
                            if e.type.startswith("approval."):
                                task = uow.approvals.for_decision(p.tenant_id, p.environment, e.subject)
                                out.append((e.sequence, task))
                        return (events[-1].sequence if events else after), out

                    position_after, found = await self.deps.store.read(changes)
                    if position_after == position:
                        await sub.wait(idle_poll)
                for sequence, task in found:
                    if task is not None and visible(task):
                        yield task_dict(task), str(sequence), False
                position = position_after
        finally:
            sub.close()

    async def wait_decision(self, p: Principal, decision_id: str, idle_poll: float = 0.5):
        """The decision now, then every change, until it is final. Between changes it reads the
        store only when the chain's feed saw an event about this decision (or cannot tell)."""
        last = None

        def current(uow):
            ensure_not_revoked(uow, p)  # a key revoked while its stream is open ends the stream
            return uow.decisions.get(p.tenant_id, p.environment, decision_id)

        sub = self._feeds().subscribe((p.tenant_id, p.environment), p.key_id, topic=decision_id)
        try:
            while True:
                mark = sub.mark()
                record = await self.deps.store.read(current)
                if record is None:
                    raise NotFound(f"no decision `{decision_id}`")
                p.check_acts_for(record.agent_id)
                if record.result != last:
                    last = record.result
                    yield record.result
                if approvals.decision_is_final(record.result):
                    return
                while True:
                    sub.check()
                    if sub.revoked:
                        raise Unauthenticated("the API key was revoked")
                    if sub.touched_since(mark):
                        break
                    await sub.wait(idle_poll)
        finally:
            sub.close()

    async def expire_due(self) -> int:
        now = self.deps.clock()
        finalize = self._finalizer()

        def unit(uow):
            due = sorted(uow.approvals.due(now, 200), key=lambda task: (task.tenant_id, task.environment))
            for task in due:  # chains in ascending order, as every batch locks them (see Store.write)
                approvals.apply_timeout(uow, task, now, self.deps.random_bytes, finalize)
            return len(due)

        count = await self.deps.store.write(unit)
        if count:
            self.events.notify()
        return count


__all__ = ["ApprovalMixin", "replace", "task_dict"]
