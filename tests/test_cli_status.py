"""gleitzeit status, the original's command names, and runs show without the YAML."""

from __future__ import annotations

import pytest

pytest_plugins = ["gleitzeit.testing.fixtures"]


@pytest.mark.parametrize(
    "args, instead",
    [
        (["logs"], "runs show"),
        (["monitor"], "providers health --server"),
        (["config", "providers"], "gleitzeit providers list"),
        (["config", "create", "--config-file", "x.yaml"], "gleitzeit config init"),
        (["serve", "--provider-config", "p.yaml"], "gleitzeit provider run"),
        (["submit", "flow.yaml"], "gleitzeit run FILE --server URL"),
        (["batch", "docs", "--pattern", "*.txt"], "batch: true"),
        (["init", "demo", "--type", "llm"], "gleitzeit config init"),
        (["exec", "print(2 + 2)"], "python/execute"),
        (["run", "flow.yaml", "--output", "r.json"], "--json > results.json"),
        (["run", "flow.yaml", "--backend", "redis"], "--db FILE"),
        (["run", "flow.yaml", "--watch"], "progress is always shown"),
    ],
)
def test_the_originals_commands_answer_with_what_to_type_now(run_cli, args, instead):
    out = run_cli(*args)
    assert out.code == 2
    assert instead in out.err and "No such command" not in out.err


def test_status_shows_the_local_providers(run_cli):
    out = run_cli("status", "--json", env={"GLEITZEIT_PLUGINS": "calculator"})
    assert out.code == 0, out.err
    data = out.json()
    assert data["providers"]["calculator"] == {"instances": 1, "healthy": 1}


def test_status_with_a_server_shows_its_healthz_and_instances(run_cli, gleitzeit_server):
    out = run_cli(
        "status", "--server", gleitzeit_server.url, "--token", gleitzeit_server.token, "--json"
    )
    assert out.code == 0, out.err
    data = out.json()
    assert data["healthz"]["status"] == "ok"
    assert data["providers"]["echo"]["healthy"] == 1
    text = run_cli("status", "--server", gleitzeit_server.url, "--token", gleitzeit_server.token)
    assert f"server {gleitzeit_server.url}: ok" in text.out


def test_status_of_a_server_that_is_not_there_is_one_line(run_cli):
    out = run_cli("status", "--server", "http://127.0.0.1:9")
    assert out.code != 0
    assert "Cannot reach a gleitzeit server" in out.err and "Traceback" not in out.err


def test_runs_show_lists_pending_tasks_from_the_stored_ids(run_cli):
    from gleitzeit.workflows import RunStore

    db = run_cli.workdir / "runs.sqlite"
    store = RunStore(db)
    store.create_run(
        "r1",
        name="w",
        path=None,
        text="not: [yaml",  # not read: the ids are stored with the run
        inputs={},
        target=None,
        task_ids=["first", "second"],
    )
    store.close()
    shown = run_cli("runs", "show", "r1", "--json", "--db", str(db))
    assert shown.code == 0, shown.err
    tasks = shown.json()["tasks"]
    assert list(tasks) == ["first", "second"]
    assert {t["status"] for t in tasks.values()} == {"pending"}


def test_a_command_of_a_disabled_plugin_says_the_plugin_is_disabled(run_cli):
    out = run_cli("mcp", "serve", env={"GLEITZEIT_PLUGINS": "calculator"})
    assert out.code == 2
    assert "the mcp plugin, which is installed but disabled" in out.err
    assert "GLEITZEIT_PLUGINS='calculator' leaves it out" in out.err
