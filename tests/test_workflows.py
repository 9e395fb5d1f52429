"""Workflows: loading and checks, substitution, execution, retries, fan-out,
persistence and resume, Python tasks, and the same workflow against a server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import gleitzeit
from gleitzeit.config import parse_config
from gleitzeit.errors import TaskReferenceError
from gleitzeit.host import Host
from gleitzeit.plugins import Plugins
from gleitzeit.workflows import Engine, RunStore, WorkflowError, parse_workflow
from gleitzeit.workflows.references import substitute
from gleitzeit.workflows.runner import check_methods, import_task_modules

HERE = Path(__file__).resolve().parent


def wf(text: str, source: str | None = None):
    return parse_workflow(textwrap.dedent(text), source=Path(source) if source else None)


class Flaky(gleitzeit.Provider):
    name = "flaky"
    kind = "tool"

    def __init__(self, settings=None, *, name=None, failures=2):
        super().__init__(settings, name=name)
        self.failures = failures
        self.calls = 0

    @gleitzeit.method("flaky/work")
    async def work(self, params):
        self.calls += 1
        if self.calls <= self.failures:
            raise gleitzeit.ProviderUnavailableError(f"not yet ({self.calls})")
        return {"result": self.calls}

    @gleitzeit.method("flaky/slow")
    async def slow(self, params):
        await asyncio.sleep(params.get("seconds", 5))
        return {"result": "late"}

    @gleitzeit.method("flaky/boom")
    async def boom(self, params):
        raise gleitzeit.ToolError("boom")


def host_with(*providers, config: str = "{}"):
    cfg = parse_config(config)
    return Host(cfg, plugins=Plugins.load(cfg), providers=list(providers))


# -- substitution ----------------------------------------------------------------------


def test_whole_value_reference_keeps_its_type_and_text_references_render():
    scope = {
        "sum": {"result": 5, "parts": [2, 3], "meta": {"tags": ["a", "b"]}},
        "inputs": {"city": "Berlin"},
    }
    assert substitute("${sum.result}", scope, "t") == 5
    assert substitute(" ${sum.parts} ", scope, "t") == [2, 3]
    assert substitute("${sum.meta}", scope, "t") == {"tags": ["a", "b"]}
    assert substitute("total: ${sum.result}", scope, "t") == "total: 5"
    assert substitute("${sum.meta.tags[1]} in ${inputs.city}", scope, "t") == "b in Berlin"
    assert substitute({"x": ["${sum.parts[0]}", {"y": "${sum.parts}"}]}, scope, "t") == {
        "x": [2, {"y": [2, 3]}]
    }
    assert substitute("parts: ${sum.parts}", scope, "t") == "parts: [2, 3]"


def test_missing_field_names_task_path_and_what_exists():
    scope = {"sum": {"result": 5, "expression": "2 + 3"}}
    with pytest.raises(TaskReferenceError) as info:
        substitute("${sum.reslt}", scope, "double")
    text = str(info.value)
    assert "task 'double'" in text and "${sum.reslt}" in text
    assert "its fields are: result, expression" in text
    with pytest.raises(TaskReferenceError, match="has no item \\[5\\]; it is a list of 2"):
        substitute("${sum.parts[5]}", {"sum": {"parts": [1, 2]}}, "t")


@pytest.mark.parametrize(
    "value",
    [
        "${sum.result}",
        " ${sum.parts} ",
        "total: ${sum.result}",
        "${sum.meta.tags[1]} in ${inputs.city}",
        "$${literal} and ${sum.result}",
        "$${literal}",
        "no reference",
        {"x": ["${sum.parts[0]}", {"y": "${sum.parts}"}], "n": 1, "z": None},
        {"a": "${sum.result}", "b": 1},
        [1, "${sum.result}", {"c": "text"}],
        {"a": "${proxy.result}", "b": "${ordered.inner.result}"},  # other mappings
        {"a": "${sum.meta.tags}", "b": "${env.GLEITZEIT_TEST_REF}"},
        "${sum}",
    ],
)
def test_a_compiled_template_renders_what_substitute_gives(value, monkeypatch):
    from collections import OrderedDict
    from types import MappingProxyType

    from gleitzeit.workflows.references import compile_refs

    monkeypatch.setenv("GLEITZEIT_TEST_REF", "set")
    scope = {
        "sum": {"result": 5, "parts": [2, 3], "meta": {"tags": ["a", "b"]}},
        "inputs": {"city": "Berlin"},
        "proxy": MappingProxyType({"result": 7}),
        "ordered": {"inner": OrderedDict(result=8)},
        "env": os.environ,
    }
    template = compile_refs(value)
    assert template.render(scope, "t") == substitute(value, scope, "t")
    assert template.render(scope, "t") == substitute(value, scope, "t")  # rendered again
    if isinstance(value, dict):
        assert template.render(scope, "t") is not value  # a copy, as substitute makes


@pytest.mark.parametrize(
    "value",
    [
        {"a": "x ${sum.reslt}"},
        {"a": "${sum.reslt}"},
        {"a": "${nothing.result}"},
        {"a": "${sum.result.deeper}"},
        {"a": "${sum.expression.x}", "b": "${sum.result}"},
    ],
)
def test_a_compiled_template_reports_a_bad_reference_as_substitute_does(value):
    from gleitzeit.workflows.references import compile_refs

    scope = {"sum": {"result": 5, "expression": "2 + 3"}}
    template = compile_refs(value)
    with pytest.raises(TaskReferenceError) as info:
        template.render(scope, "double")
    with pytest.raises(TaskReferenceError) as expected:
        substitute(value, scope, "double")
    assert str(info.value) == str(expected.value)


def test_a_new_task_state_is_the_dataclass_default():
    from dataclasses import asdict

    from gleitzeit.workflows import TaskState

    made, pending = TaskState("t"), TaskState.pending("t")
    assert made == pending and asdict(made) == asdict(pending)
    assert vars(made) == vars(pending) and list(vars(made)) == list(vars(pending))
    pending.result = {"x": 1}
    assert pending.result == {"x": 1} and made.result is None  # nothing shared


# -- loading -----------------------------------------------------------------------------


def _problems(text: str) -> list[str]:
    with pytest.raises(WorkflowError) as info:
        wf(text, "flow.yaml")
    return info.value.problems


def test_cycle_names_its_members():
    (problem,) = _problems(
        """
        tasks:
          - {id: a, method: calc/add, dependencies: [c]}
          - {id: b, method: calc/add, dependencies: [a]}
          - {id: c, method: calc/add, dependencies: [b]}
          - {id: d, method: calc/add}
        """
    )
    assert "dependency cycle: a -> c -> b -> a" in problem
    assert problem.startswith("flow.yaml:3:")


GRAPH_PROBLEMS = """
tasks:
  - id: sum
    method: calc/add
  - id: sum
    method: calc/add
  - id: double
    method: calc/multiply
    dependencies: [summ]
    parameters: {a: "${sum.result}", b: "${nothere.x}", c: "${item}"}
