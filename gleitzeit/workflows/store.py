"""SQLite persistence of workflow runs: runs, tasks, attempts, results, errors, timings.

Writes are grouped: state changes are queued (on the event loop's thread) and
committed together, in one transaction, on a single writer thread (so the event loop
never waits on the disk). A task's row is written when it starts and when it ends;
tasks not yet started have no row (``get_run`` lists them from the stored workflow).
Each commit is atomic, so a process killed at any moment leaves a consistent record:
a task is ``completed`` in the database only with its result beside it. WAL mode keeps
readers (``gleitzeit runs show``) working while a run writes.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gleitzeit.errors import GleitzeitError

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
CREATE INDEX IF NOT EXISTS runs_created ON runs(created_at);
"""


SCHEMA_VERSION = 1


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a database written by an earlier version up to this schema."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version >= SCHEMA_VERSION:
        return
    columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    if "task_count" not in columns:
        conn.execute("ALTER TABLE runs ADD COLUMN task_count INTEGER NOT NULL DEFAULT 0")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


class RunNotFound(GleitzeitError):
    code = "run_not_found"
    exit_code = 2


class RunStore:
    """One SQLite file of runs."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._pending: list[tuple[str, Any, bool]] = []
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gleitzeit-store")
        self._conn: sqlite3.Connection | None = None
        self._executor.submit(self._open).result()
        self._flushing: asyncio.Future[Any] | None = None

    def _open(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.executescript(SCHEMA)
        _migrate(conn)
        self._conn = conn

    def close(self) -> None:
        self.flush_now()
        self._executor.submit(self._close).result()
        self._executor.shutdown()

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- writing ---------------------------------------------------------------------

    def queue(self, sql: str, params: Any, *, many: bool = False) -> None:
        """Queue a statement; ``many`` runs it once per parameter tuple in ``params``.

        Called from the event loop's thread only; the batch changes hands in
        :meth:`flush`, on that same thread, so no lock is needed.
        """
        self._pending.append((sql, params, many))

    def _take(self) -> list[tuple[str, Any, bool]]:
        batch, self._pending = self._pending, []
        return batch

    def _write(self, batch: list[tuple[str, Any, bool]]) -> None:
        if not batch:
            return
        assert self._conn is not None
        # Consecutive rows of one statement go through executemany together.
        groups: list[tuple[str, list[Any]]] = []
        for sql, params, many in batch:
            rows = list(params) if many else [params]
            if groups and groups[-1][0] == sql:
                groups[-1][1].extend(rows)
            else:
                groups.append((sql, rows))
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, rows in groups:
                # Results are serialised here, on the writer thread, not the loop.
                self._conn.executemany(sql, [tuple(_encode(p) for p in row) for row in rows])
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def flush_now(self) -> None:
        """Commit everything queued, from synchronous code."""
        batch = self._take()
        self._executor.submit(self._write, batch).result()

    async def flush(self) -> None:
        """Commit everything queued so far, in one transaction."""
        batch = self._take()
        if batch:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, self._write, batch)

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
            " status, task_count, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?)",
            (
                run_id,
                name,
                path,
                text,
                json.dumps(inputs, default=str),
                target,
                len(task_ids),
                now,
                now,
            ),
        )
        self.flush_now()

    def run_resumed(self, run_id: str, reset: list[str]) -> None:
        now = time.time()
        self.queue(
            "UPDATE runs SET status='running', error=NULL, finished_at=NULL, updated_at=? WHERE id=?",
            (now, run_id),
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
                None if result is None else _Json(result),
                error,
                attempts,
                started,
                finished,
            ),
        )

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
            "SELECT r.id, r.workflow_name, r.status, r.created_at, r.finished_at, r.error,"
            " r.task_count AS tasks,"
            " (SELECT COUNT(*) FROM tasks t WHERE t.run_id=r.id AND t.status='completed') AS completed,"
            " (SELECT COUNT(*) FROM tasks t WHERE t.run_id=r.id AND t.status='failed') AS failed"
            " FROM runs r ORDER BY r.created_at DESC LIMIT ?",
            (limit,),
        )
        return [dict(r) for r in rows]

    def get_run(self, run_id: str) -> dict[str, Any]:
        run_id = self.resolve_id(run_id)
        (run,) = self._read("SELECT * FROM runs WHERE id=?", (run_id,))
        data = dict(run)
        data["inputs"] = json.loads(data.pop("inputs_json"))
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
        for task_id in _task_ids(data["workflow_text"]):  # in file order, pending ones too
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
        return data


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


def _encode(param: Any) -> Any:
    return json.dumps(param.value, default=str) if type(param) is _Json else param


def default_database() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("gleitzeit")) / "runs.sqlite"
