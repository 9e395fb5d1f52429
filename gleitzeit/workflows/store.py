"""SQLite persistence of workflow runs: runs, tasks, attempts, results, errors, timings.

Writes are grouped: state changes are queued (from the event loop) and committed
together, in one transaction, on a single writer thread (so the event loop never waits
on the disk). The writer thread takes the queued batch itself, at the moment it writes
it, so a batch is never held anywhere but the queue or an open transaction; a
transaction that fails puts its batch back at the front of the queue. While a run is
going, :meth:`RunStore.start` keeps one writer task that wakes when something is queued
and commits whatever piled up during the previous commit and the short gathering pause
after it (group commit: a commit per :data:`GATHER` seconds at most, not one per task);
:meth:`RunStore.stop` waits for everything queued to be on disk and raises
:class:`StoreWriteError` when it cannot be.

A task's row is written when it ends (and, for long tasks, when it starts); tasks not
yet started have no row. Each commit is atomic, so a process killed at any moment
leaves a consistent record: a task is ``completed`` in the database only with its
result beside it. WAL mode keeps readers (``gleitzeit runs show``) working while a run
writes.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gleitzeit.errors import RunNotFound, StoreOpenError, StoreWriteError

log = logging.getLogger("gleitzeit.store")

try:
    from _json import encode_basestring_ascii
    from _json import make_encoder as c_make_encoder
except ImportError:  # pragma: no cover - an interpreter without the C accelerator
    c_make_encoder = None  # type: ignore[assignment,misc]

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    workflow_name TEXT NOT NULL,
    workflow_path TEXT,
    workflow_text TEXT NOT NULL,
    inputs_json TEXT NOT NULL,
    target TEXT,
    status TEXT NOT NULL,
    error TEXT,
    task_count INTEGER NOT NULL DEFAULT 0,
    task_ids_json TEXT,
    owner TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished_at REAL
);
CREATE TABLE IF NOT EXISTS tasks (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    task_id TEXT NOT NULL,
    status TEXT NOT NULL,
    result_json TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    started_at REAL,
    finished_at REAL,
    PRIMARY KEY (run_id, task_id)
);
CREATE TABLE IF NOT EXISTS attempts (
    run_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    started_at REAL,
    finished_at REAL,
    PRIMARY KEY (run_id, task_id, attempt)
);
CREATE TABLE IF NOT EXISTS items (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    task_id TEXT NOT NULL,
    item_index INTEGER NOT NULL,
    item_json TEXT NOT NULL,
    result_json TEXT NOT NULL,
    PRIMARY KEY (run_id, task_id, item_index)
);
CREATE INDEX IF NOT EXISTS runs_created ON runs(created_at);
CREATE TABLE IF NOT EXISTS chat_sessions (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    model TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS chat_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL REFERENCES chat_sessions(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    model TEXT,
    complete INTEGER NOT NULL DEFAULT 1,
    call_id TEXT,
    usage_json TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS chat_messages_session ON chat_messages(session_id, id);
"""


SCHEMA_VERSION = 3


