"""Shared pieces of the security tests: extra keys, the REST shim beside the harness, and a way to
compare what a call answers for a foreign id with what it answers for an id that never existed."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc

from gavel.adapters.rest.server import RestServer
from gavel.app import admin
from tests.e2e.helpers import error_info


def add_key(h, name: str, *, tenant: str = "acme", environment: str = "test", roles: tuple[str, ...] = (),
            principal: str = "", agents: tuple[str, ...] = ()) -> str:
    """Create a key straight in the store (as `gavel keys create` does) and file it under `name`."""
    now = datetime.now(UTC)
    secret = h.runtime.store.run_sync(lambda uow: admin.create_key(
        uow, None, tenant=tenant, environment=environment, roles=list(roles), principal=principal or name,
        description="", now=now, random_bytes=os.urandom, agents=list(agents)))["secret"]
    h.keys[name] = secret
    return secret


def md_for(secret: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {secret}"),)


@dataclass(frozen=True)
class Answer:
    """What a call answered: `ok` with the response, or the status code, ErrorInfo reason and message."""

    ok: bool
    code: grpc.StatusCode | None = None
    reason: str = ""
    message: str = ""
    response: object = None

    def shown(self, replace: str = "", by: str = "<id>") -> tuple:
        message = self.message.replace(replace, by) if replace else self.message
        return (self.ok, self.code, self.reason, message)


async def answer(call) -> Answer:
    """Await a unary call, or the coroutine of a stream's first read."""
    try:
        response = await call
    except grpc.aio.AioRpcError as err:
        reason, _ = error_info(err)
        return Answer(False, err.code(), reason, err.details() or "")
    return Answer(True, response=response)


async def first_message(call):
    """The first message of a server stream (the error, if the stream fails first)."""
    try:
        return await call.read()
    finally:
        call.cancel()


def same_shape(real: str, alphabet: str = "abcdefghijklmnopqrstuvwxyz234567") -> str:
    """An id of the same shape as `real` that does not exist: its last six characters changed."""
    tail = "".join(alphabet[(alphabet.index(c) + 7) % len(alphabet)] if c in alphabet else c for c in real[-6:])
    fake = real[:-6] + tail
    assert fake != real
    return fake


@dataclass
class Rest:
    base: str
    server: RestServer


async def start_rest(h, egress=None) -> Rest:
    server = RestServer(h.runtime, egress if egress is not None else h.runtime.egress, None)
    port = await server.start("127.0.0.1:0")
    return Rest(f"http://127.0.0.1:{port}", server)


def bearer(secret: str, idempotency_key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {secret}"}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return headers
