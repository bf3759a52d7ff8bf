"""The REST shim: a small aiohttp application on the gRPC server's event loop.

`GET /healthz`, `GET /.well-known/jwks.json`, webhook subscriptions and deliveries, and the
approvers' callback `POST /v1/approvals/{id}/resolve`. Same API keys as gRPC (Bearer or
`x-api-key`), same use cases, same error reasons: `{"error": {"code", "message"}}` with the HTTP
status the reason implies. POSTs require an `Idempotency-Key` header. Request bodies are strict
JSON objects: unknown fields, wrong types and oversized bodies are 400.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gavel.adapters.grpc.interceptors import key_from_metadata
from gavel.app.approvals import Resolution
from gavel.app.errors import FieldViolation, GavelError, IdempotencyKeyMissing, InvalidRequest, RateLimited
from gavel.app.ports import StoreUnavailable
from gavel.app.requests import modified_action
from gavel.ledger.canonical import strict_loads

log = logging.getLogger("gavel.rest")
MAX_BODY = 64 * 1024
HTTP_STATUS = {
    "INVALID_REQUEST": 400, "MISSING_REQUIRED_FIELD": 400, "IDEMPOTENCY_KEY_MISSING": 400,
    "UNAUTHENTICATED": 401,
    "DECISION_TOKEN_INVALID": 403, "TOKEN_REVOKED": 403, "SOD_VIOLATION": 403, "AGENT_PAUSED": 403,
    "AGENT_LOCKED": 403, "AGENT_MISMATCH": 403, "DECISION_NOT_ENFORCED": 403, "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "DECISION_TOKEN_REUSED": 409, "IDEMPOTENCY_CONFLICT": 409, "ALREADY_REPORTED": 409, "INVALID_TRANSITION": 409,
    "RATE_LIMIT_EXCEEDED": 429, "STORE_UNAVAILABLE": 503, "INTERNAL_ERROR": 500,
}
RESOLVE_ACTIONS = {"APPROVE": "approve", "DENY": "deny", "MODIFY": "modify", "ESCALATE": "escalate"}


def error_response(code: str, message: str, headers: dict | None = None, fields=()) -> web.Response:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if fields:
        body["error"]["fields"] = [{"field": f.field, "description": f.description} for f in fields]
    return web.json_response(body, status=HTTP_STATUS.get(code, 500), headers=headers)


def _bad(field: str, description: str) -> InvalidRequest:
    return InvalidRequest(f"{field}: {description}", (FieldViolation(field, description),))


async def read_object(request: web.Request, allowed: dict[str, type | tuple]) -> dict:
    """The body as a JSON object with only `allowed` fields of the given types."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise _bad("body", f"larger than {MAX_BODY} bytes")
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise _bad("body", f"larger than {MAX_BODY} bytes")
    try:
        # Strict: NaN/Infinity and a member named twice are refused (two readers could disagree).
        body = strict_loads((raw or b"{}").decode("utf-8"), parse_float=float)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad("body", f"not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _bad("body", "must be a JSON object")
    _refuse_nul(body, "")
    for name, value in body.items():
        if name not in allowed:
            raise _bad(name, f"unknown field; allowed: {', '.join(sorted(allowed))}")
        expected = allowed[name]
        mistyped = not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool)
        if value is not None and mistyped:
            raise _bad(name, f"wrong type: expected {getattr(expected, '__name__', expected)}")
    return body


