"""Running the command line in tests: ``invoke`` (any outcome) and ``ok`` (must succeed)."""

from __future__ import annotations

from click.testing import CliRunner

from varfx.cli import cli


def invoke(args, **kwargs):
    """``varfx ARGS`` in-process; arguments may be paths or numbers."""
    return CliRunner().invoke(cli, [str(a) for a in args], **kwargs)


def ok(args, **kwargs):
    """``varfx ARGS``, asserting exit code 0 (the output and any exception in the message)."""
    r = invoke(args, **kwargs)
    assert r.exit_code == 0, (r.output, r.exception)
    return r
