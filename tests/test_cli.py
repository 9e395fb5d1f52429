"""The command line as a user meets it: output, exit codes, errors on stderr."""

from __future__ import annotations

import json


def test_version(run_cli):
    result = run_cli("--version")
    assert result.code == 0
    assert result.out.startswith("gleitzeit 0.")


def test_invoke_json_prints_only_the_result(run_cli):
    result = run_cli(
        "providers", "invoke", "calculator", "calc/add", "--args", '{"a": 5, "b": 3}', "--json"
    )
    assert result.code == 0, result.err
    assert json.loads(result.out) == {
        "operation": "add",
        "inputs": {"a": 5, "b": 3},
        "result": 8,
        "expression": "5 + 3",
    }


def test_invoke_llm_prints_the_response_text(run_cli):
    result = run_cli(
        "providers", "invoke", "echo", "llm/generate", "--args", '{"prompt": "plain text"}'
    )
    assert result.code == 0, result.err
    assert result.out == "plain text\n"


def test_stream_prints_tokens_and_json_stream_prints_chunks(run_cli):
    args = [
        "providers",
        "invoke",
        "echo",
        "llm/chat",
        "--args",
        '{"messages": [{"role": "user", "content": "hi there"}]}',
        "--stream",
    ]
    text = run_cli(*args)
    assert text.code == 0, text.err
    assert text.out == "hi there\n"

    chunks = [json.loads(line) for line in run_cli(*args, "--json").out.splitlines()]
    assert [c["token"] for c in chunks] == ["hi ", "there", ""]
    assert [c["done"] for c in chunks] == [False, False, True]


def test_args_from_file_and_stdin(run_cli):
    (run_cli.workdir / "args.json").write_text('{"expression": "6 * 7"}')
    from_file = run_cli(
        "providers", "invoke", "calculator", "calc/evaluate", "--args", "@args.json", "--json"
    )
    assert json.loads(from_file.out)["result"] == 42
    from_stdin = run_cli(
        "providers",
        "invoke",
        "calculator",
        "calc/evaluate",
        "--args",
        "-",
        "--json",
        input='{"expression": "1+1"}',
    )
    assert json.loads(from_stdin.out)["result"] == 2


def test_any_provider_with_dash(run_cli):
    result = run_cli(
        "providers", "invoke", "-", "calc/multiply", "--args", '{"a": 6, "b": 7}', "--json"
    )
    assert json.loads(result.out)["result"] == 42


def test_usage_errors_exit_2_with_a_readable_message(run_cli):
    bad_json = run_cli("providers", "invoke", "calculator", "calc/add", "--args", "{a: 1}")
    assert bad_json.code == 2
    assert "not valid JSON" in bad_json.err and "Traceback" not in bad_json.err

    bad_params = run_cli(
        "providers", "invoke", "calculator", "calc/add", "--args", '{"a": "x", "b": 1}'
    )
    assert bad_params.code == 2
    assert "a: must be a number" in bad_params.err

    unknown = run_cli("providers", "invoke", "calculator", "calc/ad", "--args", "{}")
    assert unknown.code == 2
    assert "did you mean 'calc/add'" in unknown.err

    no_command = run_cli("nonsense")
    assert no_command.code == 2


def test_runtime_errors_exit_1_on_stderr_in_few_lines(run_cli):
    result = run_cli(
        "providers", "invoke", "calculator", "calc/divide", "--args", '{"a": 1, "b": 0}'
    )
    assert result.code == 1
    assert result.out == ""
    assert result.err.startswith("error: calc/divide: division by zero")
    assert len(result.err.strip().splitlines()) <= 2

    nobody = run_cli("providers", "invoke", "ghost", "llm/chat", "--args", "{}")
    assert nobody.code == 1
    assert "No provider named 'ghost'" in nobody.err


def test_debug_shows_the_traceback(run_cli):
    result = run_cli(
        "--debug", "providers", "invoke", "calculator", "calc/divide", "--args", '{"a": 1, "b": 0}'
    )
    assert result.code != 0
    assert "Traceback" in result.err


def test_providers_list_and_health(run_cli):
    table = run_cli("providers", "list")
    assert table.code == 0, table.err
    assert "calculator" in table.out and "calc/evaluate" in table.out and "echo" in table.out

    data = run_cli("providers", "list", "--json").json()
    calc = next(d for d in data if d["name"] == "calculator")
    assert calc["kind"] == "tool" and calc["status"] == "healthy"
    assert calc["method_schemas"]["calc/add"]["params_schema"]["required"] == ["a", "b"]

    health = run_cli("providers", "health", "calculator", "--json")
    assert health.code == 0, health.err
    (report,) = health.json()
    assert report["status"] == "healthy" and report["detail"] == "self-test passed"

    unknown = run_cli("providers", "health", "calculater")
    assert unknown.code == 1 and "did you mean 'calculator'" in unknown.err