"""


def test_an_invalid_task_id_is_a_schema_error_with_its_line():
    problems = _problems(GRAPH_PROBLEMS + "  - id: bad id\n    method: calc/add\n")
    text = "\n".join(problems)
    assert "flow.yaml:11: tasks[3] (id 'bad id').id: String should match pattern" in text


def test_graph_and_reference_problems_are_all_reported_with_lines():
    problems = _problems(GRAPH_PROBLEMS)
    text = "\n".join(problems)
    assert "flow.yaml:5: tasks[1]: duplicate task id 'sum'" in text
    assert "unknown dependency 'summ'; did you mean 'sum'?" in text
    assert "${sum.result} refers to task 'sum', which is not among its dependencies" in text
    assert "${nothere.x} refers to an unknown task 'nothere'" in text
    assert "${item} is only for tasks with for_each" in text
    assert all(p.startswith("flow.yaml:") for p in problems)


def test_unknown_keys_and_methods_are_named(tmp_path):
    (problem,) = _problems(
        """
        tasks:
          - id: a
            method: calc/add
            paramters: {a: 1}
        """
    )
    assert (
        "flow.yaml:5: tasks[0] (id 'a').paramters: unknown key 'paramters'; did you mean 'parameters'?"
        == problem
    )

    async def go():
        async with host_with() as host:
            with pytest.raises(WorkflowError) as info:
                await check_methods(
                    wf(
                        """
                        tasks:
                          - {id: a, method: calc/ad}
                          - {id: b, method: llm/chat, provider: ecko}
                        """
                    ),
                    host,
                )
            return info.value.problems

    problems = asyncio.run(go())
    # Each with the line of its task (the text's third and fourth lines here).
    assert problems[0].startswith("<workflow>:3: task 'a': unknown method 'calc/ad';")
    assert "did you mean 'calc/add'?" in problems[0]
    assert problems[1].startswith("<workflow>:4: task 'b': unknown provider 'ecko';")


# -- running -----------------------------------------------------------------------------


async def test_topic_example_runs_and_passes_results():
    flow = parse_workflow((HERE.parent / "examples" / "topic.yaml").read_text())
    async with host_with() as host:
        result = await Engine(host).run(flow)
    assert result.status == "completed"
    assert result.tasks["write_about_topic"].result["response"] == "Write about: Give me a topic"
    assert result.tasks["double"].result["result"] == 10
    assert result.tasks["double"].result["inputs"] == {"a": 5, "b": 2}  # the number type stayed


async def test_retries_until_the_provider_succeeds():
    flaky = Flaky(failures=2)
    flow = wf(
        """
        tasks:
          - id: w
            method: flaky/work
            retry: {max_attempts: 3, backoff: exponential, base_delay: 0.01, jitter: 0.5}
        """
    )
    events = []
    async with host_with(flaky) as host:
        result = await Engine(host, on_event=lambda e, **d: events.append((e, d))).run(flow)
    assert result.status == "completed"
    assert result.tasks["w"].result == {"result": 3} and result.tasks["w"].attempts == 3
    retries = [d for e, d in events if e == "task_retry"]
    assert [r["attempt"] for r in retries] == [1, 2]
    assert "not yet (1)" in retries[0]["error"]


async def test_retries_are_bounded():
    flow = wf("tasks: [{id: w, method: flaky/work, retry: {max_attempts: 2, base_delay: 0}}]")
    async with host_with(Flaky(failures=5)) as host:
        result = await Engine(host).run(flow)
    assert result.status == "failed"
    assert result.tasks["w"].attempts == 2
    assert "not yet (2)" in result.tasks["w"].error


def test_backoff_delays():
    from gleitzeit.workflows.models import RetryPolicy

    exp = RetryPolicy(max_attempts=5, backoff="exponential", base_delay=1, max_delay=3, jitter=0)
    assert [exp.delay(a, 0.5) for a in (1, 2, 3, 4)] == [1, 2, 3, 3]
    fixed = RetryPolicy(backoff="fixed", base_delay=2, jitter=0.5)
    assert fixed.delay(3, 0.0) == 1.0 and fixed.delay(3, 1.0) == 3.0


async def test_timeout_fails_the_task():
    flow = wf("tasks: [{id: s, method: flaky/slow, timeout: 0.05, parameters: {seconds: 5}}]")
    async with host_with(Flaky()) as host:
        result = await Engine(host).run(flow)
    assert result.tasks["s"].status == "failed"
    assert "ProviderTimeoutError" in result.tasks["s"].error


async def test_a_failed_task_skips_its_dependents_and_the_rest_go_on():
    flow = wf(
        """
        tasks:
          - {id: boom, method: flaky/boom}
          - {id: after, method: calc/add, dependencies: [boom], parameters: {a: 1, b: 2}}
          - {id: later, method: calc/add, dependencies: [after], parameters: {a: 1, b: 2}}
          - {id: free, method: calc/add, parameters: {a: 1, b: 2}}
        """
    )
    async with host_with(Flaky()) as host:
        result = await Engine(host).run(flow)
    assert result.status == "failed"
    states = {t: s.status for t, s in result.tasks.items()}
    assert states == {"boom": "failed", "after": "skipped", "later": "skipped", "free": "completed"}
    assert "ToolError: boom" in result.tasks["boom"].error
    assert "dependency 'boom'" in result.tasks["after"].error


def _import_wf_tasks() -> None:
    """The Python tasks of tests/wf_tasks.py, imported as a workflow's imports: would."""
    import_task_modules(
        wf("imports: [wf_tasks]\ntasks: [{id: x, method: python/split}]", str(HERE / "x.yaml"))
    )


