"""`SqlStore`: the `Store` port on SQLite or PostgreSQL, with group commit.

Writes are run in batches: every queued unit (up to `max_batch`) in one transaction — each in
its own savepoint, so a unit that raises is undone alone and gets its own exception — and one
commit. Only after that commit succeeds does any caller see its result; if the commit fails,
every unit of the batch fails with `StoreUnavailable` and none of it is written. Under load, many
writes share one commit, and with no load a write is committed at once: nothing waits to fill a
batch.

Where the batches run depends on the database:

- SQLite (one writer per file, commits that touch only the page cache and the WAL): on the
  event loop's own thread, once per loop iteration, for the writes queued since. Handing each
  batch to a thread and back cost more than the batch itself — two wake-ups, and a writer
  thread starved of the GIL by the loop at every SQLite call. The loop's connection never waits
  for SQLite's write lock: if another process holds it, the batch goes to the writer thread,
  which waits (up to the busy timeout) without stalling the loop. WAL checkpoints run on a thread
  of their own, so no commit pays for one.
- PostgreSQL (network round trips, row locks shared with other replicas): on a writer thread.

Reads run on a small thread pool in read-only transactions that are always rolled back.
Database trouble surfaces as `StoreUnavailable`; the failed connection is dropped, and the next
call reconnects, so the service resumes by itself when the database returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import random
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, text

from gavel.adapters.db import prepared
from gavel.adapters.db.engine import SqliteSynchronous, make_engine, sqlite_file_identity, sqlite_path
from gavel.adapters.db.errors import lost_race, translated, unavailable
from gavel.adapters.db.repositories import lock_chain_heads
from gavel.adapters.db.unit_of_work import SqlUnitOfWork
from gavel.app.ports import RetryUnit, StoreUnavailable, UnitOfWork

T = TypeVar("T")

PING_TIMEOUT_S = 2.0
RETRIES = 3  # runs of a unit that lost a race with another writer (RetryUnit)
BATCH_RETRIES = 5  # runs of a whole batch chosen as a deadlock victim
WAL_CHECKPOINT_INTERVAL_S = 0.1  # SQLite: how often committed WAL frames are moved to the database file
WAL_TRUNCATE_BYTES = 64 * 1024 * 1024  # SQLite: a WAL larger than this is checkpointed in full and truncated


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
        # SQLite's batches run on the loop (see the module docstring), on a connection that never
        # waits for the write lock: it hands the batch to the writer thread instead.
        self._inline_engine: Engine | None = None
        if self._sqlite_file is not None:
            self._inline_engine = make_engine(
                url, sqlite_synchronous=sqlite_synchronous, create_missing=False, pool_size=1,
                sqlite_busy_timeout_ms=0, sqlite_autocheckpoint=False)
        self._inline_loop: asyncio.AbstractEventLoop | None = None
        self._inline_held: Connection | None = None  # kept open between batches: a checkout costs more than a batch
        self._inline_queue: list[_PendingWrite] = []
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._readers = ThreadPoolExecutor(max_workers=reader_threads, thread_name_prefix="gavel-store-reader")
        # The health probe's own thread: a reader pool busy with long reads must not make a healthy
        # database look unreachable.
        self._pinger = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gavel-store-ping")
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
        pending = _PendingWrite(unit, loop, future, chain)
        if self._inline_engine is not None and not self._closed:
            if self._inline_loop is None:
                self._inline_loop = loop
                self._start_checkpointer()
            if loop is self._inline_loop:
                if not self._inline_queue:
                    loop.call_soon(self._write_inline)
                self._inline_queue.append(pending)
                return future
        self._to_writer([pending])
        return future

    def _to_writer(self, pendings: list[_PendingWrite]) -> None:
        """Queue writes for the writer thread (started on first use)."""
        with self._lock:
            if self._closed:
                for pending in pendings:
                    pending.result, pending.error = None, StoreUnavailable("the store is closed")
                _settle(pendings)
                return
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_batches, name="gavel-store-writer", daemon=True)
                self._writer.start()
            self._start_checkpointer()
            for pending in pendings:
                self._queue.put(pending)

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
            return await asyncio.wait_for(loop.run_in_executor(self._pinger, self._select_one), PING_TIMEOUT_S)
        except (TimeoutError, RuntimeError):
            return False

    async def close(self) -> None:
        """Commit the writes already queued, then stop the threads and close the connections."""
        if self._inline_queue:  # run the writes queued on this loop now, before the store shuts
            self._write_inline()
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
        self._pinger.shutdown(wait=False, cancel_futures=True)
        self._writer_engine.dispose()
        self._reader_engine.dispose()
        if self._inline_engine is not None:
            self._drop_inline_connection()
            self._inline_engine.dispose()

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
        """The writer thread: wait for writes, take every one queued meanwhile, run them in batches."""
        while True:
            queued = [self._queue.get()]
            with contextlib.suppress(queue.Empty):
                while queued[-1] is not _STOP:
                    queued.append(self._queue.get_nowait())
            stopping = queued[-1] is _STOP  # `close` queues it last, and nothing is queued after it
            for batch in _batches([pending for pending in queued if pending is not _STOP], self._max_batch):
                self._commit(batch, self._writer_engine.connect)
            if stopping:
                return

    def _write_inline(self) -> None:
        """Run the writes queued on the loop since its last iteration (SQLite)."""
        queued, self._inline_queue = self._inline_queue, []
        batches = _batches(queued, self._max_batch)
        for index, batch in enumerate(batches):
            if not self._commit(batch, self._inline_connection, inline=True):
                # Another process holds SQLite's write lock: the writer thread waits for it, in
                # order, without stalling the loop.
                self._to_writer([pending for later in batches[index:] for pending in later])
                return

    def _checkpoint_wal(self) -> None:
        """Move committed WAL frames into the database file, off the writer's path: every
        `WAL_CHECKPOINT_INTERVAL_S` while commits happen. PASSIVE never blocks the writer or a
        reader; whatever it cannot move yet (a reader still needs it) waits for the next round,
        and SQLite restarts the WAL from its start once everything is moved. The fsyncs happen
        here, on a thread that holds no lock the decisions need. If readers keep rounds from
        finishing and the WAL passes `WAL_TRUNCATE_BYTES`, a TRUNCATE checkpoint waits for them and
        cuts it back."""
        while not self._closed:  # SQLite moves the rest when the last connection closes
            self._committed.wait()
            if self._closed:
                return
            time.sleep(WAL_CHECKPOINT_INTERVAL_S)
            self._committed.clear()
            try:
                with self._writer_engine.connect() as connection:
                    prepared.run(connection, "PRAGMA wal_checkpoint(PASSIVE)")
                    if self._wal_bytes() > WAL_TRUNCATE_BYTES:
                        # Readers kept PASSIVE rounds from finishing and the WAL grew: wait for them
                        # (writes meanwhile go to the writer thread, which waits too), move every
                        # frame and cut the file back to nothing.
                        prepared.run(connection, "PRAGMA wal_checkpoint(TRUNCATE)")
            except Exception:  # the database is unavailable: the writer reports that; try again later
                time.sleep(WAL_CHECKPOINT_INTERVAL_S)

    @contextlib.contextmanager
    def _inline_connection(self) -> Iterator[Connection]:
        """The loop's connection (SQLite), kept open between batches. It is replaced when its file
        was moved, replaced or made read-only (what the pool checks at every checkout), and dropped
        after any error, so the next batch starts on a fresh one."""
        held = self._inline_held
        if held is not None and (held.closed or held.invalidated
                                 or held.connection.info.get("sqlite_file") != sqlite_file_identity(self._sqlite_file)):
            self._drop_inline_connection()
            held = None
        if held is None:
            assert self._inline_engine is not None
            held = self._inline_held = self._inline_engine.connect()
        try:
            yield held
        except BaseException:
            self._drop_inline_connection()
            raise

    def _drop_inline_connection(self) -> None:
        held, self._inline_held = self._inline_held, None
        if held is not None:
            with contextlib.suppress(Exception):
                held.close()

    def _wal_bytes(self) -> int:
        assert self._sqlite_file is not None
        try:
            return self._sqlite_file.with_name(self._sqlite_file.name + "-wal").stat().st_size
        except OSError:
            return 0

    def _commit(self, batch: list[_PendingWrite], connect: Callable[[], Any], *, inline: bool = False) -> bool:
        """Run and commit `batch`, then hand every unit its outcome. Inline (on the loop, SQLite),
        a batch that finds the write lock taken is left alone instead: False."""
        # Reading `cancelled()` from the writer thread is a benign race: at worst a unit whose caller
        # just gave up is still committed, which an unacknowledged write may always be.
        live = [pending for pending in batch if not pending.future.cancelled()]
        if not live:
            return True
        for attempt in range(BATCH_RETRIES + 1):
            try:
                self._run_batch(live, connect)
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
            except BaseException as error:  # the writer must survive anything a unit does
                if inline and _write_lock_taken(error):
                    return False
                self._fail_batch(live, error)
                break
        if inline:
            _settle_all(live)
        else:
            _settle(live)
        return True

    def _fail_batch(self, live: list[_PendingWrite], error: BaseException) -> None:
        self.failed_batches += 1
        for pending in live:
            if pending.error is None or isinstance(error, _RestartBatch):
                pending.result = None
                pending.error = unavailable(error)
                pending.error.__cause__ = error
            pending.savepoint_released = False

    def _run_batch(self, live: list[_PendingWrite], connect: Callable[[], Any]) -> None:
        for pending in live:
            pending.result, pending.error, pending.savepoint_released = None, None, False
        with connect() as connection, connection.begin():
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


def _batches(queued: list[_PendingWrite], max_batch: int) -> list[list[_PendingWrite]]:
    """`queued` (in arrival order) as batches: up to `max_batch` units each, a unit that names no
    chain alone, and each batch in chain order (stable: arrival order within a chain)."""
    batches: list[list[_PendingWrite]] = []
    for pending in queued:
        if pending.chain is None or not batches or batches[-1][0].chain is None or len(batches[-1]) == max_batch:
            batches.append([pending])
        else:
            batches[-1].append(pending)
    return [sorted(batch, key=lambda pending: pending.chain or ("", "")) for batch in batches]


def _write_lock_taken(error: BaseException) -> bool:
    """SQLite answered SQLITE_BUSY or SQLITE_LOCKED: another connection holds the write lock."""
    cause = getattr(error, "orig", None) or error
    code = getattr(cause, "sqlite_errorcode", None)
    return isinstance(cause, sqlite3.OperationalError) and code is not None and code & 0xFF in (5, 6)


def _undo_unit(connection) -> None:
    """Undo what the current unit wrote (its savepoint), leaving the batch's other units alone."""
    prepared.run(connection, "ROLLBACK TO SAVEPOINT gavel_unit")
    prepared.run(connection, "RELEASE SAVEPOINT gavel_unit")


class _RestartBatch(Exception):
    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error
