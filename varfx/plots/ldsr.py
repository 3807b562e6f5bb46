"""chi^2 against LD score: the dataset's LD score regression drawn (and a model's
expected chi^2 beside it)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import UserError
from . import _draw
from ._inputs import chosen_chroms, dataset_variants, held_out_mask, predicted_log_f

N_BINS = 50


def equal_count_bins(order_key, n_bins) -> list[np.ndarray]:
    """Indices of ``order_key`` cut, in increasing order, into ``n_bins`` groups whose
    sizes differ by at most one (quantile bins that stay equal-sized when many values
    tie, as LD scores floored at 1 do)."""
    order = np.argsort(order_key, kind="stable")
    return [b for b in np.array_split(order, max(1, min(int(n_bins), len(order)))) if len(b)]


def _bin_stats(values, bins):
    mean = np.array([values[b].mean() for b in bins])
    se = np.array([values[b].std(ddof=1) / math.sqrt(len(b)) if len(b) > 1 else math.nan for b in bins])
    return mean, se


def ldsr_bins(dataset, model_dir=None, chroms="all", n_bins=N_BINS, fasta=None) -> dict:
    """What an LDSR plot draws, over the core variants of the dataset's windows on
    ``chroms`` (``"all"``, a list, or None: the windows the model held out, those of its
    held-out chromosomes and those whose core starts in one of its held-out regions, as
    ``fit`` chose them; all when it held none out):

    ``ld_score`` (the window store's bias-corrected LD score, floored at 1 as the
    regression floors it) and ``chi2`` (``z^2``) per variant; ``bins`` (index arrays
    into them, :func:`equal_count_bins` by LD score); per bin ``bin_ld_score`` (mean),
    ``bin_chi2`` (mean) and ``bin_chi2_se`` (its standard error ``sd / sqrt(n)``,
    treating the variants of a bin as independent: LD makes the true one larger);
    ``intercept`` and ``h2`` of the LD score regression `varfx fit` estimates sigma^2
    with (:func:`varfx.train.setup.ldsr_intercept`: ``E[chi2_m] = intercept + h2 n_m l_m
    / M``) and ``slope = h2 * mean(n) / M`` (the line drawn, chi^2 per unit of LD
    score); with a model, ``expected_chi2`` per variant (the ``ldsr`` objective's
    ``N sum_m' f_m' r2_mm' + sigma^2`` at the model's f and sigma^2) and its
    ``bin_expected_chi2``."""
    import torch

    from ..plugins import lookup
    from ..store.dataset import open_dataset
    from ..store.windows import load_windows
    from ..train.setup import ldsr_intercept

    meta = log_f = None
    if model_dir is not None:
        meta, log_f, var = predicted_log_f(model_dir, dataset, fasta)
    else:
        with open_dataset(dataset) as h5:
            var = dataset_variants(h5)
    meta_windows, wattrs = load_windows(dataset, chroms=None, meta_only=True)
    only = None
    if chroms is None and meta is not None:
        # the model's held-out windows, as fit chose them: on a held-out chromosome, or
        # with the start of the core inside a held-out region
        held = held_out_mask(meta, [w.chrom for w in meta_windows], [max(w.start, 1) for w in meta_windows],
                             model_dir)
        if held.any():
            only = {w.index for w, h in zip(meta_windows, held) if h}
            chosen = sorted({w.chrom for w in meta_windows if w.index in only})
    if only is None:
        chosen = chosen_chroms("all" if chroms is None else chroms, meta, wattrs["all_chroms"], dataset)
    # positions and LD scores only: the factors (G, P) are read chromosome by chromosome
    # below, when a model's expected chi^2 needs them, so memory stays one chromosome's
    windows, wattrs = load_windows(dataset, chroms=chosen, meta_only=True, check_dataset=False)
    if only is not None:
        windows = [w for w in windows if w.index in only]
    if not windows:
        raise UserError(f"no window on chromosome(s) {', '.join(map(str, chosen))}", path=dataset)
    intercept, h2 = ldsr_intercept(windows, var["z"], var["n"], var["N"])
    idx = np.concatenate([w.core_idx for w in windows])
    l_all = np.concatenate([w.ld_score for w in windows]).astype(np.float64)
    chi2, n = var["z"][idx] ** 2, np.where(var["n"][idx] > 0, var["n"][idx], var["N"])
    # the variants the regression used (ldsr_intercept drops the same)
    ok = np.isfinite(chi2) & np.isfinite(l_all) & np.isfinite(n)
    l, chi2, n, idx = np.maximum(l_all[ok], 1.0), chi2[ok], n[ok], idx[ok]
    M = len(l)
    bins = equal_count_bins(l, n_bins)
    out = {"chroms": chosen, "ld_score": l, "chi2": chi2, "index": idx, "bins": bins,
           "bin_ld_score": np.array([l[b].mean() for b in bins]), "intercept": intercept, "h2": h2,
           "slope": h2 * float(n.mean()) / M, "n_variants": M}
    out["bin_chi2"], out["bin_chi2_se"] = _bin_stats(chi2, bins)
    if model_dir is not None:
        obj = lookup("objectives", "ldsr")()
        s2 = float(meta["sigma2"]) / float(wattrs["N"])
        f = torch.as_tensor(np.exp(log_f), dtype=torch.float64)
        by_window = {}
        for c in sorted({w.chrom for w in windows}):
            full, _ = load_windows(dataset, chroms=[c], dtype="float64", check_dataset=False)
            with torch.no_grad():
                for w in full:
                    by_window[w.index] = obj.expected_chi2(w, f[torch.as_tensor(w.plus_idx)],
                                                           torch.tensor(s2, dtype=torch.float64)).numpy()
        expected = np.concatenate([by_window[w.index] for w in windows])
        expected = expected[ok]
        if not np.isfinite(expected).all():
            raise UserError("the model's expected chi2 is not finite on every variant", path=model_dir)
        out["expected_chi2"] = expected
        out["bin_expected_chi2"] = np.array([expected[b].mean() for b in bins])
        out["sigma2"] = float(meta["sigma2"])
    return out


def plot_ldsr(dataset, out_dir, model_dir=None, chroms="all", n_bins=N_BINS, fasta=None,
              name: str = "ldsr.png") -> _draw.Plot:
    """Write ``out_dir/ldsr.png``: mean chi^2 per LD-score bin with +-1 SE, the LD
    score regression line, and with a model its expected chi^2 per bin.
    ``data``: :func:`ldsr_bins`'s dict."""
    d = ldsr_bins(dataset, model_dir=model_dir, chroms=chroms, n_bins=n_bins, fasta=fasta)
    path = _draw.out_path(out_dir, name)
    fig = _draw.figure(7, 5)
    ax = fig.add_subplot(1, 1, 1)
    ax.errorbar(d["bin_ld_score"], d["bin_chi2"], yerr=d["bin_chi2_se"], fmt="o", ms=4, capsize=2, lw=1,
                label=f"mean chi2 in {len(d['bins'])} LD-score bins (+-1 SE)")
    xs = np.array([0.0, float(d["ld_score"].max())])
    ax.plot(xs, d["intercept"] + d["slope"] * xs, color="C3", lw=1.5,
            label=f"LD score regression: intercept {d['intercept']:.3g}, h2 {d['h2']:.3g}")
    if "bin_expected_chi2" in d:
        ax.plot(d["bin_ld_score"], d["bin_expected_chi2"], "s-", ms=3, lw=1, color="C2",
                label=f"expected chi2 under {Path(model_dir).name} (sigma2 {d['sigma2']:.3g})")
    ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
    ax.set_xlabel("LD score (bias-corrected, floored at 1)")
    ax.set_ylabel("chi2 = z^2")
    ax.set_title(f"{Path(dataset).name}: {d['n_variants']} variants on chr {','.join(map(str, d['chroms']))}",
                 fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _draw.Plot(_draw.save(fig, path), d)