async def test_fan_out_keeps_order_over_task_lists_literals_and_globs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("b.md", "a.md", "c.txt"):
        (tmp_path / name).write_text(f"text of {name}")
    _import_wf_tasks()
    flow = wf(
        """
        tasks:
          - id: words
            method: python/split
            parameters: {text: "one two three four"}
          - id: loud
            method: python/shout
            dependencies: [words]
            for_each: ${words.result}
            parameters: {text: "${item_index}:${item}"}
          - id: squares
            method: calc/power
            for_each: [1, 2, 3, 4, 5]
            parameters: {a: "${item}", b: 2}
          - id: docs
            method: llm/generate
            for_each: {glob: "*.md"}
            parameters: {prompt: "Summarise", file_path: "${item}"}
        """
    )
    async with host_with(config="workflows: {concurrency: 3}") as host:
        result = await Engine(host, concurrency=3).run(flow)
    assert result.status == "completed", {t: s.error for t, s in result.tasks.items()}
    loud = result.tasks["loud"].result
    assert [r["result"] for r in loud["results"]] == ["0:ONE!", "1:TWO!", "2:THREE!", "3:FOUR!"]
    assert loud["count"] == 4
    assert [r["result"] for r in result.tasks["squares"].result["results"]] == [1, 4, 9, 16, 25]
    docs = result.tasks["docs"].result
    assert docs["items"] == ["a.md", "b.md"]
    assert [
        r["response"].endswith(f"text of {n}")
        for r, n in zip(docs["results"], ["a.md", "b.md"], strict=True)
    ] == [True, True]


