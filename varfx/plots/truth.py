"""Predicted against true log f (a simulation's truth; paper Fig. 4 and 7)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import UserError
from . import _draw
from ._inputs import chosen_variants, predicted_log_f

#: above this many variants the points are binned (hexbin) instead of scattered
SCATTER_MAX = 5000


def _variance(text):
    value = float(text)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(text)
    return value


def truth_pairs(model_dir, dataset, truth, truth_col="F", chroms=None, fasta=None) -> dict:
    """The (true, predicted) log f pairs a truth plot draws: ``true_log_f``,
    ``pred_log_f``, ``snp`` of the dataset variants chosen by ``chroms`` (see
    :func:`~varfx.plots._inputs.chosen_variants`) whose true variance in column
    ``truth_col`` of the TSV ``truth`` is positive, their ``rmse`` (the root mean
    squared difference: `varfx evaluate`'s ``rmse_log_f`` on the same variants),
    ``n``, ``n_zero`` (variants with a true F of 0, left out: log 0 is no number),
    ``chroms`` and ``regions`` (by default the model's held-out variants: those of its
    held-out chromosomes and those inside its ``--holdout-region`` regions, see
    :func:`~varfx.plots._inputs.chosen_variants`)."""
    from ..store.truth import read_truth_column

    meta, log_f, var = predicted_log_f(model_dir, dataset, fasta)
    on, chroms, regions = chosen_variants(chroms, meta, var["chrom"], var["bp"], dataset)
    true_f = read_truth_column(truth, var["snp"], truth_col, _variance, "a finite number >= 0", np.nan, np.float64)
    named = on & np.isfinite(true_f)
    if not named.any():
        where = f"region(s) {', '.join(regions)}" if regions else f"chromosome(s) {', '.join(map(str, chroms))}"
        raise UserError(f"no SNP of the truth file is a variant of the dataset on {where} (no overlapping SNP ids)",
                        path=truth)
    ok = named & (true_f > 0)
    if not ok.any():
        raise UserError(f"every true {truth_col} of the {int(named.sum())} overlapping variants is 0: there is no "
                        "log f to compare", path=truth)
    t, p = np.log(true_f[ok]), log_f[ok]
    return {"true_log_f": t, "pred_log_f": p, "snp": var["snp"][ok], "rmse": float(np.sqrt(np.mean((t - p) ** 2))),
            "n": int(ok.sum()), "n_zero": int((named & ~ok).sum()), "chroms": chroms, "regions": regions,
            "truth_col": truth_col}


def plot_truth(model_dir, dataset, truth, out_dir, truth_col="F", chroms=None, fasta=None,
               name: str = "truth.png") -> _draw.Plot:
    """Write ``out_dir/truth.png``: predicted against true log f with the identity line
    and the RMSE in the title; ``data``: :func:`truth_pairs`'s dict."""
    d = truth_pairs(model_dir, dataset, truth, truth_col=truth_col, chroms=chroms, fasta=fasta)
    path = _draw.out_path(out_dir, name)
    fig = _draw.figure(6, 5.5)
    ax = fig.add_subplot(1, 1, 1)
    t, p = d["true_log_f"], d["pred_log_f"]
    if d["n"] <= SCATTER_MAX:
        ax.scatter(t, p, s=6, alpha=0.5, lw=0)
    else:
        hb = ax.hexbin(t, p, gridsize=60, bins="log", mincnt=1, cmap="viridis")
        fig.colorbar(hb, ax=ax, label="variants (log scale)")
    lo, hi = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
    pad = 0.02 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="k", lw=1, ls="--", label="identity")
    ax.set_xlabel(f"true log f ({d['truth_col']} of {Path(truth).name})")
    ax.set_ylabel(f"predicted log f ({Path(model_dir).name})")
    dropped = f", {d['n_zero']} with true f = 0 left out" if d["n_zero"] else ""
    where = f"on chr {','.join(map(str, d['chroms']))}"
    if d["regions"]:
        where = f"held out {where} (region {', '.join(d['regions'])})"
    ax.set_title(f"RMSE of log f = {d['rmse']:.4g}\n{d['n']} variants {where}{dropped}", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _draw.Plot(_draw.save(fig, path), d)
