"""Workflow defects users hit: JSON output, reserved ids, literal ${...}, self references,
**kwargs tasks, empty globs, Ctrl-C, narrow terminals."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from gleitzeit.errors import WorkflowError
from gleitzeit.workflows import parse_workflow
from gleitzeit.workflows.progress import LiveProgress
from gleitzeit.workflows.references import substitute

TASKS = textwrap.dedent(
    """
    import time

    import gleitzeit

    @gleitzeit.task
    def chatty(text: str) -> str:
        print("a line a task printed")
        return text.upper()

    @gleitzeit.task
    def anything(**kwargs) -> dict:
        return kwargs

    @gleitzeit.task
    def sleepy(seconds: float, marker: str) -> float:
        open(marker, "w").close()  # tells the test the task is running
        time.sleep(seconds)
        return seconds
    """
)


@pytest.fixture
def flows(run_cli):
    (run_cli.workdir / "wf_defects.py").write_text(TASKS)
    return run_cli


def test_json_output_stays_json_when_a_task_prints(flows):
    (flows.workdir / "f.yaml").write_text(
        "imports: [wf_defects.py]\ntasks: [{id: c, method: python/chatty, parameters: {text: hi}}]\n"
    )
    out = flows("run", "f.yaml", "--json", "--db", "runs.sqlite", env={"GLEITZEIT_PLUGINS": ""})
    assert out.code == 0, out.err
    assert json.loads(out.out)["tasks"]["c"]["result"]["result"] == "HI"
    assert "a line a task printed" in out.err


def test_a_task_with_kwargs_accepts_any_keyword(flows):
    (flows.workdir / "k.yaml").write_text(
        "imports: [wf_defects.py]\n"
        "tasks: [{id: k, method: python/anything, parameters: {a: 1, b: two}}]\n"
    )
    out = flows("run", "k.yaml", "--json", "--db", "runs.sqlite", env={"GLEITZEIT_PLUGINS": ""})
    assert out.code == 0, out.err
    assert json.loads(out.out)["tasks"]["k"]["result"]["result"] == {"a": 1, "b": "two"}


@pytest.mark.parametrize("reserved", ["item", "inputs", "item_index", "env"])
def test_task_ids_that_name_builtins_are_refused(reserved):
    with pytest.raises(WorkflowError, match=f"the task id '{reserved}' is reserved"):
        parse_workflow(f"tasks: [{{id: {reserved}, method: calc/add}}]")


def test_dollar_dollar_writes_a_literal_reference():
    flow = parse_workflow(
        "inputs: {city: {default: Paris}}\n"
        "tasks: [{id: a, method: llm/chat, parameters: "
        "{p: 'echo $${HOME}; ${inputs.city}; $${inputs.city}', q: '$${HOME}'}}]\n"
    )
    params = substitute(flow.tasks["a"].parameters, {"inputs": {"city": "Paris"}}, "a")
    assert params == {"p": "echo ${HOME}; Paris; ${inputs.city}", "q": "${HOME}"}


def test_a_task_referring_to_itself_is_told_so():
    with pytest.raises(WorkflowError) as info:
        parse_workflow("tasks: [{id: a, method: calc/add, parameters: {a: '${a.result}'}}]")
    assert "refers to the task itself" in str(info.value)
    assert "add it to dependencies" not in str(info.value)


def test_a_glob_that_matches_nothing_warns(run_cli):
    (run_cli.workdir / "g.yaml").write_text(
        "tasks: [{id: g, method: calc/add, for_each: {glob: 'nothing-*.txt'}, "
        "parameters: {a: 1, b: 2}}]\n"
    )
    out = run_cli("run", "g.yaml", "--db", "runs.sqlite")
    assert "matched no files" in out.out + out.err
    as_json = run_cli("run", "g.yaml", "--json", "--db", "runs.sqlite")
    assert "matched no files" in json.loads(as_json.out)["warnings"][0]


def test_an_in_memory_run_prints_no_resume_hint(run_cli):
    (run_cli.workdir / "x.yaml").write_text(
        "tasks: [{id: d, method: calc/divide, parameters: {a: 1, b: 0}}]\n"
    )
    out = run_cli("run", "x.yaml", "--db", ":memory:")
    assert out.code == 1
    assert "--resume" not in out.out
    kept = run_cli("run", "x.yaml", "--db", "kept.sqlite")
    assert "resume with: gleitzeit run --resume" in kept.out and "--db kept.sqlite" in kept.out


@pytest.mark.parametrize("as_json", [False, True])
def test_ctrl_c_prints_the_resume_command_and_does_not_wait_for_a_sync_task(
    flows, cli_env, as_json
):
    (flows.workdir / "s.yaml").write_text(
        "imports: [wf_defects.py]\n"
        "tasks: [{id: s, method: python/sleepy, parameters: {seconds: 30, marker: started}}]\n"
    )
    args = [sys.executable, "-m", "gleitzeit", "run", "s.yaml", "--db", "runs.sqlite"]
    proc = subprocess.Popen(
        args + (["--json"] if as_json else []),
        cwd=flows.workdir,
        env={**cli_env, "GLEITZEIT_PLUGINS": ""},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (flows.workdir / "started").exists():
        time.sleep(0.05)
    assert (flows.workdir / "started").exists(), proc.stderr.read() if proc.poll() else ""
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)  # far less than the task's 30 s
    assert proc.returncode == 130
    if as_json:
        data = json.loads(out)
        assert data["status"] == "interrupted" and data["resume"].startswith(
            "gleitzeit run --resume"
        )
    else:
        assert "resume with: gleitzeit run --resume" in err


def test_the_live_view_fits_a_narrow_terminal():
    out = io.StringIO()
    view = LiveProgress(out)
    view.columns = lambda: 60  # type: ignore[method-assign]
    view("run_started", run_id="r1", workflow="w" * 100, tasks=["a" * 90, "b"], resumed=False)
    view("task_failed", task="b", error="x" * 200)
    view("run_finished", run_id="r1", status="failed", duration=0.1)
    for line in out.getvalue().replace("\x1b[J", "").splitlines():
        line = line.split("F", 1)[-1] if line.startswith("\x1b[") else line
        assert len(line) < 60, line
