"""Workflows written for the original Gleitzeit (V4) run unchanged, through the real CLI.

The files in tests/v4/ use the original's format; model aliases map its models
(llama3.2, llava) to the offline echo LLM, and the calculator plugin does the sums.
"""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
DATA = HERE / "v4"

CONFIG = """\
models:
  aliases:
    llama3.2: echo
    llava: [nowhere/llava, echo]     # a fallback chain: the first has no provider
files:
  allowed_roots: ["."]
"""


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A small, valid PNG of one colour."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    row = b"\x00" + bytes(rgb) * width
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def v4(run_cli, cli_env):
    """The CLI in a directory holding the V4 files, their data and an alias config."""
    work: Path = run_cli.workdir
    for item in DATA.iterdir():
        if item.is_dir():
            shutil.copytree(item, work / item.name)
        else:
            shutil.copy(item, work / item.name)
    (work / "gleitzeit.yaml").write_text(CONFIG + f"workflows:\n  database: {work / 'runs.db'}\n")
    notes = work / "notes"
    notes.mkdir()
    (notes / "a.txt").write_text("apples and pears")
    (notes / "b.txt").write_text("bread")
    (notes / "skip.md").write_text("not a text file for the pattern")
    pictures = work / "pictures"
    pictures.mkdir()
    (pictures / "one.png").write_bytes(png(2, 2, (255, 0, 0)))
    (pictures / "two.png").write_bytes(png(3, 1, (0, 0, 255)))

    def run(*args: str, env: dict[str, str] | None = None):
        return run_cli(*args, env={"GZ_TEST_GUEST": "Grace", **(env or {})})

    run.workdir = work
    return run


def test_v4_chain_runs_with_names_params_variables_env_and_result_paths(v4):
    out = v4("run", "chain.yaml", "--json")
    assert out.code == 0, out.err
    tasks = out.json()["tasks"]
    assert tasks["Pick_dish"]["result"]["response"] == "Cook pancakes for Grace"
    assert tasks["Pick_dish"]["result"]["provider"] == "echo"  # llama3.2 -> echo
    assert tasks["list_steps"]["result"]["response"] == "Steps for: Cook pancakes for Grace"
    # ${list_steps.content} and ${Pick dish.response}: the second is only an indirect
    # dependency of summary, accepted because it has finished before summary starts.
    assert tasks["summary"]["result"]["response"] == (
        "Steps for: Cook pancakes for Grace / first: Cook pancakes for Grace"
    )
    assert tasks["eggs"]["result"]["result"] == 6  # method 'add' with protocol calc/v1
    assert tasks["cost"]["result"]["result"] == 18


def test_variables_are_inputs_that_input_overrides(v4):
    out = v4("run", "chain.yaml", "--json", "--input", "dish=soup")
    assert out.code == 0, out.err
    assert out.json()["tasks"]["Pick_dish"]["result"]["response"] == "Cook soup for Grace"


def test_a_missing_environment_variable_fails_the_task_and_names_it(v4):
    (v4.workdir / "env.yaml").write_text(
        "name: env\nversion: 1\ntasks:\n"
        "  - {name: t, method: llm/chat, params: {model: llama3.2, "
        "messages: [{role: user, content: '${env.GZ_SURELY_NOT_SET}'}]}}\n"
    )
    out = v4("run", "env.yaml", "--json")
    assert out.code == 1
    error = out.json()["tasks"]["t"]["error"]
    assert "environment variable 'GZ_SURELY_NOT_SET' is not set" in error


def test_explain_says_how_each_construct_was_read(v4):
    out = v4("run", "--explain", "chain.yaml")
    assert out.code == 0, out.err
    text = out.out
    assert "the original Gleitzeit's format (V4)" in text
    assert "chain.yaml:5: version '1.0'" in text
    assert "chain.yaml:6: timeout: 120s for the whole run" in text
    assert "wait_for_completion: true: gleitzeit run always waits" in text
    assert "name 'Pick dish': task id 'Pick_dish'" in text
    assert "${Pick dish.result.content} read as ${Pick_dish.response}" in text
    assert "priority 3 read as 'low'" in text
    assert "method 'add' with protocol 'calc/v1': read as calc/add" in text
    assert "retry: max_delay 300s (the original's default), jitter off" in text
    assert "id: Pick_dish" in text  # the workflow in this project's format follows


