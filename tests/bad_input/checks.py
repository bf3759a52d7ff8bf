"""What "refused clearly" means, as assertions: a status code the caller can act on, with the
`google.rpc.ErrorInfo` (domain gavel.dev, a reason whose documented status is that code) and,
for INVALID_ARGUMENT, `google.rpc.BadRequest` field violations naming what was wrong."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2, status_pb2

# API.md, "reason → status": the spec these tests hold the server to.
STATUS_OF_REASON = {
    "INVALID_REQUEST": grpc.StatusCode.INVALID_ARGUMENT,
    "MISSING_REQUIRED_FIELD": grpc.StatusCode.INVALID_ARGUMENT,
    "IDEMPOTENCY_KEY_MISSING": grpc.StatusCode.INVALID_ARGUMENT,
    "UNAUTHENTICATED": grpc.StatusCode.UNAUTHENTICATED,
    "DECISION_TOKEN_INVALID": grpc.StatusCode.PERMISSION_DENIED,
    "TOKEN_REVOKED": grpc.StatusCode.PERMISSION_DENIED,
    "SOD_VIOLATION": grpc.StatusCode.PERMISSION_DENIED,
    "AGENT_PAUSED": grpc.StatusCode.PERMISSION_DENIED,
    "AGENT_LOCKED": grpc.StatusCode.PERMISSION_DENIED,
    "AGENT_MISMATCH": grpc.StatusCode.PERMISSION_DENIED,
    "DECISION_NOT_ENFORCED": grpc.StatusCode.PERMISSION_DENIED,
    "FORBIDDEN": grpc.StatusCode.PERMISSION_DENIED,
    "DECISION_TOKEN_REUSED": grpc.StatusCode.ALREADY_EXISTS,
    "IDEMPOTENCY_CONFLICT": grpc.StatusCode.ALREADY_EXISTS,
    "ALREADY_REPORTED": grpc.StatusCode.ALREADY_EXISTS,
    "INVALID_TRANSITION": grpc.StatusCode.FAILED_PRECONDITION,
    "NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "RATE_LIMIT_EXCEEDED": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "STORE_UNAVAILABLE": grpc.StatusCode.UNAVAILABLE,
    "INTERNAL_ERROR": grpc.StatusCode.INTERNAL,
}
OK = grpc.StatusCode.OK
NEVER = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)


@dataclass(frozen=True)
class Refusal:
    code: grpc.StatusCode
    message: str
    reason: str
    fields: tuple[str, ...]


def refusal(err: grpc.RpcError) -> Refusal:
    """The status of a failed call, with the reason and field violations from its details."""
    raw = dict(err.trailing_metadata() or ()).get("grpc-status-details-bin")
    reason, fields = "", ()
    if raw is not None:
        status = status_pb2.Status.FromString(raw)
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                assert info.domain == "gavel.dev", info
                reason = info.reason
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                fields = tuple(v.field for v in bad.field_violations)
    return Refusal(err.code(), err.details() or "", reason, fields)


def assert_typed(r: Refusal, allowed: set[grpc.StatusCode], what: str = "", needs_fields: bool = True) -> None:
    """A refusal is one of `allowed`, never INTERNAL/UNKNOWN, and carries a documented reason
    whose status is its code, a message, and (for bad input) the fields at fault."""
    assert r.code not in NEVER, f"{what}: {r.code.name}: {r.message}"
    assert r.code in allowed, f"{what}: {r.code.name} ({r.reason}) is not one of " \
                              f"{sorted(c.name for c in allowed)}: {r.message}"
    assert r.reason in STATUS_OF_REASON, f"{what}: {r.code.name} without a documented ErrorInfo reason: {r}"
    assert STATUS_OF_REASON[r.reason] == r.code, f"{what}: reason {r.reason} travels with {r.code.name}: {r}"
    assert r.message.strip(), f"{what}: {r.code.name} without a message"
    if needs_fields and r.code == grpc.StatusCode.INVALID_ARGUMENT and r.reason != "IDEMPOTENCY_KEY_MISSING":
        assert r.fields and all(f.strip() for f in r.fields), f"{what}: INVALID_ARGUMENT names no field: {r}"


def call(fn, request, metadata, timeout: float = 30.0):
    """(response, None) or (None, Refusal)."""
    try:
        return fn(request, metadata=metadata, timeout=timeout), None
    except grpc.RpcError as err:
        return None, refusal(err)
