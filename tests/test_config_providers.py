"""providers: entries — local classes from the working directory, import problems found
by config validate, names that clash with a plugin's provider."""

from __future__ import annotations

CLASS = """
import gleitzeit

class Shout(gleitzeit.Provider):
    name = "shout"
    kind = "tool"

    @gleitzeit.method("text/shout")
    async def shout(self, params):
        return {"result": params["text"].upper() + "!"}
"""


def test_a_local_class_is_found_in_the_working_directory(run_cli):
    (run_cli.workdir / "myprov.py").write_text(CLASS)
    (run_cli.workdir / "gleitzeit.yaml").write_text(
        "providers:\n  loud:\n    class: myprov:Shout\n"
    )
    out = run_cli("providers", "invoke", "loud", "text/shout", "--args", '{"text": "hi"}', "--json")
    assert out.code == 0, out.err
    assert out.json()["result"] == "HI!"
    assert "warning" not in out.err


def test_config_validate_imports_provider_classes_and_names_the_line(run_cli):
    (run_cli.workdir / "gleitzeit.yaml").write_text(
        "routing: {retries: 1}\nproviders:\n  x:\n    class: nosuchmodule:Cls\n"
    )
    out = run_cli("config", "validate")
    assert out.code == 2
    assert "gleitzeit.yaml:4: providers.x.class: cannot import 'nosuchmodule:Cls'" in out.err
    run = run_cli("providers", "list")
    assert len([ln for ln in run.err.splitlines() if "cannot import" in ln]) == 1  # once
    strict = run_cli("providers", "list", env={"GLEITZEIT_STRICT_PLUGINS": "1"})
    assert strict.code != 0 and "strict mode" in strict.err


def test_an_entry_named_like_a_plugins_provider_is_refused_clearly(run_cli):
    (run_cli.workdir / "gleitzeit.yaml").write_text(
        "providers:\n  calculator:\n    type: calculator\n    settings: {precision: 1}\n"
    )
    out = run_cli("config", "validate")
    assert out.code == 2
    assert "'calculator' is the name of the calculator plugin's provider" in out.err
    listed = run_cli("providers", "list", "--json")
    rows = [p for p in listed.json() if p["name"] == "calculator"]
    assert len(rows) == 1 and rows[0]["methods"]  # no second, method-less row
