"""Human-readable output on stderr (rich).  Machine-readable output is JSON on stdout."""

from __future__ import annotations

import contextlib
from typing import Any


def console():
    from rich.console import Console

    return Console(stderr=True)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)) and len(v) > 8:
        return f"[{len(v)} items]"
    return str(v)


def print_summary(title: str, summary: dict) -> None:
    """A two-column table of a (possibly nested) summary dict."""
    from rich.table import Table

    table = Table(title=f"varfx {title}", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value", justify="right")

    def add(prefix, d):
        for k, v in d.items():
            if isinstance(v, dict):
                add(f"{prefix}{k}.", v)
            else:
                table.add_row(f"{prefix}{k}", _fmt(v))

    add("", summary)
    console().print(table)


def print_plugins(records: list[dict]) -> None:
    from rich.table import Table

    table = Table(title="varfx plugins")
    for col in ("plugin", "version", "priors", "objectives", "solvers", "feature sources"):
        table.add_column(col)
    for r in records:
        if "error" in r:
            table.add_row(r["name"], "-", f"[red]failed: {r['error']}[/red]", "", "", "")
            continue
        table.add_row(
            r["name"] + (" (built-in)" if r.get("builtin") else ""),
            str(r.get("version") or "-"),
            ", ".join(r.get("priors", [])),
            ", ".join(r.get("objectives", [])),
            ", ".join(r.get("solvers", [])),
            ", ".join(r.get("feature_sources", [])),
        )
    console().print(table)


def progress(disable: bool = False):
    """A rich progress bar on stderr with elapsed time and ETA."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[status]}"),
        console=console(), disable=disable, transient=False,
    )


@contextlib.contextmanager
def stage_progress(enabled: bool = True):
    """A :func:`progress` bar for a stage (or None when not ``enabled``).

    On an error the bar is erased, so that the error message stays the only line the
    command prints (a non-terminal console would otherwise print the bar's last state)."""
    if not enabled:
        yield None
        return
    with progress(disable=False) as bar:
        try:
            yield bar
        except BaseException:
            for t in list(bar.task_ids):
                bar.remove_task(t)
            with contextlib.suppress(AttributeError):
                bar.live.transient = True  # erase the bar rather than leave a blank line
                bar.live.stop()
                bar.disable = True  # Progress.stop would print an empty line on a non-terminal
            raise


def human_size(b) -> str:
    """Bytes as three significant digits and a decimal unit (kB = 1000 B), for tables."""
    b = float(b)
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if b < 1000 or unit == "PB":
            return f"{b:.3g} {unit}"
        b /= 1000


def human_seconds(s) -> str:
    """Seconds as s, min, h or days (three significant digits), for tables."""
    s = float(s)
    if s < 120:
        return f"{s:.3g} s"
    if s < 7200:
        return f"{s / 60:.3g} min"
    if s < 3 * 86400:
        return f"{s / 3600:.3g} h"
    return f"{s / 86400:.3g} days"


def print_dry_run(plan: dict) -> None:
    """A dry run's plan (varfx.store.dry_run.plan) as a rich table on stderr: what it
    would read and write, the counts, time, memory and disk; "unknown" where the dry run
    cannot say."""
    from rich.table import Table

    def opt(v, fmt):
        return "unknown" if v is None else fmt(v)

    t = Table(title=f"varfx {plan['stage']} --dry-run (nothing written)", show_header=False, title_justify="left")
    t.add_column("what", style="bold", no_wrap=True)
    t.add_column("value", justify="right", no_wrap=True)
    t.add_column("note", style="dim")
    for r in plan["reads"]:
        t.add_row(f"reads: {r['role']}", opt(r.get("bytes"), human_size), str(r["path"]))
    for w in plan["writes"]:
        t.add_row("writes", opt(w.get("bytes"), human_size), str(w["path"]) + (" (replaced)" if w.get("replaces") else ""))
    t.add_section()
    exact = "" if plan["counts_exact"] else " (estimated)"
    for k, v in plan["counts"].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            t.add_row(k + exact, f"{v:,}" if isinstance(v, int) else f"{v:,.6g}", "")
    t.add_section()
    t.add_row("time", opt(plan["seconds"], human_seconds),
              f"{human_seconds(plan['seconds_measured'])} measured (done by the dry run)")
    t.add_row("peak memory", opt(plan["memory_bytes"], human_size), "")
    t.add_row("disk", opt(plan["disk_bytes"], human_size),
              "" if plan["disk_peak_bytes"] == plan["disk_bytes"] else f"{opt(plan['disk_peak_bytes'], human_size)} at the peak")
    out = console()
    out.print(t)
    for line in plan["basis"]:
        out.print(line, soft_wrap=True, highlight=False)
