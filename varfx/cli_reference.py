"""docs/cli.md, the command-line reference, rendered from the click definitions.

``python -m varfx.cli_reference > docs/cli.md`` regenerates it; tests/test_cli_reference.py
fails when the committed page differs from what this renders, so the reference cannot go
stale when an option is added.

The page is built from the parameter objects (names, types, defaults, help), not from
click's ``--help`` formatter: the formatter wraps text to the terminal width and its
layout changes between click releases, which would make the staleness test depend on
the machine and on the click version.
"""

from __future__ import annotations

import inspect

import click

HEADER = """# Command-line reference

Every `varfx` command with its arguments and options, generated from the command
definitions (`python -m varfx.cli_reference > docs/cli.md`; a test fails when this page
is stale). For what the stages do and how they fit together, see [usage.md](usage.md).
"""


def _type_text(param: click.Parameter) -> str:
    t = param.type
    if isinstance(param, click.Option) and param.is_flag and not param.count:
        return "flag"
    if isinstance(t, click.Choice):
        return " | ".join(f"`{c}`" for c in t.choices)
    if isinstance(t, click.Path):
        kind = "directory" if not t.file_okay else "file" if not t.dir_okay else "path"
        return kind
    name = getattr(t, "name", None) or type(t).__name__
    if isinstance(t, (click.IntRange, click.FloatRange)):
        word = "integer" if isinstance(t, click.IntRange) else "number"
        bounds = []
        if t.min is not None:
            bounds.append(f"{'>' if t.min_open else '>='} {t.min}")
        if t.max is not None:
            bounds.append(f"{'<' if t.max_open else '<='} {t.max}")
        return " ".join([word] + [", ".join(bounds)] if bounds else [word])
    return name


def _default_text(param: click.Parameter) -> str:
    if isinstance(param, click.Option) and param.is_flag:
        return ""
    d = param.default
    # click >= 8.3 marks "no default" with a sentinel object rather than None
    unset = getattr(click.core, "UNSET", None)
    if d is None or d is unset or callable(d) or (param.multiple and not isinstance(d, (list, tuple))) \
            or (param.multiple and not d):
        return ""
    if isinstance(d, (list, tuple)):
        d = ", ".join(map(str, d))
    return f"`{d}`"


def _cell(text: str) -> str:
    """One table cell: single line, pipes escaped."""
    return " ".join((text or "").split()).replace("|", "\\|")


def _command_section(path: str, cmd: click.Command) -> list[str]:
    lines = [f"## `{path}`", ""]
    args = [p for p in cmd.params if isinstance(p, click.Argument)]
    usage = " ".join([path] + [("[OPTIONS]" if any(isinstance(p, click.Option) for p in cmd.params) else "")]
                     + [p.make_metavar(click.Context(cmd)) for p in args]).replace("  ", " ").strip()
    lines += ["```", usage, "```", ""]
    if cmd.help:
        # the docstring as written: paragraphs kept, click's \b markers dropped
        lines += [ln.rstrip() for ln in inspect.cleandoc(cmd.help.replace("\b\n", "")).splitlines()] + [""]
    opts = [p for p in cmd.params if isinstance(p, click.Option) and not p.hidden]
    if opts:
        lines += ["| option | type | default | description |", "|---|---|---|---|"]
        for p in opts:
            names = ", ".join(f"`{n}`" for n in p.opts + p.secondary_opts)
            text = ("**required.** " if p.required else "") + (p.help or "")
            lines.append(f"| {names} | {_cell(_type_text(p))} | {_cell(_default_text(p))} | {_cell(text)} |")
        lines.append("")
    return lines


def _walk(path: str, cmd: click.Command):
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name in sorted(cmd.commands):
            yield from _walk(f"{path} {name}", cmd.commands[name])


def render() -> str:
    """The whole reference page as Markdown."""
    from .cli import cli

    lines = [HEADER]
    commands = list(_walk("varfx", cli))
    lines += ["Commands: " + ", ".join(f"`{p}`" for p, _ in commands[1:]), ""]
    for path, cmd in commands:
        lines += _command_section(path, cmd)
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":  # pragma: no cover - exercised through the test's render()
    print(render(), end="")
