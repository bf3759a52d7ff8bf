"""Typed errors of the use cases. Each carries the API reason (API.md) the edges map to a status."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldViolation:
    field: str
    description: str


class GavelError(Exception):
    """Base of every error the API reports; `reason` is one of API.md's reason codes."""

    reason = "INTERNAL_ERROR"

    def __init__(self, message: str, violations: tuple[FieldViolation, ...] = (), metadata: dict | None = None):
        super().__init__(message)
        self.message = message
        self.violations = violations
        self.metadata = metadata or {}


class InvalidRequest(GavelError):
    reason = "INVALID_REQUEST"


class MissingField(GavelError):
    reason = "MISSING_REQUIRED_FIELD"


class IdempotencyKeyMissing(GavelError):
    reason = "IDEMPOTENCY_KEY_MISSING"


class Unauthenticated(GavelError):
    reason = "UNAUTHENTICATED"


class Forbidden(GavelError):
    reason = "FORBIDDEN"


class TokenInvalid(GavelError):
    reason = "DECISION_TOKEN_INVALID"


class TokenRevoked(GavelError):
    reason = "TOKEN_REVOKED"


class TokenReused(GavelError):
    reason = "DECISION_TOKEN_REUSED"


class SodViolation(GavelError):
    reason = "SOD_VIOLATION"


class AgentPaused(GavelError):
    reason = "AGENT_PAUSED"


class AgentLocked(GavelError):
    reason = "AGENT_LOCKED"


class AgentMismatch(GavelError):
    """The key is bound to other agents than the one the request acts for."""

    reason = "AGENT_MISMATCH"


class DecisionNotEnforced(GavelError):
    """ConsumeToken: the token's decision was not enforced and its outcome was not allow."""

    reason = "DECISION_NOT_ENFORCED"


class IdempotencyConflict(GavelError):
    reason = "IDEMPOTENCY_CONFLICT"


class AlreadyReported(GavelError):
    reason = "ALREADY_REPORTED"


class InvalidTransition(GavelError):
    reason = "INVALID_TRANSITION"


class NotFound(GavelError):
    reason = "NOT_FOUND"


class RateLimited(GavelError):
    reason = "RATE_LIMIT_EXCEEDED"


class Unavailable(GavelError):
    reason = "STORE_UNAVAILABLE"


class CompileLimitExceeded(GavelError):
    """The tenant already has as many compiles running as allowed (GAVEL_MAX_COMPILES_PER_TENANT)."""

    reason = "COMPILE_LIMIT_EXCEEDED"


class CompileTimeExceeded(GavelError):
    """Compiling the policy took longer than GAVEL_COMPILE_TIMEOUT_SECONDS; nothing was changed."""

    reason = "COMPILE_TIME_EXCEEDED"


def require(condition: bool, field: str, description: str, missing: bool = False) -> None:
    """Raise a bad-input error naming the field when `condition` does not hold."""
    if not condition:
        cls = MissingField if missing else InvalidRequest
        raise cls(f"{field}: {description}", (FieldViolation(field, description),))
