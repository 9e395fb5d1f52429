"""What new users hit first: messages that say where a setting came from, options
where users type them, and clear errors for ordinary mistakes."""

from __future__ import annotations

import socket
import subprocess
import sys


def test_a_missing_config_from_the_environment_names_the_environment(run_cli):
    out = run_cli("plugins", "list", env={"GLEITZEIT_CONFIG": "/missing.yaml"})
    assert out.code == 2
    assert "(from $GLEITZEIT_CONFIG)" in out.err and "--config" not in out.err


def test_a_typo_in_gleitzeit_plugins_is_shown_with_a_suggestion(run_cli):
    out = run_cli("plugins", "list", env={"GLEITZEIT_PLUGINS": "calculater"})
    assert out.code == 0
    assert "GLEITZEIT_PLUGINS names 'calculater'" in out.out
    assert "did you mean 'calculator'?" in out.out


def test_debug_works_after_the_subcommand(run_cli):
    out = run_cli("providers", "invoke", "calculator", "calc/nope", "--debug")
    assert out.code != 0
    assert "Traceback" in out.err and "No such option" not in out.err


def test_python_dash_m_gleitzeit_cli_is_the_command_line(run_cli):
    proc = subprocess.run(
        [sys.executable, "-m", "gleitzeit.cli", "--version"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stdout.startswith("gleitzeit ")


def test_a_method_of_a_disabled_plugin_says_the_plugin_is_disabled_and_where(run_cli):
    out = run_cli(
        "providers",
        "invoke",
        "-",
        "calc/add",
        "--args",
        '{"a": 1, "b": 2}',
        env={"GLEITZEIT_PLUGINS": ""},
    )
    assert out.code == 2
    assert "No provider has no" not in out.err
    assert "No provider offers the method 'calc/add'" in out.err
    assert "installed but disabled: calculator" in out.err and "GLEITZEIT_PLUGINS" in out.err


def test_template_names_are_normalised_as_pip_does(run_cli):
    out = run_cli("providers", "create-template", "--type", "llm", "--name", "my_llm_provider")
    assert out.code == 0, out.err
    assert (run_cli.workdir / "gleitzeit-my-llm-provider" / "pyproject.toml").is_file()


def test_config_init_creates_missing_folders(run_cli):
    out = run_cli("config", "init", "--path", "sub/dir/gleitzeit.yaml")
    assert out.code == 0, out.err
    assert (run_cli.workdir / "sub" / "dir" / "gleitzeit.yaml").is_file()


def test_serve_on_a_port_in_use_is_a_clear_error(run_cli):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = run_cli("serve", "--port", str(port), env={"GLEITZEIT_PLUGINS": ""})
    assert out.code == 2
    assert f"Cannot listen on 127.0.0.1:{port}" in out.err
    assert "internal error" not in out.err


def test_an_unreachable_server_leaves_no_unclosed_session_warning(run_cli):
    for args in (["providers", "list"], ["providers", "health"]):
        out = run_cli(*args, "--server", "http://127.0.0.1:9")
        assert out.code != 0
        assert "Cannot reach a gleitzeit server" in out.err
        assert "Unclosed" not in out.err, out.err


def test_providers_health_says_what_is_not_configured_in_one_line(run_cli):
    out = run_cli("providers", "health", env={"OLLAMA_HOST": "", "OPENAI_API_KEY": ""})
    assert out.code == 1  # still meaningful: something cannot serve
    ollama = next(line for line in out.out.splitlines() if line.startswith("ollama"))
    assert "not configured" in ollama and "ollama serve" in ollama
    openai = next(line for line in out.out.splitlines() if line.startswith("openai"))
    assert "OPENAI_API_KEY" in openai


def test_provider_run_without_a_server_says_it_is_waiting_and_can_give_up(run_cli):
    out = run_cli(
        "provider",
        "run",
        "calculator",
        "--server",
        "http://127.0.0.1:9",
        "--connect-timeout",
        "1",
    )
    assert out.code == 1
    assert "retrying with backoff" in out.err
    assert "Not registered with http://127.0.0.1:9 within 1s" in out.err
    assert "Unclosed" not in out.err