def test_trace_hooks_prints_each_hook_call(run_cli):
    result = run_cli("plugins", "list", env={"GLEITZEIT_TRACE_HOOKS": "1"})
    assert result.code == 0
    lines = [line for line in result.err.splitlines() if line.startswith("[hook]")]
    assert any(
        "gleitzeit_register_providers plugin=calculator" in line and "ms]" in line for line in lines
    )


PRINTER = """
import gleitzeit

print("printer plugin: loading!")


class Printer(gleitzeit.Provider):
    name = "printer"
    kind = "tool"

    async def start(self):
        print("printer: starting")

    @gleitzeit.method("print/hello")
    async def hello(self, params):
        print("printer: hello called")
        return {"result": "hi"}

    @gleitzeit.method("print/tokens")
    async def tokens(self, params):
        print("printer: streaming")
        yield {"token": "a"}
        yield {"token": "b"}


@gleitzeit.hookimpl
def gleitzeit_register_providers(register):
    print("registering printer")
    register(Printer)
"""


def test_what_a_plugin_prints_goes_to_stderr_and_json_output_stays_json(run_cli, tmp_path):
    site = tmp_path / "printer-site"
    site.mkdir()
    (site / "printer_plug.py").write_text(PRINTER)
    info = site / "printer_plug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: printer-plug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[gleitzeit.plugins]\nprinter = printer_plug\n")
    env = {"PYTHONPATH": str(site)}
    calls = [
        ("providers", "invoke", "printer", "print/hello", "--json"),
        ("providers", "invoke", "printer", "print/tokens", "--json", "--stream"),
        ("providers", "list", "--json"),
        ("plugins", "list", "--json"),
    ]
    for args in calls:
        result = run_cli(*args, env=env)
        assert result.code == 0, result.err
        if "--stream" in args:
            assert [json.loads(line) for line in result.out.splitlines()][-1]["done"] is True
        else:
            result.json()  # stdout is the JSON alone
        for chatter in ("loading!", "registering printer", "printer: "):
            assert chatter not in result.out
        assert "printer plugin: loading!" in result.err
    assert "printer: hello called" in run_cli(*calls[0], env=env).err


def test_a_run_database_that_cannot_be_opened_is_named_with_what_to_do(run_cli, tmp_path):
    work = run_cli.workdir
    (work / "notes.sqlite").write_text("not a database")
    (work / "folder").mkdir()
    cases = [
        (("runs", "list", "--db", "notes.sqlite"), "is not an SQLite database"),
        (("runs", "list", "--db", "typo.sqlite"), "No run database at typo.sqlite (--db)"),
        (("runs", "show", "abc", "--db", "typo.sqlite"), "No run database at typo.sqlite"),
        (("run", "flow.yaml", "--db", "folder"), "that is a directory; name a file in it"),
    ]
    (work / "flow.yaml").write_text("tasks: [{id: a, method: calc/add, parameters: {a: 1, b: 2}}]")
    for args, said in cases:
        result = run_cli(*args)
        assert result.code == 2, (args, result.err)
        assert said in result.err and "internal error" not in result.err, result.err
    assert not (work / "typo.sqlite").exists()  # reading never creates a database
    # Nothing has run yet: an empty list, and no database made for it.
    data = {"XDG_DATA_HOME": str(tmp_path / "data")}
    assert run_cli("runs", "list", env=data).out.strip() == "no runs yet"
    assert not (tmp_path / "data").exists()


def test_resuming_a_run_whose_file_changed_says_it_runs_the_stored_workflow(run_cli, tmp_path):
    work, db = run_cli.workdir, str(tmp_path / "runs.sqlite")
    flow = work / "divide.yaml"
    flow.write_text("tasks: [{id: a, method: calc/divide, parameters: {a: 1, b: 0}}]\n")
    assert run_cli("run", "divide.yaml", "--db", db).code == 1
    (run,) = run_cli("runs", "list", "--json", "--db", db).json()
    flow.write_text(flow.read_text().replace("b: 0", "b: 5"))
    resumed = run_cli("run", "--resume", run["id"], "--db", db)
    assert f"{flow} changed since run {run['id']} started" in resumed.err
    assert f"start a new run: gleitzeit run {flow}" in resumed.err
    both = run_cli("run", "divide.yaml", "--resume", run["id"], "--db", db)
    assert both.code == 2 and "not both" in both.err
