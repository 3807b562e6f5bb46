"""Click parameter types and option parsers shared by every command.

Only click is imported here (``varfx --help`` stays fast).  Every numeric option of
every command goes through one of these types, so NaN, infinities, wrong signs and
out-of-range values are refused at the command line (exit code 2, click's usage error)
instead of reaching a stage.  ``float('nan')`` passes ``click.FloatRange`` (every
comparison with NaN is false), which is why :class:`FiniteFloat` exists.
"""

from __future__ import annotations

import math

import click


class FiniteFloat(click.ParamType):
    """A finite float, optionally bounded: ``FiniteFloat(min=0, min_open=True)`` is a
    positive number, ``FiniteFloat(0, 1, min_open=True, max_open=True)`` a fraction in
    (0, 1).  NaN and +-inf are always refused."""

    name = "number"

    def __init__(self, min=None, max=None, min_open=False, max_open=False):
        self.min, self.max = min, max
        self.min_open, self.max_open = min_open, max_open

    def _describe(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f"{'>' if self.min_open else '>='} {self.min:g}")
        if self.max is not None:
            parts.append(f"{'<' if self.max_open else '<='} {self.max:g}")
        return "a finite number" + (" " + " and ".join(parts) if parts else "")

    def convert(self, value, param, ctx):
        if isinstance(value, float) and math.isfinite(value):
            v = value
        else:
            try:
                v = float(value)
            except (TypeError, ValueError):
                self.fail(f"expected {self._describe()}, got {value!r}", param, ctx)
        if not math.isfinite(v):
            self.fail(f"expected {self._describe()}, got {value!r}", param, ctx)
        low_bad = self.min is not None and (v <= self.min if self.min_open else v < self.min)
        high_bad = self.max is not None and (v >= self.max if self.max_open else v > self.max)
        if low_bad or high_bad:
            self.fail(f"expected {self._describe()}, got {value!r}", param, ctx)
        return v


POSITIVE = FiniteFloat(min=0, min_open=True)
NON_NEGATIVE = FiniteFloat(min=0)
FRACTION_OPEN = FiniteFloat(0, 1, min_open=True, max_open=True)


def parse_chroms(value, option: str, available=None):
    """Parse a chromosome list the same way for every option (``--holdout-chroms``,
    ``--chroms``...): ``'none'`` (or empty) is ``[]``, ``'all'`` is ``None``, otherwise a
    sorted list of distinct autosome numbers (``'6,7,8'``; each item is read by
    :func:`varfx.genome.chrom_code`, the parser of every input file, so ``chr6``,
    ``CHR6`` and ``"6"`` are 6 here as they are in a sumstats or .bim file).

    Only 1-22 are accepted: a dataset holds autosomes only (ingest filters the rest), so
    ``X`` or ``MT`` could never select anything.  With ``available`` (the dataset's
    chromosomes) a chromosome that is not there is an error naming what the dataset
    has, and ``'all'`` becomes the whole list.
    """
    from .errors import UserError
    from .genome import chrom_code  # stdlib only: keeps `varfx --help` free of numpy

    text = str(value).strip().lower()
    if text in ("none", ""):
        chroms = []
    elif text == "all":
        chroms = None
    else:
        chroms = []
        for item in text.split(","):
            if not item.strip():
                continue
            code = chrom_code(item)
            if not 1 <= code <= 22:
                raise UserError(f"option {option}: expected comma-separated chromosome numbers (1-22, with or "
                                f"without 'chr'), 'all' or 'none', got {value!r}")
            chroms.append(code)
        chroms = sorted(set(chroms))
    if available is not None:
        available = sorted(int(c) for c in available)
        if chroms is None:
            return available
        missing = [c for c in chroms if c not in available]
        if missing:
            raise UserError(f"option {option}: chromosome {', '.join(map(str, missing))} is not in the dataset "
                            f"(it has {', '.join(map(str, available)) or 'none'})")
    return chroms
