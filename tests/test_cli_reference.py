"""docs/cli.md is generated from the click definitions and must not go stale."""

from pathlib import Path

import click

from varfx.cli import cli
from varfx.cli_reference import _walk, render

DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def test_reference_is_current():
    # when this fails: python -m varfx.cli_reference > docs/cli.md
    assert DOC.read_text() == render(), "docs/cli.md is stale: run `python -m varfx.cli_reference > docs/cli.md`"


def test_every_command_and_option_is_on_the_page():
    text = render()
    for path, cmd in _walk("varfx", cli):
        assert f"## `{path}`" in text
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.hidden:
                assert f"`{p.opts[0]}`" in text.split(f"## `{path}`", 1)[1], (path, p.opts)


def test_a_new_option_changes_the_page():
    # the staleness check would be empty if render() ignored the definitions
    before = render()
    cmd = cli.commands["score"]
    extra = click.Option(["--zz-test-only"], help="only for this test")
    cmd.params.append(extra)
    try:
        assert "`--zz-test-only`" in render() and render() != before
    finally:
        cmd.params.remove(extra)