def process_identity(pid: int | None = None) -> str:
    """``host:pid:start`` of a process: the start time (Linux) tells a reused pid apart."""
    import os
    import socket

    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def owner_alive(owner: str | None) -> bool | None:
    """Whether the process that owns a running run is alive; None when unknown (another
    machine, or a run written before owners were stored)."""
    import os
    import socket

    if not owner:
        return None
    host, _, rest = owner.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not start or _start_time(pid) in ("", start)


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a database written by an earlier version up to this schema."""
    # Columns are checked whatever the version says: one database may be shared by
    # versions that each add their own column.
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    if "task_count" not in columns:
        conn.execute("ALTER TABLE runs ADD COLUMN task_count INTEGER NOT NULL DEFAULT 0")
    if "task_ids_json" not in columns:  # runs before it: runs show reads the workflow text
        conn.execute("ALTER TABLE runs ADD COLUMN task_ids_json TEXT")
    if "owner" not in columns:
        conn.execute("ALTER TABLE runs ADD COLUMN owner TEXT")
    if version < SCHEMA_VERSION:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


#: A statement and its rows of parameters, in the order they were queued.
_Group = tuple[str, list[Any]]

#: Seconds the writer lets rows gather after a commit before it starts the next one.
GATHER = 0.05
#: Seconds the last commit of a run may take before the wait is reported.
SLOW_STOP = 2.0
#: Pages of write-ahead log after which a commit checkpoints (SQLite's default).
AUTOCHECKPOINT = 1000


class _Writing:
    """A writer task's own state, from :meth:`RunStore.start` to its end."""

    __slots__ = ("wake", "stopping", "hold", "task")

    def __init__(self) -> None:
        self.wake = asyncio.Event()
        self.stopping = False
        #: The gathering pause under way, which stop() ends.
        self.hold: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class RunStore:
    """One SQLite file of runs.

    ``busy_timeout`` is how long a write waits for another process's lock before it
    fails (and the run is reported as not stored).
    """

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path).expanduser()
        self.busy_timeout = busy_timeout
        self._pending: list[_Group] = []
        self._rows = 0
        # queue() runs on the event loop, _commit_pending() on the writer thread.
        self._lock = threading.Lock()
        self._failure: BaseException | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gleitzeit-store")
        self._conn: sqlite3.Connection | None = None
        #: The writer task's state while one runs (start() to stop()), and its wake-up
        #: (set when something is queued).
        self._writing: _Writing | None = None
        self._wake: asyncio.Event | None = None
        self._chunk = CHUNK
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._executor.submit(self._open).result()
        except (OSError, sqlite3.Error) as exc:
            self._executor.shutdown()
            if self.path.is_dir():
                why = f"that is a directory; name a file in it, like {self.path / 'runs.sqlite'}"
            elif isinstance(exc, sqlite3.DatabaseError) and "not a database" in str(exc):
                why = "that file is not an SQLite database"
            else:
                why = "it needs a directory this user may write in"
            raise StoreOpenError(
                f"Cannot open the run database {self.path}: {type(exc).__name__}: {exc}",
                hint=f"{why}; pass --db PATH, or set workflows.database in gleitzeit.yaml",
            ) from None

    def _open(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=self.busy_timeout)
        try:
            self._prepare(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        # 512 KiB of page cache rather than 2 MiB: rows are appended, and a run's
        # workflow text would otherwise stay cached for nothing.
        conn.execute("PRAGMA cache_size=-512")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.executescript(SCHEMA)
        _migrate(conn)
        # Rows per statement: CHUNK, within the limit on bound parameters (999 before
        # SQLite 3.32); a completed task's row binds six.
        self._chunk = CHUNK
        while self._chunk * 6 > _bound_parameters(conn):
            self._chunk //= 2

    def close(self) -> None:
        """Commit what is still queued (best effort) and close the database.

        A failure to commit here was already reported by :meth:`stop` or
        :meth:`flush_now`; it is kept in :attr:`failure` rather than raised again.
        """
        try:
            self._executor.submit(self._commit_pending).result()
        except StoreWriteError:
            pass
        self._executor.submit(self._close).result()
        self._executor.shutdown()

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def failure(self) -> BaseException | None:
        """The error of the last commit, if it failed (``None`` once one succeeds)."""
        return self._failure

    # -- writing ---------------------------------------------------------------------

    def queue(self, sql: str, params: Any, *, many: bool = False) -> None:
        """Queue a statement; ``many`` runs it once per parameter tuple in ``params``.
        Consecutive rows of one statement are kept together, to be written together."""
        rows = list(params) if many else [params]
        with self._lock:
            pending = self._pending
            if pending and pending[-1][0] == sql:
                pending[-1][1].extend(rows)
            else:
                pending.append((sql, rows))
            self._rows += len(rows)
        if self._wake is not None:
            self._wake.set()

    @property
    def pending(self) -> int:
        """Rows queued and not yet committed."""
        return self._rows

    def _checkpoint(self) -> None:
        """Writer thread: the checkpoint the last commit of a run left out (see
        :meth:`stop`). One that cannot finish now (a reader holds old pages) is left
        to the next commit's."""
        if self._conn is None:
            return
        try:
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            pass

    def _commit_pending(self, part: bool = False, checkpoint: bool = True) -> None:
        """Writer thread: take everything queued and commit it in one transaction.

        With ``part``, a queue of completed tasks' rows alone may be taken in part:
        whole statements' worth of rows (see :func:`_statement_rows`), the rest left
        queued, in order, for the next commit. Without ``checkpoint``, the commit
        leaves SQLite's automatic checkpoint to :meth:`_checkpoint`.

        Taking the batch here, not on the event loop, means no batch can be lost
        between being taken and being written; a failed transaction puts it back.
        """
        with self._lock:
            pending = self._pending
            rows: list[Any]
            if part and len(pending) == 1 and pending[0][0] is self._COMPLETED:
                sql, rows = pending[0]
                size = _statement_rows(len(rows), self._chunk)
                batch = [(sql, rows[:size])]
                del rows[:size]
                taken = size
                self._rows -= size
                if not rows:
                    self._pending = []
            else:
                batch, self._pending = pending, []
                taken, self._rows = self._rows, 0
        if not batch:
            return
        try:
            if checkpoint:
                self._write(batch)
            else:
                # SQLite checkpoints inside a commit once the log is long enough; this
                # commit is waited for, so that one follows later (_checkpoint).
                assert self._conn is not None
                self._conn.execute("PRAGMA wal_autocheckpoint=0")
                try:
                    self._write(batch)
                finally:
                    # Back on at once (it acts at the next commit): nothing can leave
                    # the connection without checkpoints.
                    self._conn.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT}")
        except Exception as exc:
            with self._lock:
                self._pending[:0] = batch
                self._rows += taken
            self._failure = exc
            raise StoreWriteError(
                f"Results could not be stored in {self.path}: {type(exc).__name__}: {exc}",
                hint="free disk space or release the database lock, then resume the run",
            ) from exc
        self._failure = None

    def _write(self, batch: list[_Group]) -> None:
        assert self._conn is not None
        conn = self._conn
        if len(batch) == 1 and batch[0][0] is self._COMPLETED:
            sql, rows = batch[0]
            if len(rows) <= self._chunk and _statement_rows(len(rows), self._chunk) == len(rows):
                # One statement: atomic by itself, no transaction to open and close
                # (each statement costs the writer the GIL back once or more).
                _insert_rows(conn, sql, rows, self._chunk)
                return
        conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, rows in batch:
                if sql is self._COMPLETED:
                    _insert_rows(conn, sql, rows, self._chunk)
                else:
                    conn.executemany(sql, map(_encoded, rows))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def flush_now(self) -> None:
        """Commit everything queued, from synchronous code; raises StoreWriteError."""
        self._executor.submit(self._commit_pending).result()

    async def _flush_part(self) -> None:
        """:meth:`flush`, but a long queue of completed rows may be written in part."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._commit_pending, True)

    async def flush(self) -> None:
        """Commit everything queued so far; raises StoreWriteError.

        Cancelling the caller never loses a batch: the writer thread takes the batch
        only when it starts writing it, and a job cancelled before it starts has
        taken nothing.
        """
        await asyncio.get_running_loop().run_in_executor(self._executor, self._commit_pending)

    def start(self) -> None:
        """Start the writer task: from now on, queued statements are committed as
        soon as the previous commit is done. Call from the event loop."""
        if self._writing is not None:
            return
        writing = self._writing = _Writing()
        self._wake = writing.wake
        if self._pending:
            writing.wake.set()
        writing.task = asyncio.get_running_loop().create_task(self._write_loop(writing))

    async def stop(self) -> None:
        """Stop the writer task once everything queued is committed.

        Raises :class:`StoreWriteError` when the queue could not be written (the
        statements stay queued, so nothing is dropped silently).
        """
        writing = self._writing
        if writing is None:
            await self.flush()
            return
        # From here on that writer is on its way out, whatever becomes of this call: a
        # start() after a cancelled stop() makes a writer of its own.
        self._writing = self._wake = None
        writing.stopping = True
        writing.wake.set()
        if writing.hold is not None:
            _resolve(writing.hold)
        assert writing.task is not None
        try:
            if not (await asyncio.wait({writing.task}, timeout=SLOW_STOP))[0]:
                # A run that seems to hang says why it waits.
                log.warning(
                    "waiting to store the run's last results in %s: the database is busy "
                    "(locked by another process?); giving up after %gs",
                    self.path,
                    self.busy_timeout,
                )
            # Shielded: a second Ctrl-C must not abandon the final commit half-way.
            await asyncio.shield(writing.task)
            if self._pending:
                await self.flush()  # one last try; raises if the cause persists
        finally:
            # The run's last commit left the checkpoint out, so that the run ends
            # without waiting for it: it follows on the writer thread, before any
            # later write.
            self._executor.submit(self._checkpoint)

    async def _write_loop(self, writing: _Writing) -> None:
        wake = writing.wake
        loop = asyncio.get_running_loop()
        while True:
            await wake.wait()
            wake.clear()
            failed = False
            if self._pending:
                try:
                    if writing.stopping:
                        await loop.run_in_executor(
                            self._executor, self._commit_pending, False, False
                        )
                    else:
                        await self._flush_part()
                except StoreWriteError:
                    # Kept queued; the next wake-up (or stop()) tries again, after the
                    # pause below: waiting for new work avoids spinning on a full disk.
                    if writing.stopping:
                        return
                    failed = True
                else:
                    if self._pending:
                        wake.set()  # a part left for the next commit
            if writing.stopping and not self._pending:
                return
            if not writing.stopping and (failed or self._rows < self._chunk):
                # Let rows gather for a moment before the next commit: a commit per
                # GATHER seconds, not one per task, whatever the tasks' pace (with a
                # whole statement's worth already queued, no pause, unless the last
                # commit failed). stop() ends the wait at once.
                hold = writing.hold = loop.create_future()
                timer = loop.call_later(GATHER, _resolve, hold)
                try:
                    await hold
                finally:
                    timer.cancel()
                    writing.hold = None

    # -- the run's record ------------------------------------------------------------

    def create_run(
        self,
        run_id: str,
        *,
        name: str,
        path: str | None,
        text: str,
        inputs: dict[str, Any],
        target: str | None,
        task_ids: list[str],
    ) -> None:
        now = time.time()
        self.queue(
            "INSERT INTO runs (id, workflow_name, workflow_path, workflow_text, inputs_json, target,"
            " status, task_count, task_ids_json, owner, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?)",
            (
                run_id,
                name,
                path,
                text,
                json.dumps(inputs, default=str),
                target,
                len(task_ids),
                _Json(task_ids),
                process_identity(),
                now,
                now,
            ),
        )
        self.flush_now()

    def run_resumed(self, run_id: str, reset: list[str]) -> None:
        now = time.time()
        self.queue(
            "UPDATE runs SET status='running', error=NULL, finished_at=NULL, updated_at=?,"
            " owner=? WHERE id=?",
            (now, process_identity(), run_id),
        )
        self.queue(
            "DELETE FROM tasks WHERE run_id=? AND task_id=?",
            [(run_id, task_id) for task_id in reset],
            many=True,
        )
        self.flush_now()

    _UPSERT = (
        "INSERT OR REPLACE INTO tasks (run_id, task_id, status, result_json, error, attempts,"
        " started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    )

    #: A completed task's row: its constant columns written in, not bound (sqlite3 binds
    #: a None through its adapter lookup, two failed attribute lookups each).
    _COMPLETED = (
        "INSERT OR REPLACE INTO tasks (run_id, task_id, status, result_json, error, attempts,"
        " started_at, finished_at) VALUES (?, ?, 'completed', ?, NULL, ?, ?, ?)"
    )

    def items_done(self, run_id: str, task_id: str, items: list[tuple[int, str, str]]) -> None:
        """The items of a fan-out that completed before the run stopped mid-task, as
        ``(index, item JSON, result JSON)``: a resume runs only the others."""
        self.queue(
            "INSERT OR REPLACE INTO items (run_id, task_id, item_index, item_json, result_json)"
            " VALUES (?, ?, ?, ?, ?)",
            [(run_id, task_id, *item) for item in items],
            many=True,
        )

    def done_items(self, run_id: str) -> dict[str, dict[int, tuple[str, Any]]]:
        """Per task, the fan-out items :meth:`items_done` kept: index -> (item JSON,
        result)."""
        out: dict[str, dict[int, tuple[str, Any]]] = {}
        for row in self._read(
            "SELECT task_id, item_index, item_json, result_json FROM items WHERE run_id=?",
            (self.resolve_id(run_id),),
        ):
            out.setdefault(row["task_id"], {})[row["item_index"]] = (
                row["item_json"],
                json.loads(row["result_json"]),
            )
        return out

    def task_started(self, run_id: str, task_id: str, attempt: int, at: float) -> None:
        self.queue(self._UPSERT, (run_id, task_id, "running", None, None, attempt, at, None))

    def attempt_done(
        self,
        run_id: str,
        task_id: str,
        attempt: int,
        status: str,
        error: str | None,
        started: float,
        finished: float,
    ) -> None:
        self.queue(
            "INSERT OR REPLACE INTO attempts (run_id, task_id, attempt, status, error, started_at,"
            " finished_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (run_id, task_id, attempt, status, error, started, finished),
        )

    def task_done(
        self,
        run_id: str,
        task_id: str,
        status: str,
        *,
        result: Any = None,
        error: str | None = None,
        attempts: int = 0,
        started: float | None = None,
        finished: float | None = None,
    ) -> None:
        self.queue(
            self._UPSERT,
            (
                run_id,
                task_id,
                status,
                None if result is None else _dumps(result),
                error,
                attempts,
                started,
                finished,
            ),
        )

    def task_completed(
        self,
        run_id: str,
        task_id: str,
        result_json: str,
        attempts: int,
        started: float | None,
        finished: float,
    ) -> None:
        """A completed task's row, its result already encoded (:func:`encode_result`)."""
        row = (run_id, task_id, result_json, attempts, started, finished)
        upsert = self._COMPLETED
        with self._lock:
            pending = self._pending
            if pending and pending[-1][0] is upsert:
                pending[-1][1].append(row)
            else:
                pending.append((upsert, [row]))
            self._rows += 1
        if self._wake is not None:
            self._wake.set()

    def run_done(self, run_id: str, status: str, error: str | None = None) -> None:
        now = time.time()
        self.queue(
            "UPDATE runs SET status=?, error=?, finished_at=?, updated_at=? WHERE id=?",
            (status, error, now, now, run_id),
        )

    # -- reading ---------------------------------------------------------------------

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        def go() -> list[sqlite3.Row]:
            assert self._conn is not None
            self._conn.row_factory = sqlite3.Row
            try:
                return self._conn.execute(sql, params).fetchall()
            finally:
                self._conn.row_factory = None

        return self._executor.submit(go).result()

    def resolve_id(self, run_id: str) -> str:
        """A full run id from a full id or a unique prefix."""
        rows = self._read(
            "SELECT id FROM runs WHERE id LIKE ? ORDER BY created_at DESC LIMIT 3", (run_id + "%",)
        )
        if not rows:
            raise RunNotFound(f"No run {run_id!r} in {self.path}", hint="see `gleitzeit runs list`")
        if len(rows) > 1 and rows[0]["id"] != run_id:
            raise RunNotFound(f"Run id prefix {run_id!r} is ambiguous", hint="give more characters")
        return rows[0]["id"]

    def list_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        rows = self._read(
            "SELECT r.id, r.workflow_name, r.status, r.owner, r.created_at, r.finished_at, r.error,"
            " r.task_count AS tasks,"
            " (SELECT COUNT(*) FROM tasks t WHERE t.run_id=r.id AND t.status='completed') AS completed,"
            " (SELECT COUNT(*) FROM tasks t WHERE t.run_id=r.id AND t.status='failed') AS failed"
            " FROM runs r ORDER BY r.created_at DESC LIMIT ?",
            (limit,),
        )
        return [_interrupted(dict(r)) for r in rows]

    def get_run(self, run_id: str) -> dict[str, Any]:
        run_id = self.resolve_id(run_id)
        (run,) = self._read("SELECT * FROM runs WHERE id=?", (run_id,))
        data = dict(run)
        data["inputs"] = json.loads(data.pop("inputs_json"))
        stored_ids = data.pop("task_ids_json", None)
        tasks = self._read("SELECT * FROM tasks WHERE run_id=?", (run_id,))
        attempts = self._read(
            "SELECT * FROM attempts WHERE run_id=? ORDER BY task_id, attempt", (run_id,)
        )
        by_task: dict[str, list[dict[str, Any]]] = {}
        for a in attempts:
            by_task.setdefault(a["task_id"], []).append(
                {k: a[k] for k in ("attempt", "status", "error", "started_at", "finished_at")}
            )
        data["tasks"] = {}
        # In file order, pending ones too; the workflow text is parsed only for runs
        # stored before task ids were.
        ids = json.loads(stored_ids) if stored_ids else _task_ids(data["workflow_text"])
        for task_id in ids:
            data["tasks"][task_id] = {
                "task_id": task_id,
                "status": "pending",
                "result": None,
                "error": None,
                "attempts": 0,
                "started_at": None,
                "finished_at": None,
                "attempt_log": [],
            }
        for t in tasks:
            item = dict(t)
            item.pop("run_id")
            raw = item.pop("result_json")
            item["result"] = None if raw is None else json.loads(raw)
            item["attempt_log"] = by_task.get(t["task_id"], [])
            data["tasks"][t["task_id"]] = item
        return _interrupted(data)

    # -- chat sessions, beside the runs ---------------------------------------------

    def create_chat_session(self, session_id: str, *, title: str, model: str | None) -> None:
        now = time.time()
        self.queue(
            "INSERT INTO chat_sessions (id, title, model, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (session_id, title, model, now, now),
        )

    def add_chat_message(
        self,
        session_id: str,
        role: str,
        content: str,
        *,
        model: str | None = None,
        complete: bool = True,
        call_id: str | None = None,
        usage: dict[str, Any] | None = None,
    ) -> None:
        """Queue one message of a session (committed with the next flush)."""
        now = time.time()
        self.queue(
            "INSERT INTO chat_messages (session_id, role, content, model, complete, call_id,"
            " usage_json, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                session_id,
                role,
                content,
                model,
                1 if complete else 0,
                call_id,
                None if usage is None else _Json(usage),
                now,
            ),
        )
        self.queue(
            "UPDATE chat_sessions SET updated_at=?, model=COALESCE(?, model) WHERE id=?",
            (now, model, session_id),
        )

    def chat_session(self, session_id: str) -> dict[str, Any] | None:
        """A session and its messages in order, or ``None``."""
        rows = self._read("SELECT * FROM chat_sessions WHERE id=?", (session_id,))
        if not rows:
            return None
        data = dict(rows[0])
        messages = self._read(
            "SELECT role, content, model, complete, call_id, usage_json, created_at"
            " FROM chat_messages WHERE session_id=? ORDER BY id",
            (session_id,),
        )
        data["messages"] = []
        for m in messages:
            item = dict(m)
            raw = item.pop("usage_json")
            item["usage"] = None if raw is None else json.loads(raw)
            item["complete"] = bool(item["complete"])
            data["messages"].append(item)
        return data

    def chat_sessions(self, limit: int = 50) -> list[dict[str, Any]]:
        """The latest sessions first, with their message counts."""
        rows = self._read(
            "SELECT s.id, s.title, s.model, s.created_at, s.updated_at,"
            " (SELECT COUNT(*) FROM chat_messages m WHERE m.session_id=s.id) AS messages"
            " FROM chat_sessions s ORDER BY s.updated_at DESC LIMIT ?",
            (limit,),
        )
        return [dict(r) for r in rows]

    def counts(self) -> dict[str, dict[str, int]]:
        """Runs and tasks by status (for metrics)."""
        runs = self._read("SELECT status, COUNT(*) AS n FROM runs GROUP BY status")
        tasks = self._read("SELECT status, COUNT(*) AS n FROM tasks GROUP BY status")
        return {
            "runs": {r["status"]: r["n"] for r in runs},
            "tasks": {t["status"]: t["n"] for t in tasks},
        }

    def data_version(self) -> int:
        """Changes whenever another connection commits: a cheap "anything new?"."""
        (row,) = self._read("PRAGMA data_version")
        return int(row[0])


