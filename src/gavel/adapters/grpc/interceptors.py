"""The guard around every `gavel.v1` method handler, in this order:

1. recovery — any exception becomes a typed status; unexpected ones are logged (never the key)
   and answered INTERNAL without internals;
2. authentication — `authorization: Bearer <key>` or `x-api-key: <key>` → a Principal;
3. authorisation — the key table of API.md;
4. rate limit — per tenant + environment, `x-ratelimit-*` and `retry-after` trailers;
5. the request: a body protobuf cannot decode, or NUL (U+0000) in any string field, is refused
   INVALID_ARGUMENT (see `decoder`);
6. streams only: a slot among the tenant + environment's open streams (`StreamSlots`), held
   until the stream ends however it ends (finished, failed, cancelled by the client, past its
   deadline), and a relay that stops the handler when the call ends (`relay`); for client
   streams, the key is checked again before each request (a revoked key ends the stream
   UNAUTHENTICATED);
7. the handler, with the Principal in a context variable.

Health and reflection are not wrapped. The handlers are wrapped once, when the servicers are
registered (`GuardedRegistry`), not by a grpc.aio interceptor, which would run a coroutine and
build a new handler for every call.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
from google.protobuf.descriptor import FieldDescriptor

from gavel.adapters.grpc.errors import bounded, for_error, status_details
from gavel.app.errors import FieldViolation, Forbidden, GavelError, InvalidRequest, RateLimited, Unauthenticated
from gavel.app.ports import StoreUnavailable
from gavel.app.principal import Principal
from gavel.app.ratelimit import FixedWindowLimiter

log = logging.getLogger("gavel.grpc")
current_principal: contextvars.ContextVar[Principal] = contextvars.ContextVar("gavel_principal")
PACKAGE_PREFIX = "/gavel.v1."

Authenticate = Callable[[str], Awaitable[Principal]]


class StreamLimitExceeded(GavelError):
    """The tenant + environment already has as many server streams open as allowed."""

    reason = "STREAM_LIMIT_EXCEEDED"


class StreamDecisionsExceeded(GavelError):
    """A DecideStream was sent more decisions than one stream accepts; open a new stream."""

    reason = "STREAM_DECISIONS_EXCEEDED"


STREAM_LIMIT_REASONS = frozenset({StreamLimitExceeded.reason, StreamDecisionsExceeded.reason})


class StreamSlots:
    """Open server streams per tenant + environment, refused past `limit` (0: no limit).

    One counter per tenant + environment that has a stream open right now (an entry goes when
    its count is back to zero). Used from the event loop only."""

    def __init__(self, limit: int):
        self.limit = limit
        self._open: dict[tuple[str, str], int] = {}

    def take(self, principal: Principal) -> tuple[str, str] | None:
        if principal.tenant_id is None:
            return None
        key = (principal.tenant_id, principal.environment)
        count = self._open.get(key, 0)
        if self.limit and count >= self.limit:
            raise StreamLimitExceeded(
                f"this tenant and environment has {count} streams open, the most allowed "
                "(GAVEL_MAX_STREAMS_PER_TENANT); close one or retry later", metadata={"limit": self.limit})
        self._open[key] = count + 1
        return key

    def give_back(self, key: tuple[str, str] | None) -> None:
        if key is None:
            return
        count = self._open[key] - 1
        if count:
            self._open[key] = count
        else:
            del self._open[key]


STOP_SECONDS = 5.0  # how long a cancelled stream handler is cancelled again until it stops


async def relay(responses: AsyncIterator, context: grpc.aio.ServicerContext) -> None:
    """Write each answer of a streaming handler to its call until the handler ends.

    The handler and its writes run in a task of their own, which this task — the one grpc
    cancels, once, when the client cancels or its deadline passes — waits for behind a shield.
    So a handler that swallows that one cancellation cannot outlive its call: Python 3.11's
    `asyncio.wait_for` returns normally when the cancellation arrives just as what it waits for
    completes (CPython gh-86296), and a stream that loops around one (waiting for ledger events,
    say) would go on polling the store for a client that is gone, holding its stream slot. Here
    the handler is cancelled again until it has stopped.
    """
    async def pump() -> None:
        try:
            async for response in responses:
                await context.write(response)
        finally:
            await responses.aclose()  # stopped while writing: the handler's clean-up runs now

    task = asyncio.get_running_loop().create_task(pump())
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await _stop(task)
        raise


async def _stop(task: asyncio.Task) -> None:
    deadline = asyncio.get_running_loop().time() + STOP_SECONDS
    while not task.done():
        if asyncio.get_running_loop().time() > deadline:
            log.error("a cancelled stream handler did not stop within %g s", STOP_SECONDS)
            return
        task.cancel()
        await asyncio.wait((task,), timeout=0.05)
    if not task.cancelled() and task.exception() is not None:
        log.debug("a cancelled stream handler ended with %r", task.exception())


class Refused:
    """What a guarded request deserializer gives instead of a request it refuses: the guarded
    handler raises `error`, so the call ends with its status like any other refusal."""

    __slots__ = ("error",)

    def __init__(self, error: GavelError):
        self.error = error


# Methods that handle NUL themselves: the decision requests (gavel.app.requests.validate refuses NUL
# in their text fields, naming the field as Decide does; Decide is the hot path, and walking its
# request twice would double that cost), and ValidateRules, whose rules text is compiled, never
# stored, and answered with a located diagnostic for a NUL, exactly as `gavel check` does.
NUL_CHECKED_BY_HANDLER = frozenset({"DecisionService.Decide", "DecisionService.DecideStream",
                                    "PolicyService.ExplainDecision", "PolicyService.ValidateRules"})
_STRING, _MESSAGE = FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_MESSAGE


def decoder(deserialize: Callable[[bytes], object], method: str, check_nul: bool) -> Callable[[bytes], object]:
    """`deserialize`, refusing what the use cases must never see, as a `Refused`:

    - a body protobuf cannot decode (corrupt bytes, a Struct nested past protobuf's recursion
      limit): grpc.aio would answer UNKNOWN with the exception's text and log a traceback;
    - NUL (U+0000) in any string field, which PostgreSQL text cannot hold (refused on every store,
      so a request means the same everywhere). A NUL character is a 0 byte in the body, so only a
      body with a 0 byte in it is walked."""
    def undecodable() -> Refused:
        return Refused(InvalidRequest(f"the request body is not a valid {method} request",
                                      (FieldViolation("request", "not a valid protobuf message"),)))

    if not check_nul:
        def decode_only(raw: bytes):
            try:
                return deserialize(raw)
            except Exception:  # DecodeError, or RecursionError past protobuf's nesting limit
                return undecodable()
        return decode_only

    def decode(raw: bytes):
        try:
            request = deserialize(raw)
        except Exception:
            return undecodable()
        if b"\x00" in raw:
            where = nul_field(request)
            if where is not None:
                return Refused(InvalidRequest(f"{where}: must not contain NUL (U+0000) characters",
                                              (FieldViolation(where, "must not contain NUL (U+0000) characters"),)))
        return request
    return decode


_JSON_TYPES = frozenset({"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"})


def nul_field(message, path: str = "") -> str | None:
    """The path of the first string field (map keys and Struct values included) holding NUL."""
    json = message.DESCRIPTOR.full_name in _JSON_TYPES  # named by its keys only: `action.args.note`
    for field, value in message.ListFields():
        where = path if json else f"{path}.{field.name}" if path else field.name
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            entry = field.message_type.fields_by_name
            key_field, value_field = entry["key"], entry["value"]
            for key, item in value.items():
                if key_field.type == _STRING and "\x00" in key:
                    return where
                inner = f"{where}.{key}" if key_field.type == _STRING else f"{where}[{key}]"
                if value_field.type == _STRING and "\x00" in item:
                    return inner
                if value_field.type == _MESSAGE and (found := nul_field(item, inner)) is not None:
                    return found
            continue
        items = value if field.is_repeated else (value,)
        if field.type == _STRING:
            if any("\x00" in item for item in items):
                return where
        elif field.type == _MESSAGE:
            for item in items:
                if (found := nul_field(item, where)) is not None:
                    return found
    return None


def key_from_metadata(metadata) -> str:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        if key == "x-api-key" and isinstance(value, str) and value.strip():
            return value.strip()
    raise Unauthenticated("missing API key: send `authorization: Bearer <key>` or `x-api-key: <key>`")


class GuardedRegistry:
    """Stands in for the server while the generated `add_*Servicer_to_server` functions register
    `gavel.v1` services: each method handler is wrapped in the guard, then registered on the
    real server. `services` lists what was registered."""

    def __init__(self, server: grpc.aio.Server, guard: Guard):
        self._server, self._guard = server, guard
        self.services: list[str] = []

    def add_generic_rpc_handlers(self, handlers) -> None:
        """The generated code registers each service twice, generically and by method; the guarded
        handlers are registered both ways in `add_registered_method_handlers`."""

    def add_registered_method_handlers(self, service: str, method_handlers: dict) -> None:
        if not service.startswith(PACKAGE_PREFIX[1:]):
            raise ValueError(f"`{service}` is not a gavel.v1 service")
        short = service[len(PACKAGE_PREFIX) - 1:]
        guarded = {name: self._guard.wrap(handler, f"{short}.{name}") for name, handler in method_handlers.items()}
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, guarded),))
        self._server.add_registered_method_handlers(service, guarded)
        self.services.append(service)


class Guard:
    def __init__(self, authenticate: Authenticate, limiter: FixedWindowLimiter, streams: StreamSlots | None = None):
        self._authenticate = authenticate
        self._limiter = limiter
        self.streams = streams if streams is not None else StreamSlots(0)

    async def _admit(self, method: str, context: grpc.aio.ServicerContext) -> tuple[Principal, list]:
        principal = await self._authenticate(key_from_metadata(context.invocation_metadata()))
        if not principal.may_call(method):
            raise Forbidden(f"this key may not call {method}")
        trailers: list[tuple[str, str]] = []
        if principal.tenant_id is not None:
            quota = self._limiter.take((principal.tenant_id, principal.environment))
            if quota.limit:
                trailers = [("x-ratelimit-limit", str(quota.limit)),
                            ("x-ratelimit-remaining", str(quota.remaining))]
                if not quota.allowed:
                    trailers.append(("retry-after", str(quota.retry_after)))
                    raise RateLimited(f"rate limit of {quota.limit} requests per minute exceeded",
                                      metadata={"retry_after": quota.retry_after, "_trailers": trailers})
        return principal, trailers

    @staticmethod
    async def _fail(context: grpc.aio.ServicerContext, exc: BaseException, method: str, trailers: list) -> None:
        if isinstance(exc, GavelError) and exc.reason in STREAM_LIMIT_REASONS:
            code, message = grpc.StatusCode.RESOURCE_EXHAUSTED, bounded(exc.message)
            details = status_details(code, exc.reason, message, metadata={k: str(v) for k, v in exc.metadata.items()})
        elif isinstance(exc, GavelError):
            extra = exc.metadata.pop("_trailers", None)
            code, message, details = for_error(exc)
            trailers = extra or trailers
        elif isinstance(exc, StoreUnavailable):
            code, message = grpc.StatusCode.UNAVAILABLE, "the store is unavailable; retry shortly"
            details = status_details(code, "STORE_UNAVAILABLE", message)
        else:
            log.exception("unexpected error in %s", method)
            code, message = grpc.StatusCode.INTERNAL, "internal error"
            details = status_details(code, "INTERNAL_ERROR", message)
        await context.abort(code, message, trailing_metadata=(*trailers, ("grpc-status-details-bin", details)))

    def wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        admit, fail = self._admit, self._fail
        deserializer = handler.request_deserializer
        if deserializer is not None:
            deserializer = decoder(deserializer, method, method not in NUL_CHECKED_BY_HANDLER)

        if handler.unary_unary:
            inner = handler.unary_unary

            async def unary_unary(request, context):
                trailers: list = []
                try:
                    principal, trailers = await admit(method, context)
                    if request.__class__ is Refused:
                        raise request.error
                    token = current_principal.set(principal)
                    try:
                        response = await inner(request, context)
                    finally:
                        current_principal.reset(token)
                    if trailers:
                        context.set_trailing_metadata(tuple(trailers))
                    return response
                except (GavelError, StoreUnavailable, Exception) as exc:
                    if isinstance(exc, grpc.aio.AbortError):
                        raise
                    await fail(context, exc, method, trailers)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, request_deserializer=deserializer, response_serializer=handler.response_serializer)

        streaming = handler.unary_stream or handler.stream_stream
        if streaming is None:  # client streaming: not used by gavel.v1
            return handler

        streams, authenticate = self.streams, self._authenticate
        client_streams = handler.stream_stream is not None

        async def checked(requests: AsyncIterator, key: str) -> AsyncIterator:
            """A client stream's requests, each refused if undecodable or once the stream's key is
            no longer valid (revoked: the key cache forgets a revoked key at once, so this costs a
            cache look-up per request, and a store read a second at most)."""
            async for request in requests:
                await authenticate(key)
                if request.__class__ is Refused:
                    raise request.error
                yield request

        async def stream(request, context):
            trailers: list = []
            slot = None
            try:
                principal, trailers = await admit(method, context)
                if client_streams:
                    request = checked(request, key_from_metadata(context.invocation_metadata()))
                elif request.__class__ is Refused:
                    raise request.error
                slot = streams.take(principal)
                current_principal.set(principal)  # this RPC's own task and context: no reset needed
                await relay(streaming(request, context), context)
                if trailers:
                    context.set_trailing_metadata(tuple(trailers))
            except (GavelError, StoreUnavailable, Exception) as exc:
                if isinstance(exc, grpc.aio.AbortError):
                    raise
                await fail(context, exc, method, trailers)
            finally:
                streams.give_back(slot)

        factory = (grpc.unary_stream_rpc_method_handler if handler.unary_stream
                   else grpc.stream_stream_rpc_method_handler)
        return factory(stream, request_deserializer=deserializer, response_serializer=handler.response_serializer)
