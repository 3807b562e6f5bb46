"""What every plot shares: a figure on matplotlib's Agg canvas and an atomic PNG write.

Figures are built with :class:`matplotlib.figure.Figure` and drawn by
:class:`~matplotlib.backends.backend_agg.FigureCanvasAgg` directly, never through
``pyplot``: no global backend is chosen or switched (a notebook or GUI session that
imports varfx keeps its own), no figure is left open in pyplot's registry, and a
headless machine needs no display.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError

#: pixels per inch of every PNG (a 7 x 4.5 inch figure is 1050 x 675 pixels)
DPI = 150


@dataclass
class Plot:
    """A written figure: its ``path`` and the numbers drawn (``data``, plain arrays and
    floats keyed by what they are, documented by each ``plot_*`` function)."""

    path: Path
    data: dict[str, Any] = field(default_factory=dict)


def figure(width: float, height: float):
    """A new Figure of ``width`` x ``height`` inches on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def out_path(out_dir, name: str) -> Path:
    """``out_dir/name``; ``out_dir`` must be a directory or not exist yet (it is made,
    with its parents, when the figure is written)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError("not a directory (option -o / --plots expects a directory for the PNG files)", path=out_dir)
    return out_dir / name


def save(fig, path) -> Path:
    """Write ``fig`` as a PNG at ``path`` atomically (a temporary file renamed into
    place: an interrupted write leaves no half-written image); returns ``path``."""
    from ..store import atomic_path

    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return path


def safe_name(text: str) -> str:
    """``text`` with every character other than letters, digits, ``.``, ``-`` and ``_``
    replaced by ``_`` (a file name from a region or a model name)."""
    return "".join(c if c.isalnum() or c in ".-_" else "_" for c in str(text)) or "_"
