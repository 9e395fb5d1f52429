"""``gleitzeit convert``: a workflow in the original Gleitzeit's format, rewritten in this
project's own."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("convert")
@click.argument("workflow_file", type=click.Path(dir_okay=False, exists=True))
@click.option(
    "-o", "--output", "out", type=click.Path(dir_okay=False), help="Write here instead of stdout."
)
@click.option("--force", is_flag=True, help="Overwrite an existing --output file.")
def convert(workflow_file: str, out: str | None, force: bool) -> None:
    """Write WORKFLOW_FILE (the original Gleitzeit's V4 format) in this project's format.

    Everything both formats can express is carried over, so the result runs to the same
    results; what could not be carried over is listed on stderr.
    """
    from gleitzeit.workflows import load_workflow
    from gleitzeit.workflows.convert import native_yaml, not_carried

    if out is not None and Path(out).exists() and not force:
        same = Path(out).resolve() == Path(workflow_file).resolve()
        raise click.UsageError(
            f"{out} exists"
            + (" (it is the file being converted: its comments would be lost)" if same else "")
            + "; give another --output, or --force to overwrite it"
        )

    workflow = load_workflow(workflow_file)
    if workflow.format != "v4":
        click.echo(
            f"{workflow_file}: already in this project's format; written unchanged", err=True
        )
        text = workflow.text
    else:
        text = native_yaml(workflow)
        for line in not_carried(workflow):
            click.echo(f"not carried over: {line}", err=True)
    if out is None:
        click.echo(text, nl=False)
    else:
        Path(out).write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}", err=True)


COMMANDS = [convert]
