"""``gleitzeit run`` and ``gleitzeit runs``: workflows, and their stored runs."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from gleitzeit.cli.output import echo_json, table
from gleitzeit.cli.renamed import RUN_OPTIONS, renamed_options
from gleitzeit.cli.state import state_of


def _asyncio():  # noqa: ANN202 - asyncio costs ~25 ms to import; only commands that run use it
    import asyncio

    return asyncio


def _store(state: Any, db: str | None) -> Any:
    from gleitzeit.workflows import RunStore, default_database

    path = db or state.config.workflows.database or default_database()
    return RunStore(path)


def _stored_runs(state: Any, db: str | None) -> Any:
    """The store to read runs from; ``None`` when the default database does not exist
    yet (nothing has run). A database named by --db or workflows.database must exist:
    reading never creates one."""
    from gleitzeit.errors import StoreOpenError
    from gleitzeit.workflows import default_database

    named = db or state.config.workflows.database
    if named is None:
        return _store(state, db) if default_database().exists() else None
    if named != ":memory:" and not Path(named).expanduser().exists():
        where = "--db" if db else "workflows.database"
        raise StoreOpenError(
            f"No run database at {named} ({where})",
            hint="give the file `gleitzeit run` stored its runs in (see its --db)",
        )
    return _store(state, db)


@click.command("run")
@renamed_options(RUN_OPTIONS)
@click.argument("workflow_file", required=False, type=click.Path(dir_okay=False))
@click.option("--input", "-i", "inputs", multiple=True, help="name=value, for ${inputs.name}.")
@click.option(
    "--resume", "resume_id", help="Continue a stored run; completed tasks are not run again."
)
@click.option("--json", "as_json", is_flag=True, help="Print the final results as JSON.")
@click.option(
    "--server", "server_url", envvar="GLEITZEIT_SERVER", help="Run against a `gleitzeit serve`."
)
@click.option("--token", envvar="GLEITZEIT_TOKEN", help="The server's token.")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    help="Calls in flight at once (default: workflows.concurrency).",
)
@click.option("--db", help="SQLite file of runs (default: workflows.database).")
@click.option(
    "--explain",
    is_flag=True,
    help="Print how each construct of the file is read (for the original Gleitzeit's "
    "format) and the workflow in this project's format, then stop.",
)
@click.option(
    "--allow-execute",
    is_flag=True,
    help="Let python/execute run the code the workflow names (workflows.allow_execute).",
)
@click.pass_context
def run(
    ctx: click.Context,
    workflow_file: str | None,
    inputs: tuple[str, ...],
    resume_id: str | None,
    as_json: bool,
    server_url: str | None,
    token: str | None,
    concurrency: int | None,
    db: str | None,
    explain: bool,
    allow_execute: bool,
) -> None:
    """Run WORKFLOW_FILE: tasks in dependency order, independent ones at once, with live
    progress; results are stored so the run can be listed, shown and resumed.

    Files in the original Gleitzeit's format run as written; --explain shows how.

    Exits 0 when every task completed, 1 when one failed, 2 when the file is invalid.
    """
    from gleitzeit.api import Api
    from gleitzeit.errors import RunInProgressError, StoreWriteError
    from gleitzeit.workflows import Engine, load_workflow, parse_workflow
    from gleitzeit.workflows.engine import new_run_id
    from gleitzeit.workflows.progress import LiveProgress, PlainProgress
    from gleitzeit.workflows.runner import (
        HybridApi,
        check_execute,
        check_methods,
        import_task_modules,
        parse_inputs,
    )

    state = state_of(ctx)
    if workflow_file is not None and resume_id is not None:
        raise click.UsageError(
            "give a WORKFLOW_FILE or --resume RUN_ID, not both (a resumed run keeps the "
            "workflow it was started with)"
        )
    if workflow_file is None and resume_id is None:
        raise click.UsageError("give a WORKFLOW_FILE, or --resume RUN_ID")
    if explain:
        from gleitzeit.workflows.convert import explain as explain_text

        if workflow_file is None:
            raise click.UsageError("--explain needs a WORKFLOW_FILE")
        click.echo(explain_text(load_workflow(workflow_file)))
        return
    if allow_execute:
        # The host's python/execute provider reads this when it starts.
        state.config.workflows.allow_execute = True
    store = _store(state, db)
    completed: dict[str, Any] | None = None
    done_items: dict[str, dict[int, Any]] | None = None
    run_id = None
    try:
        if resume_id is not None:
            stored = store.get_run(resume_id)
            run_id = stored["id"]
            if stored.get("running_in"):
                host, _, rest = stored["running_in"].partition(":")
                raise RunInProgressError(
                    f"run {run_id} is still running (pid {rest.partition(':')[0]} on {host}); "
                    "resuming it now would run its tasks twice",
                    hint="wait for it to end, or stop that process; a run whose process "
                    "is gone resumes",
                )
            if stored.get("interrupted"):
                click.echo(
                    f"run {run_id} was interrupted ({stored['error']}); resuming it", err=True
                )
            source = Path(stored["workflow_path"]) if stored["workflow_path"] else None
            with contextlib.suppress(OSError):
                if source is not None and source.read_text() != stored["workflow_text"]:
                    click.echo(
                        f"note: {source} changed since run {run_id} started; --resume runs "
                        "the workflow as it was then. To run the edited file, start a new "
                        f"run: gleitzeit run {source}",
                        err=True,
                    )
            workflow = parse_workflow(stored["workflow_text"], source=source)
            given = stored["inputs"]
            completed = {
                t: item["result"]
                for t, item in stored["tasks"].items()
                if item["status"] == "completed"
            }
            # Fan-out items the interrupted run finished inside a task it did not.
            done_items = store.done_items(run_id)
            server_url = server_url or stored.get("target")
        else:
            assert workflow_file is not None  # checked above: one of the two is given
            workflow = load_workflow(workflow_file)
            given = parse_inputs(inputs)
        check_execute(workflow, state.config.workflows.allow_execute)
        import_task_modules(workflow)
        # What is loaded now (modules, the workflow) lives through the run: out of the
        # collector's sight (until the run is over), full collections stop walking it.
        gc.freeze()

        api: Api = state.api(server_url, token)
        if server_url:  # python tasks run here, where their functions are
            api = HybridApi(api, state.host(lazy=True))
        if as_json:
            progress: Any = None
        elif sys.stderr.isatty():
            progress = LiveProgress()
        else:
            progress = PlainProgress()
        engine = Engine(
            api,
            store=store,
            concurrency=concurrency or state.config.workflows.concurrency,
            on_event=progress,
        )

        run_id = run_id or new_run_id()

        outcome: list[Any] = []

        async def go() -> None:
            async with api:
                await check_methods(workflow, api)
                outcome.append(
                    await engine.run(
                        workflow,
                        given,
                        run_id=run_id,
                        completed=completed,
                        target=server_url,
                        items=done_items,
                    )
                )
            # Returned through ``outcome``, not as the coroutine's value: on its way out
            # asyncio.run (3.11) may format the main task's repr, result included, which
            # for a run of 10,000 tasks is a string of megabytes built for nothing.

        try:
            # With --json, stdout carries the JSON alone: what tasks print goes to stderr.
            with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
                _asyncio().run(go())
            result = outcome[0]
        except KeyboardInterrupt:
            _interrupted(store, run_id, db, as_json)
        except StoreWriteError as exc:
            # The work was done but is not on record: show it, then fail loudly, so
            # nobody mistakes the run for a stored one.
            if exc.result is not None:
                _report(exc.result, as_json, stored=False, names=_names(workflow))
            raise
    finally:
        gc.unfreeze()
        store.close()
    _report(result, as_json, names=_names(workflow), resume=_resume_command(result.run_id, db))
    if result.status != "completed":
        ctx.exit(1)


def _resume_command(run_id: str, db: str | None) -> str | None:
    """How to continue a run, or None when its record does not outlive the process."""
    if db == ":memory:":
        return None
    return f"gleitzeit run --resume {run_id}" + (f" --db {db}" if db else "")


def _interrupted(store: Any, run_id: str, db: str | None, as_json: bool) -> None:
    """Ctrl-C: the run is recorded as interrupted; say how to resume, and leave at once.

    A synchronous Python task may still be running in its thread; the process does not
    wait for it (what finished is on record, and resume runs the rest).
    """
    store.close()
    resume = _resume_command(run_id, db)
    if as_json:
        echo_json({"run_id": run_id, "status": "interrupted", "resume": resume})
    else:
        click.echo(
            f"\ninterrupted; run {run_id}" + (f": resume with: {resume}" if resume else ""),
            err=True,
        )
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


def _names(workflow: Any) -> dict[str, str]:
    """Display names of the tasks that have one (the original format's ``name``)."""
    return {t: spec.name for t, spec in workflow.tasks.items() if spec.name and spec.name != t}


def _report(
    result: Any,
    as_json: bool,
    *,
    stored: bool = True,
    names: dict[str, str] | None = None,
    resume: str | None = None,
) -> None:
    if as_json:
        data = result.to_dict()
        if not stored:
            data["stored"] = False
        echo_json(data)
    else:
        _summary(result, stored=stored, names=names or {}, resume=resume)


def _short(value: Any, width: int = 70) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _summary(
    result: Any,
    *,
    stored: bool = True,
    names: dict[str, str] | None = None,
    resume: str | None = None,
) -> None:
    names = names or {}
    rows = []
    for task_id, state in result.tasks.items():
        shown = state.result
        if isinstance(shown, dict) and "results" in shown and "count" in shown:
            shown = f"{shown['count']} results (for_each)"
        elif isinstance(shown, dict):
            for key in ("response", "result"):
                if key in shown:
                    shown = shown[key]
                    break
        rows.append(
            [
                f"{task_id} ({names[task_id]})" if task_id in names else task_id,
                state.status,
                f"{state.duration:.2f}s" if state.duration is not None else "",
                _short(state.error) if state.error else _short(shown) if shown is not None else "",
            ]
        )
    if len(rows) > 50:
        hidden = len(rows) - 50
        rows = [r for r in rows if r[1] != "completed"][:25] + rows[:25]
        more = "in `gleitzeit runs show`" if stored else "with --json"
        click.echo(f"(showing 50 of {len(result.tasks)} tasks; {hidden} more {more})")
    click.echo(table(["TASK", "STATUS", "TIME", "RESULT"], rows))
    if not stored:
        click.echo(f"\nrun {result.run_id}: {result.status}, but NOT stored (see below)")
        return
    for warning in result.warnings:
        click.echo(f"warning: {warning}")
    click.echo(f"\nrun {result.run_id}: {result.status}")
    if result.status == "failed" and resume:
        click.echo(f"resume with: {resume}")


@click.group("runs")
def runs_group() -> None:
    """Stored workflow runs."""


@runs_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.option("--limit", default=20, show_default=True)
@click.option("--db", help="SQLite file of runs.")
@click.pass_context
def runs_list(ctx: click.Context, as_json: bool, limit: int, db: str | None) -> None:
    """The most recent runs."""
    store = _stored_runs(state_of(ctx), db)
    runs = []
    if store is not None:
        try:
            runs = store.list_runs(limit)
        finally:
            store.close()
    if as_json:
        echo_json(runs)
        return
    rows = [
        [
            r["id"],
            r["workflow_name"],
            "interrupted" if r.get("interrupted") else r["status"],
            f"{r['completed']}/{r['tasks']}",
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["created_at"])),
        ]
        for r in runs
    ]
    click.echo(
        table(["RUN", "WORKFLOW", "STATUS", "DONE", "STARTED"], rows) if rows else "no runs yet"
    )


