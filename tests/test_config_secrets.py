"""Secrets in ``config show`` and in log lines are found by field type, not by name."""

from __future__ import annotations

import logging

from gleitzeit.config import parse_config


def test_config_show_masks_secret_fields_not_names_that_look_secret(run_cli):
    (run_cli.workdir / "gleitzeit.yaml").write_text(
        "plugins:\n  openai:\n    api_key: sk-abc123\n    require_api_key: true\n"
        "server:\n  token: tok-visible-nowhere\n  token_roles: [client, provider]\n"
    )
    shown = run_cli("config", "show", "--json")
    assert shown.code == 0, shown.err
    data = shown.json()["config"]
    assert data["plugins"]["openai"]["api_key"] == "****"
    assert data["plugins"]["openai"]["require_api_key"] is True  # a boolean, not a secret
    assert data["server"]["token"] == "****"
    assert data["server"]["token_roles"] == ["client", "provider"]
    assert "sk-abc123" not in shown.out and "tok-visible-nowhere" not in shown.out


def test_config_show_says_which_environment_variable_supplies_a_value(run_cli):
    (run_cli.workdir / "gleitzeit.yaml").write_text("routing: {retries: 1}\n")
    env = {"GLEITZEIT_TOKEN": "from-the-env-123"}
    shown = run_cli("config", "show", env=env)
    assert shown.code == 0, shown.err
    assert "# server.token: from $GLEITZEIT_TOKEN" in shown.out
    assert "from-the-env-123" not in shown.out
    as_json = run_cli("config", "show", "--json", env=env).json()
    assert as_json["config"]["server"]["token"] == "****"
    assert as_json["from_env"] == {"server.token": "GLEITZEIT_TOKEN"}
    # Without the variable the token is unset, and no source is claimed.
    plain = run_cli("config", "show", "--json").json()
    assert plain["config"]["server"]["token"] is None and plain["from_env"] == {}


def test_settings_no_model_describes_are_still_masked_by_name(run_cli):
    (run_cli.workdir / "gleitzeit.yaml").write_text(
        "plugins:\n  not-installed:\n    enabled: false\n    password: hunter22\n"
    )
    shown = run_cli("config", "show", "--json")
    assert shown.code == 0, shown.err
    assert "hunter22" not in shown.out


def test_typed_secrets_are_masked_in_log_lines_and_roles_are_not():
    from gleitzeit.logs import JsonFormatter, add_secrets_of

    config = parse_config(
        "server: {token: tok-for-logs-42, token_roles: [client, admin, provider]}\n"
    )
    add_secrets_of(config)
    record = logging.LogRecord(
        "gleitzeit.x", logging.INFO, __file__, 1, "provider got tok-for-logs-42", (), None
    )
    line = JsonFormatter().format(record)
    assert "tok-for-logs-42" not in line
    assert "provider got" in line  # a role name is not a secret
