"""Filters on LD reference variants: minor allele frequency and long-range LD regions.

- :func:`maf_filter` keeps variants whose minor allele frequency ``min(f, 1 - f)`` is at
  least ``maf_min``.
- :func:`read_lrld` reads a long-range LD region file, one region per line,
  ``chrN start end [label]`` (whitespace-separated; ``chr`` optional; blank lines and
  lines starting with ``#`` skipped), e.g. ``lrld_hg19_GRCh37.txt``.
- :func:`in_regions` flags variants inside any region.  A region covers the 1-based
  positions ``start <= bp <= end`` (both ends included, as ``plink --exclude range``
  does), the conservative reading of files whose convention is not stated.

Region files are in one genome build (``lrld_hg19_GRCh37.txt``: hg19): apply them to
positions in that build, i.e. before a build conversion of the table they filter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError
from ..genome import chrom_code as parse_chrom
from ..genome import read_text as _genome_read_text


def maf_filter(freq, maf_min: float) -> np.ndarray:
    """Boolean mask of the variants to keep: ``min(freq, 1 - freq) >= maf_min``.

    ``freq`` is any allele's frequency.  A NaN frequency (no genotype) is dropped when
    ``maf_min > 0``; ``maf_min == 0`` keeps everything.  ``maf_min`` must lie in [0, 0.5].
    """
    maf_min = float(maf_min)
    if not (0.0 <= maf_min <= 0.5) or not np.isfinite(maf_min):
        raise UserError(f"--ld-maf-min must be between 0 and 0.5, got {maf_min}")
    f = np.asarray(freq, dtype=np.float64)
    if maf_min == 0.0:
        return np.ones(f.shape, dtype=bool)
    maf = np.minimum(f, 1.0 - f)
    with np.errstate(invalid="ignore"):
        return np.isfinite(maf) & (maf >= maf_min)


def read_lrld(path) -> list[tuple[int, int, int]]:
    """Regions ``(chrom, start, end)`` of a long-range LD file (``chrN start end [label]``).

    Chromosomes become varfx codes (``chrX`` -> 23).  Errors name the file and line: fewer
    than 3 columns, an unknown chromosome, a non-integer or negative position, or
    ``end < start``.
    """
    path = Path(path)
    text = _read_text(path)
    regions = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        f = s.split()
        if len(f) < 3:
            raise UserError(
                f"expected 'chrN start end [label]' (3 or more columns), found {len(f)}", path=path, line=lineno
            )
        chrom = parse_chrom(f[0])
        if chrom < 1:
            raise UserError(
                f"expected a chromosome (chr1-22, X, Y), found {f[0]!r}", path=path, line=lineno, column="chrom"
            )
        try:
            start, end = int(f[1]), int(f[2])
        except ValueError:
            col, tok = ("start", f[1]) if not f[1].lstrip("-").isdigit() else ("end", f[2])
            raise UserError(
                f"expected an integer position, found {tok!r}", path=path, line=lineno, column=col
            ) from None
        if start < 0 or end < 0:
            raise UserError("expected non-negative positions", path=path, line=lineno)
        if end < start:
            raise UserError(f"region end {end} is before its start {start}", path=path, line=lineno)
        regions.append((chrom, start, end))
    if not regions:
        raise UserError("no regions: expected lines 'chrN start end [label]'", path=path)
    return regions


def _read_text(path: Path) -> str:
    return _genome_read_text(path, "a long-range LD region file: chrN start end [label]")


def in_regions(chrom, bp, regions) -> np.ndarray:
    """Boolean mask: the variant (``chrom`` code, 1-based ``bp``) lies in one of ``regions``
    (``start <= bp <= end`` on the same chromosome)."""
    c = np.asarray(chrom).astype(np.int64)
    b = np.asarray(bp).astype(np.int64)
    mask = np.zeros(b.shape, dtype=bool)
    for rc, start, end in regions:
        mask |= (c == int(rc)) & (b >= int(start)) & (b <= int(end))
    return mask
