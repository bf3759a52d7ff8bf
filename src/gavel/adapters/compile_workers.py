"""Compiling tenants' policies in worker processes, off the event loop every tenant shares.

`ValidateRules`, `PublishBundle`, `ExplainDecision` with a candidate, `ReplayBundle`, promote,
roll back and the `--watch` reload all compile policy text a caller chose. Compiling is pure
Python: on the event loop it stalls every tenant's decisions and `/healthz` for as long as it
runs, and in a thread it still holds the GIL most of the time. So each compile runs first in a
child process — forked from a forkserver that has the compiler imported, one child per compile
— which is killed when it runs past the time limit (CompileTimeExceeded) or when its caller
goes away. A policy that compiled there within the limit and is to be served is then compiled
again here, in a thread, to get the engine (its closures cannot cross processes); that second
compile is known to take about as long as the first, and the event loop keeps its share of
the GIL meanwhile. Each tenant may run `max_per_tenant` compiles at once (CompileLimitExceeded
past it) and the whole server `workers`; more wait their turn.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.forkserver
import threading
from collections.abc import Mapping
from multiprocessing.connection import Connection

from gavel.api import Engine, PolicyError
from gavel.app.errors import CompileLimitExceeded, CompileTimeExceeded
from gavel.app.ports import CompileReport
from gavel.engine.engine import CompiledEngine
from gavel.sources import DEFAULT_MAX_RULES_FILE_BYTES, oversized

log = logging.getLogger("gavel.compile")


class CompileWorkers:
    def __init__(self, timeout_seconds: float, max_per_tenant: int, workers: int,
                 max_file_bytes: int = DEFAULT_MAX_RULES_FILE_BYTES):
        self.timeout_seconds = timeout_seconds
        self.max_file_bytes = max_file_bytes
        self.max_per_tenant = max_per_tenant  # 0: no limit
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(["gavel.adapters.compile_preload"])
        self._slots = asyncio.Semaphore(workers)
        self._running: dict[str, int] = {}
        self._jobs: set[_Job] = set()

    def running(self, tenant_id: str) -> int:
        """Compiles of this tenant under way (a worker's or a thread's)."""
        return self._running.get(tenant_id, 0)

    @staticmethod
    def warm() -> None:
        """Start the forkserver now (blocking), so that the first compile does not wait for it."""
        multiprocessing.forkserver.ensure_running()

    async def check(self, tenant_id: str | None, files: Mapping[str, str], *,
                    analysis: bool = False) -> CompileReport:
        self._take(tenant_id)
        try:
            async with self._slots:
                return await self._in_worker(dict(files), analysis)
        finally:
            self._give_back(tenant_id)

    async def compile(self, tenant_id: str | None, files: Mapping[str, str]) -> CompiledEngine:
        files = dict(files)
        cached = await asyncio.to_thread(Engine.cached, files)
        if cached is not None:
            return cached
        self._take(tenant_id)
        handed_over = False
        try:
            await self._slots.acquire()
            try:
                report = await self._in_worker(files, analysis=False)
                if not report.ok:
                    raise PolicyError(report.diagnostics, report.rendered)
                building = asyncio.ensure_future(asyncio.to_thread(Engine.from_sources, files))
            except BaseException:
                self._slots.release()
                raise
            # The thread cannot be stopped: a caller that goes away leaves the slots taken until it ends.
            building.add_done_callback(lambda _: (self._slots.release(), self._give_back(tenant_id)))
            handed_over = True
            return await asyncio.shield(building)
        finally:
            if not handed_over:
                self._give_back(tenant_id)

    def compiles_in_workers(self) -> int:
        """Worker processes alive right now (each is waited for until it has exited)."""
        return len(self._jobs)

    async def close(self) -> None:
        for job in list(self._jobs):
            job.kill("the server is stopping")

    # ---- internals

    def _take(self, tenant_id: str | None) -> None:
        if tenant_id is None:
            return
        count = self._running.get(tenant_id, 0)
        if self.max_per_tenant and count >= self.max_per_tenant:
            raise CompileLimitExceeded(
                f"this tenant already has {count} policy compile{'s' if count != 1 else ''} running, the most "
                "allowed at once (GAVEL_MAX_COMPILES_PER_TENANT); retry when it has finished",
                metadata={"limit": self.max_per_tenant})
        self._running[tenant_id] = count + 1

    def _give_back(self, tenant_id: str | None) -> None:
        if tenant_id is None:
            return
        count = self._running[tenant_id] - 1
        if count:
            self._running[tenant_id] = count
        else:
            del self._running[tenant_id]

    async def _in_worker(self, files: dict[str, str], analysis: bool) -> CompileReport:
        job = _Job(self._context, files, analysis, self.max_file_bytes)
        self._jobs.add(job)
        waiting = asyncio.ensure_future(asyncio.to_thread(job.run, self.timeout_seconds))
        waiting.add_done_callback(lambda _: self._jobs.discard(job))  # once the child is gone
        try:
            outcome = await asyncio.shield(waiting)
        except asyncio.CancelledError:
            job.kill("its caller went away")  # cancelled, or past the caller's deadline: so is the compile
            raise
        kind = outcome[0]
        if kind == "timeout":
            raise CompileTimeExceeded(
                f"compiling this policy took longer than {self.timeout_seconds:g} s "
                "(GAVEL_COMPILE_TIMEOUT_SECONDS); nothing was changed",
                metadata={"limit_seconds": f"{self.timeout_seconds:g}"})
        if kind == "compiled":
            return CompileReport(True, outcome[1])
        if kind == "refused":
            return CompileReport(False, outcome[1], outcome[2])
        raise RuntimeError(f"the policy compiler failed: {outcome[1]}")


class _Job:
    """One compile in one child process; `run` (in a thread) waits for it, `kill` ends it early."""

    def __init__(self, context, files: dict[str, str], analysis: bool, max_file_bytes: int):
        self._context = context
        self._args = (files, analysis, max_file_bytes)
        self._lock = threading.Lock()
        self._process = None
        self._killed: str | None = None

    def run(self, timeout: float) -> tuple:
        receive, send = self._context.Pipe(duplex=False)
        try:
            with self._lock:
                if self._killed:
                    return ("failed", self._killed)
                self._process = self._context.Process(target=compile_in_child, args=(send, *self._args), daemon=True,
                                                      name="gavel-compile")
                self._process.start()
            send.close()  # the child holds the only sending end: its exit is our EOF
            if not receive.poll(timeout):
                self.kill(f"it ran past {timeout:g} s")
                return ("timeout",)
            try:
                return receive.recv()
            except EOFError:
                return ("failed", f"the compile worker exited with code {self._stop()}")
        finally:
            self._stop()
            receive.close()

    def kill(self, why: str) -> None:
        with self._lock:
            if self._killed:
                return
            self._killed = why
            if self._process is not None and self._process.exitcode is None:
                self._process.kill()

    def _stop(self) -> int | None:
        process = self._process
        if process is None:
            return None
        if process.exitcode is None:
            process.kill()
        process.join()
        if self._killed:
            log.info("policy compile stopped because %s: worker %s exited with code %s", self._killed, process.pid,
                     process.exitcode)
            self._killed = ""  # said once
        return process.exitcode


def compile_in_child(send: Connection, files: dict[str, str], analysis: bool, max_file_bytes: int) -> None:
    """The child's whole life: compile, send what was found, exit."""
    try:
        too_large = oversized(files, max_file_bytes)
        if too_large:
            send.send(("refused", too_large, "\n".join(d.headline() for d in too_large)))
            return
        engine = Engine.from_sources(files)
        send.send(("compiled", engine.warnings if analysis else engine.compilation.warnings))
    except PolicyError as exc:
        send.send(("refused", exc.diagnostics, str(exc)))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which answers INTERNAL
        send.send(("failed", f"{type(exc).__name__}: {exc}"))
    finally:
        send.close()
