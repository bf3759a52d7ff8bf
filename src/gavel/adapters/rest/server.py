"""Serving the REST shim on the gRPC server's event loop."""

from __future__ import annotations

from aiohttp import web

from gavel.adapters.rest.app import build_app


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
        self.runner = web.AppRunner(build_app(self.runtime, self.egress, self.health), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host.strip("[]"), int(port))
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self.port

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
