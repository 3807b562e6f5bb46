"""``varfx evaluate``: held-out log-likelihood of a fitted prior (paper Sec. 6.2).

For every window of the chosen chromosomes we compute the exact Gaussian
log-likelihood of the summary statistics under the fitted prior, ``LL(F)``, and under
``F = 0`` (noise only), ``LL(0)``, with the exact Cholesky solver in float64 whatever
solver trained the model.  ``dLL = LL(F) - LL(0)``, and the likelihood increase per
person is ``100 (exp(dLL / N) - 1)`` percent.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from ..errors import UserError
from ..store.dataset import open_dataset
from ..store.windows import load_windows
from ..store.model import load_model, model_output
from ..store.variants import model_batch, predict_log_f
from .truth import read_truth_column, truth_columns

#: the fine-mapping measures a likelihood-trained prior gets with a ``causal`` truth
FINE_MAPPING_KEYS = ("n_bags", "n_negatives", "r2_min", "n_bags_with_causal", "n_pairs", "auroc_within_bags",
                     "auroc_within_bags_abs_z", "top1_within_bags", "top1_chance", "auroc_causal_vs_negatives")
#: ``run_evaluate(chroms=HOLDOUT)``: the chromosomes the model held out of training.
HOLDOUT = "holdout"


def window_logliks(windows, f, s2):
    """Exact (LL(F), LL(0)) summed over windows, float64."""
    import torch

    from ..plugins import lookup

    # through the registry, as every stage reaches plugins: the exact likelihood with
    # the exact solver, whatever objective and solver trained the model
    obj = lookup("objectives", "full")(solver=lookup("solvers", "cholesky")())
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


def _finite_non_negative(text):
    value = float(text)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(text)
    return value


def read_truth(path, snps) -> np.ndarray:
    """True F per dataset variant from a TSV with columns SNP and F (NaN where absent).

    F must be a finite number >= 0 on every row (a simulation's truth file)."""
    return read_truth_column(path, snps, "F", _finite_non_negative, "a finite number >= 0", np.nan, np.float64)


def _chosen_chroms(chroms, meta, available, model_dir, dataset):
    """The chromosomes to evaluate: the model's held-out ones by default (``HOLDOUT``),
    all (None) or a list; each must be in the window store."""
    from ..cli_types import parse_chroms

    if chroms == HOLDOUT:
        try:
            held = sorted(int(c) for c in meta.get("holdout_chroms") or [])
        except (TypeError, ValueError):
            raise UserError(f"holdout_chroms is {meta.get('holdout_chroms')!r}: expected a list of chromosome "
                            "numbers; give --chroms", path=f"{model_dir}/model.json") from None
        if not held:
            raise UserError("the model holds no chromosome out of training, so there is no default to evaluate "
                            f"on (the dataset has chromosomes {', '.join(map(str, available))}); give --chroms, "
                            "e.g. --chroms all for an in-sample fit", path=model_dir)
        missing = [c for c in held if c not in available]
        if missing:
            raise UserError(f"the model's held-out chromosomes ({', '.join(map(str, held))}) are not all in the "
                            f"dataset (it has {', '.join(map(str, available))}); give --chroms", path=dataset)
        return held
    if chroms is None:
        return list(available)
    return parse_chroms(",".join(map(str, chroms)), "--chroms", available=available)


def run_evaluate(model_dir, dataset, chroms=HOLDOUT, truth=None, fasta=None) -> dict:
    """Held-out log-likelihood of a fitted model on a dataset's windows.

    ``chroms``: ``HOLDOUT`` (the model's held-out chromosomes), None (every chromosome)
    or a list; a chromosome the window store lacks is an error naming what it has.
    ``fasta``: the FASTA a prior that reads DNA reads instead of the dataset's."""
    meta, module = load_model(model_dir)
    if model_output(meta) == "logit":
        return _evaluate_fine_mapping(model_dir, dataset, meta, module, chroms, truth, fasta)
    _, wattrs = load_windows(dataset, chroms=[], dtype="float64", meta_only=True)
    chosen = _chosen_chroms(chroms, meta, wattrs["all_chroms"], model_dir, dataset)
    windows, wattrs = load_windows(dataset, chroms=chosen, dtype="float64", check_dataset=False)
    notes: list[str] = []
    with open_dataset(dataset) as h5:
        log_f = predict_log_f(module, h5, batch=model_batch(meta, h5, fasta, notes=notes))
        snps = h5["variants"]["snp"].asstr()[:] if truth else None
    for message in notes:
        print(f"Note: {message}", file=sys.stderr)
    bad = ~np.isfinite(log_f)
    if bad.any():
        raise UserError(f"the model gives a non-finite F for {int(bad.sum())} variants of the dataset "
                        f"(first: variant {int(np.flatnonzero(bad)[0])})", path=model_dir)
    f = np.exp(log_f)
    sigma2 = float(meta["sigma2"])
    N = float(wattrs["N"])
    ll, ll0 = window_logliks(windows, f, sigma2 / N)
    if not (math.isfinite(ll) and math.isfinite(ll0)):
        raise UserError(f"non-finite log-likelihood on the chosen chromosomes (LL(F) = {ll}, LL(0) = {ll0})",
                        path=dataset)
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
    if truth and truth_columns(truth) == "causal":
        # a likelihood-trained prior ranked as a fine-mapping model: log f orders the
        # variants of each bag (docs/fine-mapping.md compares it with mil this way)
        from .evaluate_mil import run_evaluate_mil

        bag_chroms = sorted({int(b.chrom) for b in _bags(dataset).positives} & set(result["chroms"]))
        if not bag_chroms:
            raise UserError(f"no bags on the evaluated chromosomes ({', '.join(map(str, result['chroms']))})",
                            path=dataset)
        fm = run_evaluate_mil(model_dir, dataset, meta, module, bag_chroms, truth=truth,
                              predict=lambda m, h5: log_f)
        result.update({k: fm[k] for k in FINE_MAPPING_KEYS} | {"bag_chroms": bag_chroms})
    elif truth:
        true_f = read_truth(truth, snps)[core]
        ok = np.isfinite(true_f) & (true_f > 0)
        if not ok.any():
            raise UserError("no evaluated variant has a positive true F", path=truth)
        result["rmse_log_f"] = float(np.sqrt(np.mean((np.log(true_f[ok]) - log_f[core][ok]) ** 2)))
        result["n_truth"] = int(ok.sum())
    return result


def _bags(dataset):
    from ..store.bags import load_bags

    return load_bags(dataset)


def _evaluate_fine_mapping(model_dir, dataset, meta, module, chroms, truth, fasta=None):
    """A fine-mapping model is evaluated on the bags of the chosen chromosomes
    (:mod:`varfx.stages.evaluate_mil`), not on the likelihood of the windows."""
    from .evaluate_mil import run_evaluate_mil

    available = sorted({int(b.chrom) for b in _bags(dataset).positives})
    chosen = _chosen_chroms(chroms, meta, available, model_dir, dataset)
    return run_evaluate_mil(model_dir, dataset, meta, module, chosen, truth=truth,
                            predict=lambda m, h5: predict_log_f(m, h5, batch=model_batch(meta, h5, fasta)))