async def test_a_python_task_that_raises_is_retried_and_takes_no_other_task_down():
    _import_wf_tasks()
    flow = wf(
        """
        tasks:
          - id: fan
            method: python/flaky
            for_each: [a, b, c]
            parameters: {key: "${item}", fail_times: 1}
          - id: r1
            method: python/flaky
            parameters: {key: retried, fail_times: 3}
            retry: {max_attempts: 5, backoff: fixed, base_delay: 0}
          - id: after
            method: python/split
            dependencies: [r1]
            parameters: {text: "still here"}
        """
    )
    calls = sys.modules["wf_tasks"].FLAKY_CALLS  # (imported by the file's imports:)
    for key in ("a", "b", "c", "retried"):
        calls.pop(key, None)
    # Five failures in a row are past failure_threshold: a task function's failures
    # are its own, and never take the python provider out of routing.
    async with host_with(config="routing: {failure_threshold: 2, cooldown: 60}") as host:
        result = await Engine(host, concurrency=1).run(flow)
        (inst,) = host.registry.instances("python")
        assert inst.routable
    assert result.tasks["r1"].attempts == 4 and result.tasks["r1"].result == {"result": 4}
    fan = result.tasks["fan"]
    assert fan.status == "failed" and "wf_tasks.flaky raised RuntimeError: flaky failure 1" in (
        fan.error or ""
    )
    assert "bug in the provider" not in (fan.error or "")
    assert result.tasks["after"].result == {"result": ["still", "here"]}


def test_input_values_are_text_unless_they_read_back_as_written():
    from gleitzeit.workflows.runner import parse_inputs

    given = ["zip=01234", "hex=0x1F", "v=1.10", "a=no", "on=on", "n=3", "x=-2", "f=1.5"]
    given += ["t=true", "z=null", "l=[a, 1]", "m={k: v}", "e=", "s=two words", "p=+3"]
    assert parse_inputs(given) == {
        "zip": "01234",
        "hex": "0x1F",
        "v": "1.10",
        "a": "no",
        "on": "on",
        "n": 3,
        "x": -2,
        "f": 1.5,
        "t": True,
        "z": None,
        "l": ["a", 1],
        "m": {"k": "v"},
        "e": "",
        "s": "two words",
        "p": "+3",
    }


def test_a_dollar_brace_that_is_no_reference_is_a_problem_unless_escaped():
    problems = _problems(
        """
        tasks:
          - {id: s, method: calc/add, parameters: {a: 1, b: 2}}
          - id: t
            method: llm/generate
            dependencies: [s]
            parameters: {prompt: "${s.results[-1].result} ${inputs city} $${kept} ${s.result}"}
        """
    )
    assert [p.split(": ", 1)[1].split(" is not")[0] for p in problems] == [
        "task 't': '${s.results[-1].result}'",
        "task 't': '${inputs city}'",
    ]


