"""Domain errors → gRPC status with `google.rpc.ErrorInfo` (and `BadRequest` for bad input).

The details travel in the `grpc-status-details-bin` trailer as a `google.rpc.Status`.
"""

from __future__ import annotations

import re

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
    "AGENT_MISMATCH": grpc.StatusCode.PERMISSION_DENIED,
    "DECISION_NOT_ENFORCED": grpc.StatusCode.PERMISSION_DENIED,
    "FORBIDDEN": grpc.StatusCode.PERMISSION_DENIED,
    "DECISION_TOKEN_REUSED": grpc.StatusCode.ALREADY_EXISTS,
    "IDEMPOTENCY_CONFLICT": grpc.StatusCode.ALREADY_EXISTS,
    "ALREADY_REPORTED": grpc.StatusCode.ALREADY_EXISTS,
    "INVALID_TRANSITION": grpc.StatusCode.FAILED_PRECONDITION,
    "NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "RATE_LIMIT_EXCEEDED": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "COMPILE_LIMIT_EXCEEDED": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "COMPILE_TIME_EXCEEDED": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "STORE_UNAVAILABLE": grpc.StatusCode.UNAVAILABLE,
    "INTERNAL_ERROR": grpc.StatusCode.INTERNAL,
}


# Error messages quote the caller's values (`no agent `…``). Unbounded, a long value makes the
# grpc-message and grpc-status-details-bin trailers pass a default client's 8 KiB metadata limit,
# which then sees RESOURCE_EXHAUSTED "Stream removed" instead of the real status. So a quoted value
# keeps its first MAX_ECHO characters, a message or metadata value its first MAX_TEXT_BYTES bytes
# of UTF-8 (grpc-message percent-encodes non-ASCII: up to 3 characters a byte), and the
# BadRequest violations stop once the details would pass MAX_DETAILS_BYTES.
MAX_ECHO = 200
MAX_TEXT_BYTES = 512
MAX_DETAILS_BYTES = 2048
ELLIPSIS = "…"
_QUOTED = re.compile(f"`([^`]{{{MAX_ECHO + 1},}})`")


def bounded(text: str, limit: int = MAX_TEXT_BYTES) -> str:
    """`text` with quoted values over MAX_ECHO characters and the whole over `limit` bytes cut
    short, each cut marked with an ellipsis. Short text is returned as is."""
    if len(text) * 4 <= limit:  # at most 4 bytes a character: nothing to cut
        return text
    text = _QUOTED.sub(lambda m: f"`{m.group(1)[:MAX_ECHO]}{ELLIPSIS}`", text)
    raw = text.encode("utf-8")
    if len(raw) > limit:
        text = raw[:limit - len(ELLIPSIS.encode("utf-8"))].decode("utf-8", "ignore") + ELLIPSIS
    return text


def status_details(code: grpc.StatusCode, reason: str, message: str, violations=(), metadata=None) -> bytes:
    metadata = {k: bounded(v, MAX_ECHO) for k, v in metadata.items()} if metadata else {}
    info = error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=metadata)
    details = [any_pb2.Any()]
    details[0].Pack(info)
    message = bounded(message)
    if violations:
        bad = error_details_pb2.BadRequest()
        room = MAX_DETAILS_BYTES - len(message.encode("utf-8")) - info.ByteSize()
        for v in violations:
            bad.field_violations.add(field=bounded(v.field, MAX_ECHO),
                                     description=bounded(v.description, MAX_ECHO * 2))
            if bad.ByteSize() > room and len(bad.field_violations) > 1:
                del bad.field_violations[-1]  # the first violation always travels
                break
        packed = any_pb2.Any()
        packed.Pack(bad)
        details.append(packed)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=details)
    return status.SerializeToString()


def for_error(exc: GavelError) -> tuple[grpc.StatusCode, str, bytes]:
    code = STATUS_OF_REASON.get(exc.reason, grpc.StatusCode.INTERNAL)
    return code, bounded(exc.message), status_details(code, exc.reason, exc.message, exc.violations,
                                             {k: str(v) for k, v in exc.metadata.items()})
