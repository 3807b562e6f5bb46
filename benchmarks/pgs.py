"""Polygenic scores from the fitted prior: R^2 in held-out simulated people.

For each seed, on a region of the bundled chr22 panel (378 people) with two random
annotation tracks (a Gaussian "cons" score and a binary "enh" mark, as in
tests/test_simulate.py) and a BED track:

1. ``varfx simulate --truth glm`` (the true beta per variant is in truth.tsv);
2. ``varfx ingest`` of the simulated summary statistics with the same panel and
   annotations, ``varfx precompute-ld --window-kb B --flank-kb 0`` (the windows are the
   simulation's LD blocks, so the fit sees the LD the data came from);
3. ``varfx fit --objective full --sigma2 1`` of each prior (``constant``: a constant f
   up to the frequency factor, the LDpred-inf equivalent; ``glm``), then
   ``varfx score --posterior``: the weights ``b = E[beta | Z]`` (standardised units);
4. held-out people: per LD block B, standardised genotypes ``x_B = X_B w / sqrt(n)``
   with ``w ~ N(0, I_n)`` (X_B: the panel's standardised dosages, variants x n
   people), whose covariance is the panel's ``R_BB``, the LD model simulate uses; the
   true genetic value is ``x . beta_true`` and a score is ``x . b``.  R^2 is the squared
   correlation over ``--people`` such people, beside its expectation
   ``(b^T R beta)^2 / (b^T R b  beta^T R beta)`` (the limit of many people).

Scores besides the fitted priors: ``marginal`` (``b = Z / sqrt(N)``, no shrinkage, no
LD) and ``true_prior`` (the posterior under the simulation's true F and sigma^2 = 1,
an upper bound for any prior).  Prints one JSON object (``--json``) with each seed's
numbers and the mean and SD over seeds.

``--reference half``: simulate from (and draw the held-out people from) one half of the
panel's people and ingest with the other half, an LD reference that is not the GWAS
sample as in real data (weights of variants the reference lacks are 0).

Run: OMP_NUM_THREADS=1 python benchmarks/pgs.py --json [--seeds 0,1,2,3,4]
     [--region 22:17000000-23000000] [--h2 0.1] [--n 20000] [--log-sd 2] [--people 4000]
     [--reference same|half] [--sigma2 1|auto] [--priors constant,glm[,transformer]]
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


def _invoke(*args) -> str:
    from click.testing import CliRunner

    from varfx.cli import cli

    r = CliRunner().invoke(cli, [str(a) for a in args])
    if r.exit_code != 0:
        raise RuntimeError(f"varfx {' '.join(map(str, args[:1]))} failed: {r.output}")
    return r.stdout


def write_annotations(panel, directory: Path, seed: int, track: bool = False) -> Path:
    """A manifest of two random per-variant annotations and a BED track over the panel
    (``track``: also its per-base coverage, which the transformer prior reads)."""
    from varfx.testing.features import write_random_annotations

    rng = np.random.default_rng(10_000 + seed)
    snps = [line.split()[1] for line in open(f"{panel}.bim")]
    directory.mkdir(parents=True, exist_ok=True)
    write_random_annotations(directory / "annot.tsv", snps, rng)
    with open(directory / "dhs.bed", "w") as fh:
        for s in range(16_000_000, 51_000_000, 40_000):
            fh.write(f"chr22\t{s}\t{s + 8000}\n")
    manifest = directory / "manifest.tsv"
    manifest.write_text("name\tpath\tkind\twindow\toptions\nannot\tannot.tsv\ttable\t\t\n"
                        f"dhs\tdhs.bed\tbed\t2000\toverlap=false{';track=true' if track else ''}\n")
    return manifest


def read_column(path, key: str, col: str) -> dict:
    rows = [line.rstrip("\n").split("\t") for line in open(path)]
    i, j = rows[0].index(key), rows[0].index(col)
    return {r[i]: float(r[j]) for r in rows[1:]}


def held_out_r2(dataset, weights: dict, beta_true, block_bp: int, people: int, seed: int) -> dict:
    """R^2 of each score against the genetic value in ``people`` simulated people, and
    its analytic expectation, with block-diagonal panel LD (see the module doc)."""
    from varfx.io.ld import PlinkLD
    from varfx.store.dataset import open_dataset
    from varfx.store.windows import plan_windows

    rng = np.random.default_rng(20_000 + seed)
    names = list(weights)
    with open_dataset(dataset) as h5:
        chrom, bp = h5["variants"]["chrom"][:], h5["variants"]["bp"][:]
        ld = PlinkLD(h5)
        n = ld.n_people
        g = np.zeros(people)
        s = {k: np.zeros(people) for k in names}
        bRb = {k: 0.0 for k in names}
        bRbeta = {k: 0.0 for k in names}
        betaRbeta = 0.0
        for spec in plan_windows(chrom, bp, block_bp, 0):
            idx = spec.core_idx
            X = ld.standardized(idx)  # |B| x n, R_BB = X X^T / n
            W = rng.standard_normal((n, people))
            u = X.T @ beta_true[idx] / math.sqrt(n)  # genetic value of person j: u . W[:, j]
            g += u @ W
            betaRbeta += float(u @ u)
            for k in names:
                v = X.T @ weights[k][idx] / math.sqrt(n)
                s[k] += v @ W
                bRb[k] += float(v @ v)
                bRbeta[k] += float(v @ u)
    out = {}
    for k in names:
        r = np.corrcoef(g, s[k])[0, 1]
        out[k] = {"r2": float(r * r), "r2_analytic": bRbeta[k] ** 2 / (bRb[k] * betaRbeta) if bRb[k] > 0 else 0.0}
    return out


def true_prior_posterior(dataset, f_true, sigma2: float = 1.0) -> np.ndarray:
    from varfx.linalg.posterior import posterior_effects
    from varfx.store.windows import load_windows

    windows, attrs = load_windows(dataset)
    return posterior_effects(windows, f_true, sigma2 / attrs["N"], len(f_true), variance=False)["mean"]


def one_seed(panel, work: Path, seed: int, args) -> dict:
    t0 = time.perf_counter()
    manifest = write_annotations(panel, work / "ann", seed, track="transformer" in args.priors.split(","))
    sim, ds = work / "sim", work / "ds"
    ann = ["--annotations", manifest]
    population = reference = panel
    if args.reference == "half":
        # the GWAS population and its held-out people: half A; the LD reference: half B
        from varfx.testing.data import write_people_subset

        n_people = len(Path(f"{panel}.fam").read_text().splitlines())
        population = write_people_subset(panel, work / "A", np.arange(0, n_people, 2))
        reference = write_people_subset(panel, work / "B", np.arange(1, n_people, 2))
    meta = json.loads(_invoke("simulate", "--ld", population, "--truth", "glm", "--h2", args.h2, "--n", args.n,
                              "--log-sd", args.log_sd, "--seed", seed, "--block-kb", args.block_kb,
                              "--ld-region", args.region, *ann, "-o", sim, "--json"))
    _invoke("ingest", "--sumstats", sim / "sumstats.fastGWA.gz", "--ld", reference, "--ld-region", args.region,
            *ann, "-o", ds, "--json")
    # in-sample LD (the panel is the GWAS population) needs no small-panel correction; an
    # external half-panel gets precompute-ld's default (issue 12)
    correction = ["--ld-correction", "none"] if population == reference else []
    _invoke("precompute-ld", ds, "--window-kb", args.block_kb, "--flank-kb", 0, *correction, "--json")
    people_ds = ds
    if population != reference:  # the population's genotypes, for its held-out people
        people_ds = work / "ds_population"
        _invoke("ingest", "--sumstats", sim / "sumstats.fastGWA.gz", "--ld", population, "--ld-region",
                args.region, "-o", people_ds, "--json")
    from varfx.store.dataset import open_dataset

    with open_dataset(ds) as h5:
        snps = h5["variants"]["snp"].asstr()[:]
        z = h5["variants"]["z"][:]
        N = float(h5.attrs["N"])
    with open_dataset(people_ds) as h5:
        people_snps = h5["variants"]["snp"].asstr()[:]
    truth_beta = read_column(sim / "truth.tsv", "SNP", "BETA")
    truth_f = read_column(sim / "truth.tsv", "SNP", "F")
    f_true = np.array([truth_f[s] for s in snps])
    weights = {"marginal": z / math.sqrt(N), "true_prior": true_prior_posterior(ds, f_true)}
    fits = {}
    for prior in args.priors.split(","):
        model = work / f"m_{prior}"
        t = time.perf_counter()
        sigma2 = [] if args.sigma2 == "auto" else ["--sigma2", args.sigma2]
        _invoke("fit", ds, "--prior", prior, "--objective", "full", *sigma2, "--holdout-chroms", "none",
                "--seed", seed, "-o", model)
        fit_s = time.perf_counter() - t
        _invoke("score", model, ds, "-o", work / f"{prior}.tsv", "--posterior")
        post = read_column(work / f"{prior}.tsv", "SNP", "BETA_POSTERIOR")
        weights[prior] = np.array([post[s] for s in snps])
        ev = json.loads(_invoke("evaluate", model, ds, "--chroms", "all", "--truth", sim / "truth.tsv", "--json"))
        fits[prior] = {"h2": ev["h2"], "rmse_log_f": ev["rmse_log_f"], "delta_loglik": ev["delta_loglik"],
                       "fit_s": fit_s}
    # on the population's variants (a variant the reference lacks has weight 0)
    pos = {s: i for i, s in enumerate(snps)}
    rows = np.array([pos.get(s, -1) for s in people_snps])
    weights = {k: np.where(rows >= 0, w[np.maximum(rows, 0)], 0.0) for k, w in weights.items()}
    beta_true = np.array([truth_beta[s] for s in people_snps])
    r2 = held_out_r2(people_ds, weights, beta_true, int(round(args.block_kb * 1000)), args.people, seed)
    return {"seed": seed, "n_variants": int(len(snps)), "n_population_variants": int(len(people_snps)),
            "true_h2_beta": float(meta["realised_h2_beta"]),
            "r2": r2, "fits": fits, "seconds": time.perf_counter() - t0}


def summarise(runs) -> dict:
    names = list(runs[0]["r2"])
    out = {}
    for k in names:
        for key in ("r2", "r2_analytic"):
            v = np.array([r["r2"][k][key] for r in runs])
            out.setdefault(k, {})[f"{key}_mean"] = float(v.mean())
            out[k][f"{key}_sd"] = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    if "glm" in names and "constant" in names:
        d = np.array([r["r2"]["glm"]["r2_analytic"] - r["r2"]["constant"]["r2_analytic"] for r in runs])
        out["glm_minus_constant_analytic"] = {"mean": float(d.mean()),
                                              "sd": float(d.std(ddof=1)) if len(d) > 1 else 0.0,
                                              "min": float(d.min())}
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--region", default="22:17000000-23000000")
    ap.add_argument("--h2", type=float, default=0.1)
    ap.add_argument("--n", type=float, default=20_000)
    ap.add_argument("--log-sd", type=float, default=2.0)
    ap.add_argument("--block-kb", type=float, default=1000)
    ap.add_argument("--people", type=int, default=4000, help="held-out simulated people")
    ap.add_argument("--priors", default="constant,glm")
    ap.add_argument("--sigma2", default="1", help="fit --sigma2 (the truth's 1), or 'auto': fit's default (the "
                                                   "LD score regression intercept)")
    ap.add_argument("--reference", choices=["same", "half"], default="same",
                    help="same: simulate from and fit with the whole panel (in-sample LD); half: simulate from "
                         "half of its people, fit with the other half (an LD reference that is not the GWAS sample)")
    ap.add_argument("--panel", default=None, help="PLINK prefix  [default: the bundled chr22 panel]")
    ap.add_argument("--json", action="store_true", help="print one JSON object (the default output)")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from varfx.testing.data import EXAMPLE_DATA, PANEL_NAME

    panel = args.panel or str(EXAMPLE_DATA / PANEL_NAME)
    runs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(one_seed(panel, Path(tmp), seed, args))
        print(f"seed {seed}: " + ", ".join(f"{k} {v['r2_analytic']:.3f}" for k, v in runs[-1]["r2"].items()),
              file=sys.stderr)
    result = {"options": {k: v for k, v in vars(args).items() if k != "json"}, "panel": panel,
              "runs": runs, "summary": summarise(runs)}
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