async def test_inputs_read_by_a_file_without_an_inputs_section_are_checked_before_running():
    flow = wf(
        """
        tasks:
          - {id: a, method: calc/add, parameters: {a: "${inputs.x}", b: "${inputs.y}"}}
          - {id: b, method: calc/add, parameters: {a: 1, b: 2}, dependencies: [a]}
        """
    )
    assert flow.inputs_used == {"x", "y"}
    async with host_with() as host:
        with pytest.raises(
            WorkflowError, match=r"needs input\(s\) y \(its tasks read \$\{inputs.y\}\)"
        ):
            await Engine(host).run(flow, {"x": 1})
        result = await Engine(host).run(flow, {"x": 1, "y": 2})
    assert result.tasks["a"].result["result"] == 3


async def test_inputs_defaults_and_required():
    flow = wf(
        """
        inputs:
          city: {required: true}
          greeting: Hello
        tasks:
          - id: say
            method: llm/generate
            parameters: {prompt: "${inputs.greeting}, ${inputs.city}"}
        """
    )
    async with host_with() as host:
        result = await Engine(host).run(flow, {"city": "Berlin"})
        assert result.tasks["say"].result["response"] == "Hello, Berlin"
        with pytest.raises(WorkflowError, match="needs input"):
            await Engine(host).run(flow, {})


