"""``varfx evaluate``: held-out log-likelihood of a fitted prior (paper Sec. 6.2).

For every window of the chosen chromosomes we compute the exact Gaussian
log-likelihood of the summary statistics under the fitted prior, ``LL(F)``, and under
``F = 0`` (noise only), ``LL(0)``, with the exact Cholesky solver in float64 whatever
solver trained the model.  ``dLL = LL(F) - LL(0)``, and the likelihood increase per
person is ``100 (exp(dLL / N) - 1)`` percent.

Besides: h2 (sum of F over the evaluated core variants), enrichment of each scalar
feature and h2 by quintile of f, each with a block-jackknife standard error
(:mod:`varfx.stages.jackknife`); RMSE of log F against a truth; and comparison mode,
several models ranked on the same windows (:func:`run_compare`).  docs/evaluate.md
lists every JSON key.
"""

from __future__ import annotations

import contextlib
import math
import sys

import numpy as np

from ..errors import UserError
from ..store.dataset import open_dataset
from ..store.windows import load_windows
from ..store.model import load_model, model_output
from ..store.variants import model_batch, predict_log_f
from ..features.store import feature_names
from ..store.variants import feature_matrix
from . import jackknife as jk
from .jackknife import DEFAULT_BLOCKS
from ..store.truth import read_truth_column, truth_columns

#: the fine-mapping measures a likelihood-trained prior gets with a ``causal`` truth
FINE_MAPPING_KEYS = ("n_bags", "n_negatives", "r2_min", "n_bags_with_causal", "n_pairs", "auroc_within_bags",
                     "auroc_within_bags_abs_z", "top1_within_bags", "top1_chance", "auroc_causal_vs_negatives")
#: ``run_evaluate(chroms=HOLDOUT)``: the chromosomes the model held out of training.
HOLDOUT = "holdout"
#: what ``--truth`` (of variances) adds to a result, and to a comparison's entries
TRUTH_KEYS = ("rmse_log_f", "bias_log_f", "sd_log_f_error", "slope_log_f", "n_truth", "h2_true")
#: the per-base tracks a small prior's refits hold in memory at most (bytes); beyond
#: that the refit gives the prior its scalar features and frequencies only
TRACKS_IN_MEMORY = 1 << 30


def window_loglik_terms(windows, f, s2):
    """Exact per-window (LL(F), LL(0)) as two float64 arrays (0 for a window with k = 0)."""
    import torch

    from ..plugins import lookup

    # through the registry, as every stage reaches plugins: the exact likelihood with
    # the exact solver, whatever objective and solver trained the model
    obj = lookup("objectives", "full")(solver=lookup("solvers", "cholesky")())
    ft = torch.as_tensor(f, dtype=torch.float64)
    s2t = torch.tensor(s2, dtype=torch.float64)
    ll, ll0 = np.zeros(len(windows)), np.zeros(len(windows))
    with torch.no_grad():
        for i, w in enumerate(windows):
            if w.k == 0:
                continue
            fp = ft[torch.as_tensor(w.plus_idx)]
            ll[i] = -float(obj.window_loss(w, fp, s2t))
            ll0[i] = -float(obj.window_loss(w, torch.zeros_like(fp), s2t))
    return ll, ll0


def window_logliks(windows, f, s2):
    """Exact (LL(F), LL(0)) summed over windows, float64."""
    ll, ll0 = window_loglik_terms(windows, f, s2)
    return float(ll.sum()), float(ll0.sum())


def _finite_non_negative(text):
    value = float(text)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(text)
    return value


def read_truth(path, snps, column="F") -> np.ndarray:
    """True F per dataset variant from a TSV with columns SNP and ``column`` (``F`` in
    the truth.tsv of ``varfx simulate``; ``--truth-col``), NaN where absent.

    The value must be a finite number >= 0 on every row."""
    return read_truth_column(path, snps, column, _finite_non_negative, "a finite number >= 0", np.nan, np.float64)


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
        regions = _regions(meta, model_dir)
        held = sorted(set(held) | {r.code for r in regions})
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


