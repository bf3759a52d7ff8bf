import datetime

from gavel.v1 import common_pb2 as _common_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DecisionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_STATE_UNSPECIFIED: _ClassVar[DecisionState]
    DECISION_STATE_APPROVED: _ClassVar[DecisionState]
    DECISION_STATE_DENIED: _ClassVar[DecisionState]
    DECISION_STATE_PENDING_APPROVAL: _ClassVar[DecisionState]
    DECISION_STATE_EXPIRED: _ClassVar[DecisionState]
    DECISION_STATE_EXECUTED: _ClassVar[DecisionState]
    DECISION_STATE_EXECUTION_FAILED: _ClassVar[DecisionState]

class RiskTier(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RISK_TIER_UNSPECIFIED: _ClassVar[RiskTier]
    RISK_TIER_LOW: _ClassVar[RiskTier]
    RISK_TIER_MEDIUM: _ClassVar[RiskTier]
    RISK_TIER_HIGH: _ClassVar[RiskTier]
    RISK_TIER_CRITICAL: _ClassVar[RiskTier]

class TimeoutAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TIMEOUT_ACTION_UNSPECIFIED: _ClassVar[TimeoutAction]
    TIMEOUT_ACTION_DENY: _ClassVar[TimeoutAction]
    TIMEOUT_ACTION_ALLOW: _ClassVar[TimeoutAction]
    TIMEOUT_ACTION_ESCALATE: _ClassVar[TimeoutAction]

class ExecutionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXECUTION_STATUS_UNSPECIFIED: _ClassVar[ExecutionStatus]
    EXECUTION_STATUS_SUCCEEDED: _ClassVar[ExecutionStatus]
    EXECUTION_STATUS_FAILED: _ClassVar[ExecutionStatus]

class ReconciliationStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECONCILIATION_STATUS_UNSPECIFIED: _ClassVar[ReconciliationStatus]
    RECONCILIATION_STATUS_MATCHED: _ClassVar[ReconciliationStatus]
    RECONCILIATION_STATUS_MISMATCHED: _ClassVar[ReconciliationStatus]
    RECONCILIATION_STATUS_FAILED: _ClassVar[ReconciliationStatus]
DECISION_STATE_UNSPECIFIED: DecisionState
DECISION_STATE_APPROVED: DecisionState
DECISION_STATE_DENIED: DecisionState
DECISION_STATE_PENDING_APPROVAL: DecisionState
DECISION_STATE_EXPIRED: DecisionState
DECISION_STATE_EXECUTED: DecisionState
DECISION_STATE_EXECUTION_FAILED: DecisionState
RISK_TIER_UNSPECIFIED: RiskTier
RISK_TIER_LOW: RiskTier
RISK_TIER_MEDIUM: RiskTier
RISK_TIER_HIGH: RiskTier
RISK_TIER_CRITICAL: RiskTier
TIMEOUT_ACTION_UNSPECIFIED: TimeoutAction
TIMEOUT_ACTION_DENY: TimeoutAction
TIMEOUT_ACTION_ALLOW: TimeoutAction
TIMEOUT_ACTION_ESCALATE: TimeoutAction
EXECUTION_STATUS_UNSPECIFIED: ExecutionStatus
EXECUTION_STATUS_SUCCEEDED: ExecutionStatus
EXECUTION_STATUS_FAILED: ExecutionStatus
RECONCILIATION_STATUS_UNSPECIFIED: ReconciliationStatus
RECONCILIATION_STATUS_MATCHED: ReconciliationStatus
RECONCILIATION_STATUS_MISMATCHED: ReconciliationStatus
RECONCILIATION_STATUS_FAILED: ReconciliationStatus

class AgentRef(_message.Message):
    __slots__ = ("id", "session_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    session_id: str
    def __init__(self, id: _Optional[str] = ..., session_id: _Optional[str] = ...) -> None: ...

class Actors(_message.Message):
    __slots__ = ("requester_type", "requester_id", "human_sponsor_id", "user_id")
    REQUESTER_TYPE_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_ID_FIELD_NUMBER: _ClassVar[int]
    HUMAN_SPONSOR_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    requester_type: str
    requester_id: str
    human_sponsor_id: str
    user_id: str
    def __init__(self, requester_type: _Optional[str] = ..., requester_id: _Optional[str] = ..., human_sponsor_id: _Optional[str] = ..., user_id: _Optional[str] = ...) -> None: ...

class DecideRequest(_message.Message):
    __slots__ = ("action", "agent", "actors", "rationale", "context", "confidence", "input_hash", "mode", "idempotency_key", "correlation_id")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    ACTORS_FIELD_NUMBER: _ClassVar[int]
    RATIONALE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    INPUT_HASH_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    action: _common_pb2.Action
    agent: AgentRef
    actors: Actors
    rationale: str
    context: _struct_pb2.Struct
    confidence: float
    input_hash: str
    mode: _common_pb2.Mode
    idempotency_key: str
    correlation_id: str
    def __init__(self, action: _Optional[_Union[_common_pb2.Action, _Mapping]] = ..., agent: _Optional[_Union[AgentRef, _Mapping]] = ..., actors: _Optional[_Union[Actors, _Mapping]] = ..., rationale: _Optional[str] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., confidence: _Optional[float] = ..., input_hash: _Optional[str] = ..., mode: _Optional[_Union[_common_pb2.Mode, str]] = ..., idempotency_key: _Optional[str] = ..., correlation_id: _Optional[str] = ...) -> None: ...

class Risk(_message.Message):
    __slots__ = ("score", "tier", "factors")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    FACTORS_FIELD_NUMBER: _ClassVar[int]
    score: int
    tier: RiskTier
    factors: _containers.RepeatedCompositeFieldContainer[RiskFactor]
    def __init__(self, score: _Optional[int] = ..., tier: _Optional[_Union[RiskTier, str]] = ..., factors: _Optional[_Iterable[_Union[RiskFactor, _Mapping]]] = ...) -> None: ...

class RiskFactor(_message.Message):
    __slots__ = ("factor", "weight", "rule")
    FACTOR_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    factor: str
    weight: int
    rule: str
    def __init__(self, factor: _Optional[str] = ..., weight: _Optional[int] = ..., rule: _Optional[str] = ...) -> None: ...

class PolicyRef(_message.Message):
    __slots__ = ("package", "rule", "bundle_hash", "bundle_version")
    PACKAGE_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_HASH_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_VERSION_FIELD_NUMBER: _ClassVar[int]
    package: str
    rule: str
    bundle_hash: str
    bundle_version: str
    def __init__(self, package: _Optional[str] = ..., rule: _Optional[str] = ..., bundle_hash: _Optional[str] = ..., bundle_version: _Optional[str] = ...) -> None: ...

class MatchedRule(_message.Message):
    __slots__ = ("rule_id", "effect", "reason_code", "specificity", "priority", "location")
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    EFFECT_FIELD_NUMBER: _ClassVar[int]
    REASON_CODE_FIELD_NUMBER: _ClassVar[int]
    SPECIFICITY_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    rule_id: str
    effect: _common_pb2.Outcome
    reason_code: str
    specificity: int
    priority: int
    location: _common_pb2.SourceLocation
    def __init__(self, rule_id: _Optional[str] = ..., effect: _Optional[_Union[_common_pb2.Outcome, str]] = ..., reason_code: _Optional[str] = ..., specificity: _Optional[int] = ..., priority: _Optional[int] = ..., location: _Optional[_Union[_common_pb2.SourceLocation, _Mapping]] = ...) -> None: ...

class Explain(_message.Message):
    __slots__ = ("summary", "next_steps", "json")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    NEXT_STEPS_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    summary: str
    next_steps: _containers.RepeatedScalarFieldContainer[str]
    json: str
    def __init__(self, summary: _Optional[str] = ..., next_steps: _Optional[_Iterable[str]] = ..., json: _Optional[str] = ...) -> None: ...

class ApprovalSummary(_message.Message):
    __slots__ = ("approval_id", "role", "approvals_required", "approvals_received", "due_at", "on_timeout", "escalate_to")
    APPROVAL_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    APPROVALS_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    APPROVALS_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    ON_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    ESCALATE_TO_FIELD_NUMBER: _ClassVar[int]
    approval_id: str
    role: str
    approvals_required: int
    approvals_received: int
    due_at: _timestamp_pb2.Timestamp
    on_timeout: TimeoutAction
    escalate_to: str
    def __init__(self, approval_id: _Optional[str] = ..., role: _Optional[str] = ..., approvals_required: _Optional[int] = ..., approvals_received: _Optional[int] = ..., due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., on_timeout: _Optional[_Union[TimeoutAction, str]] = ..., escalate_to: _Optional[str] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("decision_id", "outcome", "state", "enforced", "warnings", "reason_code", "reason_codes", "message", "risk", "policy", "matched_rules", "explain", "decision_token", "approval", "obligations", "evidence_event_id", "created_at", "correlation_id", "agent_id", "mode", "approved_action", "approval_note")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ENFORCED_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    REASON_CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_CODES_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RISK_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    MATCHED_RULES_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    DECISION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_FIELD_NUMBER: _ClassVar[int]
    OBLIGATIONS_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    APPROVED_ACTION_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_NOTE_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    outcome: _common_pb2.Outcome
    state: DecisionState
    enforced: bool
    warnings: _containers.RepeatedScalarFieldContainer[str]
    reason_code: str
    reason_codes: _containers.RepeatedScalarFieldContainer[str]
    message: str
    risk: Risk
    policy: PolicyRef
    matched_rules: _containers.RepeatedCompositeFieldContainer[MatchedRule]
    explain: Explain
    decision_token: str
    approval: ApprovalSummary
    obligations: _struct_pb2.Struct
    evidence_event_id: str
    created_at: _timestamp_pb2.Timestamp
    correlation_id: str
    agent_id: str
    mode: _common_pb2.Mode
    approved_action: _common_pb2.Action
    approval_note: str
    def __init__(self, decision_id: _Optional[str] = ..., outcome: _Optional[_Union[_common_pb2.Outcome, str]] = ..., state: _Optional[_Union[DecisionState, str]] = ..., enforced: _Optional[bool] = ..., warnings: _Optional[_Iterable[str]] = ..., reason_code: _Optional[str] = ..., reason_codes: _Optional[_Iterable[str]] = ..., message: _Optional[str] = ..., risk: _Optional[_Union[Risk, _Mapping]] = ..., policy: _Optional[_Union[PolicyRef, _Mapping]] = ..., matched_rules: _Optional[_Iterable[_Union[MatchedRule, _Mapping]]] = ..., explain: _Optional[_Union[Explain, _Mapping]] = ..., decision_token: _Optional[str] = ..., approval: _Optional[_Union[ApprovalSummary, _Mapping]] = ..., obligations: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., evidence_event_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., correlation_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., mode: _Optional[_Union[_common_pb2.Mode, str]] = ..., approved_action: _Optional[_Union[_common_pb2.Action, _Mapping]] = ..., approval_note: _Optional[str] = ...) -> None: ...

class GetDecisionRequest(_message.Message):
    __slots__ = ("decision_id",)
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    def __init__(self, decision_id: _Optional[str] = ...) -> None: ...

class WaitDecisionRequest(_message.Message):
    __slots__ = ("decision_id",)
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    def __init__(self, decision_id: _Optional[str] = ...) -> None: ...

class ReportExecutionRequest(_message.Message):
    __slots__ = ("decision_id", "decision_token", "status", "executed_at", "amount", "currency", "external_transaction_id", "error_code", "error_message", "idempotency_key")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXECUTED_AT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    decision_token: str
    status: ExecutionStatus
    executed_at: _timestamp_pb2.Timestamp
    amount: str
    currency: str
    external_transaction_id: str
    error_code: str
    error_message: str
    idempotency_key: str
    def __init__(self, decision_id: _Optional[str] = ..., decision_token: _Optional[str] = ..., status: _Optional[_Union[ExecutionStatus, str]] = ..., executed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., amount: _Optional[str] = ..., currency: _Optional[str] = ..., external_transaction_id: _Optional[str] = ..., error_code: _Optional[str] = ..., error_message: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class Reconciliation(_message.Message):
    __slots__ = ("status", "authorized_amount", "executed_amount", "variance")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AUTHORIZED_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    EXECUTED_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    VARIANCE_FIELD_NUMBER: _ClassVar[int]
    status: ReconciliationStatus
    authorized_amount: str
    executed_amount: str
    variance: str
    def __init__(self, status: _Optional[_Union[ReconciliationStatus, str]] = ..., authorized_amount: _Optional[str] = ..., executed_amount: _Optional[str] = ..., variance: _Optional[str] = ...) -> None: ...

class ExecutionReport(_message.Message):
    __slots__ = ("decision_id", "status", "executed_at", "amount", "currency", "external_transaction_id", "error_code", "error_message", "reconciliation")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXECUTED_AT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RECONCILIATION_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    status: ExecutionStatus
    executed_at: _timestamp_pb2.Timestamp
    amount: str
    currency: str
    external_transaction_id: str
    error_code: str
    error_message: str
    reconciliation: Reconciliation
    def __init__(self, decision_id: _Optional[str] = ..., status: _Optional[_Union[ExecutionStatus, str]] = ..., executed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., amount: _Optional[str] = ..., currency: _Optional[str] = ..., external_transaction_id: _Optional[str] = ..., error_code: _Optional[str] = ..., error_message: _Optional[str] = ..., reconciliation: _Optional[_Union[Reconciliation, _Mapping]] = ...) -> None: ...

class ConsumeTokenRequest(_message.Message):
    __slots__ = ("token", "args_hash", "idempotency_key", "accept_unenforced")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    ARGS_HASH_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_UNENFORCED_FIELD_NUMBER: _ClassVar[int]
    token: str
    args_hash: str
    idempotency_key: str
    accept_unenforced: bool
    def __init__(self, token: _Optional[str] = ..., args_hash: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., accept_unenforced: _Optional[bool] = ...) -> None: ...

class ConsumeTokenResponse(_message.Message):
    __slots__ = ("valid", "jti", "decision_id", "agent_id", "action_type", "amount", "currency", "enforced", "outcome")
    VALID_FIELD_NUMBER: _ClassVar[int]
    JTI_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_TYPE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    ENFORCED_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    valid: bool
    jti: str
    decision_id: str
    agent_id: str
    action_type: str
    amount: str
    currency: str
    enforced: bool
    outcome: _common_pb2.Outcome
    def __init__(self, valid: _Optional[bool] = ..., jti: _Optional[str] = ..., decision_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., action_type: _Optional[str] = ..., amount: _Optional[str] = ..., currency: _Optional[str] = ..., enforced: _Optional[bool] = ..., outcome: _Optional[_Union[_common_pb2.Outcome, str]] = ...) -> None: ...

class RevokeTokenRequest(_message.Message):
    __slots__ = ("token", "jti", "idempotency_key")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    JTI_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    token: str
    jti: str
    idempotency_key: str
    def __init__(self, token: _Optional[str] = ..., jti: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class RevokeTokenResponse(_message.Message):
    __slots__ = ("revoked", "jti")
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    JTI_FIELD_NUMBER: _ClassVar[int]
    revoked: bool
    jti: str
    def __init__(self, revoked: _Optional[bool] = ..., jti: _Optional[str] = ...) -> None: ...
