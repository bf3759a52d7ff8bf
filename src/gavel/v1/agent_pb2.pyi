import datetime

from gavel.v1 import common_pb2 as _common_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AgentStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGENT_STATUS_UNSPECIFIED: _ClassVar[AgentStatus]
    AGENT_STATUS_ACTIVE: _ClassVar[AgentStatus]
    AGENT_STATUS_PAUSED: _ClassVar[AgentStatus]
    AGENT_STATUS_LOCKED: _ClassVar[AgentStatus]
AGENT_STATUS_UNSPECIFIED: AgentStatus
AGENT_STATUS_ACTIVE: AgentStatus
AGENT_STATUS_PAUSED: AgentStatus
AGENT_STATUS_LOCKED: AgentStatus

class Agent(_message.Message):
    __slots__ = ("agent_id", "name", "owner", "control_tier", "risk_level", "allowed_actions", "daily_limit", "monthly_limit", "human_sponsor_id", "default_mode", "status", "created_at", "updated_at", "spend_today", "spend_month")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    CONTROL_TIER_FIELD_NUMBER: _ClassVar[int]
    RISK_LEVEL_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_ACTIONS_FIELD_NUMBER: _ClassVar[int]
    DAILY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    MONTHLY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    HUMAN_SPONSOR_ID_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MODE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    SPEND_TODAY_FIELD_NUMBER: _ClassVar[int]
    SPEND_MONTH_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    name: str
    owner: str
    control_tier: str
    risk_level: str
    allowed_actions: _containers.RepeatedScalarFieldContainer[str]
    daily_limit: str
    monthly_limit: str
    human_sponsor_id: str
    default_mode: _common_pb2.Mode
    status: AgentStatus
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    spend_today: str
    spend_month: str
    def __init__(self, agent_id: _Optional[str] = ..., name: _Optional[str] = ..., owner: _Optional[str] = ..., control_tier: _Optional[str] = ..., risk_level: _Optional[str] = ..., allowed_actions: _Optional[_Iterable[str]] = ..., daily_limit: _Optional[str] = ..., monthly_limit: _Optional[str] = ..., human_sponsor_id: _Optional[str] = ..., default_mode: _Optional[_Union[_common_pb2.Mode, str]] = ..., status: _Optional[_Union[AgentStatus, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., spend_today: _Optional[str] = ..., spend_month: _Optional[str] = ...) -> None: ...

class RegisterAgentRequest(_message.Message):
    __slots__ = ("agent_id", "name", "owner", "control_tier", "risk_level", "allowed_actions", "daily_limit", "monthly_limit", "human_sponsor_id", "default_mode", "idempotency_key")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    CONTROL_TIER_FIELD_NUMBER: _ClassVar[int]
    RISK_LEVEL_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_ACTIONS_FIELD_NUMBER: _ClassVar[int]
    DAILY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    MONTHLY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    HUMAN_SPONSOR_ID_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MODE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    name: str
    owner: str
    control_tier: str
    risk_level: str
    allowed_actions: _containers.RepeatedScalarFieldContainer[str]
    daily_limit: str
    monthly_limit: str
    human_sponsor_id: str
    default_mode: _common_pb2.Mode
    idempotency_key: str
    def __init__(self, agent_id: _Optional[str] = ..., name: _Optional[str] = ..., owner: _Optional[str] = ..., control_tier: _Optional[str] = ..., risk_level: _Optional[str] = ..., allowed_actions: _Optional[_Iterable[str]] = ..., daily_limit: _Optional[str] = ..., monthly_limit: _Optional[str] = ..., human_sponsor_id: _Optional[str] = ..., default_mode: _Optional[_Union[_common_pb2.Mode, str]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class GetAgentRequest(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class ListAgentsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "status")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    status: AgentStatus
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., status: _Optional[_Union[AgentStatus, str]] = ...) -> None: ...

class ListAgentsResponse(_message.Message):
    __slots__ = ("agents", "next_page_token")
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.RepeatedCompositeFieldContainer[Agent]
    next_page_token: str
    def __init__(self, agents: _Optional[_Iterable[_Union[Agent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateAgentRequest(_message.Message):
    __slots__ = ("agent_id", "name", "owner", "control_tier", "risk_level", "allowed_actions", "daily_limit", "monthly_limit", "human_sponsor_id", "default_mode", "status", "update_mask", "idempotency_key")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    CONTROL_TIER_FIELD_NUMBER: _ClassVar[int]
    RISK_LEVEL_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_ACTIONS_FIELD_NUMBER: _ClassVar[int]
    DAILY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    MONTHLY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    HUMAN_SPONSOR_ID_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MODE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    name: str
    owner: str
    control_tier: str
    risk_level: str
    allowed_actions: _containers.RepeatedScalarFieldContainer[str]
    daily_limit: str
    monthly_limit: str
    human_sponsor_id: str
    default_mode: _common_pb2.Mode
    status: AgentStatus
    update_mask: _field_mask_pb2.FieldMask
    idempotency_key: str
    def __init__(self, agent_id: _Optional[str] = ..., name: _Optional[str] = ..., owner: _Optional[str] = ..., control_tier: _Optional[str] = ..., risk_level: _Optional[str] = ..., allowed_actions: _Optional[_Iterable[str]] = ..., daily_limit: _Optional[str] = ..., monthly_limit: _Optional[str] = ..., human_sponsor_id: _Optional[str] = ..., default_mode: _Optional[_Union[_common_pb2.Mode, str]] = ..., status: _Optional[_Union[AgentStatus, str]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...
