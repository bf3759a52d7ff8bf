from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNSPECIFIED: _ClassVar[Outcome]
    OUTCOME_ALLOW: _ClassVar[Outcome]
    OUTCOME_DENY: _ClassVar[Outcome]
    OUTCOME_REQUIRE_APPROVAL: _ClassVar[Outcome]

class Mode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODE_UNSPECIFIED: _ClassVar[Mode]
    MODE_MONITOR: _ClassVar[Mode]
    MODE_WARN: _ClassVar[Mode]
    MODE_ENFORCE: _ClassVar[Mode]
    MODE_STRICT: _ClassVar[Mode]

class Environment(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENVIRONMENT_UNSPECIFIED: _ClassVar[Environment]
    ENVIRONMENT_TEST: _ClassVar[Environment]
    ENVIRONMENT_LIVE: _ClassVar[Environment]
OUTCOME_UNSPECIFIED: Outcome
OUTCOME_ALLOW: Outcome
OUTCOME_DENY: Outcome
OUTCOME_REQUIRE_APPROVAL: Outcome
MODE_UNSPECIFIED: Mode
MODE_MONITOR: Mode
MODE_WARN: Mode
MODE_ENFORCE: Mode
MODE_STRICT: Mode
ENVIRONMENT_UNSPECIFIED: Environment
ENVIRONMENT_TEST: Environment
ENVIRONMENT_LIVE: Environment

class Action(_message.Message):
    __slots__ = ("type", "subtype", "amount", "currency", "entity", "business_unit", "jurisdiction", "tool", "resource", "args")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SUBTYPE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    BUSINESS_UNIT_FIELD_NUMBER: _ClassVar[int]
    JURISDICTION_FIELD_NUMBER: _ClassVar[int]
    TOOL_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    type: str
    subtype: str
    amount: str
    currency: str
    entity: str
    business_unit: str
    jurisdiction: str
    tool: str
    resource: str
    args: _struct_pb2.Struct
    def __init__(self, type: _Optional[str] = ..., subtype: _Optional[str] = ..., amount: _Optional[str] = ..., currency: _Optional[str] = ..., entity: _Optional[str] = ..., business_unit: _Optional[str] = ..., jurisdiction: _Optional[str] = ..., tool: _Optional[str] = ..., resource: _Optional[str] = ..., args: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class SourceLocation(_message.Message):
    __slots__ = ("file", "line", "column")
    FILE_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    file: str
    line: int
    column: int
    def __init__(self, file: _Optional[str] = ..., line: _Optional[int] = ..., column: _Optional[int] = ...) -> None: ...