def _regions(meta, model_dir):
    """The model's ``holdout_regions`` (``fit --holdout-region``) as region objects."""
    from ..genome import parse_region

    texts = meta.get("holdout_regions") or []
    if not isinstance(texts, list):
        raise UserError(f"holdout_regions is {texts!r}: expected a list of regions", path=f"{model_dir}/model.json")
    return [parse_region(t, "holdout_regions") for t in texts]


def model_split(meta, store, model_dir="") -> tuple[set, set]:
    """(training, held-out) window indices of ``store`` as ``fit`` split them: held-out
    chromosomes and regions validate, buffer windows are in neither
    (:func:`varfx.train.setup.select`)."""
    from ..train.setup import select

    held = set(int(c) for c in meta.get("holdout_chroms") or [])
    train, val = select(store.meta_windows, held, _regions(meta, model_dir))
    return {w.index for w in train}, {w.index for w in val}


class _Windows:
    """The window store of a dataset, read once per set of chromosomes (comparison mode
    evaluates several models on the same windows, and their training windows coincide)."""

    def __init__(self, dataset):
        self.dataset = dataset
        meta_windows, attrs = load_windows(dataset, dtype="float64", meta_only=True)
        self.meta_windows = meta_windows
        self.all_chroms = attrs["all_chroms"]
        self.max_n_plus = max((w.n_plus for w in meta_windows), default=0)
        self._cache = {}

    def get(self, chroms):
        key = tuple(sorted(int(c) for c in chroms))
        if key not in self._cache:
            self._cache[key] = load_windows(self.dataset, chroms=list(key), dtype="float64", check_dataset=False)
        return self._cache[key]


def run_evaluate(model_dir, dataset, chroms=HOLDOUT, truth=None, fasta=None, truth_col="F",
                 blocks=DEFAULT_BLOCKS) -> dict:
    """Held-out log-likelihood of a fitted model on a dataset's windows, with
    block-jackknife standard errors (``blocks``: how many; 0 for none).

    ``chroms``: ``HOLDOUT`` (the model's held-out chromosomes), None (every chromosome)
    or a list; a chromosome the window store lacks is an error naming what it has.
    ``fasta``: the FASTA a prior that reads DNA reads instead of the dataset's.
    ``truth_col``: the column of true prior variances in ``truth``."""
    meta, module = load_model(model_dir)
    if model_output(meta) == "logit":
        return _evaluate_fine_mapping(model_dir, dataset, meta, module, chroms, truth, fasta)
    store = _Windows(dataset)
    chosen = _chosen_chroms(chroms, meta, store.all_chroms, model_dir, dataset)
    # the default evaluates exactly the windows fit held out (regions included)
    only = model_split(meta, store, model_dir)[1] if chroms == HOLDOUT else None
    result, _ = evaluate_likelihood(model_dir, dataset, meta, module, store, chosen, truth=truth, fasta=fasta,
                                    truth_col=truth_col, blocks=blocks, only=only)
    return result


def _check_blocks(blocks):
    if not (isinstance(blocks, int) and blocks >= 0) or blocks == 1:
        raise UserError(f"option --blocks: expected 0 (no standard errors) or a whole number >= 2, got {blocks!r}")


def evaluate_likelihood(model_dir, dataset, meta, module, store, chosen, *, truth=None, fasta=None, truth_col="F",
                        blocks=DEFAULT_BLOCKS, progress=None, only=None):
    """The likelihood measures of one model on the windows of ``chosen`` (a list of
    chromosomes of ``store``, a :class:`_Windows`; ``only``: a set of window indices to
    keep of them), and the per-window log-likelihoods ``(ll, ll0)`` in genome order (what
    comparison mode pairs across models)."""
    _check_blocks(blocks)
    with _threads(store):
        return _evaluate_likelihood(model_dir, dataset, meta, module, store, chosen, truth=truth, fasta=fasta,
                                    truth_col=truth_col, blocks=blocks, progress=progress, only=only)