def _task_ids(text: str) -> list[str]:
    import yaml

    try:
        data = yaml.safe_load(text)
        return [t["id"] for t in data.get("tasks", []) if isinstance(t, dict) and "id" in t]
    except Exception:
        return []


class _Json:
    """A value to be stored as JSON, encoded when the batch is written."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


#: json.dumps(value, default=str), without building an encoder for every value.
_dumps = json.JSONEncoder(default=str).encode


if c_make_encoder is not None:
    # What JSONEncoder.encode runs, without its two Python frames per value. No
    # circular check: a value that holds itself ends in RecursionError, not ValueError.
    _encode = c_make_encoder(
        None, str, encode_basestring_ascii, None, ": ", ", ", False, False, True
    )


def encode_result(result: Any) -> str:
    """A task's result as it is stored: ``json.dumps(result, default=str)``."""
    if c_make_encoder is None:
        return _dumps(result)
    return "".join(_encode(result, 0))


#: Rows per statement at most. SQLite runs a statement without the GIL, and the writer
#: thread takes the GIL back after it: while the event loop's thread is busy (in-process
#: tasks that never wait), that takes up to a switch interval (5 ms) each time. Few,
#: long statements keep the writer up with a run, and the commit at its end short.
CHUNK = 1024


def _bound_parameters(conn: sqlite3.Connection) -> int:
    """How many parameters one statement may bind on ``conn``."""
    getlimit = getattr(conn, "getlimit", None)  # Python 3.11+
    if getlimit is not None:
        return int(getlimit(getattr(sqlite3, "SQLITE_LIMIT_VARIABLE_NUMBER", 9)))
    return 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999


