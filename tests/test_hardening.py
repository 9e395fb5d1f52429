"""Limits on what workflows, files, the calculator and config show accept (issue 10,
items 6 and 7)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import gleitzeit
from gleitzeit.errors import FileAccessError, WorkflowError
from gleitzeit.testing import host
from gleitzeit.workflows.loader import parse_workflow

BOMB = textwrap.dedent(
    """\
    a: &a ["x","x","x","x","x","x","x","x","x"]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
    h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
    i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
    name: bomb
    tasks: [{id: t, method: calc/add, parameters: {a: 1, b: 2}}]
    """
)


def test_yaml_alias_bomb_is_refused_at_once():
    assert len(BOMB.encode()) < 600
    with pytest.raises(WorkflowError, match="aliases expand to more than"):
        parse_workflow(BOMB)
    # Modest use of aliases is fine.
    ok = (
        "name: fine\ntasks:\n  - {id: t, method: calc/add, parameters: &d {a: 1, b: 2}}\n"
        "  - {id: u, method: calc/add, parameters: *d}\n"
    )
    assert parse_workflow(ok).name == "fine"


def _globbing(pattern: str) -> str:
    return f"name: g\ntasks:\n  - id: each\n    method: calc/add\n    for_each: {{glob: {json.dumps(pattern)}}}\n    parameters: {{a: 1, b: 2}}\n"


@pytest.mark.parametrize("pattern", ["/**", "../../*", "/etc/*"])
async def test_for_each_glob_stays_inside_allowed_roots(tmp_path, monkeypatch, pattern):
    from gleitzeit.workflows.engine import Engine

    monkeypatch.chdir(tmp_path)
    async with host(installed=True) as h:
        result = await Engine(h).run(parse_workflow(_globbing(pattern)))
    text = json.dumps(result.__dict__, default=str)
    assert "reaches outside files.allowed_roots" in text


async def test_for_each_glob_stops_at_the_match_limit(tmp_path, monkeypatch):
    from gleitzeit.workflows.engine import Engine

    monkeypatch.chdir(tmp_path)
    for i in range(5):
        (tmp_path / f"f{i}.txt").write_text("x")
    async with host(installed=True, config="workflows: {max_glob_matches: 3}") as h:
        result = await Engine(h).run(parse_workflow(_globbing("*.txt")))
    assert "matches more than 3 files" in json.dumps(result.__dict__, default=str)
    async with host(installed=True) as h:
        result = await Engine(h).run(parse_workflow(_globbing("*.txt")))
    assert "matches more than" not in json.dumps(result.__dict__, default=str)


@pytest.mark.parametrize("path", ["secret\x00.txt", "a/" * 2600 + "x.txt"])
async def test_nul_bytes_and_long_paths_are_file_access_errors(tmp_path, monkeypatch, path):
    monkeypatch.chdir(tmp_path)
    async with host() as h:
        with pytest.raises(FileAccessError):
            await h.invoke(
                "llm/chat", {"messages": [{"role": "user", "content": "hi"}], "file_path": path}
            )


def test_a_killed_run_shows_interrupted_and_resume_says_so(run_cli, tmp_path):
    db = tmp_path / "runs.sqlite"
    (run_cli.workdir / "wf_slow.py").write_text(
        "import asyncio, os, gleitzeit\n\n@gleitzeit.task\nasync def nap(x: int) -> int:\n"
        "    await asyncio.sleep(0 if os.environ.get('NAP_SHORT') else x)\n    return x\n"
    )
    flow = run_cli.workdir / "slow.yaml"
    flow.write_text(
        "name: slow\nimports: [wf_slow.py]\ntasks:\n"
        "  - {id: first, method: python/nap, parameters: {x: 0}}\n"
        "  - {id: long, method: python/nap, parameters: {x: 600}, dependencies: [first]}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLEITZEIT_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gleitzeit", "run", flow.name, "--db", str(db)],
        cwd=run_cli.workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            listed = run_cli("runs", "list", "--db", str(db), "--json")
            runs = listed.json() if listed.code == 0 and listed.out.strip() else []
            if runs and runs[0]["completed"] == 1:
                break
            assert time.monotonic() < deadline, "the run did not start"
            time.sleep(0.1)
        assert runs[0]["status"] == "running"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    (run,) = run_cli("runs", "list", "--db", str(db), "--json").json()
    assert run["interrupted"] is True and str(proc.pid) in run["error"]
    assert "interrupted" in run_cli("runs", "list", "--db", str(db)).out
    resumed = run_cli(
        "run", "--resume", run["id"], "--db", str(db), "--json", env={"NAP_SHORT": "1"}
    )
    assert "was interrupted" in resumed.err


def test_calculator_sums_62_terms_and_still_bounds_nesting():
    from gleitzeit_calculator.expression import ExpressionError, evaluate

    assert evaluate(" + ".join(str(i) for i in range(62))) == sum(range(62))
    assert evaluate("*".join(["1"] * 1500)) == 1
    with pytest.raises(ExpressionError, match="nested more than 60 levels"):
        evaluate("-" * 70 + "1")
    with pytest.raises(ExpressionError, match="nested more than 60 levels"):
        evaluate("abs(" * 70 + "1" + ")" * 70)


def test_config_show_masks_credentials_in_urls(run_cli):
    (run_cli.workdir / "gleitzeit.yaml").write_text(
        "plugins:\n  openai:\n    base_url: https://bob:hunter2@api.example/v1?api_key=abc123\n"
    )
    shown = run_cli("config", "show")
    assert shown.code == 0, shown.err
    assert "hunter2" not in shown.out and "abc123" not in shown.out and "bob" not in shown.out
    assert "https://****@api.example/v1?api_key=****" in shown.out


def test_errors_are_public():
    assert gleitzeit.errors.ForbiddenError.code == "forbidden"