@contextlib.contextmanager
def _threads(store):
    """One torch thread for small windows, as ``fit`` uses (intra-op threads cost more
    than they give on windows of a few hundred variants, and far more when other
    processes load the cores); the caller's setting is restored."""
    import torch

    from ..train.setup import SMALL_WINDOW

    before = torch.get_num_threads()
    if store.max_n_plus <= SMALL_WINDOW:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _evaluate_likelihood(model_dir, dataset, meta, module, store, chosen, *, truth, fasta, truth_col, blocks,
                         progress, only=None):
    windows, wattrs = store.get(chosen)
    if only is not None:
        windows = [w for w in windows if w.index in only]
    windows = sorted(windows, key=lambda w: (w.chrom, w.start, w.index))  # blocks are runs of the genome
    notes: list[str] = []
    with open_dataset(dataset) as h5:
        log_f = predict_log_f(module, h5, batch=model_batch(meta, h5, fasta, notes=notes))
        snps = h5["variants"]["snp"].asstr()[:] if truth else None
        features = feature_matrix(h5)
        names = feature_names(h5["features"])["scalar"] if features is not None else []
    for message in notes:
        print(f"Note: {message}", file=sys.stderr)
    bad = ~np.isfinite(log_f)
    if bad.any():
        raise UserError(f"the model gives a non-finite F for {int(bad.sum())} variants of the dataset "
                        f"(first: variant {int(np.flatnonzero(bad)[0])})", path=model_dir)
    f = np.exp(log_f)
    sigma2 = float(meta["sigma2"])
    N = float(wattrs["N"])
    ll_w, ll0_w = window_loglik_terms(windows, f, sigma2 / N)
    ll, ll0 = float(ll_w.sum()), float(ll0_w.sum())
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
    # held-out sums: jackknife over blocks of the evaluated windows (no refit)
    B = jk.n_blocks(len(windows), blocks)
    result["n_blocks"] = B
    if B >= 2:
        eblocks = jk.contiguous_blocks(len(windows), B)
        reps = jk.sum_replicates(ll_w - ll0_w, eblocks)
        result["delta_loglik_se"] = jk.jackknife_se(reps)
        result["pct_increase_per_person_se"] = jk.jackknife_se(100.0 * np.expm1(reps / N))
    else:
        result["delta_loglik_se"] = result["pct_increase_per_person_se"] = None
    result.update(_prior_quantities(model_dir, dataset, meta, module, store, log_f, core, features, names,
                                    blocks, N, progress))
    if truth and truth_col == "F" and truth_columns(truth) == "causal":
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
        true_f = read_truth(truth, snps, truth_col)[core]
        ok = np.isfinite(true_f) & (true_f > 0)
        if not ok.any():
            raise UserError(f"no evaluated variant has a positive true value in column {truth_col!r}", path=truth)
        result.update(truth_errors(log_f[core][ok], np.log(true_f[ok])))
        # the truth's h2 over every evaluated core variant (a true 0 adds nothing)
        result["h2_true"] = float(np.nansum(true_f))
    return result, (ll_w, ll0_w)


def truth_errors(log_f, true_log_f) -> dict:
    """How the fitted ``log f`` misses the truth's, over variants with a positive true F.

    ``rmse_log_f`` is split as ``rmse^2 = bias^2 + sd^2``: ``bias_log_f``, the mean of
    ``log f - log F`` (a level error: a wrong h2, or an attenuated shape, whose
    correctly scaled ``sum f`` puts the typical variant's ``log f`` above the truth's),
    and ``sd_log_f_error``, the SD of the error about that mean (the shape error).
    ``slope_log_f`` is the least-squares slope of ``log f`` on ``log F``: 1 when the
    fitted contrasts between variants are the truth's, below 1 when they are attenuated
    (None when the truth is constant on these variants)."""
    err = log_f - true_log_f
    spread = float(np.var(true_log_f))
    slope = None
    if spread > 1e-12 * max(1.0, float(np.mean(true_log_f ** 2))):
        slope = float(np.mean((true_log_f - true_log_f.mean()) * (log_f - log_f.mean())) / spread)
    return {"rmse_log_f": float(np.sqrt(np.mean(err ** 2))), "bias_log_f": float(err.mean()),
            "sd_log_f_error": float(err.std()), "slope_log_f": slope, "n_truth": int(err.size)}


