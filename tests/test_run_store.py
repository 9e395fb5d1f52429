"""Every task that finished has its row in the run database, counted in the SQLite file
after the run is over — not in the engine's memory.

The loss these tests guard against was timing-dependent (a batch of rows handed to the
writer thread and dropped when the periodic flusher was cancelled), so sizes and
shapes are run repeatedly, through the CLI as users run it, and through the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gleitzeit.config import parse_config
from gleitzeit.errors import StoreWriteError
from gleitzeit.host import Host
from gleitzeit.plugins import Plugins
from gleitzeit.workflows import Engine, RunStore, parse_workflow

HERE = Path(__file__).parent
pytest_plugins = ["gleitzeit.testing.fixtures"]


def shaped(shape: str, n: int) -> dict[str, Any]:
    """A workflow of ``n`` calculator tasks: independent, in chains of 10, or fan-outs."""
    tasks: list[dict[str, Any]] = []
    if shape == "independent":
        tasks = [
            {"id": f"t{i}", "method": "calc/add", "parameters": {"a": i, "b": 1}} for i in range(n)
        ]
    elif shape == "chains":
        for i in range(n):
            task: dict[str, Any] = {"id": f"t{i}", "method": "calc/add"}
            if i % 10:
                task["dependencies"] = [f"t{i - 1}"]
                task["parameters"] = {"a": f"${{t{i - 1}.result}}", "b": 1}
            else:
                task["parameters"] = {"a": 0, "b": 1}
            tasks.append(task)
    elif shape == "for_each":
        tasks = [
            {
                "id": f"t{i}",
                "method": "calc/add",
                "for_each": [1, 2, 3],
                "parameters": {"a": "${item}", "b": i},
            }
            for i in range(n)
        ]
    else:
        raise ValueError(shape)
    return {"name": f"{shape}-{n}", "tasks": tasks}


def rows(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT status, COUNT(*) FROM tasks GROUP BY status"))


def run_status(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT status FROM runs")]


def results_stored(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        (n,) = conn.execute(
            "SELECT COUNT(*) FROM tasks WHERE status='completed' AND result_json IS NOT NULL"
        ).fetchone()
    return n


CALC = {"GLEITZEIT_PLUGINS": "calculator"}


@pytest.mark.parametrize("shape", ["independent", "chains", "for_each"])
@pytest.mark.parametrize("n,repeat", [(10, 3), (1000, 3), (10_000, 1)])
def test_a_completed_cli_run_has_one_row_with_its_result_per_task(run_cli, shape, n, repeat):
    flow = run_cli.workdir / f"{shape}-{n}.yaml"
    flow.write_text(yaml.safe_dump(shaped(shape, n)), encoding="utf-8")
    for round_ in range(repeat):
        db = run_cli.workdir / f"runs-{shape}-{n}-{round_}.sqlite"
        res = run_cli("run", flow.name, "--json", "--db", str(db), env=CALC)
        assert res.code == 0, res.err
        assert run_status(db) == ["completed"]
        assert rows(db) == {"completed": n}
        assert results_stored(db) == n


def test_a_failed_cli_run_has_a_row_for_every_task_that_ended(run_cli):
    # Every 7th task divides by zero and fails; its dependent in the chain is skipped.
    tasks = []
    for i in range(700):
        if i % 7 == 0:
            tasks.append({"id": f"t{i}", "method": "calc/divide", "parameters": {"a": 1, "b": 0}})
        elif i % 7 == 1:
            tasks.append(
                {
                    "id": f"t{i}",
                    "method": "calc/add",
                    "dependencies": [f"t{i - 1}"],
                    "parameters": {"a": f"${{t{i - 1}.result}}", "b": 1},
                }
            )
        else:
            tasks.append({"id": f"t{i}", "method": "calc/add", "parameters": {"a": i, "b": 1}})
    flow = run_cli.workdir / "failing.yaml"
    flow.write_text(yaml.safe_dump({"name": "failing", "tasks": tasks}), encoding="utf-8")
    for round_ in range(3):
        db = run_cli.workdir / f"failing-{round_}.sqlite"
        res = run_cli("run", flow.name, "--json", "--db", str(db), env=CALC)
        assert res.code == 1
        assert run_status(db) == ["failed"]
        assert rows(db) == {"completed": 500, "failed": 100, "skipped": 100}
        assert results_stored(db) == 500


def test_server_path_and_python_tasks_store_every_row(run_cli, cli_env, gleitzeit_server):
    (run_cli.workdir / "wf_rows.py").write_text(
        textwrap.dedent(
            """
            import gleitzeit

            @gleitzeit.task
            def double(x: int) -> int:
                return 2 * x
            """
        ),
        encoding="utf-8",
    )
    tasks = []
    for i in range(500):
        tasks.append({"id": f"c{i}", "method": "calc/add", "parameters": {"a": i, "b": 1}})
        tasks.append(
            {
                "id": f"p{i}",
                "method": "python/double",
                "dependencies": [f"c{i}"],
                "parameters": {"x": f"${{c{i}.result}}"},
            }
        )
    flow = run_cli.workdir / "hybrid.yaml"
    flow.write_text(
        yaml.safe_dump({"name": "hybrid", "imports": ["wf_rows.py"], "tasks": tasks}),
        encoding="utf-8",
    )
    provider = subprocess.Popen(
        [sys.executable, "-m", "gleitzeit", "provider", "run", "calculator"]
        + ["--server", gleitzeit_server.url, "--token", gleitzeit_server.provider_token],
        env={**cli_env, "GLEITZEIT_PLUGINS": "calculator"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_provider(gleitzeit_server, "calculator")
        _run_hybrid(run_cli, flow, gleitzeit_server)
    finally:
        provider.terminate()
        provider.wait(30)


def _wait_for_provider(server: Any, name: str) -> None:
    from gleitzeit.socketio.client import Client

    async def wait() -> None:
        async with Client(server.url, token=server.token) as client:
            for _ in range(600):
                if any(p["name"] == name for p in await client.providers()):
                    return
                await asyncio.sleep(0.05)
        raise AssertionError(f"provider {name} never registered")

    asyncio.run(wait())


def _run_hybrid(run_cli: Any, flow: Path, gleitzeit_server: Any) -> None:
    for round_ in range(3):
        db = run_cli.workdir / f"hybrid-{round_}.sqlite"
        res = run_cli(
            "run",
            flow.name,
            "--json",
            "--db",
            str(db),
            "--server",
            gleitzeit_server.url,
            "--token",
            gleitzeit_server.token,
            env={"GLEITZEIT_PLUGINS": ""},
        )
        assert res.code == 0, res.err
        assert run_status(db) == ["completed"]
        assert rows(db) == {"completed": 1000}
        with sqlite3.connect(db) as conn:
            (stored,) = conn.execute(
                "SELECT result_json FROM tasks WHERE task_id='p499'"
            ).fetchone()
        assert json.loads(stored) == {"result": 1000}


def _host() -> Host:
    cfg = parse_config("{}")
    return Host(cfg, plugins=Plugins.load(cfg))


async def test_engine_runs_repeatedly_store_every_row(tmp_path):
    async with _host() as host:
        for round_ in range(10):
            for shape in ("independent", "chains", "for_each"):
                db = tmp_path / f"{shape}-{round_}.sqlite"
                store = RunStore(db)
                try:
                    wf = parse_workflow(yaml.safe_dump(shaped(shape, 1000)))
                    result = await Engine(host, store=store, concurrency=64).run(wf)
                finally:
                    store.close()
                assert result.status == "completed"
                assert rows(db) == {"completed": 1000}, (shape, round_)
                assert run_status(db) == ["completed"]


async def test_an_interrupted_run_keeps_the_rows_of_tasks_that_finished(tmp_path):
    db = tmp_path / "interrupted.sqlite"
    finished: set[str] = set()
    enough = asyncio.Event()

    def on_event(kind: str, **data: Any) -> None:
        if kind in ("task_completed", "task_failed"):
            finished.add(data["task"])
            if len(finished) >= 300:
                enough.set()

    flow = shaped("chains", 2000)
    async with _host() as host:
        store = RunStore(db)
        try:
            engine = Engine(host, store=store, concurrency=4, on_event=on_event)
            running = asyncio.ensure_future(engine.run(parse_workflow(yaml.safe_dump(flow))))
            await enough.wait()
            running.cancel()
            with pytest.raises(asyncio.CancelledError):
                await running
        finally:
            store.close()
    with sqlite3.connect(db) as conn:
        stored = {t for (t,) in conn.execute("SELECT task_id FROM tasks WHERE status='completed'")}
    assert finished and finished <= stored
    assert run_status(db) == ["interrupted"]


async def test_a_locked_database_is_not_reported_completed(tmp_path, caplog, monkeypatch):
    from gleitzeit.workflows import store as store_module

    monkeypatch.setattr(store_module, "SLOW_STOP", 0.05)
    db = tmp_path / "locked.sqlite"
    store = RunStore(db, busy_timeout=0.2)
    blocker = sqlite3.connect(db, isolation_level=None)

    def on_event(kind: str, **data: Any) -> None:
        if kind == "run_started":  # the run's row is written; now hold the lock
            blocker.execute("BEGIN EXCLUSIVE")

    try:
        async with _host() as host:
            engine = Engine(host, store=store, on_event=on_event)
            with pytest.raises(StoreWriteError) as caught:
                await engine.run(parse_workflow(yaml.safe_dump(shaped("independent", 50))))
        assert "could not be stored" in str(caught.value)
        assert "locked" in str(caught.value)
        # The work itself is not lost: the error carries the run's results.
        assert caught.value.result.status == "completed"
        assert len(caught.value.result.tasks) == 50
        # While it waited for the lock, the run said why it did not end.
        said = [r.getMessage() for r in caplog.records if r.name == "gleitzeit.store"]
        assert any("the database is busy (locked by another process?)" in m for m in said)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        store.close()
    # Released, the queued rows are written on close: nothing was dropped.
    assert rows(db) == {"completed": 50}


def test_cli_exits_non_zero_when_results_cannot_be_stored(run_cli):
    # A database that refuses task rows past the 100th, as a full disk would.
    db = run_cli.workdir / "full.sqlite"
    RunStore(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TRIGGER full BEFORE INSERT ON tasks WHEN (SELECT COUNT(*) FROM tasks) >= 100"
            " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
    flow = run_cli.workdir / "many.yaml"
    flow.write_text(yaml.safe_dump(shaped("independent", 300)), encoding="utf-8")
    res = run_cli("run", flow.name, "--db", str(db), env=CALC)
    assert res.code == 1
    assert "could not be stored" in res.err
    assert "disk is full" in res.err
    assert "--resume" in res.err
    assert run_status(db) != ["completed"]
    assert "NOT stored" in res.out
    # The results were computed and are still given, all of them.
    res = run_cli("run", flow.name, "--json", "--db", str(db), env=CALC)
    assert res.code == 1
    shown = json.loads(res.out)
    assert shown["stored"] is False
    assert len(shown["tasks"]) == 300
    assert shown["tasks"]["t299"]["result"]["result"] == 300


# -- how the writer takes its rows ------------------------------------------------------


def _create_run(store: RunStore, run_id: str) -> None:
    store.create_run(run_id, name="n", path=None, text="", inputs={}, target=None, task_ids=[])


def _queue_completed(store: RunStore, run_id: str, n: int) -> list[str]:
    ids = [f"t{i}" for i in range(n)]
    for i, task_id in enumerate(ids):
        store.task_completed(run_id, task_id, json.dumps({"result": i}), 1, 1.0, 2.0)
    return ids


def _stored_ids(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [t for (t,) in conn.execute("SELECT task_id FROM tasks ORDER BY rowid")]


def test_statement_rows_are_whole_statements_or_a_power_of_two():
    from gleitzeit.workflows.store import _statement_rows

    assert [_statement_rows(n, 1024) for n in (1, 2, 3, 700, 1023)] == [1, 2, 2, 512, 512]
    assert [_statement_rows(n, 1024) for n in (1024, 1025, 2500, 4096)] == [1024] * 2 + [2048, 4096]


def test_a_commit_in_part_leaves_the_rest_queued_in_order(tmp_path):
    db = tmp_path / "part.sqlite"
    store = RunStore(db)
    try:
        _create_run(store, "r")
        ids = _queue_completed(store, "r", 2500)
        store._executor.submit(store._commit_pending, True).result()
        assert _stored_ids(db) == ids[:2048]
        assert store.pending == 2500 - 2048
        store.flush_now()
        assert _stored_ids(db) == ids and store.pending == 0
    finally:
        store.close()


@contextlib.contextmanager
def _store_beside_a_blocker(db: Path) -> Iterator[tuple[RunStore, sqlite3.Connection]]:
    """A store that gives up on a lock at once, and a second connection to hold one."""
    store = RunStore(db, busy_timeout=0.05)
    blocker = sqlite3.connect(db, isolation_level=None)
    try:
        yield store, blocker
    finally:
        blocker.close()
        store.close()


def test_a_failed_commit_in_part_puts_its_rows_back_in_order(tmp_path):
    db = tmp_path / "part-locked.sqlite"
    with _store_beside_a_blocker(db) as (store, blocker):
        _create_run(store, "r")
        ids = _queue_completed(store, "r", 1500)
        blocker.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StoreWriteError, match="locked"):
            store._executor.submit(store._commit_pending, True).result()
        assert store.pending == 1500
        blocker.execute("ROLLBACK")
        store.flush_now()
        assert _stored_ids(db) == ids


async def test_the_commit_a_run_waits_for_last_leaves_the_checkpoint_for_after(tmp_path):
    db = tmp_path / "checkpoint.sqlite"
    store = RunStore(db)
    seen: list[int] = []
    original = store._write

    def write(batch: Any) -> None:
        assert store._conn is not None
        seen.append(store._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
        original(batch)

    store._write = write  # type: ignore[method-assign]
    try:
        _create_run(store, "r")
        assert seen == [1000]  # commits outside a run's end checkpoint as SQLite does
        store.start()
        ids = _queue_completed(store, "r", 300)
        await store.stop()
        # The commit stop() waited for checkpointed nothing; the writer did it after,
        # and turned SQLite's own checkpoints back on.
        assert seen == [1000, 0]
        (row,) = store._read("PRAGMA wal_autocheckpoint")
        assert row[0] == 1000
        assert _stored_ids(db) == ids
    finally:
        store.close()


async def test_checkpoints_come_back_on_when_the_last_commit_fails(tmp_path):
    db = tmp_path / "checkpoint-locked.sqlite"
    with _store_beside_a_blocker(db) as (store, blocker):
        _create_run(store, "r")
        store.start()
        ids = _queue_completed(store, "r", 10)
        blocker.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StoreWriteError):
            await store.stop()
        blocker.execute("ROLLBACK")
        (row,) = store._read("PRAGMA wal_autocheckpoint")
        assert row[0] == 1000
        store.flush_now()
        assert _stored_ids(db) == ids


async def test_a_cancelled_stop_leaves_checkpoints_on_and_no_writer_behind(tmp_path):
    db = tmp_path / "cancelled-stop.sqlite"
    store = RunStore(db)
    try:
        _create_run(store, "r")
        store.start()
        ids = _queue_completed(store, "r", 5000)
        stopping = asyncio.ensure_future(store.stop())
        await asyncio.sleep(0)  # stop() now waits for the writer's last commit
        stopping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stopping
        store.start()  # a writer of its own; the old one finishes and ends
        more = [f"u{i}" for i in range(10)]
        for task_id in more:
            store.task_completed("r", task_id, "{}", 1, 1.0, 2.0)
        await store.stop()
        writers = [
            t
            for t in asyncio.all_tasks()
            if getattr(t.get_coro(), "__qualname__", "") == "RunStore._write_loop"
        ]
        assert writers == []
        (row,) = store._read("PRAGMA wal_autocheckpoint")
        assert row[0] == 1000
        assert sorted(_stored_ids(db)) == sorted(ids + more)
    finally:
        store.close()


async def test_after_a_failed_commit_the_writer_pauses_however_many_rows_wait(
    tmp_path, monkeypatch
):
    from gleitzeit.workflows import store as store_module

    monkeypatch.setattr(store_module, "GATHER", 3600.0)  # a pause only stop() ends
    db = tmp_path / "failing.sqlite"
    store = RunStore(db, busy_timeout=0.01)
    blocker = sqlite3.connect(db, isolation_level=None)
    attempts: list[int] = []
    original = store._commit_pending

    def counted(*args: Any) -> None:
        attempts.append(store.pending)
        original(*args)

    store._commit_pending = counted  # type: ignore[method-assign]
    try:
        _create_run(store, "r")
        attempts.clear()
        blocker.execute("BEGIN EXCLUSIVE")
        store.start()
        ids = _queue_completed(store, "r", 2000)  # more than a statement's worth
        while store.failure is None:  # the first try fails
            await asyncio.sleep(0.01)
        for i in range(50):  # each wakes the writer; it stays in its pause
            store.task_completed("r", f"late{i}", "{}", 1, 1.0, 2.0)
            await asyncio.sleep(0)
        assert len(attempts) == 1
        blocker.execute("ROLLBACK")
        await store.stop()
        assert sorted(_stored_ids(db)) == sorted(ids + [f"late{i}" for i in range(50)])
    finally:
        blocker.close()
        store.close()