async def test_runs_are_stored(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    flow = parse_workflow((HERE.parent / "examples" / "topic.yaml").read_text())
    async with host_with() as host:
        result = await Engine(host, store=store).run(flow)
    runs = store.list_runs()
    assert [(r["id"], r["status"], r["completed"], r["tasks"]) for r in runs] == [
        (result.run_id, "completed", 4, 4)
    ]
    shown = store.get_run(result.run_id[:6])
    assert shown["tasks"]["double"]["result"]["result"] == 10
    assert shown["tasks"]["double"]["status"] == "completed"
    store.close()


class Gate(gleitzeit.Provider):
    """Passes items below ``open_below`` at once; the others wait until cancelled."""

    name = "gate"
    kind = "tool"

    def __init__(self, settings=None, *, name=None, open_below=10**9):
        super().__init__(settings, name=name)
        self.open_below = open_below
        self.called: list[int] = []
        self.waiting = asyncio.Event()

    @gleitzeit.method("gate/pass")
    async def pass_(self, params):
        self.called.append(params["i"])
        if params["i"] >= self.open_below:
            self.waiting.set()
            await asyncio.Event().wait()
        return {"result": params["i"] * 10}


async def test_an_interrupted_fan_out_resumes_without_calling_its_done_items_again(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    flow = wf(
        """
        tasks:
          - {id: fan, method: gate/pass, for_each: [a, b, c, d, e, f], parameters: {i: "${item_index}"}}
        """
    )
    first = Gate(open_below=4)
    async with host_with(first) as host:
        run = asyncio.ensure_future(Engine(host, store=store, concurrency=1).run(flow))
        await asyncio.wait_for(first.waiting.wait(), 20)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
    assert first.called == [0, 1, 2, 3, 4]
    (stored,) = store.list_runs()
    kept = store.done_items(stored["id"])
    assert sorted(kept["fan"]) == [0, 1, 2, 3]

    again = Gate()
    async with host_with(again) as host:
        result = await Engine(host, store=store, concurrency=1).run(
            flow, run_id=stored["id"], completed={}, items=kept
        )
    assert result.status == "completed"
    assert again.called == [4, 5]  # the four done items were not called again
    assert [r["result"] for r in result.tasks["fan"].result["results"]] == [0, 10, 20, 30, 40, 50]
    store.close()


# -- processes ---------------------------------------------------------------------------


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLEITZEIT_")}
    env.update(
        PYTHONPATH=str(HERE),
        XDG_CONFIG_HOME=str(tmp_path / "xdg-config"),
        XDG_DATA_HOME=str(tmp_path / "xdg-data"),
        MARK_FILE=str(tmp_path / "marks.txt"),
        HOLD_FILE=str(tmp_path / "hold"),
        GLEITZEIT_PLUGINS="calculator",
    )
    return env


def _completed_on_record(db: Path) -> int:
    import sqlite3

    if not db.exists():
        return 0
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT COUNT(*) FROM tasks WHERE status='completed'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def test_a_killed_run_resumes_without_repeating_completed_tasks(tmp_path):
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        textwrap.dedent(
            """
            name: resumable
            imports: [wf_tasks]
            tasks:
              - {id: a, method: python/mark, parameters: {name: a}}
              - {id: b, method: python/mark, dependencies: [a], parameters: {name: b}}
              - {id: c, method: python/mark, dependencies: [b], parameters: {name: c, hold: true}}
              - {id: d, method: python/mark, dependencies: [c], parameters: {name: "${c.result}-d"}}
            """
        )
    )
    env = _env(tmp_path)
    marks = tmp_path / "marks.txt"
    (tmp_path / "hold").write_text("")
    cmd = [sys.executable, "-m", "gleitzeit"]
    proc = subprocess.Popen(
        [*cmd, "run", str(flow)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        import time

        deadline = time.monotonic() + 60
        while not (marks.exists() and "c" in marks.read_text().split()):
            assert time.monotonic() < deadline, "task c never started"
            time.sleep(0.02)
        # Completions reach the database within a few milliseconds (grouped commits);
        # kill once a and b are on record, while c is still running.
        db = tmp_path / "xdg-data" / "gleitzeit" / "runs.sqlite"
        while _completed_on_record(db) < 2:
            assert time.monotonic() < deadline, "a and b never reached the database"
            time.sleep(0.02)
        # While its process lives, the run is not resumed a second time beside it.
        (live,) = json.loads(
            subprocess.run(
                [*cmd, "runs", "list", "--json"], env=env, capture_output=True, text=True
            ).stdout
        )
        twice = subprocess.run(
            [*cmd, "run", "--resume", live["id"]], env=env, capture_output=True, text=True
        )
        assert twice.returncode == 1, twice.stderr
        assert f"run {live['id']} is still running (pid {proc.pid}" in twice.stderr
        assert marks.read_text().split() == ["a", "b", "c"]
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    listed = json.loads(
        subprocess.run(
            [*cmd, "runs", "list", "--json"], env=env, capture_output=True, text=True
        ).stdout
    )
    (run,) = listed
    assert run["status"] == "running" and run["completed"] == 2  # a consistent record of a and b

    (tmp_path / "hold").unlink()
    resumed = subprocess.run(
        [*cmd, "run", "--resume", run["id"], "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    out = json.loads(resumed.stdout)
    assert out["status"] == "completed" and out["run_id"] == run["id"]
    assert out["tasks"]["d"]["result"]["result"] == "c-d"
    assert marks.read_text().split() == ["a", "b", "c", "c", "c-d"]  # a and b ran once

    shown = subprocess.run(
        [*cmd, "runs", "show", run["id"]], env=env, capture_output=True, text=True
    )
    assert shown.returncode == 0 and "completed" in shown.stdout


def test_cli_run_plain_progress_json_and_exit_codes(tmp_path):
    env = _env(tmp_path)
    cmd = [sys.executable, "-m", "gleitzeit", "run"]
    example = str(HERE.parent / "examples" / "topic.yaml")
    plain = subprocess.run([*cmd, example], env=env, capture_output=True, text=True)
    assert plain.returncode == 0, plain.stderr
    assert "✓ double" in plain.stderr and "completed" in plain.stdout
    as_json = subprocess.run([*cmd, example, "--json"], env=env, capture_output=True, text=True)
    assert json.loads(as_json.stdout)["tasks"]["double"]["result"]["result"] == 10
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks:\n  - {id: a, method: calc/add, dependencies: [a]}\n")
    invalid = subprocess.run([*cmd, str(bad)], env=env, capture_output=True, text=True)
    assert invalid.returncode == 2 and "depends on itself" in invalid.stderr
    failing = tmp_path / "fail.yaml"
    failing.write_text("tasks:\n  - {id: a, method: calc/divide, parameters: {a: 1, b: 0}}\n")
    failed = subprocess.run([*cmd, str(failing)], env=env, capture_output=True, text=True)
    assert failed.returncode == 1 and "division by zero" in failed.stdout + failed.stderr
    inputs = tmp_path / "inputs.yaml"
    inputs.write_text(
        "inputs: {city: null, n: 1}\ntasks:\n"
        "  - {id: a, method: llm/generate, parameters: {prompt: 'to ${inputs.city} x${inputs.n}'}}\n"
        "  - {id: b, method: calc/add, parameters: {a: '${inputs.n}', b: 1}}\n"
    )
    given = subprocess.run(
        [*cmd, str(inputs), "--input", "city=Berlin", "-i", "n=3", "--json"],
        env=env,
        capture_output=True,
        text=True,
    )
    out = json.loads(given.stdout)["tasks"]
    assert out["a"]["result"]["response"] == "to Berlin x3" and out["b"]["result"]["result"] == 4


async def test_the_same_workflow_against_a_server_with_a_remote_provider(tmp_path):
    from gleitzeit.socketio.client import Client
    from gleitzeit.socketio.server import GleitzeitServer
    from gleitzeit.workflows.runner import HybridApi

    config = parse_config("{}")
    server = GleitzeitServer(
        Host(config, plugins=Plugins.load(config, installed=False)), bind="127.0.0.1", port=0
    )
    await server.start()
    env = _env(tmp_path)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gleitzeit",
            "provider",
            "run",
            "calculator",
            "--server",
            server.url,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(1000):
            if server.host.registry.instances("calculator"):
                break
            await asyncio.sleep(0.02)
        flow = parse_workflow((HERE.parent / "examples" / "topic.yaml").read_text())
        async with Client(server.url) as client:
            await check_methods(flow, client)
            result = await Engine(client).run(flow)
        assert result.status == "completed"
        assert result.tasks["double"].result["result"] == 10
        (remote,) = server.host.registry.instances("calculator")
        assert remote.transport == "socketio" and remote.calls == 2

        import_task_modules(
            wf("imports: [wf_tasks]\ntasks: [{id: x, method: python/split}]", str(HERE / "x.yaml"))
        )
        hybrid = HybridApi(Client(server.url), host_with())
        mixed = wf(
            """
            tasks:
              - {id: loud, method: python/shout, parameters: {text: hi, times: 2}}
              - {id: sum, method: calc/add, parameters: {a: 1, b: 2}}
            """
        )
        async with hybrid:
            await check_methods(mixed, hybrid)
            out = await Engine(hybrid).run(mixed)
        assert (
            out.tasks["loud"].result["result"] == "HI!HI!"
            and out.tasks["sum"].result["result"] == 3
        )
    finally:
        proc.kill()
        proc.wait(10)
        await server.stop(grace=0)


async def test_plain_progress_shows_a_started_task_without_waiting_for_the_next_event():
    import io

    from gleitzeit.workflows.progress import PlainProgress

    out = io.StringIO()
    plain = PlainProgress(out)
    plain("run_started", run_id="r1", workflow="w", tasks=["a", "b"], resumed=False)
    plain("task_started", task="a")
    for _ in range(500):  # a long task: its line is out within a frame
        if "▶ a" in out.getvalue():
            break
        await asyncio.sleep(0.01)
    assert out.getvalue() == "running 'w' (2 tasks) as run r1\n  ▶ a\n"
    plain("task_completed", task="a", duration=0.1, result={"result": 5})
    plain("task_failed", task="b", error="ToolError: no")
    plain("run_finished", run_id="r1", status="failed", duration=0.2)
    assert out.getvalue().splitlines()[2:] == [
        "  ✓ a (0.10s) 5",
        "  ✗ b: ToolError: no",
        "run r1 failed in 0.20s",
    ]


def test_live_progress_redraws_in_place():
    import io

    from gleitzeit.workflows.progress import LiveProgress, PlainProgress

    out = io.StringIO()
    live = LiveProgress(out)
    live("run_started", run_id="r1", workflow="w", tasks=["a", "b"], resumed=False)
    live("task_started", task="a")
    live("task_completed", task="a", duration=0.1, result={"result": 5})
    live("task_failed", task="b", error="ToolError: no")
    live("run_finished", run_id="r1", status="failed", duration=0.2)
    text = out.getvalue()
    assert "\x1b[" in text  # cursor movement: the table is redrawn, not appended
    final = text.split("\x1b[J")[-1]
    assert "✓ a" in final and "✗ b" in final and "run r1 failed" in final

    plain = io.StringIO()
    PlainProgress(plain)("task_retry", task="a", attempt=1, error="busy", delay=0.5)
    assert plain.getvalue() == "  ↻ a: try 1 failed (busy); retrying in 0.50s\n"


class _Tuples:
    """An API whose results JSON holds differently: a tuple and an int key."""

    async def invoke(self, method: str, params: dict, **_: object) -> dict:
        if method == "x/fail":
            raise gleitzeit.ToolError("no")
        return {"pair": (1, 2), "keys": {1: 2}, "got": params.get("x")}


@pytest.mark.parametrize("reader_runs", [True, False])
async def test_a_stored_runs_results_take_one_form_whether_or_not_their_readers_ran(
    tmp_path, reader_runs
):
    flow = parse_workflow(
        textwrap.dedent(
            f"""
            name: forms
            tasks:
              - id: a
                method: x/obj
              - id: b
                method: {"x/obj" if reader_runs else "x/fail"}
              - id: c
                method: x/obj
                dependencies: [a, b]
                parameters: {{x: "${{a.pair}}"}}
            """
        )
    )
    store = RunStore(tmp_path / "runs.sqlite")
    result = await Engine(_Tuples(), store=store).run(flow)  # type: ignore[arg-type]
    stored = store.get_run(result.run_id)["tasks"]["a"]["result"]
    store.close()
    a = result.tasks["a"]
    assert a.result == stored == {"pair": [1, 2], "keys": {"1": 2}, "got": None}


def test_a_workflow_spec_validated_on_its_own_dumps_as_it_was_given():
    from gleitzeit.workflows.models import WorkflowSpec

    given = {
        "name": "two",
        "tasks": [
            {"id": "a", "method": "calc/add", "parameters": {"a": 1, "b": 2}},
            {"id": "b", "method": "calc/add", "dependencies": ["a"]},
        ],
    }
    spec = WorkflowSpec.model_validate(given)
    assert spec.model_dump(exclude_defaults=True) == given
    assert json.loads(spec.model_dump_json(exclude_defaults=True)) == given
    assert WorkflowSpec.model_validate(spec.model_dump()).model_dump() == spec.model_dump()


async def test_a_stored_runs_result_converts_with_dataclasses_asdict(tmp_path):
    import dataclasses

    flow = parse_workflow((HERE.parent / "examples" / "topic.yaml").read_text())
    store = RunStore(tmp_path / "runs.sqlite")
    async with host_with() as host:
        result = await Engine(host, store=store).run(flow)
    store.close()
    data = json.loads(json.dumps(dataclasses.asdict(result)))
    assert data["tasks"]["double"]["result"]["result"] == 10
    assert result.tasks["double"] == dataclasses.replace(result.tasks["double"])


class _Sleepy:
    """An API whose calls wait a moment; ``x/cancel`` raises CancelledError itself."""

    async def invoke(self, method: str, params: dict, **_: object) -> dict:
        await asyncio.sleep(0)
        if method == "x/cancel":
            raise asyncio.CancelledError()
        return {"v": params.get("v")}


_THREE = """
name: three
tasks:
  - {id: a, method: x/ok, parameters: {v: 1}}
  - {id: b, method: x/ok, dependencies: [a], parameters: {v: 2}}
  - {id: c, method: METHOD, dependencies: [b], parameters: {v: 3}}
"""


async def test_a_progress_callback_that_raises_stops_the_run_with_its_error(tmp_path):
    def on_event(event: str, **data: object) -> None:
        if event == "task_completed" and data["task"] == "b":
            raise ValueError("progress bug")

    store = RunStore(tmp_path / "runs.sqlite")
    engine = Engine(_Sleepy(), store=store, on_event=on_event)  # type: ignore[arg-type]
    flow = parse_workflow(_THREE.replace("METHOD", "x/ok"))
    with pytest.raises(ValueError, match="progress bug"):
        await asyncio.wait_for(engine.run(flow, run_id="r1"), 30)  # (a guard, not a timing)
    shown = store.get_run("r1")
    store.close()
    assert shown["status"] == "failed"
    assert shown["tasks"]["a"]["result"] == {"v": 1}  # what completed is kept
    assert shown["tasks"]["b"]["result"] == {"v": 2}


async def test_a_call_that_raises_cancelled_error_itself_stops_the_run_with_a_clear_error():
    flow = parse_workflow(_THREE.replace("METHOD", "x/cancel"))
    with pytest.raises(gleitzeit.ProviderError, match="raised CancelledError without being"):
        await asyncio.wait_for(Engine(_Sleepy()).run(flow), 30)  # type: ignore[arg-type]