def _groups(log_f_core, features, names, core):
    """The variant groups whose share of h2 is reported: each scalar feature's
    annotated variants (binary: the larger of its two values; continuous: its top
    quintile) and the quintiles of the predicted f, over the evaluated core variants."""
    enrich = []
    if features is not None:
        x = features[core]
        for j, name in enumerate(names):
            col = x[:, j]
            values = np.unique(col)
            if len(values) < 2:
                continue  # constant on the evaluated variants: no share to compare
            if len(values) == 2:
                enrich.append((name, "binary", col == values[1]))
            else:
                top = col >= np.quantile(col, 0.8)
                if top.all():  # most variants tie at the cut: take those strictly above it
                    top = col > np.quantile(col, 0.8)
                if top.any():
                    enrich.append((name, "top_quintile", top))
    # quintiles of the fitted f (ranks, so that ties such as a constant prior's equal f
    # still split into five groups of equal size)
    order = np.argsort(log_f_core, kind="stable")
    q = np.empty(len(order), dtype=np.int64)
    q[order] = np.arange(len(order)) * 5 // max(len(order), 1)
    quint = [q == i for i in range(5)]
    return enrich, quint


def _prior_quantities(model_dir, dataset, meta, module, store, log_f, core, features, names, blocks, N, progress):
    """h2 with its jackknife SE, enrichment and h2 by quintile of f (docs/evaluate.md)."""
    log_f_core = log_f[core]
    enrich, quint = _groups(log_f_core, features, names, core)
    masks = [m for _, _, m in enrich] + quint

    def stats(lf):
        f = np.exp(lf)
        h2 = f.sum()
        parts = np.array([f[m].sum() for m in masks])
        return np.concatenate([[h2], parts, parts / h2])

    full = stats(log_f_core)
    se, why, refits = _refit_se(model_dir, dataset, meta, module, store, log_f, core, stats, blocks, N, progress)
    K = len(masks)
    out = {"h2_se": None if se is None else float(se[0]), "h2_se_method": why}
    if refits is not None:
        out.update(h2_se_blocks=refits.n_blocks, h2_se_sigma2=refits.sigma2,
                   h2_se_newton_iterations=refits.max_newton_iterations,
                   h2_se_lbfgs_fallbacks=refits.lbfgs_fallbacks, h2_se_seconds=refits.seconds)
    else:
        out.update(h2_se_blocks=0)
    n = len(core)
    out["enrichment"] = []
    for i, (name, kind, m) in enumerate(enrich):
        share_v = float(m.sum()) / n
        share_h2 = float(full[1 + K + i])
        rec = {"feature": name, "kind": kind, "n_variants": int(m.sum()), "share_variants": share_v,
               "share_h2": share_h2, "share_h2_se": None, "enrichment": share_h2 / share_v, "enrichment_se": None}
        if se is not None:
            rec["share_h2_se"] = float(se[1 + K + i])
            rec["enrichment_se"] = float(se[1 + K + i]) / share_v
        out["enrichment"].append(rec)
    out["h2_by_f_quintile"] = []
    for qi, m in enumerate(quint):
        i = len(enrich) + qi
        rec = {"quintile": qi + 1, "n_variants": int(m.sum()),
               "f_min": float(np.exp(log_f_core[m].min())) if m.any() else None,
               "f_max": float(np.exp(log_f_core[m].max())) if m.any() else None,
               "h2": float(full[1 + i]), "h2_se": None if se is None else float(se[1 + i]),
               "share_h2": float(full[1 + K + i]), "share_h2_se": None if se is None else float(se[1 + K + i])}
        out["h2_by_f_quintile"].append(rec)
    return out


def training_windows(meta, store):
    """(windows the model trained on, None) from the evaluated dataset's window store,
    or (None, why not): the store's windows on the chromosomes the model did not hold
    out, checked against the counts model.json records."""
    trained, _ = model_split(meta, store)
    chroms = sorted({w.chrom for w in store.meta_windows if w.index in trained})
    if not chroms:
        return None, "none: the dataset has no windows on the chromosomes the model trained on"
    windows, _ = store.get(chroms)
    train = sorted((w for w in windows if w.k > 0 and w.index in trained), key=lambda w: (w.chrom, w.start, w.index))
    n_w, n_v = meta.get("n_train_windows"), meta.get("n_train_variants")
    have = int(sum(w.n for w in train))
    if (n_w is not None and n_w != len(train)) or (n_v is not None and n_v != have):
        return None, (f"none: the dataset's windows on the training chromosomes ({len(train)} windows, {have} "
                      f"variants) are not those the model trained on ({n_w} windows, {n_v} variants in "
                      "model.json): evaluate on the model's dataset for h2_se")
    return train, None


