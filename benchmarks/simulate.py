"""How well the full likelihood recovers h2 from `varfx simulate` data, by LD set-up.

For each setting and replicate: ``run_simulate`` (constant truth, alpha 0.7) from a
"population" panel, ``run_ingest`` with a reference panel, ``run_precompute`` with the
given flank, then the maximum-likelihood h2 of the constant prior (alpha 0.7, sigma2 = 1,
both the truth's), found by a bounded 1-D search of the exact likelihood (the optimum
`varfx fit --prior constant --sigma2 1` converges to: tests/test_simulate.py checks it).

Settings (the bundled chr22 panel, 378 people, split by people into halves A and B;
``--thin K`` keeps every K-th variant, so that with K = 8 a window has fewer variants
than a half has people and every LD block is full rank):

- ``in-sample``: simulate from the whole panel, fit with the whole panel;
- ``out-of-sample``: simulate from half A, fit with half B (an LD reference that is
  not the GWAS sample, as in real data);

each with ``--flank-kb 0`` (windows = the simulation's 1-Mb LD blocks) and 1000 (the
default).  Prints one JSON object: per setting, the mean and SD over replicates of
``log(h2_hat / h2)`` and of ``h2_hat``.

Run: python benchmarks/simulate.py --reps 10 [--thin 8] [--h2 0.05] [--n 100000]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np


def mle_h2(dataset, n_gwas: float, alpha: float = 0.7) -> float:
    from scipy.optimize import minimize_scalar

    from varfx.stages.evaluate import window_logliks
    from varfx.store.dataset import open_dataset
    from varfx.store.windows import load_windows

    windows, _ = load_windows(dataset)
    with open_dataset(dataset) as h5:
        freq = h5["variants"]["freq"][:]
    shape = np.exp(alpha * np.log(freq * (1 - freq)))
    shape /= shape.sum()
    res = minimize_scalar(lambda lh: -window_logliks(windows, math.exp(lh) * shape, 1.0 / n_gwas)[0],
                          bounds=(math.log(1e-4), math.log(1.0)), method="bounded", options={"xatol": 1e-4})
    return math.exp(res.x)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--h2", type=float, default=0.05)
    ap.add_argument("--n", type=float, default=100_000)
    ap.add_argument("--flanks", default="0,1000")
    ap.add_argument("--thin", type=int, default=1, help="keep every K-th variant of the panel")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from varfx.stages.ingest import run_ingest
    from varfx.stages.precompute import run_precompute
    from varfx.stages.simulate import SUMSTATS_FILE, run_simulate
    from varfx.testing.data import EXAMPLE_DATA, PANEL_NAME, write_panel_rows, write_people_subset

    panel = EXAMPLE_DATA / PANEL_NAME
    n_people = len(Path(f"{panel}.fam").read_text().splitlines())
    flanks = [float(x) for x in args.flanks.split(",")]
    out: dict = {"h2": args.h2, "N": args.n, "reps": args.reps, "panel": str(panel), "n_people": n_people,
                 "thin": args.thin, "settings": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.thin > 1:
            n_snps = len(Path(f"{panel}.bim").read_text().splitlines())
            panel = write_panel_rows(panel, tmp / "thin", range(0, n_snps, args.thin))
        half_a = write_people_subset(panel, tmp / "A", np.arange(0, n_people, 2))
        half_b = write_people_subset(panel, tmp / "B", np.arange(1, n_people, 2))
        setups = {"in-sample": (panel, panel), "out-of-sample": (half_a, half_b)}
        for name, (pop, ref) in setups.items():
            est, n_plus = {fl: [] for fl in flanks}, {}
            for rep in range(args.reps):
                d = tmp / f"{name}-{rep}"
                run_simulate(pop, d / "sim", truth="constant", h2=args.h2, n_gwas=args.n, seed=rep, progress=False)
                run_ingest(d / "sim" / SUMSTATS_FILE, ref, d / "ds", progress=False)
                for fl in flanks:
                    ds = d / f"ds-{fl:g}"
                    ds.mkdir()
                    (ds / "dataset.h5").symlink_to(d / "ds" / "dataset.h5")
                    pre = run_precompute(ds, window_kb=1000, flank_kb=fl, progress=False)
                    est[fl].append(mle_h2(ds, args.n))
                    n_plus[fl] = pre["max_n_plus"]
                    print(name, rep, fl, est[fl][-1], file=sys.stderr)
            for fl, v in est.items():
                v = np.asarray(v)
                lr = np.log(v / args.h2)
                out["settings"][f"{name}, flank {fl:g} kb"] = {
                    "max_n_plus": n_plus[fl], "reference_people": n_people if name == "in-sample" else n_people // 2,
                    "h2_hat_mean": float(v.mean()), "h2_hat_sd": float(v.std(ddof=1)) if len(v) > 1 else None,
                    "mean_log_ratio": float(lr.mean()),
                    "sd_log_ratio": float(lr.std(ddof=1)) if len(lr) > 1 else None}
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