def _statement_rows(queued: int, chunk: int) -> int:
    """How many of ``queued`` rows a commit that may leave some takes: all the whole
    statements of ``chunk`` rows, or the largest power of two of fewer."""
    if queued >= chunk:
        return queued - queued % chunk
    size = 1
    while size * 2 <= queued:
        size *= 2
    return size


def _insert_rows(
    conn: sqlite3.Connection, sql: str, rows: list[tuple[Any, ...]], chunk: int = CHUNK
) -> None:
    """Write the rows of ``sql`` (an INSERT of one ``VALUES (...)``) with multi-row
    statements of ``chunk``, ``chunk / 2``, ... 1 rows (few distinct statements, each
    prepared once and kept in the connection's cache)."""
    head, _, values = sql.partition(" VALUES ")
    head += " VALUES "
    flat = itertools.chain.from_iterable
    at, left = 0, len(rows)
    size = chunk
    while left:
        while size > left:
            size //= 2
        conn.execute(head + ", ".join([values] * size), list(flat(rows[at : at + size])))
        at += size
        left -= size


def _encoded(row: Any) -> tuple[Any, ...]:
    """A row's parameters with each :class:`_Json` value encoded."""
    return tuple([_dumps(p.value) if type(p) is _Json else p for p in row])


def default_database() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("gleitzeit")) / "runs.sqlite"


def _interrupted(run: dict[str, Any]) -> dict[str, Any]:
    """A run stored as running whose owning process is gone is ``interrupted``.

    ``status`` stays what is stored (``running``: the run never finished); the
    ``interrupted`` flag says its process died, and listings show it as interrupted.
    """
    owner = run.pop("owner", None)
    run["interrupted"] = False
    if run.get("status") == "running":
        alive = owner_alive(owner)
        if alive is False:
            run["interrupted"] = True
            pid = owner.split(":")[1] if owner else "?"
            run["error"] = run.get("error") or f"the process that ran it (pid {pid}) is gone"
        elif alive:
            #: ``host:pid:start`` of the process on this machine that runs it now.
            run["running_in"] = owner
    return run
