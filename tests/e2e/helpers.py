"""Small helpers for e2e tests: error details, token decoding, request building."""

from __future__ import annotations

import base64
import json

import grpc
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2, status_pb2

from gavel.v1 import admin_pb2, common_pb2, decision_pb2


def error_info(err: grpc.aio.AioRpcError) -> tuple[str, list[str]]:
    """(ErrorInfo reason, BadRequest field names) from the status details trailer."""
    raw = dict(err.trailing_metadata() or ()).get("grpc-status-details-bin")
    assert raw is not None, f"no status details on {err.code()}: {err.details()}"
    status = status_pb2.Status.FromString(raw)
    reason, fields = "", []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            assert info.domain == "gavel.dev"
            reason = info.reason
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields = [v.field for v in bad.field_violations]
    return reason, fields


async def expect_error(call, code: grpc.StatusCode, reason: str) -> list[str]:
    try:
        await call
    except grpc.aio.AioRpcError as err:
        assert err.code() == code, (err.code(), err.details())
        got, fields = error_info(err)
        assert got == reason, (got, err.details())
        return fields
    raise AssertionError(f"expected {code.name}/{reason}, the call succeeded")


async def set_minimum_mode(h, mode: int, who: str = "admin_test") -> admin_pb2.TenantSettings:
    """Lower (or raise) the caller's environment's minimum mode, as its operator does."""
    return await h.admin.UpdateTenantSettings(admin_pb2.UpdateTenantSettingsRequest(minimum_mode=mode),
                                              metadata=h.md(who))


def b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def token_parts(token: str) -> tuple[dict, dict, bytes, bytes]:
    header, payload, signature = token.split(".")
    return json.loads(b64url(header)), json.loads(b64url(payload)), f"{header}.{payload}".encode(), b64url(signature)


def request(type_: str = "payment", amount: str = "100.00", agent: str = "bot-1", currency: str = "USD",
            **kw) -> decision_pb2.DecideRequest:
    args = kw.pop("args", None)
    context = kw.pop("context", None)
    extra = {k: kw.pop(k) for k in ("subtype", "entity", "business_unit", "jurisdiction", "tool", "resource")
             if k in kw}
    req = decision_pb2.DecideRequest(
        action=common_pb2.Action(type=type_, amount=amount, currency=currency, **extra),
        agent=decision_pb2.AgentRef(id=agent), **kw)
    if args is not None:
        s = struct_pb2.Struct()
        s.update(args)
        req.action.args.CopyFrom(s)
    if context is not None:
        req.context.update(context)
    return req


# A payments policy with an approval that times out in 2 s, shared by the replica and fault suites.
PAYMENT_RULES = """package payments
scope action.type == "payment"
rule small allow "payment.small" when action.amount <= 100
rule medium require_approval "payment.medium"
  when { action.amount > 100
    action.amount <= 1000 }
  route { role: "finance_manager", approvals: 1, timeout: 1h, on_timeout: deny }
rule quick require_approval "payment.quick"
  when action.subtype == "expiring"
  route { role: "finance_manager", approvals: 1, timeout: 2s, on_timeout: deny }
rule huge deny "payment.huge" when action.amount > 1000
"""
