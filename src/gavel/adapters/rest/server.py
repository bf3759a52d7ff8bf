"""Serving the REST shim on the gRPC server's event loop."""

from __future__ import annotations

import logging
import sys

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from gavel.adapters.rest.app import build_app


class RequestLog(logging.LoggerAdapter):
    """aiohttp's log for handling requests. A request it cannot parse (garbage, a TLS hello, a 9 KB
    request line, a broken header) is the client's mistake, answered 400 by aiohttp itself: one
    line without a traceback, at INFO at most, so that anyone's garbage cannot fill the log with
    tracebacks. Everything else is logged as aiohttp logs it."""

    def log(self, level, msg, *args, exc_info=None, **kwargs) -> None:
        error = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1] if exc_info is True else None
        if isinstance(error, HttpProcessingError):
            level, exc_info = min(level, logging.INFO), None
            msg, args = f"{msg}: a malformed HTTP request (%s)", (*args, error.message or type(error).__name__)
        super().log(level, msg, *args, exc_info=exc_info, **kwargs)


class RestServer:
    def __init__(self, runtime, egress, grpc_server):
        self.runtime = runtime
        self.egress = egress
        self.grpc_server = grpc_server
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def health(self) -> dict:
        store_ok = await self.runtime.store.ping()
        grpc_ok = self.grpc_server is not None and self.grpc_server.serving
        background = self.runtime.background_running()
        return {"grpc": "serving" if grpc_ok else "not_serving", "store": "ok" if store_ok else "unreachable",
                "scheduler": "running" if background else "stopped"}

    async def start(self, addr: str) -> int:
        host, _, port = addr.rpartition(":")
        self.runner = web.AppRunner(build_app(self.runtime, self.egress, self.health), access_log=None,
                                    logger=RequestLog(logging.getLogger("aiohttp.server"), {}))
        await self.runner.setup()
        site = web.TCPSite(self.runner, host.strip("[]"), int(port))
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self.port

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