def _refit_se(model_dir, dataset, meta, module, store, log_f, core, stats, blocks, N, progress):
    """(SE vector of ``stats`` or None, h2_se_method, Refits or None)."""
    if blocks == 0:
        return None, "none: --blocks 0", None
    train, why = training_windows(meta, store)
    if train is None:
        return None, why, None
    B = jk.n_blocks(len(train), blocks)
    if B < 2:
        return None, f"none: {len(train)} training window (at least 2 are needed for a jackknife)", None
    if not (isinstance(meta.get("sigma2"), (int, float)) and meta["sigma2"] > 0):
        return None, "none: model.json records no sigma2", None
    import torch

    from ..store.variants import variant_batch

    with open_dataset(dataset) as h5:
        z_all = h5["variants"]["z"][:]
        n_all = h5["variants"]["n"][:]
        n_params = sum(p.numel() for p in module.parameters() if p.requires_grad)
        batch = None
        if n_params <= jk.EXACT_MAX_PARAMS:
            batch = model_batch(meta, h5)
            if batch is None:
                tracks = "features" in h5 and "window" in h5["features"] and \
                    h5["features"]["window"].size * 2 <= TRACKS_IN_MEMORY
                batch = variant_batch(h5, dtype="float64", tracks=tracks)
    module = module.to(torch.float64) if n_params <= jk.EXACT_MAX_PARAMS else module
    try:
        refits = jk.refit_blocks(module, meta, train, batch, core, stats, blocks=jk.contiguous_blocks(len(train), B),
                                 z_all=z_all, n_all=n_all, N=N, base_log_f=log_f, progress=progress)
    except jk.RefitFailed as exc:
        # the likelihood measures stand without it; the JSON says why there is no SE
        return None, f"none: {exc}", None
    return jk.jackknife_se(refits.replicates), refits.method, refits


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


# ------------------------------------------------------------------ comparison mode


