"""``varfx evaluate``: held-out log-likelihood of a fitted prior (paper Sec. 6.2).

For every window of the chosen chromosomes we compute the exact Gaussian
log-likelihood of the summary statistics under the fitted prior, ``LL(F)``, and under
``F = 0`` (noise only), ``LL(0)``, with the exact Cholesky solver in float64 whatever
solver trained the model.  ``dLL = LL(F) - LL(0)``, and the likelihood increase per
person is ``100 (exp(dLL / N) - 1)`` percent.
"""

from __future__ import annotations

import csv
import math

import numpy as np

from ..errors import UserError
from .model import load_model, predict_log_f
from .precompute import load_windows, open_dataset


def window_logliks(windows, f, s2):
    """Exact (LL(F), LL(0)) summed over windows, float64."""
    import torch

    from ..default_plugins.objectives import FullLikelihood
    from ..default_plugins.solvers import CholeskySolver

    obj = FullLikelihood(solver=CholeskySolver())
    ft = torch.as_tensor(f, dtype=torch.float64)
    s2t = torch.tensor(s2, dtype=torch.float64)
    ll, ll0 = 0.0, 0.0
    with torch.no_grad():
        for w in windows:
            if w.k == 0:
                continue
            fp = ft[torch.as_tensor(w.plus_idx)]
            ll -= float(obj.window_loss(w, fp, s2t))
            ll0 -= float(obj.window_loss(w, torch.zeros_like(fp), s2t))
    return ll, ll0


def read_truth(path, snps) -> np.ndarray:
    """True F per dataset variant from a TSV with columns SNP and F (NaN where absent)."""
    pos = {s: i for i, s in enumerate(snps)}
    out = np.full(len(snps), np.nan)
    with open(path, newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        header = next(reader, None)
        if header is None:
            raise UserError("empty truth file; expected a TSV with columns SNP and F", path=path)
        cols = {c.strip(): i for i, c in enumerate(header)}
        for col in ("SNP", "F"):
            if col not in cols:
                raise UserError(f"missing column {col!r} (header: {' '.join(header)})", path=path)
        for lineno, row in enumerate(reader, start=2):
            try:
                val = float(row[cols["F"]])
            except (ValueError, IndexError):
                raise UserError("expected a number in column 'F'", path=path, line=lineno) from None
            i = pos.get(row[cols["SNP"]])
            if i is not None:
                out[i] = val
    return out


def run_evaluate(model_dir, dataset, chroms=(6, 7, 8), truth=None) -> dict:
    meta, module = load_model(model_dir)
    windows, wattrs = load_windows(dataset, chroms=chroms, dtype="float64")
    if not windows:
        raise UserError(
            f"no windows on chromosomes {', '.join(map(str, chroms))} "
            f"(the dataset has chromosomes {', '.join(map(str, wattrs['all_chroms']))}; use --chroms)",
            path=dataset)
    with open_dataset(dataset) as h5:
        log_f = predict_log_f(module, h5)
        snps = h5["variants"]["snp"].asstr()[:] if truth else None
    f = np.exp(log_f)
    sigma2 = float(meta["sigma2"])
    N = float(wattrs["N"])
    ll, ll0 = window_logliks(windows, f, sigma2 / N)
    dll = ll - ll0
    core = np.concatenate([w.core_idx for w in windows])
    result = {
        "loglik": ll, "loglik_null": ll0, "delta_loglik": dll,
        "pct_increase_per_person": 100.0 * math.expm1(dll / N),
        "N": N, "sigma2": sigma2, "n_variants": int(len(core)), "n_windows": len(windows),
        "chroms": sorted({w.chrom for w in windows}),
        "h2": float(f[core].sum()),
        "prior": meta["prior"]["name"], "objective": meta["objective"]["name"],
        "train_loss": meta["curve"][-1]["train_loss"] if meta.get("curve") else None,
        "val_loss": meta["curve"][-1].get("val_loss") if meta.get("curve") else None,
    }
    if truth:
        true_f = read_truth(truth, snps)[core]
        ok = np.isfinite(true_f) & (true_f > 0)
        if not ok.any():
            raise UserError("no evaluated variant has a positive true F", path=truth)
        result["rmse_log_f"] = float(np.sqrt(np.mean((np.log(true_f[ok]) - log_f[core][ok]) ** 2)))
        result["n_truth"] = int(ok.sum())
    return result
