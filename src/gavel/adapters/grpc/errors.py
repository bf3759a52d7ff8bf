"""Domain errors → gRPC status with `google.rpc.ErrorInfo` (and `BadRequest` for bad input).

The details travel in the `grpc-status-details-bin` trailer as a `google.rpc.Status`.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from gavel.app.errors import GavelError

DOMAIN = "gavel.dev"

STATUS_OF_REASON: dict[str, grpc.StatusCode] = {
    "INVALID_REQUEST": grpc.StatusCode.INVALID_ARGUMENT,
    "MISSING_REQUIRED_FIELD": grpc.StatusCode.INVALID_ARGUMENT,
    "IDEMPOTENCY_KEY_MISSING": grpc.StatusCode.INVALID_ARGUMENT,
    "UNAUTHENTICATED": grpc.StatusCode.UNAUTHENTICATED,
    "DECISION_TOKEN_INVALID": grpc.StatusCode.PERMISSION_DENIED,
    "TOKEN_REVOKED": grpc.StatusCode.PERMISSION_DENIED,
    "SOD_VIOLATION": grpc.StatusCode.PERMISSION_DENIED,
    "AGENT_PAUSED": grpc.StatusCode.PERMISSION_DENIED,
    "AGENT_LOCKED": grpc.StatusCode.PERMISSION_DENIED,
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


def status_details(code: grpc.StatusCode, reason: str, message: str, violations=(), metadata=None) -> bytes:
    info = error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=metadata or {})
    details = [any_pb2.Any()]
    details[0].Pack(info)
    if violations:
        bad = error_details_pb2.BadRequest()
        for v in violations:
            bad.field_violations.add(field=v.field, description=v.description)
        packed = any_pb2.Any()
        packed.Pack(bad)
        details.append(packed)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=details)
    return status.SerializeToString()


def for_error(exc: GavelError) -> tuple[grpc.StatusCode, str, bytes]:
    code = STATUS_OF_REASON.get(exc.reason, grpc.StatusCode.INTERNAL)
    return code, exc.message, status_details(code, exc.reason, exc.message, exc.violations,
                                             {k: str(v) for k, v in exc.metadata.items()})
