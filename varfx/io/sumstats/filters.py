"""The quality filters of ingest (autosomes, INFO, MAF, multi-allelic sites)."""

from __future__ import annotations

import numpy as np

from ...errors import UserError

from .formats import Sumstats


# ----------------------------------------------------------------------------------------
# quality filters

#: Filter reasons, in the order they are applied (each row is counted once).
FILTER_REASONS = ("non_autosomal", "low_info", "low_maf", "multi_allelic")

#: Defaults of ``varfx ingest --info-min`` / ``--maf-min`` (see docs/formats.md for why).
INFO_MIN = 0.6
MAF_MIN = 0.001


def _check_threshold(value, option, lo, hi):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise UserError(f"option {option}: expected a number in [{lo}, {hi}], got {value!r}") from None
    if not (lo <= v <= hi):
        raise UserError(f"option {option}: expected a number in [{lo}, {hi}], got {value!r}")
    return v


def filter_sumstats(ss: Sumstats, *, info_min: float = INFO_MIN, maf_min: float = MAF_MIN,
                    keep_multi_allelic: bool = False) -> tuple[np.ndarray, dict]:
    """Quality filters applied before harmonisation; returns ``(keep mask, counts)``.

    In this order (a row removed by one is not counted by the next):

    - ``non_autosomal``: a chromosome other than 1-22 (X, Y, XY, MT, other contigs);
      rows with no chromosome are kept (they are matched by id);
    - ``low_info``: INFO below ``info_min`` (rows with no INFO value are kept);
    - ``low_maf``: minor allele frequency ``min(freq, 1 - freq)`` below ``maf_min``, from
      the sumstats frequency (rows with no frequency are kept);
    - ``multi_allelic``: a position (chromosome + bp) with more than one allele pair
      among the remaining rows (an SNV pair and its strand complement are one pair):
      every row at it is removed, unless ``keep_multi_allelic``.
    """
    from ..harmonise import multi_allelic_mask

    info_min = _check_threshold(info_min, "--info-min", 0, 1)
    maf_min = _check_threshold(maf_min, "--maf-min", 0, 0.5)
    m = ss.n_variants
    keep = np.ones(m, dtype=bool)
    counts = {}
    chrom = ss["chrom"]
    bad = (chrom >= 0) & ~((chrom >= 1) & (chrom <= 22))
    counts["non_autosomal"] = int(bad.sum())
    keep &= ~bad
    info = ss.get("info")
    if info is not None and info_min > 0:
        bad = keep & np.isfinite(info) & (info < info_min)
    else:
        bad = np.zeros(m, dtype=bool)
    counts["low_info"] = int(bad.sum())
    keep &= ~bad
    fr = ss["freq"]
    if maf_min > 0:
        maf = np.minimum(fr, 1.0 - fr)
        bad = keep & np.isfinite(maf) & (maf < maf_min)
    else:
        bad = np.zeros(m, dtype=bool)
    counts["low_maf"] = int(bad.sum())
    keep &= ~bad
    if keep_multi_allelic:
        bad = np.zeros(m, dtype=bool)
    else:
        bad = np.zeros(m, dtype=bool)
        idx = np.flatnonzero(keep)
        if idx.size:
            bad[idx] = multi_allelic_mask(ss["chrom"][idx], ss["bp"][idx], ss["a1"][idx], ss["a2"][idx])
    counts["multi_allelic"] = int(bad.sum())
    keep &= ~bad
    return keep, counts
