"""`SqlStore`: the `Store` port on SQLite or PostgreSQL, with group commit.

Writes go to one writer thread. Each time it wakes it takes every queued unit (up to
`max_batch`), runs them in one transaction — each in its own savepoint, so a unit that raises
is undone alone and gets its own exception — and commits once. Only after that commit succeeds
does any caller see its result; if the commit fails, every unit of the batch fails with
`StoreUnavailable` and none of it is written. Under load, many writes share one commit (one
fsync), and with no load a write is committed at once: nothing waits to fill a batch.

Reads run on a small thread pool in read-only transactions that are always rolled back.
Database trouble surfaces as `StoreUnavailable`; the failed connection is dropped, and the next
call reconnects, so the service resumes by itself when the database returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import random
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Engine, text

from gavel.adapters.db import prepared
from gavel.adapters.db.engine import SqliteSynchronous, make_engine, sqlite_path
from gavel.adapters.db.errors import lost_race, translated, unavailable
from gavel.adapters.db.repositories import lock_chain_heads
from gavel.adapters.db.unit_of_work import SqlUnitOfWork
from gavel.app.ports import RetryUnit, StoreUnavailable, UnitOfWork

T = TypeVar("T")

PING_TIMEOUT_S = 2.0
RETRIES = 3  # runs of a unit that lost a race with another writer (RetryUnit)
BATCH_RETRIES = 5  # runs of a whole batch chosen as a deadlock victim
WAL_CHECKPOINT_INTERVAL_S = 0.1  # SQLite: how often committed WAL frames are moved to the database file


@dataclass(eq=False)
class _PendingWrite:
    unit: Callable[[UnitOfWork], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    chain: tuple[str, str] | None = None  # the (tenant, environment) whose ledger chain it appends to
    result: Any = None
    error: BaseException | None = None
    savepoint_released: bool = False  # the unit succeeded; its writes await the commit



def _settle_all(settled: list[_PendingWrite]) -> None:
    for pending in settled:
        if pending.future.done():  # cancelled by the caller meanwhile
            continue
        if pending.error is not None:
            pending.future.set_exception(pending.error)
        else:
            pending.future.set_result(pending.result)


def _settle(batch: list[_PendingWrite]) -> None:
    """Hand each result to its caller's loop: one wake-up per loop, not one per write."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_PendingWrite]] = {}
    for pending in batch:
        by_loop.setdefault(pending.loop, []).append(pending)
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the caller's loop is closed: nobody is waiting any more
            loop.call_soon_threadsafe(_settle_all, settled)


_STOP = object()


