"""``varfx plan``: what each stage of a run will cost, before starting it.

For a dataset (ingested; its windows need not be computed yet) this prices
precompute-ld, fit (per prior and objective), evaluate and score: time, peak memory and
disk, for a number of Dask workers (precompute) and GPUs or processes (fit), from costs
timed on this machine at run time (or read from a calibration file) and the scaling law
of each piece (:mod:`varfx.linalg.costs`; docs/scale.md, "Planning a run").

The windows are the ones precompute-ld would cut (:func:`varfx.store.windows.plan_windows`
with the same ``--window-kb``/``--flank-kb``); their kept rank ``k`` is read from an
existing windows.h5 computed with those options, else estimated from the LD correction
(the rank cap) and the panel size.  ``--variants V`` prices a genome of V variants at
the dataset's density: each window of the dataset counts ``V / M`` times (so the window
count scales by ``V / M`` and the windows keep their sizes).

Nothing is written (except ``--save-calibration FILE``, atomically).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..linalg import costs
from ..ui import human_seconds, human_size

#: ``--gpu-speedup`` when not given (not measured: see its comment in linalg/costs.py)
DEFAULT_GPU_SPEEDUP = costs.DEFAULT_GPU_SPEEDUP
STAGES = ("precompute-ld", "fit", "evaluate", "score")


# ---------------------------------------------------------------------------------------
# the windows


def window_plan(dataset, *, window_kb=1000, flank_kb=1000, variants=None, ld_correction="auto",
                max_rank_frac=None, eig_floor=None) -> dict:
    """The windows precompute-ld would compute (sizes ``n_plus``, ``n``, ``k`` and
    chromosome as arrays), with what the cost models need to know about the dataset."""
    from ..linalg.correction import check_correction_options, resolve_correction
    from ..linalg.window import core_rank_cap
    from ..store import DATASET_FILE
    from ..store.dataset import open_dataset
    from ..store.windows import plan_windows

    for name, val, ok, want in (("--window-kb", window_kb, lambda v: v > 0, "a positive size"),
                                ("--flank-kb", flank_kb, lambda v: v >= 0, "a size >= 0")):
        if not (isinstance(val, (int, float)) and math.isfinite(val) and ok(val)):
            raise UserError(f"option {name}: expected {want}, got {val}")
    if variants is not None and not (isinstance(variants, (int, float)) and math.isfinite(variants)
                                     and variants >= 1):
        raise UserError(f"option --variants: expected a number of variants >= 1, got {variants}")
    check_correction_options(ld_correction, max_rank_frac, eig_floor=eig_floor)
    dataset = Path(dataset)
    with open_dataset(dataset) as h5:
        chrom = h5["variants"]["chrom"][:].astype(np.int64)
        bp = h5["variants"]["bp"][:].astype(np.int64)
        n_ref = int(h5.attrs.get("n_ref", 0))
        gwas_n = float(h5.attrs["N"]) if "N" in h5.attrs else None
        kind = h5["ld"].attrs.get("kind") if "ld" in h5 else None
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        feats = h5["features"] if "features" in h5 else {}
        n_features = int(feats["scalar"].shape[1]) if "scalar" in feats and feats["scalar"].ndim == 2 else 0
        track = tuple(feats["window"].shape) if "window" in feats else None
    M = len(bp)
    if M == 0:
        raise UserError("the dataset has no variants", path=dataset / DATASET_FILE)
    specs = plan_windows(chrom, bp, int(round(window_kb * 1000)), int(round(flank_kb * 1000)))
    n_plus = np.array([len(s.plus_idx) for s in specs], np.int64)
    n = np.array([len(s.core_idx) for s in specs], np.int64)
    correction = resolve_correction(ld_correction, n_ref, int(n_plus.max()), max_rank_frac,
                                    path=dataset / DATASET_FILE, gwas_n=gwas_n, eig_floor=eig_floor)
    k, k_source = _stored_k(dataset, window_kb, flank_kb, correction, specs)
    if k is None:
        # the rank a window keeps: at most the rank cap of the LD correction, at most the
        # panel's rank (n_ref - 1 after centring), at most its core size, scaled by the
        # share of it the eigenvalue floor keeps on a few sampled windows; the
        # eigen-threshold may keep fewer (an over-estimate, on the safe side)
        cap = n.copy()
        if correction.get("max_rank"):
            cap = np.minimum(cap, int(correction["max_rank"]))
        if correction.get("core_rank_frac"):  # and a fraction of the core size: precompute-ld's rule
            frac, top = correction["core_rank_frac"], correction.get("max_rank")
            cap = np.minimum(cap, [core_rank_cap(int(m), frac, top) for m in n])
        if n_ref > 1:
            cap = np.minimum(cap, n_ref - 1)
        if correction.get("eig_floor"):
            share = floor_share(dataset, specs, cap, correction["eig_floor"])
            cap = np.maximum(1, np.round(share * cap)).astype(np.int64)
        k, k_source = cap, "estimated"
    scale = 1.0 if variants is None else float(variants) / M
    return {
        "dataset": str(dataset), "dataset_variants": int(M), "variants": int(round(M * scale)),
        "scale": scale, "window_kb": float(window_kb), "flank_kb": float(flank_kb), "n_ref": n_ref,
        "ld_kind": kind, "ld_correction": correction, "k_source": k_source,
        "chrom": np.array([s.chrom for s in specs], np.int64), "n_plus": n_plus, "n": n, "k": np.asarray(k),
        "n_features": n_features, "n_tracks": int(track[2]) if track else 0, "window": int(track[1]) if track else 0,
    }


#: windows whose spectrum ``varfx plan`` computes to estimate the eigenvalue floor's ranks
FLOOR_SAMPLE_WINDOWS = 5
#: at most this many core variants of a sampled window enter its eigenvalues (the
#: middle ones; the count is scaled to the whole core): the plan stays seconds long
#: with cores of thousands of variants, whose eigenvalues would take minutes
FLOOR_SAMPLE_MAX_CORE = 1500


def floor_share(dataset, specs, cap, eig_floor: float, samples: int = FLOOR_SAMPLE_WINDOWS,
                max_core: int = FLOOR_SAMPLE_MAX_CORE) -> float:
    """The mean share of the rank cap ``cap`` that the eigenvalue floor keeps, over
    ``samples`` windows spread evenly along the genome: their core blocks' eigenvalues
    (the LD precompute-ld reads, without factorising) against the floor.  The floor's
    count follows the LD's structure (components per stretch of genome), so a few
    windows of the same data predict the rest, and a core of more than ``max_core``
    variants is represented by its middle ``max_core``, the count scaled by the core's
    size (the disk estimate's tests check it against the store)."""
    from ..io.ld import open_ld
    from ..linalg.window import kept_rank
    from ..store.dataset import open_dataset

    picks = np.unique(np.linspace(0, len(specs) - 1, min(samples, len(specs))).round().astype(np.int64))
    shares = []
    with open_dataset(dataset) as h5:
        ld = open_ld(h5)
        for i in picks:
            s = specs[i]
            n = len(s.core_idx)
            if n == 0:
                continue
            lo = max(0, (n - max_core) // 2)
            idx = s.core_idx[lo:lo + max_core]
            R = np.asarray(ld.correlation(idx, s.chrom, (s.start + s.end) // 2), dtype=np.float64)
            lam = np.linalg.eigvalsh(0.5 * (R + R.T))[::-1]
            count = kept_rank(lam, eig_floor=eig_floor) * n / len(idx)
            shares.append(min(count, int(cap[i])) / max(int(cap[i]), 1))
    return float(np.mean(shares)) if shares else 1.0


def _stored_k(dataset, window_kb, flank_kb, correction, specs):
    """The kept ranks of an existing windows.h5 computed with these options for this
    dataset and these windows, else ``(None, None)``."""
    from ..store.windows import open_windows, stored_params

    stored = stored_params(dataset)
    if stored is None:
        return None, None
    _, params = stored
    if (params.get("window_kb") != float(window_kb) or params.get("flank_kb") != float(flank_kb)
            or params.get("ld_correction", correction) != correction):
        return None, None
    try:
        h5, attrs = open_windows(dataset)
    except UserError:
        return None, None  # another dataset's or a damaged store: estimate instead
    with h5:
        idx = attrs["index"]
    if len(idx["k"]) != len(specs) or not np.array_equal(idx["n_plus"], [len(s.plus_idx) for s in specs]):
        return None, None
    return np.asarray(idx["k"], np.int64), "windows.h5"


# ---------------------------------------------------------------------------------------
# calibration


def load_calibration(path=None, save=None) -> dict:
    """The calibration: read from ``path`` (a file of ``--save-calibration`` or the
    JSON list of ``benchmarks/precompute.py --json``), else measured now."""
    if path is None:
        return costs.measure_kernels()
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise UserError(f"cannot read the calibration file ({exc.strerror or exc})", path=path) from None
    except ValueError as exc:
        raise UserError(f"not a JSON file ({exc})", path=path) from None
    try:
        if isinstance(data, list):
            data = costs.calibration_from_benchmark(data)
        costs.check_calibration(data)
    except (ValueError, TypeError, KeyError) as exc:
        raise UserError(f"not a usable calibration: {exc}", path=path) from None
    data = dict(data)
    data.setdefault("engines", {})
    data.setdefault("priors", {})
    data["file"] = str(path)
    return data


# ---------------------------------------------------------------------------------------
# the stages


def precompute_plan(wp: dict, cal: dict, workers: int = 1) -> dict:
    """precompute-ld: time on ``workers`` workers (plus the one writer's commit), memory
    per worker, disk of windows.h5 and at the peak (the parts and the store together)."""
    n_plus, n, k, scale = wp["n_plus"], wp["n"], wp["k"], wp["scale"]
    t = costs.window_seconds(cal, n_plus, n, k, wp["n_ref"], wp["ld_kind"])
    n_windows = int(round(len(t) * scale))
    tasks = t if scale == 1.0 else np.tile(t, int(math.ceil(scale)))[:max(n_windows, 1)]
    mem = costs.window_memory_bytes(n_plus, n, k, wp["n_ref"])
    stored, raw = costs.window_disk_bytes(cal, n_plus, n, k)
    commit = scale * costs.commit_seconds(cal, n_plus, n, k)
    # the index arrays (six per window) and the file's own headers
    store = float(scale * stored.sum() + 6 * 8 * n_windows + 64 * 1024)
    big = int(np.argmax(t))
    out = {
        "windows": n_windows, "workers": int(workers),
        "max_n_plus": int(n_plus.max()), "max_n": int(n.max()), "max_k": int(k.max()),
        "mean_n_plus": float(n_plus.mean()), "mean_n": float(n.mean()), "mean_k": float(k.mean()),
        "k_source": wp["k_source"], "ld_correction": wp["ld_correction"]["method"],
        "cpu_seconds": float(scale * t.sum()),
        "compute_seconds": costs.makespan(tasks, workers), "commit_seconds": float(commit),
        "largest_window": {"n_plus": int(n_plus[big]), "n": int(n[big]), "k": int(k[big]), "seconds": float(t[big]),
                           "memory_bytes": float(mem[big])},
        "memory_per_worker_bytes": float(mem.max()),
        "disk_bytes": store, "disk_peak_bytes": float(store + scale * raw.sum()),
    }
    out["seconds"] = out["compute_seconds"] + out["commit_seconds"]
    # the one writer: its share of the stage at these workers, and the worker count at
    # which the windows' compute takes as long as its commit (more workers than that
    # leave the run waiting on the writer)
    out["commit_share"] = out["commit_seconds"] / out["seconds"] if out["seconds"] > 0 else 0.0
    out["writer_bound_workers"] = (out["cpu_seconds"] / out["commit_seconds"] if out["commit_seconds"] > 0
                                   else None)
    if scale == 1.0 and wp["k_source"] == "windows.h5":
        from ..store.windows import store_bytes

        # windows.h5 and, for a sharded store, its shard files
        out["actual_disk_bytes"] = store_bytes(wp["dataset"])
    return out


def precompute_dry_run(dataset, *, window_kb=1000, flank_kb=1000, workers=1, ld_correction="auto",
                       max_rank_frac=None, dask_scheduler=None, calibration=None, eig_floor=None) -> dict:
    """``precompute-ld --dry-run``: the precompute-ld part of ``varfx plan`` for these
    options (``local:N`` prices N workers; a remote scheduler's worker count is not
    known without connecting, so it is priced for ``--workers``)."""
    if dask_scheduler is not None and str(dask_scheduler).startswith("local:"):
        text = str(dask_scheduler)[len("local:"):]
        if not (text.isdigit() and int(text) >= 1):
            raise UserError(f"option --dask-scheduler {dask_scheduler}: expected local:N with N >= 1")
        workers = int(text)
    wp = window_plan(dataset, window_kb=window_kb, flank_kb=flank_kb, ld_correction=ld_correction,
                     max_rank_frac=max_rank_frac, eig_floor=eig_floor)
    out = {"dry_run": True, "stage": "precompute-ld", **precompute_plan(wp, load_calibration(calibration), workers),
           # a windows.h5 computed with these options from this dataset exists (its k are used)
           "existing_store": wp["k_source"] == "windows.h5"}
    if dask_scheduler is not None:
        out["dask_scheduler"] = str(dask_scheduler)
    return out


def _parse_prior(text: str):
    """``NAME`` or ``NAME:KEY=VALUE,KEY=VALUE`` -> (name, options)."""
    name, _, rest = str(text).partition(":")
    return name.strip(), tuple(p for p in rest.split(",") if p.strip())


def check_fit_options(prior_text: str, objective: str):
    """``(prior class, its options, objective class)``, or the one-line error of an
    unknown prior, option or objective, or of a bag objective (not priced)."""
    from ..plugins import lookup

    name, options = _parse_prior(prior_text)
    prior_cls = lookup("priors", name)
    opts = prior_cls.parse_options(options)
    obj_cls = lookup("objectives", objective)
    if obj_cls.batch_unit != "window":
        raise UserError(f"option --objective {objective}: trains on bags (varfx bags), which varfx plan does not "
                        "price; plan a window objective (full, ldsr)")
    return prior_cls, opts, obj_cls


def measured_step(cal: dict, prior_text: str, objective: str, wp: dict,
                  options: dict | None = None) -> tuple[dict, dict, object]:
    """The engine's and the prior's step costs of ``prior_text`` with ``objective``
    (from the calibration, else timed now and added to it), and the prior class.
    ``options``: the prior's options as already resolved (a fitted model's model.json),
    instead of those in ``prior_text``."""
    from ..api import FitContext
    from ..plugins import lookup
    from ..train.setup import DEFAULT_SOLVER

    prior_cls, opts, obj_cls = check_fit_options(prior_text if options is None else _parse_prior(prior_text)[0],
                                                 objective)
    if options is not None:
        opts = {**opts, **options}
    if objective not in cal["engines"]:
        solver = lookup("solvers", DEFAULT_SOLVER)() if obj_cls.uses_solver else None
        obj = obj_cls(solver=solver)
        obj.setup(FitContext(init_f=1e-6, N=1e5, h2=0.1, n_train_variants=wp["dataset_variants"]))
        cal["engines"][objective] = costs.measure_engine(obj, objective)
    label = prior_text
    if label not in cal["priors"]:
        context = FitContext(init_f=1e-6, n_features=wp["n_features"], n_tracks=wp["n_tracks"], window=wp["window"],
                             N=1e5, h2=0.1, n_train_variants=wp["dataset_variants"])
        prior = prior_cls(**opts)
        module = prior.module(context)
        seq = prior.sequence_length()
        cal["priors"][label] = costs.measure_prior(
            module, lambda m: costs.prior_inputs(m, wp["n_features"], wp["n_tracks"], wp["window"], seq))
    return cal["engines"][objective], cal["priors"][label], prior_cls


def fit_windows(wp: dict, holdout_chroms=None):
    """(training mask, validation mask) over the planned windows: the held-out
    chromosomes as ``varfx fit`` resolves them (``--holdout-chroms``), windows with k = 0
    in neither."""
    from ..train.setup import resolve_holdout

    held = set(resolve_holdout(holdout_chroms, sorted(set(wp["chrom"].tolist()))))
    is_held = np.isin(wp["chrom"], sorted(held))
    live = wp["k"] > 0
    return live & ~is_held, live & is_held


def fit_plan(wp: dict, cal: dict, prior_text: str, objective: str, *, gpus=0, processes=1,
             gpu_speedup=DEFAULT_GPU_SPEEDUP, epochs=None, holdout_chroms=None, dtype="float64") -> dict:
    """fit of one prior with one objective on the planned training windows."""
    engine, prior, prior_cls = measured_step(cal, prior_text, objective, wp)
    train, _ = fit_windows(wp, holdout_chroms)
    if not train.any():
        raise UserError("no training windows: every window is held out (--holdout-chroms) or empty",
                        path=wp["dataset"])
    optimizer = "lbfgs" if prior_cls.small else "adamw"
    passes = costs.LBFGS_PASSES if optimizer == "lbfgs" else int(epochs or 100)
    n_train = int(round(train.sum() * wp["scale"]))
    per_epoch = getattr(prior_cls, "default_updates_per_epoch", 0)
    if optimizer == "lbfgs" or not per_epoch:
        step_windows = n_train  # full batch: every training window in one step
    else:
        step_windows = max(1, math.ceil(n_train / per_epoch))
    ranks = int(gpus) if gpus else int(processes)
    est = costs.fit_estimate(wp["n_plus"][train], wp["n"][train], wp["k"][train], objective=objective,
                             engine=engine, prior=prior, optimizer=optimizer, passes=passes,
                             windows_per_step=step_windows, ranks=ranks,
                             speedup=float(gpu_speedup) if gpus else 1.0,
                             itemsize=8 if dtype == "float64" else 4, weight=wp["scale"], variants=wp["variants"])
    return {"prior": prior_text, "objective": objective, "device": "cuda" if gpus else "cpu",
            "gpus": int(gpus), "processes": ranks, **est,
            "passes_basis": ("L-BFGS evaluations (assumed)" if optimizer == "lbfgs"
                             else "AdamW epochs (an upper bound with early stopping)"),
            # the model directory: the prior, its optimiser state and the best weights
            "disk_bytes": float(prior["parameters"] * 4 * 4 + 64 * 1024)}


def evaluate_plan(wp: dict, cal: dict, prior_text: str, objective: str, *, holdout_chroms=None, gpus=0,
                  gpu_speedup=DEFAULT_GPU_SPEEDUP, options=None) -> dict:
    """evaluate: one loss pass over the held-out windows (priced as a training pass over
    them, forward and backward: an upper bound)."""
    engine, prior, _ = measured_step(cal, prior_text, objective, wp, options)
    _, val = fit_windows(wp, holdout_chroms)
    speed = float(gpu_speedup) if gpus else 1.0
    t = costs.fit_estimate(wp["n_plus"][val], wp["n"][val], wp["k"][val], objective=objective, engine=engine,
                           prior=prior, optimizer="-", passes=1, windows_per_step=1, speedup=speed,
                           weight=wp["scale"]) if val.any() else {"seconds": 0.0}
    return {"prior": prior_text, "objective": objective, "val_windows": int(round(val.sum() * wp["scale"])),
            "seconds": t["seconds"]}


def score_plan(wp: dict, cal: dict, prior_text: str, objective: str, options=None) -> dict:
    """score: the prior over every variant (its forward and backward per variant: an
    upper bound for a forward alone)."""
    _, prior, _ = measured_step(cal, prior_text, objective, wp, options)
    return {"prior": prior_text, "variants": wp["variants"],
            "seconds": float(prior.get("fixed_s", 0.0) + prior["seconds_per_variant"] * wp["variants"]),
            "disk_bytes": float(wp["variants"] * 40)}  # SNP CHR BP F: about 40 bytes a line


def model_dry_run(stage: str, model_dirs, dataset, *, chroms="holdout", calibration=None) -> dict:
    """``evaluate --dry-run`` / ``score --dry-run``: that stage's part of ``varfx plan``
    for the fitted models (their prior and options as model.json records them, the
    window store's own window options; evaluate on ``chroms``: a list, None for all, or
    ``"holdout"`` for the chromosomes each model held out).
    Reads model.json, dataset.h5 and windows.h5's parameters; writes nothing.  A model
    trained on bags (``mil``, ``distil``) is not priced (one line, as ``varfx plan``)."""
    from ..plugins import lookup
    from ..store.model import read_model_json
    from ..store.windows import stored_params

    stored = stored_params(dataset)
    if stored is None and stage == "evaluate":
        raise UserError("no readable windows.h5 (evaluate needs the window store; run `varfx precompute-ld` first)",
                        path=dataset)
    params = stored[1] if stored is not None else {}
    correction = params.get("ld_correction") or {}
    wp = window_plan(dataset, window_kb=params.get("window_kb", 1000), flank_kb=params.get("flank_kb", 1000),
                     ld_correction=correction.get("requested", "auto"),
                     max_rank_frac=correction.get("max_rank_frac"),
                     # a stored correction without the key had no floor (before --eig-floor, or 0)
                     eig_floor=correction.get("eig_floor", 0.0) if correction else None)
    cal = load_calibration(calibration)
    rows = []
    for model_dir in model_dirs:
        meta = read_model_json(model_dir)
        name, options = meta["prior"]["name"], dict(meta["prior"].get("options") or {})
        objective = (meta.get("objective") or {}).get("name", "full")
        if lookup("objectives", objective).batch_unit != "window":
            raise UserError(f"a model trained on bags (objective {objective}): --dry-run prices window objectives "
                            "(full, ldsr) only", path=model_dir)
        if stage == "evaluate":
            if chroms == "holdout":
                held = [int(c) for c in meta.get("holdout_chroms") or []]
            else:
                held = sorted(set(wp["chrom"].tolist())) if chroms is None else [int(c) for c in chroms]
            # "none" when the model held nothing out: evaluate itself then asks for --chroms
            row = evaluate_plan(wp, cal, name, objective, holdout_chroms=held or "none", options=options)
        else:
            row = score_plan(wp, cal, name, objective, options=options)
        rows.append({"model": str(model_dir), **row})
    out = {"dry_run": True, "stage": stage, "dataset": str(dataset), "window_kb": wp["window_kb"],
           "flank_kb": wp["flank_kb"], "models": rows, "seconds": float(sum(r["seconds"] for r in rows))}
    _check_finite(out, calibration)
    return out


def run_plan(dataset, *, variants=None, window_kb=1000, flank_kb=1000, workers=1, gpus=0, processes=1,
             priors=("constant",), objectives=("full",), gpu_speedup=DEFAULT_GPU_SPEEDUP, calibration=None,
             save_calibration=None, epochs=None, holdout_chroms=None, stages=STAGES, ld_correction="auto",
             max_rank_frac=None, eig_floor=None) -> dict:
    """The plan of a run as one dict (the keys are documented in docs/scale.md)."""
    for name, val, lo in (("--workers", workers, 1), ("--gpus", gpus, 0), ("--processes", processes, 1)):
        if not (isinstance(val, int) and val >= lo):
            raise UserError(f"option {name}: expected an integer >= {lo}, got {val}")
    if gpus and processes != 1:
        # two ways of saying how many ranks fit has: refuse rather than ignore one
        raise UserError(f"option --processes {processes}: not with --gpus {gpus} (fit runs one process per GPU)")
    if not (isinstance(gpu_speedup, (int, float)) and math.isfinite(gpu_speedup) and gpu_speedup > 0):
        raise UserError(f"option --gpu-speedup: expected a positive number, got {gpu_speedup}")
    if {"fit", "evaluate", "score"} & set(stages):
        for p in priors:  # a typo fails now, not after the kernels are timed
            for o in objectives:
                check_fit_options(p, o)
    wp = window_plan(dataset, window_kb=window_kb, flank_kb=flank_kb, variants=variants,
                     ld_correction=ld_correction, max_rank_frac=max_rank_frac, eig_floor=eig_floor)
    cal = load_calibration(calibration)
    out = {"dataset": wp["dataset"], "variants": wp["variants"], "dataset_variants": wp["dataset_variants"],
           "scale": wp["scale"], "window_kb": wp["window_kb"], "flank_kb": wp["flank_kb"],
           "calibration": {"source": cal.get("source"), "file": cal.get("file"), "created": cal.get("created"),
                           "gemm_gflops": cal["gemm_gflops"], "gzip_mb_per_s": cal["gzip_mb_per_s"],
                           "eigh_b": cal["eigh"]["b"] if "window" not in cal else None},
           "gpu_speedup": float(gpu_speedup), "gpu_speedup_measured": False}
    if "precompute-ld" in stages:
        out["precompute_ld"] = precompute_plan(wp, cal, workers)
    combos = [(p, o) for p in priors for o in objectives]
    if "fit" in stages:
        out["fit"] = [fit_plan(wp, cal, p, o, gpus=gpus, processes=processes, gpu_speedup=gpu_speedup,
                               epochs=epochs, holdout_chroms=holdout_chroms) for p, o in combos]
    if "evaluate" in stages:
        out["evaluate"] = [evaluate_plan(wp, cal, p, o, holdout_chroms=holdout_chroms, gpus=gpus,
                                         gpu_speedup=gpu_speedup) for p, o in combos]
    if "score" in stages:
        out["score"] = [score_plan(wp, cal, p, objectives[0]) for p in dict.fromkeys(priors)]
    _check_finite(out, calibration)
    if save_calibration is not None:
        from ..store import write_json_atomic

        # with the steps timed for this plan: a later --calibration reuses them too
        write_json_atomic(Path(save_calibration), {k: v for k, v in cal.items() if k != "file"})
    return out


def _check_finite(obj, calibration, key="plan") -> None:
    """Every number of the plan is finite (a timing of 0 s or a calibration file with an
    absurd value must not print an infinite or NaN cost as if it were one)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_finite(v, calibration, f"{key}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _check_finite(v, calibration, f"{key}[{i}]")
    elif isinstance(obj, float) and not math.isfinite(obj):
        where = f"the calibration file {calibration}" if calibration else "the timings of this machine"
        raise UserError(f"the plan has a non-finite {key} ({obj}); check {where}")


# ---------------------------------------------------------------------------------------
# printing


def print_plan(plan: dict) -> None:
    """The plan as a rich table on stderr (stdout is for --json), a line of detail per
    stage below it."""
    from rich.table import Table

    from ..ui import console

    title = (f"varfx plan: {plan['variants']:,} variants"
             + (f" ({plan['scale']:.3g} x the dataset's {plan['dataset_variants']:,})" if plan["scale"] != 1 else ""))
    table = Table(title=title)
    for col in ("stage", "on", "time", "memory", "disk"):
        table.add_column(col, justify="left" if col in ("stage", "on") else "right",
                         overflow="fold" if col == "stage" else "ellipsis")
    notes = []
    p = plan.get("precompute_ld")
    if p:
        lw = p["largest_window"]
        table.add_row("precompute-ld", f"{p['workers']} worker(s)", human_seconds(p["seconds"]),
                      f"{human_size(p['memory_per_worker_bytes'])}/worker", human_size(p["disk_bytes"]))
        bound = p.get("writer_bound_workers")
        table.add_row("  of which: commit", f"1 writer ({100 * p['commit_share']:.0f}%)", human_seconds(p["commit_seconds"]),
                      "", "")
        if bound is not None:
            notes.append(f"precompute-ld commit: one writer, {human_seconds(p['commit_seconds'])}, {100 * p['commit_share']:.0f}% "
                         f"of the stage on {p['workers']} worker(s); from {bound:,.0f} workers on the windows are "
                         "computed faster than the writer commits them")
        notes.append(f"precompute-ld: {p['windows']:,} windows (n+ <= {p['max_n_plus']:,}, core <= {p['max_n']:,}, "
                     f"k <= {p['max_k']}, k {p['k_source']}); largest {human_seconds(lw['seconds'])}; {human_seconds(p['cpu_seconds'])} "
                     f"CPU in all; commit {human_seconds(p['commit_seconds'])}; disk at the peak {human_size(p['disk_peak_bytes'])}")
    for f in plan.get("fit", []):
        on = f"{f['gpus']} GPU(s)" if f["gpus"] else f"{f['processes']} CPU proc."
        table.add_row(f"fit {f['prior']}/{f['objective']}", on, human_seconds(f["seconds"]),
                      f"{human_size(f['memory_bytes']['total'])}/proc.", human_size(f["disk_bytes"]))
        notes.append(f"fit {f['prior']}/{f['objective']}: {f['train_windows']:,} windows, {f['optimizer']} x "
                     f"{f['passes']} passes ({f['passes_basis']}) of {human_seconds(f['seconds_per_pass'])}, "
                     f"{f['parameters']:,} prior parameter(s)"
                     + (f", GPU speed-up {plan['gpu_speedup']:g} (not measured)" if f["gpus"] else ""))
    for e in plan.get("evaluate", []):
        if not e["val_windows"]:
            continue  # nothing held out (--holdout-chroms): no evaluate row
        table.add_row(f"evaluate {e['prior']}/{e['objective']}", f"{e['val_windows']:,} windows",
                      human_seconds(e["seconds"]), "", "")
    for s in plan.get("score", []):
        table.add_row(f"score {s['prior']}", f"{s['variants']:,} variants", human_seconds(s["seconds"]), "",
                      human_size(s["disk_bytes"]))
    out = console()
    out.print(table)
    for line in notes:
        out.print(line, soft_wrap=True)
    c = plan["calibration"]
    out.print(f"costs: {c['source']}" + (f" ({c['file']})" if c.get("file") else "")
              + f"; GEMM {c['gemm_gflops']:.3g} GFLOP/s", soft_wrap=True)
