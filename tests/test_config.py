"""gleitzeit.yaml: found, substituted, validated, with errors that name file, field and value."""

from __future__ import annotations

from pathlib import Path

import pytest

from gleitzeit.config import find_config_path, load_config, parse_config
from gleitzeit.errors import ConfigError


def _error(text: str, env: dict | None = None, name: str = "gleitzeit.yaml") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source=Path(name), env=env or {})
    return info.value


def test_unknown_key_names_file_line_path_and_suggests_the_nearest_key():
    err = _error("routing:\n  strategy: round-robin\n  retires: 3\n")
    assert err.problems == [
        "gleitzeit.yaml:3: routing.retires: unknown key 'retires'; did you mean 'retries'?"
    ]


def test_wrong_type_names_file_path_and_value():
    err = _error("health:\n  interval: soon\n")
    (line,) = err.problems
    assert line.startswith("gleitzeit.yaml:2: health.interval: ")
    assert "'soon'" in line


def test_missing_env_var_without_default_names_file_path_and_value():
    err = _error("routing:\n  strategy: ${ROUTER_NAME}\n")
    (line,) = err.problems
    assert line.startswith("gleitzeit.yaml:2: routing.strategy: ")
    assert "ROUTER_NAME is not set" in line
    assert "'${ROUTER_NAME}'" in line


def test_env_substitution_with_defaults_and_escapes():
    text = (
        "routing:\n"
        "  strategy: ${ROUTER:-round-robin}\n"
        "  retries: ${RETRIES}\n"
        "plugins:\n"
        "  calculator:\n"
        "    note: 'costs $${PRICE} at ${SHOP:-home}'\n"
    )
    config = parse_config(text, env={"RETRIES": "4"})
    assert config.routing.strategy == "round-robin"
    assert config.routing.retries == 4
    assert config.plugins["calculator"]["note"] == "costs ${PRICE} at home"


def test_missing_env_var_inside_a_plugin_section_is_that_plugins_problem_only():
    config = parse_config(
        "plugins:\n  openai:\n    api_key: ${OPENAI_API_KEY}\n    base_url: http://x/v1\n",
        source=Path("g.yaml"),
        env={},
    )
    (problem,) = config.plugin_problems("openai")
    assert "g.yaml:3: plugins.openai.api_key: environment variable OPENAI_API_KEY" in problem
    # The unset value is left out, so the plugin's default (or env fallback) applies.
    assert config.plugin_section("openai") == {"base_url": "http://x/v1"}


def test_not_yaml_and_not_a_mapping_are_clear_errors():
    assert "not valid YAML" in _error("routing: [unclosed\n").message
    assert "top level must be a mapping" in _error("- just\n- a list\n").message


def test_plugins_section_enables_and_disables():
    config = parse_config(
        "autoload_plugins: false\nplugins:\n  a: false\n  b: {enabled: false}\n  c:\n  d: {x: 1}\n"
    )
    assert [config.plugin_enabled(n) for n in "abcde"] == [False, False, True, True, False]
    assert config.plugin_section("d") == {"x": 1}


def test_provider_entries_need_exactly_one_source():
    err = _error("providers:\n  mine:\n    settings: {}\n")
    assert "providers.mine" in err.problems[0]
    assert "exactly one of 'type'" in err.problems[0]


def test_config_is_found_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("GLEITZEIT_CONFIG", raising=False)
    assert find_config_path() is None
    assert load_config().routing.strategy == "least-in-flight"

    user = tmp_path / "xdg" / "gleitzeit" / "gleitzeit.yaml"
    user.parent.mkdir(parents=True)
    user.write_text("routing: {strategy: round-robin}\n")
    assert find_config_path() == user

    local = tmp_path / "gleitzeit.yaml"
    local.write_text("routing: {retries: 1}\n")
    assert find_config_path() == local

    env_file = tmp_path / "env.yaml"
    env_file.write_text("{}\n")
    monkeypatch.setenv("GLEITZEIT_CONFIG", str(env_file))
    assert find_config_path() == env_file
    assert find_config_path(tmp_path / "gleitzeit.yaml") == local

    with pytest.raises(ConfigError, match="does not exist"):
        find_config_path(tmp_path / "nope.yaml")


def test_cli_config_commands(run_cli):
    init = run_cli("config", "init")
    assert init.code == 0, init.err
    written = (run_cli.workdir / "gleitzeit.yaml").read_text()
    assert "calculator:" in written and "# precision:" in written
    assert run_cli("config", "init").code == 2  # refuses to overwrite

    ok = run_cli("config", "validate")
    assert ok.code == 0, ok.err
    assert "is valid" in ok.out

    (run_cli.workdir / "gleitzeit.yaml").write_text(
        "plugins:\n  calculator:\n    precison: 2\n    api_token: ${TOKEN:-s3cret}\n"
    )
    bad = run_cli("config", "validate")
    assert bad.code == 2
    assert "gleitzeit.yaml:3: plugins.calculator.precison: unknown key 'precison'" in bad.err
    assert "did you mean 'precision'?" in bad.err
    assert "Traceback" not in bad.err

    (run_cli.workdir / "gleitzeit.yaml").write_text(
        "plugins:\n  calculator: {precision: 2}\nfiles:\n  allowed_roots: [.]\n"
        "providers:\n  secretive:\n    type: calculator\n    settings: {}\n"
        "routing:\n  strategy: ${ROUTER:-round-robin}\n"
    )
    shown = run_cli("config", "show", "--json", env={"ROUTER": "least-in-flight"})
    assert shown.code == 0, shown.err
    data = shown.json()["config"]
    assert data["routing"]["strategy"] == "least-in-flight"
    assert data["plugins"]["calculator"] == {"precision": 2, "max_expression_length": 10000}


def test_config_show_masks_secrets():
    from gleitzeit.cli.config_cmd import mask_secrets

    masked = mask_secrets(
        {"plugins": {"openai": {"api_key": "sk-123", "base_url": "u"}}, "token": ""}
    )
    assert masked == {"plugins": {"openai": {"api_key": "****", "base_url": "u"}}, "token": ""}


def test_broken_config_is_exit_code_2_for_every_command(run_cli):
    (run_cli.workdir / "gleitzeit.yaml").write_text("routing:\n  retries: many\n")
    for args in (["plugins", "list"], ["providers", "list"], ["config", "show"]):
        result = run_cli(*args)
        assert result.code == 2, args
        assert "routing.retries" in result.err and "'many'" in result.err


@pytest.mark.parametrize(
    ("xdg", "home"),
    [(None, "/home/u"), ("/xdg", "/home/u"), ("", "/home/u"), ("relative", "/home/u"), (None, "")],
)
def test_user_config_path_is_platformdirs_one(monkeypatch, xdg, home):
    import platformdirs

    from gleitzeit.config.paths import user_config_path

    for var, value in (("XDG_CONFIG_HOME", xdg), ("HOME", home)):
        if value is None:
            monkeypatch.delenv(var, raising=False)
        else:
            monkeypatch.setenv(var, value)
    expected = Path(platformdirs.user_config_dir("gleitzeit")) / "gleitzeit.yaml"
    assert user_config_path() == expected