class SqlStore:
    """The store on the database at `url` (already migrated: see `gavel.adapters.db.migrate`).

    `sqlite_synchronous="FULL"` makes each SQLite commit survive power loss, not only a crash
    of the process. `max_batch` caps how many writes share one transaction.
    """

    def __init__(
        self,
        url: str,
        *,
        sqlite_synchronous: SqliteSynchronous = "NORMAL",
        max_batch: int = 256,
        reader_threads: int = 4,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._sqlite_file = sqlite_path(url)
        self._writer_engine: Engine = make_engine(
            url, sqlite_synchronous=sqlite_synchronous, create_missing=False, pool_size=2,
            sqlite_autocheckpoint=False,
        )
        self._reader_engine: Engine = make_engine(
            url, sqlite_synchronous=sqlite_synchronous, read_only=True, create_missing=False, pool_size=reader_threads
        )
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._readers = ThreadPoolExecutor(max_workers=reader_threads, thread_name_prefix="gavel-store-reader")
        self._lock = threading.Lock()
        self._writer: threading.Thread | None = None
        self._checkpointer: threading.Thread | None = None
        self._committed = threading.Event()  # set after a commit: the WAL has frames to move
        self._closed = False
        self.committed_batches = 0  # transactions committed by the writer (for tests and metrics)
        self.committed_writes = 0  # units committed by the writer
        self.failed_batches = 0  # writer transactions that could not commit

    # -- the Store port ------------------------------------------------------------------------

    def write(self, unit: Callable[[UnitOfWork], T], *, chain: tuple[str, str] | None = None) -> Awaitable[T]:
        """Queue `unit` for the writer; the result resolves on the running loop after the commit.

        `chain` names the (tenant, environment) whose ledger chain the unit appends to. Within a
        batch the units are run in chain order, so every replica's batches lock chain heads in one
        global order and can never wait on each other in a cycle; a unit that names no chain (a
        sweep over many chains, which visits them in the same order) gets a batch of its own.
        A write whose caller stopped waiting before the writer reached it is skipped.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._closed:
                future.set_exception(StoreUnavailable("the store is closed"))
                return future
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_batches, name="gavel-store-writer", daemon=True)
                self._writer.start()
            self._start_checkpointer()
            self._queue.put(_PendingWrite(unit, loop, future, chain))
        return future

    def _start_checkpointer(self) -> None:
        if self._checkpointer is None and self._sqlite_file is not None:
            self._checkpointer = threading.Thread(target=self._checkpoint_wal, name="gavel-wal-checkpointer",
                                                  daemon=True)
            self._checkpointer.start()

    def read(self, unit: Callable[[UnitOfWork], T]) -> Awaitable[T]:
        """Run `unit` on a reader thread in a read-only transaction, rolled back afterwards."""
        loop = asyncio.get_running_loop()
        if self._closed:
            future: asyncio.Future[T] = loop.create_future()
            future.set_exception(StoreUnavailable("the store is closed"))
            return future
        return loop.run_in_executor(self._readers, self._read, unit)

    def run_sync(self, unit: Callable[[UnitOfWork], T]) -> T:
        """Run `unit` in one committed transaction in the calling thread (for the CLI)."""
        if self._closed:
            raise StoreUnavailable("the store is closed")
        with self._lock:
            self._start_checkpointer()
        try:
            with self._writer_engine.connect() as connection, connection.begin():
                result = unit(SqlUnitOfWork(connection))
            self._committed.set()
            return result
        except Exception as error:
            outcome = translated(error)
            if outcome is error:
                raise
            raise outcome from error

    async def ping(self) -> bool:
        """Whether the database answers `SELECT 1` within a couple of seconds."""
        if self._closed:
            return False
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(self._readers, self._select_one), PING_TIMEOUT_S)
        except (TimeoutError, RuntimeError):
            return False

    async def close(self) -> None:
        """Commit the writes already queued, then stop the threads and close the connections."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            writer = self._writer
            if writer is not None:
                self._queue.put(_STOP)
        if writer is not None:
            await asyncio.to_thread(writer.join)
        if self._checkpointer is not None:
            self._committed.set()
            await asyncio.to_thread(self._checkpointer.join)
        await asyncio.to_thread(self._readers.shutdown, True)
        self._writer_engine.dispose()
        self._reader_engine.dispose()

    # -- reading -------------------------------------------------------------------------------

    def _read(self, unit: Callable[[UnitOfWork], T]) -> T:
        try:
            with self._reader_engine.connect() as connection:
                transaction = connection.begin()
                try:
                    return unit(SqlUnitOfWork(connection))
                finally:
                    transaction.rollback()
        except Exception as error:
            outcome = translated(error)
            if outcome is error:
                raise
            raise outcome from error

    def _select_one(self) -> bool:
        if self._sqlite_file is not None and not self._sqlite_file.exists():
            return False
        try:
            with self._reader_engine.connect() as connection:
                return connection.execute(text("SELECT 1")).scalar_one() == 1
        except Exception:
            return False

    # -- writing -------------------------------------------------------------------------------

    def _write_batches(self) -> None:
        carried = None  # a unit naming no chain, taken while filling a batch: it goes next, alone
        while True:
            first, carried = carried if carried is not None else self._queue.get(), None
            if first is _STOP:
                return
            batch = [first]
            stopping = False
            while first.chain is not None and len(batch) < self._max_batch:
                try:
                    pending = self._queue.get_nowait()
                except queue.Empty:
                    break
                if pending is _STOP:
                    stopping = True
                    break
                if pending.chain is None:
                    carried = pending
                    break
                batch.append(pending)
            batch.sort(key=lambda pending: pending.chain or ("", ""))  # stable: arrival order within a chain
            self._commit(batch)
            if stopping:
                return

    def _checkpoint_wal(self) -> None:
        """Move committed WAL frames into the database file, off the writer's path: every
        `WAL_CHECKPOINT_INTERVAL_S` while commits happen. PASSIVE never blocks the writer or a
        reader; whatever it cannot move yet (a reader still needs it) waits for the next round,
        and SQLite restarts the WAL from its start once everything is moved. The fsyncs happen
        here, on a thread that holds no lock the decisions need."""
        while not self._closed:  # SQLite moves the rest when the last connection closes
            self._committed.wait()
            if self._closed:
                return
            time.sleep(WAL_CHECKPOINT_INTERVAL_S)
            self._committed.clear()
            try:
                with self._writer_engine.connect() as connection:
                    prepared.run(connection, "PRAGMA wal_checkpoint(PASSIVE)")
            except Exception:  # the database is unavailable: the writer reports that; try again later
                time.sleep(WAL_CHECKPOINT_INTERVAL_S)

    def _commit(self, batch: list[_PendingWrite]) -> None:
        # Reading `cancelled()` from this thread is a benign race: at worst a unit whose caller
        # just gave up is still committed, which an unacknowledged write may always be.
        live = [pending for pending in batch if not pending.future.cancelled()]
        if not live:
            return
        for attempt in range(BATCH_RETRIES + 1):
            try:
                self._run_batch(live)
                self._committed.set()
                self.committed_batches += 1
                self.committed_writes += sum(pending.savepoint_released for pending in live)
                break
            except _RestartBatch as restart:
                # A deadlock victim (another replica's batch took the same chain heads in the other
                # order): roll everything back so its locks go, then run the whole batch again.
                if attempt < BATCH_RETRIES:
                    time.sleep(random.uniform(0.001, 0.02) * (attempt + 1))
                    continue
                self._fail_batch(live, restart.error)
            except BaseException as error:  # the writer thread must survive anything a unit does
                self._fail_batch(live, error)
                break
        _settle(live)

    def _fail_batch(self, live: list[_PendingWrite], error: BaseException) -> None:
        self.failed_batches += 1
        for pending in live:
            if pending.error is None or isinstance(error, _RestartBatch):
                pending.result = None
                pending.error = unavailable(error)
                pending.error.__cause__ = error
            pending.savepoint_released = False

    def _run_batch(self, live: list[_PendingWrite]) -> None:
        for pending in live:
            pending.result, pending.error, pending.savepoint_released = None, None, False
        with self._writer_engine.connect() as connection, connection.begin():
            if connection.dialect.name == "postgresql":  # SQLite has a single writer anyway
                lock_chain_heads(connection, sorted({pending.chain for pending in live if pending.chain}))
            for pending in live:
                for attempt in range(RETRIES + 1):
                    prepared.run(connection, "SAVEPOINT gavel_unit")
                    try:
                        pending.result = pending.unit(SqlUnitOfWork(connection))
                    except RetryUnit as error:  # lost a race: run it again, it will see the winner
                        _undo_unit(connection)
                        if attempt == RETRIES:
                            pending.error = unavailable(error)
                        continue
                    except Exception as error:
                        try:
                            _undo_unit(connection)
                        except Exception:  # the connection is gone: the whole batch fails, with this error
                            raise error from None
                        if lost_race(error):
                            raise _RestartBatch(error) from error
                        pending.error = translated(error)
                    else:
                        prepared.run(connection, "RELEASE SAVEPOINT gavel_unit")
                        pending.savepoint_released = True
                    break


def _undo_unit(connection) -> None:
    """Undo what the current unit wrote (its savepoint), leaving the batch's other units alone."""
    prepared.run(connection, "ROLLBACK TO SAVEPOINT gavel_unit")
    prepared.run(connection, "RELEASE SAVEPOINT gavel_unit")


class _RestartBatch(Exception):
    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error
