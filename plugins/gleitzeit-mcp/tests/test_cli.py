"""The plugin from the command line: start-up cost, providers, invoke, workflows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mcp_demo import DEMO


def gleitzeit(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gleitzeit", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def configure(env: dict[str, str]) -> None:
    Path(env["GLEITZEIT_CONFIG"]).write_text(
        "plugins:\n  mcp:\n    servers:\n"
        f"      demo: {{command: {json.dumps(sys.executable)}, args: [{json.dumps(DEMO)}]}}\n"
    )


def test_plugins_list_does_not_import_the_mcp_sdk(cli_env):
    configure(cli_env)
    probe = (
        "import sys, runpy\n"
        "sys.argv = ['gleitzeit', 'plugins', 'list']\n"
        "try:\n"
        "    runpy.run_module('gleitzeit', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in ('mcp', 'jsonschema', 'httpx2', 'anyio') if m in sys.modules)\n"
        "print('imported:', heavy)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], env=cli_env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "mcp-demo" in proc.stdout  # the plugin loaded and registered the server
    assert "imported: []" in proc.stdout


def test_providers_list_and_invoke_an_mcp_tool(cli_env):
    configure(cli_env)
    listed = gleitzeit(cli_env, "providers", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "demo/add" in listed.stdout
    out = gleitzeit(
        cli_env,
        "providers",
        "invoke",
        "mcp-demo",
        "demo/add",
        "--args",
        '{"a": 2, "b": 5}',
        "--json",
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["result"] == 7


def test_an_mcp_tool_in_a_workflow_by_its_method_alone(cli_env, tmp_path):
    configure(cli_env)
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "name: mcp in a workflow\n"
        "tasks:\n"
        "  - id: sum\n"
        "    method: demo/add\n"
        "    parameters: {a: 20, b: 1}\n"
        "  - id: double\n"
        "    method: calc/multiply\n"
        "    dependencies: [sum]\n"
        '    parameters: {a: "${sum.result}", b: 2}\n'
    )
    out = gleitzeit(cli_env, "run", str(flow), "--json")
    assert out.returncode == 0, out.stderr + out.stdout
    assert '"result": 42' in out.stdout.replace("42.0", "42")


def test_a_misconfigured_server_is_reported_with_the_field(cli_env):
    Path(cli_env["GLEITZEIT_CONFIG"]).write_text(
        "plugins:\n  mcp:\n    servers:\n      demo: {command: x, url: 'http://y'}\n"
    )
    out = gleitzeit(cli_env, "config", "validate")
    assert out.returncode == 2
    assert "servers.demo" in out.stderr + out.stdout
    assert "either 'command'" in out.stderr + out.stdout


def test_config_show_masks_headers_and_env(cli_env):
    Path(cli_env["GLEITZEIT_CONFIG"]).write_text(
        "plugins:\n  mcp:\n    servers:\n"
        "      web: {url: 'http://127.0.0.1:9/mcp', headers: {Authorization: 'Bearer abc123'}}\n"
        "      cmd: {command: x, env: {API_KEY: 'k-987'}}\n"
    )
    out = gleitzeit(cli_env, "config", "show")
    assert out.returncode == 0, out.stderr
    assert "abc123" not in out.stdout and "k-987" not in out.stdout
    assert "Authorization" in out.stdout
