"""gRPC servicers: convert the request, call the use case, convert the result. Nothing else."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

from gavel.adapters.grpc import convert
from gavel.adapters.grpc.interceptors import StreamDecisionsExceeded, current_principal
from gavel.app.errors import FieldViolation, InvalidRequest, MissingField
from gavel.app.service import Application
from gavel.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    agent_pb2,
    agent_pb2_grpc,
    approval_pb2,
    approval_pb2_grpc,
    decision_pb2,
    decision_pb2_grpc,
    evidence_pb2,
    evidence_pb2_grpc,
    policy_pb2,
    policy_pb2_grpc,
)

STREAM_WINDOW = 64  # decisions per DecideStream decided but not yet sent to the client
EXPORT_CHUNK = 64 * 1024


class DecisionServicer(decision_pb2_grpc.DecisionServiceServicer):
    def __init__(self, app: Application, max_decisions_per_stream: int = 0):
        self.app = app
        self.max_decisions_per_stream = max_decisions_per_stream  # 0: no limit

    async def Decide(self, request, context):
        return convert.decision(await self.app.decide(current_principal.get(), convert.decide_input(request)))

    async def DecideStream(self, request_iterator, context):
        """Up to STREAM_WINDOW decisions run at once. A slot frees when its answer has been
        written to the stream, not when it is decided, so a client that stops reading stops the
        stream after a window's worth: nothing piles up in the server. Past the per-stream limit,
        the stream answers every decision it accepted, then ends RESOURCE_EXHAUSTED."""
        principal = current_principal.get()
        limit = self.max_decisions_per_stream
        results: asyncio.Queue = asyncio.Queue()
        window = asyncio.Semaphore(STREAM_WINDOW)
        pending: set[asyncio.Task] = set()

        async def one(req) -> None:
            try:
                result = await self.app.decide(principal, convert.decide_input(req))
                await results.put(convert.decision(result))
            except BaseException as exc:  # delivered to the stream, which ends with its status
                await results.put(exc)

        async def read() -> None:
            accepted, last = 0, None
            try:
                async for req in request_iterator:
                    if limit and accepted >= limit:
                        last = StreamDecisionsExceeded(
                            f"this stream has taken {limit} decisions, the most one stream accepts; every one of "
                            "them was answered: open a new stream for the rest", metadata={"limit": limit})
                        break
                    accepted += 1
                    await window.acquire()
                    task = asyncio.create_task(one(req))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
            except Exception as exc:  # reading the requests failed: the stream ends with it
                last = exc
            if pending:
                await asyncio.gather(*list(pending), return_exceptions=True)
            await results.put(last)

        reader = asyncio.create_task(read())
        try:
            while True:
                item = await results.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
                window.release()
            await reader
        finally:
            reader.cancel()
            for task in list(pending):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def WaitDecision(self, request, context):
        _required("decision_id", request.decision_id)
        async for result in self.app.wait_decision(current_principal.get(), request.decision_id):
            yield convert.decision(result)

    async def GetDecision(self, request, context):
        _required("decision_id", request.decision_id)
        return convert.decision(await self.app.get_decision(current_principal.get(), request.decision_id))

    async def ReportExecution(self, request, context):
        report = await self.app.report_execution(current_principal.get(), convert.execution_input(request))
        return convert.execution_report(report)

    async def ConsumeToken(self, request, context):
        _required("token", request.token)
        r = await self.app.consume_token(current_principal.get(), request.token, request.args_hash,
                                         request.accept_unenforced)
        return convert.consumed(r)

    async def RevokeToken(self, request, context):
        target = request.WhichOneof("target")
        if target is None or not getattr(request, target):
            raise MissingField("token or jti: required", (FieldViolation("token", "give the token or its jti"),))
        r = await self.app.revoke_token(current_principal.get(), token=request.token, jti=request.jti)
        return decision_pb2.RevokeTokenResponse(**r)


class ApprovalServicer(approval_pb2_grpc.ApprovalServiceServicer):
    def __init__(self, app: Application):
        self.app = app

    async def ListApprovals(self, request, context):
        status = None
        if request.status:
            if request.status not in convert.APPROVAL_STATUS_NAMES:
                raise InvalidRequest("status: unknown enum value", (FieldViolation("status", "unknown value"),))
            status = convert.APPROVAL_STATUS_NAMES[request.status]
        page = await self.app.list_approvals(current_principal.get(), status, request.role, request.agent_id,
                                             request.page_size, request.page_token)
        return approval_pb2.ListApprovalsResponse(approvals=[convert.approval(t) for t in page["approvals"]],
                                                  next_page_token=page["next_page_token"])

    async def WatchApprovals(self, request, context):
        async for task, cursor, snapshot in self.app.watch_approvals(current_principal.get(), request.role,
                                                                     request.cursor):
            yield approval_pb2.ApprovalUpdate(approval=convert.approval(task), cursor=cursor, snapshot=snapshot)

    async def ResolveApproval(self, request, context):
        task = await self.app.resolve_approval(current_principal.get(), convert.resolution(request))
        return convert.approval(task)


class PolicyServicer(policy_pb2_grpc.PolicyServiceServicer):
    def __init__(self, app: Application):
        self.app = app

    async def ValidateRules(self, request, context):
        r = await self.app.validate_rules(current_principal.get(), dict(request.files))
        return policy_pb2.ValidateRulesResponse(ok=r["ok"],
                                                diagnostics=[convert.diagnostic(d) for d in r["diagnostics"]])

    async def PublishBundle(self, request, context):
        _required("bundle", request.bundle)
        r = await self.app.publish_bundle(current_principal.get(), request.bundle, request.idempotency_key)
        out = policy_pb2.PublishBundleResponse(bundle_hash=r["bundle_hash"], version=r["version"],
                                               diagnostics=[convert.diagnostic(d) for d in r["diagnostics"]])
        out.activated_at.FromDatetime(datetime.fromisoformat(r["activated_at"]))
        return out

    async def GetActiveBundle(self, request, context):
        return convert.active_bundle(await self.app.active_bundle(current_principal.get()))

    async def PromoteBundle(self, request, context):
        _required("bundle_hash", request.bundle_hash)
        return convert.active_bundle(await self.app.promote_bundle(current_principal.get(), request.bundle_hash,
                                                                   request.idempotency_key))

    async def RollbackBundle(self, request, context):
        _required("bundle_hash", request.bundle_hash)
        return convert.active_bundle(await self.app.rollback_bundle(current_principal.get(), request.bundle_hash,
                                                                    request.idempotency_key))

    async def ListBundleHistory(self, request, context):
        page = await self.app.bundle_history(current_principal.get(), request.page_size, request.page_token)
        out = policy_pb2.ListBundleHistoryResponse(next_page_token=page["next_page_token"])
        for a in page["activations"]:
            item = out.activations.add(bundle_hash=a["bundle_hash"], version=a["version"], action=a["action"],
                                       by=a["by"])
            item.activated_at.FromDatetime(datetime.fromisoformat(a["activated_at"]))
        return out

    async def GetBundle(self, request, context):
        _required("bundle_hash", request.bundle_hash)
        r = await self.app.get_bundle(current_principal.get(), request.bundle_hash)
        return policy_pb2.GetBundleResponse(**r)

    async def ExplainDecision(self, request, context):
        result = await self.app.explain(current_principal.get(), convert.decide_input(request.request),
                                        request.bundle)
        return convert.decision(result)

    async def ReplayBundle(self, request, context):
        _required("bundle", request.bundle)
        since = convert.duration(request.since, "since")
        async for r in self.app.replay(current_principal.get(), request.bundle, since):
            yield convert.replay_result(r)


class EvidenceServicer(evidence_pb2_grpc.EvidenceServiceServicer):
    def __init__(self, app: Application):
        self.app = app

    async def GetPublicKeys(self, request, context):
        return evidence_pb2.GetPublicKeysResponse(jwks_json=convert.jwks_json(self.app.jwks()))

    async def GetEvidencePack(self, request, context):
        _required("decision_id", request.decision_id)
        return evidence_pb2.GetEvidencePackResponse(
            pack_json=await self.app.evidence_pack(current_principal.get(), request.decision_id))

    async def StreamEvents(self, request, context):
        if request.from_sequence < 0:
            raise InvalidRequest("from_sequence must not be negative", (FieldViolation("from_sequence", "< 0"),))
        async for event in self.app.stream_events(current_principal.get(), request.from_sequence):
            yield convert.ledger_event(event)

    async def VerifyLedger(self, request, context):
        return evidence_pb2.VerifyLedgerResponse(**await self.app.verify_ledger(current_principal.get()))

    async def GetCheckpoint(self, request, context):
        return convert.checkpoint(await self.app.checkpoint(current_principal.get()))

    async def GetInclusionProof(self, request, context):
        if request.sequence < 1 or request.tree_size < 0:
            raise InvalidRequest("sequence must be ≥ 1 and tree_size ≥ 0",
                                 (FieldViolation("sequence", "must be ≥ 1"),))
        proof = await self.app.inclusion_proof(current_principal.get(), request.sequence, request.tree_size)
        return evidence_pb2.InclusionProof(**proof)

    async def GetConsistencyProof(self, request, context):
        proof = await self.app.consistency_proof(current_principal.get(), request.first_size, request.second_size)
        return evidence_pb2.ConsistencyProof(**proof)

    async def ExportEvidence(self, request, context):
        fmt = convert.export_format(request.format)
        start = convert.optional_time(request, "start_time")
        end = convert.optional_time(request, "end_time")
        async for piece in self.app.export(current_principal.get(), fmt, request.view or "generic", start, end):
            data = piece.encode("utf-8")
            for i in range(0, len(data), EXPORT_CHUNK):
                yield evidence_pb2.ExportChunk(data=data[i:i + EXPORT_CHUNK])


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self, app: Application):
        self.app = app

    async def RegisterAgent(self, request, context):
        a = await self.app.register_agent(current_principal.get(), request.agent_id, convert.agent_fields(request),
                                          request.idempotency_key)
        return convert.agent(a)

    async def GetAgent(self, request, context):
        _required("agent_id", request.agent_id)
        return convert.agent(await self.app.get_agent(current_principal.get(), request.agent_id))

    async def ListAgents(self, request, context):
        status = None
        if request.status:
            if request.status not in convert.AGENT_STATUS_NAMES:
                raise InvalidRequest("status: unknown enum value", (FieldViolation("status", "unknown value"),))
            status = convert.AGENT_STATUS_NAMES[request.status]
        page = await self.app.list_agents(current_principal.get(), status, request.page_size, request.page_token)
        return agent_pb2.ListAgentsResponse(agents=[convert.agent(a) for a in page["agents"]],
                                            next_page_token=page["next_page_token"])

    async def UpdateAgent(self, request, context):
        _required("agent_id", request.agent_id)
        mask = convert.update_mask(request)
        a = await self.app.update_agent(current_principal.get(), request.agent_id,
                                        convert.agent_fields(request, masked=bool(mask)), mask,
                                        request.idempotency_key)
        return convert.agent(a)


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, app: Application):
        self.app = app

    async def CreateTenant(self, request, context):
        return convert.tenant(await self.app.create_tenant(request.name, request.tenant_id, request.idempotency_key))

    async def CreateApiKey(self, request, context):
        r = await self.app.create_api_key(
            current_principal.get(), tenant=request.tenant, environment=convert.environment_name(request.environment),
            roles=list(request.roles), principal=request.principal, description=request.description,
            idempotency_key=request.idempotency_key, agents=list(request.agents))
        return admin_pb2.CreateApiKeyResponse(api_key=convert.api_key(r["api_key"]), secret=r["secret"])

    async def ListApiKeys(self, request, context):
        page = await self.app.list_api_keys(
            current_principal.get(), request.tenant, convert.environment_name(request.environment),
            request.include_revoked, request.page_size, request.page_token)
        return admin_pb2.ListApiKeysResponse(api_keys=[convert.api_key(k) for k in page["api_keys"]],
                                             next_page_token=page["next_page_token"])

    async def RevokeApiKey(self, request, context):
        _required("key_id", request.key_id)
        return convert.api_key(await self.app.revoke_api_key(current_principal.get(), request.key_id))

    async def GetTenantSettings(self, request, context):
        return convert.tenant_settings(await self.app.get_tenant_settings(
            current_principal.get(), request.tenant, convert.environment_name(request.environment)))

    async def UpdateTenantSettings(self, request, context):
        return convert.tenant_settings(await self.app.update_tenant_settings(
            current_principal.get(), tenant=request.tenant, environment=convert.environment_name(request.environment),
            minimum_mode=convert.mode_name(request.minimum_mode, "minimum_mode"),
            idempotency_key=request.idempotency_key))


def _required(field: str, value: str) -> None:
    if not value:
        raise MissingField(f"{field}: required", (FieldViolation(field, "required"),))


def add_servicers(server, app: Application, *, max_decisions_per_stream: int = 0) -> list[str]:
    """Register every gavel.v1 servicer on `server` (the guarded registry of `server.py`); their names."""
    decision_pb2_grpc.add_DecisionServiceServicer_to_server(DecisionServicer(app, max_decisions_per_stream), server)
    evidence_pb2_grpc.add_EvidenceServiceServicer_to_server(EvidenceServicer(app), server)
    approval_pb2_grpc.add_ApprovalServiceServicer_to_server(ApprovalServicer(app), server)
    policy_pb2_grpc.add_PolicyServiceServicer_to_server(PolicyServicer(app), server)
    agent_pb2_grpc.add_AgentServiceServicer_to_server(AgentServicer(app), server)
    admin_pb2_grpc.add_AdminServiceServicer_to_server(AdminServicer(app), server)
    return [decision_pb2.DESCRIPTOR.services_by_name["DecisionService"].full_name,
            evidence_pb2.DESCRIPTOR.services_by_name["EvidenceService"].full_name,
            approval_pb2.DESCRIPTOR.services_by_name["ApprovalService"].full_name,
            policy_pb2.DESCRIPTOR.services_by_name["PolicyService"].full_name,
            agent_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name,
            admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name]
