"""The grpc.aio server: guarded servicers, health, reflection, graceful drain."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc
from grpc_health.v1 import _async as health_async
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from gavel.adapters.grpc.interceptors import Guard, GuardedRegistry, StreamSlots
from gavel.adapters.grpc.servicers import add_servicers
from gavel.bootstrap import Runtime

log = logging.getLogger("gavel.server")
HEALTH_PROBE_SECONDS = 2.0
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


class GrpcServer:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.health = health_async.HealthServicer()
        self.server: grpc.aio.Server | None = None
        self.port = 0
        self._probe: asyncio.Task | None = None
        self._draining = False
        self._store_ok = False

    async def start(self, addr: str) -> int:
        s = self.runtime.settings
        server = grpc.aio.server(
            options=[("grpc.max_receive_message_length", s.max_message_bytes),
                     ("grpc.max_send_message_length", s.max_message_bytes),
                     ("grpc.so_reuseport", 0)],
        )
        guard = Guard(self.runtime.app.authenticate, self.runtime.limiter, StreamSlots(s.max_streams_per_tenant))
        registry = GuardedRegistry(server, guard)
        names = add_servicers(registry, self.runtime.app, max_decisions_per_stream=s.max_decisions_per_stream)
        if sorted(registry.services) != sorted(names):  # every gavel.v1 service must sit behind the guard
            raise RuntimeError(f"unguarded services: {sorted(set(names) - set(registry.services))}")
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection((*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                                             reflection.SERVICE_NAME), server)
        self.port = server.add_insecure_port(addr)
        if self.port == 0:
            raise OSError(f"cannot listen on {addr}")
        await server.start()
        self.server = server
        self.runtime.start_background()
        await self._set_health(await self.runtime.store.ping())
        self._probe = asyncio.create_task(self._watch_store())
        return self.port

    @property
    def serving(self) -> bool:
        return self.server is not None and not self._draining and self._store_ok

    async def _set_health(self, ok: bool) -> None:
        self._store_ok = ok
        status = SERVING if ok and not self._draining else NOT_SERVING
        await self.health.set("", status)
        for name in ("gavel.v1.DecisionService",):
            await self.health.set(name, status)

    async def _watch_store(self) -> None:
        last = None
        while not self._draining:
            ok = await self.runtime.store.ping()
            if ok != last:
                if last is not None:
                    log.warning("store is %s", "reachable again" if ok else "unreachable: health is NOT_SERVING")
                await self._set_health(ok)
                last = ok
            await asyncio.sleep(HEALTH_PROBE_SECONDS)

    async def stop(self, grace: float) -> None:
        """Drain: NOT_SERVING first, then let in-flight calls finish within `grace` seconds."""
        self._draining = True
        await self._set_health(False)
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        if self.server is not None:
            await self.server.stop(grace)
        await self.runtime.close()