@runs_group.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True)
@click.option("--db", help="SQLite file of runs.")
@click.pass_context
def runs_show(ctx: click.Context, run_id: str, as_json: bool, db: str | None) -> None:
    """One run: each task's status, attempts, result or error."""
    store = _stored_runs(state_of(ctx), db)
    if store is None:
        from gleitzeit.errors import RunNotFound

        raise RunNotFound(f"No run {run_id!r}: nothing has run yet", hint="see gleitzeit runs list")
    try:
        data = store.get_run(run_id)
    finally:
        store.close()
    data.pop("workflow_text", None)
    if as_json:
        echo_json(data)
        return
    status = f"interrupted ({data['error']})" if data.get("interrupted") else data["status"]
    click.echo(f"run {data['id']}  {data['workflow_name']}  {status}")
    if data.get("workflow_path"):
        click.echo(f"file {data['workflow_path']}")
    if data["inputs"]:
        click.echo(f"inputs {json.dumps(data['inputs'], default=str)}")
    rows = []
    for task_id, t in data["tasks"].items():
        took = ""
        if t["started_at"] and t["finished_at"]:
            took = f"{t['finished_at'] - t['started_at']:.2f}s"
        rows.append(
            [task_id, t["status"], t["attempts"], took, _short(t["error"] or t["result"] or "")]
        )
    click.echo(table(["TASK", "STATUS", "TRIES", "TIME", "RESULT / ERROR"], rows))


COMMANDS = [run, runs_group]