def _refuse_nul(value: Any, where: str) -> None:
    """NUL (U+0000) in any text: PostgreSQL cannot store it, and SQLite would (the stores must agree)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise _bad(where or "body", "must not contain NUL (U+0000)")
    elif isinstance(value, dict):
        for name, member in value.items():
            _refuse_nul(name, where or "body")
            _refuse_nul(member, f"{where}.{name}" if where else name)
    elif isinstance(value, list):
        for i, member in enumerate(value):
            _refuse_nul(member, f"{where}[{i}]")


def build_app(runtime, egress, health: Callable[[], Awaitable[dict]]) -> web.Application:
    """The aiohttp application; `egress.check_url(url)` vets webhook targets (SSRF guard)."""
    app_ = runtime.app
    limiter = runtime.limiter

    @web.middleware
    async def errors(request: web.Request, handler):
        try:
            for name, value in request.match_info.items():
                _refuse_nul(value, name)
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status == 413:
                return error_response("INVALID_REQUEST", f"body larger than {MAX_BODY} bytes")
            if exc.status in (404, 405):
                return error_response("NOT_FOUND", f"no route {request.method} {request.path}")
            raise
        except GavelError as exc:
            headers = exc.metadata.pop("_headers", None)
            return error_response(exc.reason, exc.message, headers, exc.violations)
        except StoreUnavailable:
            return error_response("STORE_UNAVAILABLE", "the store is unavailable; retry shortly")
        except Exception:
            log.exception("unexpected error in %s %s", request.method, request.path)
            return error_response("INTERNAL_ERROR", "internal error")

    async def principal_of(request: web.Request):
        principal = await app_.authenticate(key_from_metadata(
            [(k.lower(), v) for k, v in request.headers.items()]))
        if principal.tenant_id is not None:
            quota = limiter.take((principal.tenant_id, principal.environment))
            if quota.limit and not quota.allowed:
                raise RateLimited(f"rate limit of {quota.limit} requests per minute exceeded",
                                  metadata={"_headers": {"Retry-After": str(quota.retry_after),
                                                         "X-RateLimit-Limit": str(quota.limit),
                                                         "X-RateLimit-Remaining": "0"}})
        return principal

    def idempotency_key(request: web.Request) -> str:
        key = request.headers.get("Idempotency-Key", "").strip()
        if not key:
            raise IdempotencyKeyMissing("POST requests need an Idempotency-Key header",
                                        (FieldViolation("Idempotency-Key", "required"),))
        if len(key) > 255:
            raise _bad("Idempotency-Key", "longer than 255 characters")
        return key

    async def healthz(request: web.Request) -> web.Response:
        report = await health()
        ok = all(v in ("serving", "ok", "running") for v in report.values())
        return web.json_response({"status": "ok" if ok else "degraded", **report}, status=200 if ok else 503)

    async def jwks(request: web.Request) -> web.Response:
        return web.json_response(app_.jwks(), headers={"Cache-Control": "max-age=60"})

    async def create_webhook(request: web.Request) -> web.Response:
        p = await principal_of(request)
        key = idempotency_key(request)
        body = await read_object(request, {"url": str, "events": list, "description": str})
        if not body.get("url"):
            raise _bad("url", "required")
        await egress.check_url(body["url"])
        if len(body.get("description") or "") > 256:
            raise _bad("description", "longer than 256 characters")
        created = await app_.create_webhook(p, body["url"], body.get("events"), body.get("description") or "", key)
        return web.json_response(created, status=201)

    async def list_webhooks(request: web.Request) -> web.Response:
        return web.json_response(await app_.list_webhooks(await principal_of(request)))

    async def get_webhook(request: web.Request) -> web.Response:
        return web.json_response(await app_.get_webhook(await principal_of(request), request.match_info["id"]))

    async def put_webhook(request: web.Request) -> web.Response:
        p = await principal_of(request)
        body = await read_object(request, {"url": str, "events": list, "enabled": bool, "description": str})
        if "url" in body:
            await egress.check_url(body["url"])
        if len(body.get("description") or "") > 256:
            raise _bad("description", "longer than 256 characters")
        changes = {k: v for k, v in body.items() if v is not None}
        return web.json_response(await app_.update_webhook(p, request.match_info["id"], changes))

    async def delete_webhook(request: web.Request) -> web.Response:
        await app_.delete_webhook(await principal_of(request), request.match_info["id"])
        return web.Response(status=204)

    async def test_webhook(request: web.Request) -> web.Response:
        p = await principal_of(request)
        key = idempotency_key(request)
        return web.json_response(await app_.test_webhook(p, request.match_info["id"], key), status=202)

    async def deliveries(request: web.Request) -> web.Response:
        return web.json_response(await app_.webhook_deliveries(await principal_of(request), request.match_info["id"]))

    async def redeliver(request: web.Request) -> web.Response:
        p = await principal_of(request)
        key = idempotency_key(request)
        result = await app_.redeliver(p, request.match_info["id"], request.match_info["delivery_id"], key)
        return web.json_response(result, status=202)

    async def resolve(request: web.Request) -> web.Response:
        p = await principal_of(request)
        key = idempotency_key(request)
        body = await read_object(request, {"action": str, "note": str, "modified_action": dict, "escalate_to": str})
        action = RESOLVE_ACTIONS.get(str(body.get("action", "")).upper())
        if action is None:
            raise _bad("action", "must be APPROVE, DENY, MODIFY or ESCALATE")
        if len(body.get("note") or "") > 2000:
            raise _bad("note", "longer than 2000 characters")
        modified = body.get("modified_action")
        if modified is not None:
            modified = modified_action(modified)  # the checks ResolveApproval makes over gRPC
        task = await app_.resolve_approval(p, Resolution(request.match_info["id"], action, body.get("note") or "",
                                                         modified, body.get("escalate_to") or "", key))
        return web.json_response(task)

    app = web.Application(middlewares=[errors], client_max_size=MAX_BODY)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/.well-known/jwks.json", jwks)
    app.router.add_post("/v1/webhooks", create_webhook)
    app.router.add_get("/v1/webhooks", list_webhooks)
    app.router.add_get("/v1/webhooks/{id}", get_webhook)
    app.router.add_put("/v1/webhooks/{id}", put_webhook)
    app.router.add_delete("/v1/webhooks/{id}", delete_webhook)
    app.router.add_post("/v1/webhooks/{id}/test", test_webhook)
    app.router.add_get("/v1/webhooks/{id}/deliveries", deliveries)
    app.router.add_post("/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", redeliver)
    app.router.add_post("/v1/approvals/{id}/resolve", resolve)
    return app