def test_batch_over_a_directory_of_text_files_has_both_result_shapes(v4):
    out = v4("run", "batch_text.yaml", "--json")
    assert out.code == 0, out.err
    result = out.json()["tasks"]["batch"]["result"]
    assert result["items"] == ["notes/a.txt", "notes/b.txt"]  # *.txt only, sorted
    assert result["count"] == 2
    assert [r["response"] for r in result["results"]] == [
        "Summarise:\n\n--- a.txt ---\napples and pears",
        "Summarise:\n\n--- b.txt ---\nbread",
    ]
    assert result["files"] == {
        "notes/a.txt": {
            "status": "success",
            "content": "Summarise:\n\n--- a.txt ---\napples and pears",
        },
        "notes/b.txt": {"status": "success", "content": "Summarise:\n\n--- b.txt ---\nbread"},
    }
    assert result["summary"] == {"total": 2, "successful": 2, "failed": 0}


def test_batch_over_a_directory_of_images_goes_to_a_vision_provider(v4):
    out = v4("run", "batch_images.yaml", "--json")
    assert out.code == 0, out.err
    result = out.json()["tasks"]["batch"]["result"]
    assert result["items"] == ["pictures/one.png", "pictures/two.png"]
    for entry in result["results"]:
        assert entry["images"] == 1 and entry["provider"] == "echo"
        assert entry["response"] == "What is in this picture?"
    assert set(result["files"]) == {"pictures/one.png", "pictures/two.png"}
    assert all(f["status"] == "success" for f in result["files"].values())


def test_python_batch_records_a_failed_file_and_keeps_the_others(v4):
    out = v4("run", "batch_python.yaml", "--json", "--allow-execute")
    assert out.code == 0, out.err
    result = out.json()["tasks"]["batch"]["result"]
    assert result["files"]["notes/a.txt"] == {"status": "success", "result": 3}
    missing = result["files"]["notes/missing.txt"]
    assert missing["status"] == "failed" and "FileNotFoundError" in missing["error"]
    assert result["summary"] == {"total": 2, "successful": 1, "failed": 1}
    assert result["results"][1] is None


def test_batch_mode_task_runs_once_per_listed_image_and_feeds_its_dependent(v4):
    out = v4("run", "batch_mode.yaml", "--json")
    assert out.code == 0, out.err
    tasks = out.json()["tasks"]
    assert tasks["describe"]["result"]["count"] == 2
    assert tasks["report"]["result"]["response"] == "Seen 2 pictures"


def test_llm_vision_takes_image_path_images_and_prompt(v4):
    out = v4("run", "vision.yaml", "--json")
    assert out.code == 0, out.err
    tasks = out.json()["tasks"]
    assert tasks["from-file"]["result"]["images"] == 1
    assert tasks["from-file"]["result"]["response"] == "Colours?"
    assert tasks["inline"]["result"]["images"] == 1
    assert tasks["tell"]["result"]["response"] == "Colours? and Shapes?"


def test_priority_orders_tasks_waiting_for_a_slot(v4):
    out = v4("run", "priority.yaml", "--json", "--allow-execute", "--concurrency", "1")
    assert out.code == 0, out.err
    order = (v4.workdir / "order.txt").read_text().split()
    assert order == ["gate", "urgent", "high", "normal", "low"]


def test_workflow_timeout_cancels_what_is_left_and_records_it(v4):
    out = v4("run", "timeout.yaml", "--json", "--allow-execute")
    assert out.code == 1
    data = out.json()
    tasks = data["tasks"]
    assert data["status"] == "failed"
    assert tasks["quick"]["status"] == "completed"
    assert tasks["sleepy"]["status"] == "failed"
    assert "the workflow's timeout (1s) ran out" in tasks["sleepy"]["error"]
    assert tasks["after"]["status"] == "skipped"
    shown = v4("runs", "show", data["run_id"], "--json").json()
    assert shown["status"] == "failed"
    assert "timed out after 1s" in shown["error"]
    assert shown["tasks"]["sleepy"]["status"] == "failed"
    assert shown["tasks"]["after"]["status"] == "skipped"