def run_compare(model_dirs, dataset, chroms=HOLDOUT, truth=None, fasta=None, truth_col="F",
                blocks=DEFAULT_BLOCKS) -> dict:
    """``varfx evaluate MODEL_A MODEL_B ... DATASET``: several models on the same windows,
    ranked (docs/evaluate.md, "Comparison mode")."""
    from pathlib import Path

    _check_blocks(blocks)
    models = [(str(d), *load_model(d)) for d in model_dirs]
    kinds = {d: model_output(meta) for d, meta, _ in models}
    if len(set(kinds.values())) > 1:
        fm = next(d for d, k in kinds.items() if k == "logit")
        ll = next(d for d, k in kinds.items() if k == "log_f")
        raise UserError(f"cannot rank a fine-mapping model ({fm}: its prior outputs a logit) with a "
                        f"likelihood-trained one ({ll}) on one scale; compare them separately")
    if kinds[models[0][0]] == "logit":
        return _compare_fine_mapping(models, dataset, chroms, truth, fasta)
    store = _Windows(dataset)
    first_dir, first_meta, _ = models[0]
    chosen = _chosen_chroms(chroms, first_meta, store.all_chroms, first_dir, dataset)
    held = {d: set(int(c) for c in meta.get("holdout_chroms") or []) for d, meta, _ in models}
    splits = {d: model_split(meta, store, d) for d, meta, _ in models}
    # the evaluated windows: the first model's held-out ones by default, else the chosen chromosomes'
    only = splits[first_dir][1] if chroms == HOLDOUT else None
    evaluated = only if only is not None else {w.index for w in store.meta_windows if w.chrom in set(chosen)}
    by_index = {w.index: w for w in store.meta_windows}
    trained_on = {d: sorted({by_index[i].chrom for i in splits[d][0] & evaluated}) for d in splits}
    if chroms == HOLDOUT:
        for d, _, _ in models[1:]:
            if trained_on[d]:
                common = sorted(set.intersection(*held.values()) & set(store.all_chroms))
                hint = (f"give --chroms {','.join(map(str, common))} (held out by every model)" if common
                        else "no chromosome is held out by every model")
                raise UserError(f"trained on windows of chromosome {', '.join(map(str, trained_on[d]))} that "
                                f"{first_dir} held out: the comparison would be in-sample for one model only; "
                                f"{hint}, or --chroms to compare on chosen chromosomes anyway", path=d)
    else:
        mixed = [d for d in trained_on if trained_on[d]]
        if mixed and len(mixed) < len(models):
            print(f"Note: in-sample for {', '.join(mixed)} (trained on some of the evaluated chromosomes), "
                  "held out for the others: their log-likelihoods do not compare fairly", file=sys.stderr)
    results, terms = [], []
    for d, meta, module in models:
        res, (ll_w, _) = evaluate_likelihood(d, dataset, meta, module, store, chosen, truth=truth, fasta=fasta,
                                             truth_col=truth_col, blocks=blocks, only=only)
        results.append(res)
        terms.append(ll_w)
    n_windows = results[0]["n_windows"]
    B = jk.n_blocks(n_windows, blocks)
    eblocks = jk.contiguous_blocks(n_windows, B) if B >= 2 else None

    def paired(a, b):
        diff = float(terms[a].sum() - terms[b].sum())
        if eblocks is None or a == b:
            return diff, (0.0 if a == b else None)
        return diff, jk.jackknife_se(jk.sum_replicates(terms[a] - terms[b], eblocks))

    # the log-likelihood of the same data ranks the models (with a common sigma^2, the
    # usual case, this is the order of delta_loglik; with different sigma^2 their null
    # likelihoods differ and only LL(F) compares)
    order = sorted(range(len(models)), key=lambda i: -results[i]["loglik"])
    best = order[0]
    entries = []
    for rank, i in enumerate(order, start=1):
        d, meta, _ = models[i]
        r = results[i]
        dvb, dvb_se = paired(i, best)
        dvf, dvf_se = paired(i, 0)
        entry = {"model": d, "name": Path(d).resolve().name, "prior": r["prior"], "objective": r["objective"],
                 "loglik": r["loglik"], "delta_loglik": r["delta_loglik"], "delta_loglik_se": r["delta_loglik_se"],
                 "pct_increase_per_person": r["pct_increase_per_person"],
                 "pct_increase_per_person_se": r["pct_increase_per_person_se"],
                 "h2": r["h2"], "h2_se": r["h2_se"], "h2_se_method": r["h2_se_method"], "rank": rank,
                 "diff_vs_best": dvb, "diff_vs_best_se": dvb_se, "diff_vs_first": dvf, "diff_vs_first_se": dvf_se,
                 "sigma2": r["sigma2"], "held_out": not trained_on[d]}
        for key in TRUTH_KEYS:
            if key in r:
                entry[key] = r[key]
        entries.append(entry)
    return {"comparison": True, "rank_by": "loglik", "dataset": str(dataset), "chroms": results[0]["chroms"],
            "n_windows": n_windows, "n_blocks": B, "models": entries}


def _compare_fine_mapping(models, dataset, chroms, truth, fasta):
    """Fine-mapping models ranked by within-bag AUROC (needs a ``causal`` truth); no
    jackknife: the bags are few and their pairs are not blocks of the genome."""
    from pathlib import Path

    if not truth or truth_columns(truth) != "causal":
        raise UserError("comparing fine-mapping models ranks them by within-bag AUROC, which needs --truth with "
                        "columns SNP and causal")
    first_dir, first_meta, _ = models[0]
    available = sorted({int(b.chrom) for b in _bags(dataset).positives})
    chosen = _chosen_chroms(chroms, first_meta, available, first_dir, dataset)
    results = [_evaluate_fine_mapping(d, dataset, meta, module, chosen, truth, fasta) for d, meta, module in models]
    order = sorted(range(len(models)), key=lambda i: -results[i]["auroc_within_bags"])
    best = results[order[0]]["auroc_within_bags"]
    entries = []
    for rank, i in enumerate(order, start=1):
        d, r = models[i][0], results[i]
        entries.append({"model": d, "name": Path(d).resolve().name, "prior": r["prior"], "objective": r["objective"],
                        "auroc_within_bags": r["auroc_within_bags"], "top1_within_bags": r["top1_within_bags"],
                        "delta_loglik": None, "delta_loglik_se": None, "pct_increase_per_person": None,
                        "pct_increase_per_person_se": None, "h2": None, "h2_se": None, "rank": rank,
                        "diff_vs_best": r["auroc_within_bags"] - best, "diff_vs_best_se": None,
                        "diff_vs_first": r["auroc_within_bags"] - results[0]["auroc_within_bags"],
                        "diff_vs_first_se": None})
    return {"comparison": True, "rank_by": "auroc_within_bags", "dataset": str(dataset), "chroms": list(chosen),
            "n_windows": None, "n_blocks": None, "n_bags": results[0]["n_bags"], "models": entries}


