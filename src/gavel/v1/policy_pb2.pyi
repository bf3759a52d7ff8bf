import datetime

from gavel.v1 import common_pb2 as _common_pb2
from gavel.v1 import decision_pb2 as _decision_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Diagnostic(_message.Message):
    __slots__ = ("severity", "code", "message", "location", "help")
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    HELP_FIELD_NUMBER: _ClassVar[int]
    severity: str
    code: str
    message: str
    location: _common_pb2.SourceLocation
    help: str
    def __init__(self, severity: _Optional[str] = ..., code: _Optional[str] = ..., message: _Optional[str] = ..., location: _Optional[_Union[_common_pb2.SourceLocation, _Mapping]] = ..., help: _Optional[str] = ...) -> None: ...

class ValidateRulesRequest(_message.Message):
    __slots__ = ("files",)
    class FilesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    FILES_FIELD_NUMBER: _ClassVar[int]
    files: _containers.ScalarMap[str, str]
    def __init__(self, files: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ValidateRulesResponse(_message.Message):
    __slots__ = ("ok", "diagnostics")
    OK_FIELD_NUMBER: _ClassVar[int]
    DIAGNOSTICS_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    diagnostics: _containers.RepeatedCompositeFieldContainer[Diagnostic]
    def __init__(self, ok: _Optional[bool] = ..., diagnostics: _Optional[_Iterable[_Union[Diagnostic, _Mapping]]] = ...) -> None: ...

class PublishBundleRequest(_message.Message):
    __slots__ = ("bundle", "idempotency_key")
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    bundle: bytes
    idempotency_key: str
    def __init__(self, bundle: _Optional[bytes] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class PublishBundleResponse(_message.Message):
    __slots__ = ("bundle_hash", "diagnostics", "version", "activated_at")
    BUNDLE_HASH_FIELD_NUMBER: _ClassVar[int]
    DIAGNOSTICS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTIVATED_AT_FIELD_NUMBER: _ClassVar[int]
    bundle_hash: str
    diagnostics: _containers.RepeatedCompositeFieldContainer[Diagnostic]
    version: str
    activated_at: _timestamp_pb2.Timestamp
    def __init__(self, bundle_hash: _Optional[str] = ..., diagnostics: _Optional[_Iterable[_Union[Diagnostic, _Mapping]]] = ..., version: _Optional[str] = ..., activated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetActiveBundleRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ActiveBundle(_message.Message):
    __slots__ = ("bundle_hash", "version", "activated_at", "environment")
    BUNDLE_HASH_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTIVATED_AT_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    bundle_hash: str
    version: str
    activated_at: _timestamp_pb2.Timestamp
    environment: _common_pb2.Environment
    def __init__(self, bundle_hash: _Optional[str] = ..., version: _Optional[str] = ..., activated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., environment: _Optional[_Union[_common_pb2.Environment, str]] = ...) -> None: ...

class PromoteBundleRequest(_message.Message):
    __slots__ = ("bundle_hash", "idempotency_key")
    BUNDLE_HASH_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    bundle_hash: str
    idempotency_key: str
    def __init__(self, bundle_hash: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class RollbackBundleRequest(_message.Message):
    __slots__ = ("bundle_hash", "idempotency_key")
    BUNDLE_HASH_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    bundle_hash: str
    idempotency_key: str
    def __init__(self, bundle_hash: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class ListBundleHistoryRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class BundleActivation(_message.Message):
    __slots__ = ("bundle_hash", "version", "activated_at", "action", "by")
    BUNDLE_HASH_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTIVATED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    bundle_hash: str
    version: str
    activated_at: _timestamp_pb2.Timestamp
    action: str
    by: str
    def __init__(self, bundle_hash: _Optional[str] = ..., version: _Optional[str] = ..., activated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., action: _Optional[str] = ..., by: _Optional[str] = ...) -> None: ...

class ListBundleHistoryResponse(_message.Message):
    __slots__ = ("activations", "next_page_token")
    ACTIVATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    activations: _containers.RepeatedCompositeFieldContainer[BundleActivation]
    next_page_token: str
    def __init__(self, activations: _Optional[_Iterable[_Union[BundleActivation, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetBundleRequest(_message.Message):
    __slots__ = ("bundle_hash",)
    BUNDLE_HASH_FIELD_NUMBER: _ClassVar[int]
    bundle_hash: str
    def __init__(self, bundle_hash: _Optional[str] = ...) -> None: ...

class GetBundleResponse(_message.Message):
    __slots__ = ("bundle_hash", "version", "archive", "manifest_json")
    BUNDLE_HASH_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ARCHIVE_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_JSON_FIELD_NUMBER: _ClassVar[int]
    bundle_hash: str
    version: str
    archive: bytes
    manifest_json: str
    def __init__(self, bundle_hash: _Optional[str] = ..., version: _Optional[str] = ..., archive: _Optional[bytes] = ..., manifest_json: _Optional[str] = ...) -> None: ...

class ExplainDecisionRequest(_message.Message):
    __slots__ = ("request", "bundle")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    request: _decision_pb2.DecideRequest
    bundle: bytes
    def __init__(self, request: _Optional[_Union[_decision_pb2.DecideRequest, _Mapping]] = ..., bundle: _Optional[bytes] = ...) -> None: ...

class ReplaySummary(_message.Message):
    __slots__ = ("evaluated", "changed", "transitions", "bundle_hash")
    class TransitionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    EVALUATED_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    TRANSITIONS_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_HASH_FIELD_NUMBER: _ClassVar[int]
    evaluated: int
    changed: int
    transitions: _containers.ScalarMap[str, int]
    bundle_hash: str
    def __init__(self, evaluated: _Optional[int] = ..., changed: _Optional[int] = ..., transitions: _Optional[_Mapping[str, int]] = ..., bundle_hash: _Optional[str] = ...) -> None: ...

class ReplayBundleRequest(_message.Message):
    __slots__ = ("bundle", "since")
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    bundle: bytes
    since: _duration_pb2.Duration
    def __init__(self, bundle: _Optional[bytes] = ..., since: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ReplayResult(_message.Message):
    __slots__ = ("decision_id", "old_outcome", "new_outcome", "old_reason_code", "new_reason_code", "old_explain_json", "new_explain_json", "decided_at", "summary")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    OLD_OUTCOME_FIELD_NUMBER: _ClassVar[int]
    NEW_OUTCOME_FIELD_NUMBER: _ClassVar[int]
    OLD_REASON_CODE_FIELD_NUMBER: _ClassVar[int]
    NEW_REASON_CODE_FIELD_NUMBER: _ClassVar[int]
    OLD_EXPLAIN_JSON_FIELD_NUMBER: _ClassVar[int]
    NEW_EXPLAIN_JSON_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    old_outcome: _common_pb2.Outcome
    new_outcome: _common_pb2.Outcome
    old_reason_code: str
    new_reason_code: str
    old_explain_json: str
    new_explain_json: str
    decided_at: _timestamp_pb2.Timestamp
    summary: ReplaySummary
    def __init__(self, decision_id: _Optional[str] = ..., old_outcome: _Optional[_Union[_common_pb2.Outcome, str]] = ..., new_outcome: _Optional[_Union[_common_pb2.Outcome, str]] = ..., old_reason_code: _Optional[str] = ..., new_reason_code: _Optional[str] = ..., old_explain_json: _Optional[str] = ..., new_explain_json: _Optional[str] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., summary: _Optional[_Union[ReplaySummary, _Mapping]] = ...) -> None: ...