def test_python_execute_context_result_stdout_and_failures(v4):
    out = v4("run", "execute.yaml", "--json", "--allow-execute")
    assert out.code == 1  # three tasks are meant to fail
    tasks = out.json()["tasks"]
    numbers = tasks["numbers"]["result"]
    assert numbers["result"] == {"numbers": [1, 4, 9, 16], "count": 4}
    assert numbers["stdout"] == "made 4 numbers\n"
    assert numbers["exit_code"] == 0 and numbers["stderr"] == ""
    assert isinstance(numbers["execution_time"], float)
    assert tasks["total"]["result"]["result"] == {"sum": 30, "label": "total of 4"}
    assert tasks["total"]["result"]["stdout"] == "adding 4\n"
    assert tasks["last-line"]["result"]["result"] == {"from": "stdout"}
    broken = tasks["broken"]
    assert broken["status"] == "failed"
    assert "fails.py exited with code 4" in broken["error"]
    assert "the input was not what this script expected" in broken["error"]
    slow = tasks["slow"]
    assert slow["status"] == "failed"
    assert "ran longer than its timeout of 1s and was stopped" in slow["error"]
    greedy = tasks["greedy"]
    assert greedy["status"] == "failed" and "MemoryError" in greedy["error"]


def test_python_execute_is_refused_unless_allowed(v4):
    out = v4("run", "execute.yaml", "--json")
    assert out.code == 2
    assert "runs Python code from its file" in out.err
    assert "workflows.allow_execute: true" in out.err and "--allow-execute" in out.err
    assert not (v4.workdir / "runs.db").exists() or "numbers" not in out.out


def test_python_execute_is_allowed_by_config(v4):
    config = v4.workdir / "gleitzeit.yaml"
    config.write_text(config.read_text() + "  allow_execute: true\n")
    out = v4("run", "execute.yaml", "--json")
    assert out.json()["tasks"]["numbers"]["status"] == "completed"


def test_python_execute_refuses_a_file_outside_the_allowed_roots(v4, tmp_path):
    outside = tmp_path / "elsewhere.py"
    outside.write_text("result = 1\n")
    (v4.workdir / "outside.yaml").write_text(
        f"name: outside\nversion: 1\ntasks:\n  - {{name: t, method: python/execute, "
        f"params: {{file: '{outside}'}}}}\n"
    )
    out = v4("run", "outside.yaml", "--json", "--allow-execute")
    assert out.code == 1
    assert "outside the allowed roots" in out.json()["tasks"]["t"]["error"]


@pytest.mark.parametrize(
    "name", ["chain.yaml", "batch_text.yaml", "batch_images.yaml", "vision.yaml", "batch_mode.yaml"]
)
def test_convert_then_run_gives_the_same_results(v4, name):
    original = v4("run", name, "--json")
    assert original.code == 0, original.err
    converted = v4("convert", name, "-o", f"converted-{name}")
    assert converted.code == 0, converted.err
    kept = v4("convert", name, "-o", name)  # onto the source: refused, nothing lost
    assert kept.code == 2 and "it is the file being converted" in kept.err
    assert v4("convert", name, "-o", f"converted-{name}", "--force").code == 0
    text = (v4.workdir / f"converted-{name}").read_text()
    assert "params:" not in text and "protocol:" not in text
    again = v4("run", f"converted-{name}", "--json")
    assert again.code == 0, again.err

    def results(data):
        return {t: s["result"] for t, s in data["tasks"].items()}

    assert results(again.json()) == results(original.json())
    explained = v4("run", "--explain", f"converted-{name}")
    assert "this project's workflow format; read as written" in explained.out


def test_convert_says_on_stderr_what_it_could_not_carry_over(v4):
    out = v4("convert", "chain.yaml")
    assert out.code == 0, out.err
    assert "not carried over: chain.yaml:5: version '1.0'" in out.err
    assert "not carried over: chain.yaml:7: wait_for_completion" in out.err
    assert "comments are not carried over" in out.err
    assert "protocol 'llm/v1': implied by method 'llm/chat'" in out.err
    assert out.out.startswith("name: Recipe planner\n")
    assert "${inputs.dish}" in out.out and "${Pick_dish.response}" in out.out


def test_convert_leaves_a_native_file_as_it_is(v4):
    (v4.workdir / "native.yaml").write_text("tasks: [{id: a, method: calc/add}]\n")
    out = v4("convert", "native.yaml")
    assert out.code == 0
    assert out.out == "tasks: [{id: a, method: calc/add}]\n"
    assert "already in this project's format" in out.err