# ------------------------------------------------------------------ tables (stderr)


def _pm(value, se, fmt="{:.4g}"):
    if value is None:
        return "-"
    text = fmt.format(value)
    return text if se is None else f"{text} ± {fmt.format(se)}"


def print_evaluation(result: dict) -> None:
    """The summary table, then enrichment and h2 by quintile of f when there are any."""
    from rich.table import Table

    from ..ui import console, print_summary

    print_summary("evaluate", {k: v for k, v in result.items() if k not in ("enrichment", "h2_by_f_quintile")})
    con = console()
    if result.get("enrichment"):
        t = Table(title="enrichment (share of h2 / share of variants)")
        for c in ("feature", "kind", "variants", "share of variants", "share of h2", "enrichment"):
            t.add_column(c, justify="left" if c in ("feature", "kind") else "right")
        for e in result["enrichment"]:
            t.add_row(e["feature"], e["kind"], str(e["n_variants"]), f"{e['share_variants']:.3f}",
                      _pm(e["share_h2"], e["share_h2_se"], "{:.3f}"),
                      _pm(e["enrichment"], e["enrichment_se"], "{:.3f}"))
        con.print(t)
    if result.get("h2_by_f_quintile"):
        t = Table(title="h2 by quintile of the predicted f")
        for c in ("quintile", "variants", "f range", "h2", "share of h2"):
            t.add_column(c, justify="right")
        for q in result["h2_by_f_quintile"]:
            rng = "-" if q["f_min"] is None else f"{q['f_min']:.3g}-{q['f_max']:.3g}"
            t.add_row(str(q["quintile"]), str(q["n_variants"]), rng, _pm(q["h2"], q["h2_se"]),
                      _pm(q["share_h2"], q["share_h2_se"], "{:.3f}"))
        con.print(t)


def print_comparison(result: dict) -> None:
    from rich.table import Table

    from ..ui import console

    fm = result.get("rank_by") == "auroc_within_bags"
    where = f"chromosomes {', '.join(map(str, result['chroms']))}"
    if not fm:
        where += f", {result['n_windows']} windows, {result['n_blocks']} jackknife blocks"
    t = Table(title=f"varfx evaluate: {len(result['models'])} models on {where}")
    cols = ["rank", "model", "prior/objective"]
    cols += (["within-bag AUROC", "top-1", "vs best"] if fm else ["delta LL", "% per person", "h2", "LL vs best"])
    if any("rmse_log_f" in m for m in result["models"]):
        cols.append("RMSE log f")
    for c in cols:
        t.add_column(c, justify="left" if c in ("model", "prior/objective") else "right")
    for m in result["models"]:
        if fm:
            row = [f"{m['auroc_within_bags']:.3f}", f"{m['top1_within_bags']:.3f}", f"{m['diff_vs_best']:+.3f}"]
        else:
            row = [_pm(m["delta_loglik"], m["delta_loglik_se"], "{:.1f}"),
                   _pm(m["pct_increase_per_person"], m["pct_increase_per_person_se"], "{:.3g}"),
                   _pm(m["h2"], m["h2_se"], "{:.3g}"), _pm(m["diff_vs_best"], m["diff_vs_best_se"], "{:.1f}")]
        if "RMSE log f" in cols:
            row.append(f"{m['rmse_log_f']:.3f}" if m.get("rmse_log_f") is not None else "-")
        t.add_row(str(m["rank"]), m["name"], f"{m['prior']}/{m['objective']}", *row)
    console().print(t)
