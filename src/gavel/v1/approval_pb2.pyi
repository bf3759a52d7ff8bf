import datetime

from gavel.v1 import common_pb2 as _common_pb2
from gavel.v1 import decision_pb2 as _decision_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ApprovalStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    APPROVAL_STATUS_UNSPECIFIED: _ClassVar[ApprovalStatus]
    APPROVAL_STATUS_PENDING: _ClassVar[ApprovalStatus]
    APPROVAL_STATUS_APPROVED: _ClassVar[ApprovalStatus]
    APPROVAL_STATUS_DENIED: _ClassVar[ApprovalStatus]
    APPROVAL_STATUS_MODIFIED: _ClassVar[ApprovalStatus]
    APPROVAL_STATUS_EXPIRED: _ClassVar[ApprovalStatus]

class ResolutionAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESOLUTION_ACTION_UNSPECIFIED: _ClassVar[ResolutionAction]
    RESOLUTION_ACTION_APPROVE: _ClassVar[ResolutionAction]
    RESOLUTION_ACTION_DENY: _ClassVar[ResolutionAction]
    RESOLUTION_ACTION_MODIFY: _ClassVar[ResolutionAction]
    RESOLUTION_ACTION_ESCALATE: _ClassVar[ResolutionAction]
APPROVAL_STATUS_UNSPECIFIED: ApprovalStatus
APPROVAL_STATUS_PENDING: ApprovalStatus
APPROVAL_STATUS_APPROVED: ApprovalStatus
APPROVAL_STATUS_DENIED: ApprovalStatus
APPROVAL_STATUS_MODIFIED: ApprovalStatus
APPROVAL_STATUS_EXPIRED: ApprovalStatus
RESOLUTION_ACTION_UNSPECIFIED: ResolutionAction
RESOLUTION_ACTION_APPROVE: ResolutionAction
RESOLUTION_ACTION_DENY: ResolutionAction
RESOLUTION_ACTION_MODIFY: ResolutionAction
RESOLUTION_ACTION_ESCALATE: ResolutionAction

class ApprovalStep(_message.Message):
    __slots__ = ("principal", "role", "action", "note", "at", "sod_result")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    SOD_RESULT_FIELD_NUMBER: _ClassVar[int]
    principal: str
    role: str
    action: str
    note: str
    at: _timestamp_pb2.Timestamp
    sod_result: str
    def __init__(self, principal: _Optional[str] = ..., role: _Optional[str] = ..., action: _Optional[str] = ..., note: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sod_result: _Optional[str] = ...) -> None: ...

class Approval(_message.Message):
    __slots__ = ("approval_id", "decision_id", "status", "role", "approvals_required", "approvals_received", "approvers", "due_at", "on_timeout", "escalate_to", "agent_id", "action", "modified_action", "reason_code", "requester_id", "human_sponsor_id", "steps", "created_at", "updated_at", "original_role")
    APPROVAL_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    APPROVALS_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    APPROVALS_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    APPROVERS_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    ON_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    ESCALATE_TO_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    MODIFIED_ACTION_FIELD_NUMBER: _ClassVar[int]
    REASON_CODE_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_ID_FIELD_NUMBER: _ClassVar[int]
    HUMAN_SPONSOR_ID_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_ROLE_FIELD_NUMBER: _ClassVar[int]
    approval_id: str
    decision_id: str
    status: ApprovalStatus
    role: str
    approvals_required: int
    approvals_received: int
    approvers: _containers.RepeatedScalarFieldContainer[str]
    due_at: _timestamp_pb2.Timestamp
    on_timeout: _decision_pb2.TimeoutAction
    escalate_to: str
    agent_id: str
    action: _common_pb2.Action
    modified_action: _common_pb2.Action
    reason_code: str
    requester_id: str
    human_sponsor_id: str
    steps: _containers.RepeatedCompositeFieldContainer[ApprovalStep]
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    original_role: str
    def __init__(self, approval_id: _Optional[str] = ..., decision_id: _Optional[str] = ..., status: _Optional[_Union[ApprovalStatus, str]] = ..., role: _Optional[str] = ..., approvals_required: _Optional[int] = ..., approvals_received: _Optional[int] = ..., approvers: _Optional[_Iterable[str]] = ..., due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., on_timeout: _Optional[_Union[_decision_pb2.TimeoutAction, str]] = ..., escalate_to: _Optional[str] = ..., agent_id: _Optional[str] = ..., action: _Optional[_Union[_common_pb2.Action, _Mapping]] = ..., modified_action: _Optional[_Union[_common_pb2.Action, _Mapping]] = ..., reason_code: _Optional[str] = ..., requester_id: _Optional[str] = ..., human_sponsor_id: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[ApprovalStep, _Mapping]]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., original_role: _Optional[str] = ...) -> None: ...

class ListApprovalsRequest(_message.Message):
    __slots__ = ("status", "role", "agent_id", "page_size", "page_token")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    status: ApprovalStatus
    role: str
    agent_id: str
    page_size: int
    page_token: str
    def __init__(self, status: _Optional[_Union[ApprovalStatus, str]] = ..., role: _Optional[str] = ..., agent_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListApprovalsResponse(_message.Message):
    __slots__ = ("approvals", "next_page_token")
    APPROVALS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    approvals: _containers.RepeatedCompositeFieldContainer[Approval]
    next_page_token: str
    def __init__(self, approvals: _Optional[_Iterable[_Union[Approval, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchApprovalsRequest(_message.Message):
    __slots__ = ("role", "cursor")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    role: str
    cursor: str
    def __init__(self, role: _Optional[str] = ..., cursor: _Optional[str] = ...) -> None: ...

class ApprovalUpdate(_message.Message):
    __slots__ = ("approval", "cursor", "snapshot")
    APPROVAL_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    approval: Approval
    cursor: str
    snapshot: bool
    def __init__(self, approval: _Optional[_Union[Approval, _Mapping]] = ..., cursor: _Optional[str] = ..., snapshot: _Optional[bool] = ...) -> None: ...

class ResolveApprovalRequest(_message.Message):
    __slots__ = ("approval_id", "action", "note", "modified_action", "escalate_to", "idempotency_key")
    APPROVAL_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    MODIFIED_ACTION_FIELD_NUMBER: _ClassVar[int]
    ESCALATE_TO_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    approval_id: str
    action: ResolutionAction
    note: str
    modified_action: _common_pb2.Action
    escalate_to: str
    idempotency_key: str
    def __init__(self, approval_id: _Optional[str] = ..., action: _Optional[_Union[ResolutionAction, str]] = ..., note: _Optional[str] = ..., modified_action: _Optional[_Union[_common_pb2.Action, _Mapping]] = ..., escalate_to: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...
