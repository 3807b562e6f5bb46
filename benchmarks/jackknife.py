"""Is the block-jackknife ``h2_se`` of ``varfx evaluate`` calibrated?

For each of ``--reps`` replicates (seeds 1, 2, ...): ``run_simulate`` (constant truth,
alpha 0.7, ``--h2``, ``--n``) from ``--variants`` variants of the bundled chr22 panel with
LD blocks of ``--window-kb``, ``run_ingest``, ``run_precompute`` (windows = the LD
blocks, no flank: the windows are independent, as the jackknife assumes of its blocks),
``run_fit`` (constant prior, full likelihood, sigma^2 = 1, no held-out chromosome) and
``run_evaluate --chroms all`` (in-sample: h2 is estimated on the evaluated windows).
The SD of the h2 estimates across replicates estimates the true standard error; the
mean of the reported ``h2_se`` should agree with it.  With R replicates the SD itself
has a relative standard error of about ``1 / sqrt(2 (R - 1))`` (16% at R = 20).

Prints one JSON object (``--json``) or a line: replicates, h2 (mean, SD), mean h2_se,
their ratio, the mean model-based SE (``h2 / sqrt(observed information)``, an
independent check of the jackknife), the per-replicate values and the seconds per
replicate.

Run: python benchmarks/jackknife.py --json [--reps 20] [--variants 3000] [--window-kb 250]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def replicate(tmp: Path, prefix: Path, seed: int, args) -> dict:
    from varfx.stages.evaluate import run_evaluate
    from varfx.stages.fit import run_fit
    from varfx.stages.ingest import run_ingest
    from varfx.stages.precompute import run_precompute
    from varfx.stages.simulate import run_simulate

    sim, ds, model = tmp / f"sim{seed}", tmp / f"ds{seed}", tmp / f"model{seed}"
    run_simulate(str(prefix), str(sim), truth="constant", h2=args.h2, n_gwas=args.n, alpha=0.7, sigma2=1.0,
                 block_kb=args.window_kb, seed=seed, progress=False)
    run_ingest(sumstats=str(sim / "sumstats.fastGWA.gz"), ld=str(prefix), out=str(ds), progress=False)
    run_precompute(ds, window_kb=args.window_kb, flank_kb=0, progress=False,
                   ld_correction="none")  # in-sample LD: the panel is the GWAS sample (issue 12)
    run_fit(ds, model, prior="constant", objective="full", sigma2=1.0, holdout_chroms=[], progress=False)
    ev = run_evaluate(model, ds, chroms=None, blocks=args.blocks)
    return {"seed": seed, "h2": ev["h2"], "h2_se": ev["h2_se"], "h2_se_blocks": ev["h2_se_blocks"],
            "n_windows": ev["n_windows"], "h2_se_fisher": fisher_se(ds, model, ev["h2"], args.n)}


def fisher_se(ds, model, h2, n_gwas, h=1e-3) -> float:
    """The model-based SE of h2 beside the jackknife: ``h2 / sqrt(I)`` with ``I`` the
    observed information of ``log c`` (a central second difference of the exact
    log-likelihood in the scale of f; for the constant prior log h2 = log c + const)."""
    from varfx.stages.evaluate import window_logliks
    from varfx.store.dataset import open_dataset
    from varfx.store.model import load_model
    from varfx.store.variants import predict_log_f
    from varfx.store.windows import load_windows

    _, module = load_model(model)
    with open_dataset(ds) as h5:
        f = np.exp(predict_log_f(module, h5))
    windows, _ = load_windows(ds)
    ll = [window_logliks(windows, f * math.exp(d), 1.0 / n_gwas)[0] for d in (-h, 0.0, h)]
    info = -(ll[0] - 2 * ll[1] + ll[2]) / h ** 2
    return float(h2 / math.sqrt(info))


def calibrate(args) -> dict:
    import warnings

    from varfx.testing.data import write_subset

    warnings.filterwarnings("ignore")  # the small-panel LD warning of precompute, once per replicate
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        prefix, _ = write_subset(tmp / "in", args.first, args.variants)
        recs, t0 = [], time.perf_counter()
        for seed in range(1, args.reps + 1):
            recs.append(replicate(tmp, prefix, seed, args))
            print(f"replicate {seed}: h2 {recs[-1]['h2']:.5f} h2_se {recs[-1]['h2_se']:.5f}", file=sys.stderr)
        seconds = time.perf_counter() - t0
    h2 = np.array([r["h2"] for r in recs])
    se = np.array([r["h2_se"] for r in recs])
    fisher = np.array([r["h2_se_fisher"] for r in recs])
    sd = float(h2.std(ddof=1))
    return {"replicates": len(recs), "h2_true": args.h2, "N": args.n, "variants": args.variants,
            "window_kb": args.window_kb, "n_windows": recs[0]["n_windows"], "blocks": recs[0]["h2_se_blocks"],
            "h2_mean": float(h2.mean()), "h2_sd": sd, "mean_h2_se": float(se.mean()),
            "ratio_mean_se_to_sd": float(se.mean() / sd), "mean_h2_se_fisher": float(fisher.mean()),
            "sd_relative_se": 1.0 / math.sqrt(2 * (len(recs) - 1)),
            "seconds_per_replicate": round(seconds / len(recs), 2), "per_replicate": recs}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--first", type=int, default=2000, help="first panel variant used")
    p.add_argument("--variants", type=int, default=3000)
    p.add_argument("--window-kb", type=float, default=250.0)
    p.add_argument("--h2", type=float, default=0.2)
    p.add_argument("--n", type=float, default=100_000.0)
    p.add_argument("--blocks", type=int, default=200)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    out = calibrate(args)
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['replicates']} replicates: SD of h2 {out['h2_sd']:.5f}, mean h2_se {out['mean_h2_se']:.5f}, "
              f"ratio {out['ratio_mean_se_to_sd']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
