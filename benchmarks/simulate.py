"""How well the full likelihood recovers h2 from `varfx simulate` data, by LD set-up and
by LD correction (issue 12).

For each setting and replicate: ``run_simulate`` (constant truth, alpha 0.7) from a
"population" panel, ``run_ingest`` with a reference panel, ``run_precompute`` with the
given flank and each candidate LD correction, then the maximum-likelihood h2 of the
constant prior (alpha 0.7, sigma2 = 1, both the truth's; ``--sigma2 intercept``: the
LD-score-regression intercept; ``--sigma2 fit``: `varfx fit`'s default, the intercept
but at least 1), found by a bounded 1-D search
of the exact likelihood (the optimum `varfx fit --prior constant --sigma2 1` converges
to: tests/test_simulate.py checks it).  Every candidate is fitted to the same simulated
replicates, so their differences are paired.

Settings (the bundled chr22 panel, 378 people, split by people into halves A and B;
``--thin K`` keeps every K-th variant, so that with K = 8 a window has fewer variants
than a half has people and every LD block is full rank):

- ``in-sample``: simulate from the whole panel, fit with the whole panel;
- ``out-of-sample``: simulate from half A, fit with half B (an LD reference that is
  not the GWAS sample, as in real data);
- ``mosaic``: a GWAS population whose LD decays with distance (``benchmarks/_population.py``:
  people copying the whole panel's genotypes in segments of mean length ``--switch-kb``,
  population LD ``R_panel o exp(-d / L)``), z drawn through that population LD (the GWAS
  is large, so its LD is the population's), and a reference of ``--ref-people`` other
  people of that population (default 189, as half B).  In ``out-of-sample`` z comes
  through the 189 people of half A, whose spurious correlations act as population LD
  and inflate every chi2 by about ``N h2 M_block / (M n_A)``; a real GWAS has no such
  term;
- ``mosaic-mismatch``: as ``mosaic``, but the GWAS population copies half A's people and
  the reference's people copy half B's: two populations whose LD differs by the
  sampling noise of 189 founders (``R_A o K`` against ``R_B o K``), on top of the
  reference's own sampling noise.  A stand-in for a public panel of another population
  than the GWAS's (1000 Genomes Europeans for a UK Biobank GWAS): 378 founder
  haplotypes on each side drift the allele frequencies by about ``F_ST = 1/756``
  each, of the order of the differences between European populations.

each with ``--flank-kb 0`` (windows = the simulation's 1-Mb LD blocks) and 1000 (the
default).

In-sample the reference is the GWAS's own LD, and the benchmark says so as a user
with LD from the GWAS genotypes would: ``ingest --ld-people N`` (the reference stands
for the GWAS's N people), so that precompute-ld's default applies no small-panel
correction there (docs/math.md, "LD from a small panel").

``--truth-ld``: ``auto`` (default) is ``window`` in-sample and ``block`` out-of-sample.
``block`` is `varfx simulate`'s truth, block diagonal in 1-Mb blocks.  ``window`` redraws z in the benchmark so that the in-sample model is exact
for the fit's flank: the mean of the z of a core window's variants is
``sqrt(N) R_(i),+ beta_+`` through the population panel's own correlations over that
window's ``(i)+`` (the variants the window's likelihood sees), the noise is
``N(0, sigma2 R)`` with the panel's whole-chromosome R.  With ``block``, flanks bring in
the panel's cross-block correlations, which the truth lacks, and the in-sample
1000-kb-flank fit is biased low for that reason alone.

Candidates (``--candidates``, comma-separated; ``+`` combines):

- ``none``: the plain factors (eigen-threshold ``--eig-threshold``, default 1e-3);
- ``eig:T``: eigen-threshold T;
- ``rank:F``: at most ``floor(F n_ref)`` eigen-components per window
  (``precompute-ld --ld-correction rank --max-rank-frac F``);
- ``share:S``: the fewest components reaching the share S of the block's variance
  (``--ld-correction share --var-share S``);
- ``floor:F``: with ``rank``/``share``, only eigen-components of at least F times the
  block's mean eigenvalue (``precompute-ld --eig-floor F``; F = 1: the Kaiser-Guttman
  rule; without it the candidates run with 0, off);
- ``flank:Z``: with ``rank``/``share``, core-flank correlations ``|r| < Z / sqrt(n_ref)``
  set to 0 in ``G`` (``--flank-noise-z Z``; without it the candidates run with 0, off);
- ``wishart``: the quadratic term of a window with k kept components scaled by
  ``(n_ref - k - 1) / n_ref`` (the inverse-Wishart mean factor; benchmark only);
- ``delta``: an LD-mismatch variance ``delta`` in ``C = (sigma_N^2 + delta) I + G^T F G``
  fitted jointly with h2 by maximum likelihood (benchmark only);
- ``lw`` / ``ss``: the panel correlation replaced by its Ledoit-Wolf / Schaefer-Strimmer
  shrinkage towards the identity (intensity estimated from the genotypes; benchmark only);
- ``nls``: each kept component's noise calibrated by Ledoit-Wolf nonlinear shrinkage of
  the core block's eigenvalues (``benchmarks/_nls.py``; benchmark only), e.g.
  ``rank:0.5+flank:3+nls``;
- ``noise:K``: the panel-noise term ``diag(K H_core / (n_ref lambda_j))`` added to ``C``
  (``benchmarks/_panel_noise.py``; benchmark only), e.g. ``rank:0.35+flank:3+floor:1+noise:0.5``.

``--default``: fit with ``run_precompute``'s defaults only (the must-show run).

Prints one JSON object: per setting and candidate, the mean, SD and SE over replicates
of ``h2_hat``, their ratio to the truth and the mean/SD of ``log(h2_hat / h2)``; and
``ldsr_ratio`` (``_se``): the same ratio for the constant prior fitted by varfx's LDSR
objective on the same windows and sigma^2 (:func:`ldsr_h2`), the estimate the real-data
check compares with.

Run: OMP_NUM_THREADS=1 python benchmarks/simulate.py --reps 10 [--thin 8] [--candidates ...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _population, _nls, _panel_noise: also when loaded by path (tests)

from _population import mosaic_reference, mosaic_sumstats, truth_beta  # noqa: E402


def _shape(dataset, alpha):
    from varfx.store.dataset import open_dataset

    with open_dataset(dataset) as h5:
        freq = h5["variants"]["freq"][:]
    shape = np.exp(alpha * np.log(freq * (1 - freq)))
    return shape / shape.sum()


def mle_h2(dataset, n_gwas: float, alpha: float = 0.7, windows=None, with_loglik: bool = False, sigma2: float = 1.0):
    from scipy.optimize import minimize_scalar

    from varfx.stages.evaluate import window_logliks
    from varfx.store.windows import load_windows

    if windows is None:
        windows, _ = load_windows(dataset)
    shape = _shape(dataset, alpha)

    def nll(lh):
        try:
            return -window_logliks(windows, math.exp(lh) * shape, sigma2 / n_gwas)[0]
        except FloatingPointError:  # C not positive definite in floating point: outside the domain
            return math.inf

    res = minimize_scalar(nll,
                          bounds=(math.log(1e-4), math.log(1.0)), method="bounded", options={"xatol": 1e-4})
    return (math.exp(res.x), -float(res.fun)) if with_loglik else math.exp(res.x)


def ldsr_h2(windows, shape, sigma2: float, h2_start: float) -> float:
    """The constant prior's h2 under varfx's LDSR objective (``fit --objective ldsr``) on
    the same windows and sigma^2.  The objective's loss is quadratic in the prior's scale
    ``c`` (``f = c shape``: E[chi2] is linear in f, the weights fixed), so three of its
    values give the parabola and its minimum, without restating the objective.  The
    regression weights use ``h2_start`` as fit's do (the starting LD score regression)."""
    import torch

    from varfx.plugins import lookup

    obj = lookup("objectives", "ldsr")()
    obj.config["h2_per_snp"] = max(h2_start, 1e-3) / sum(w.n for w in windows)

    def loss(c):
        return sum(float(obj.window_loss(w, torch.as_tensor(c * shape[w.plus_idx], dtype=w.G.dtype),
                                         sigma2 / w.N)) for w in windows if w.k)

    l0, l1, l2 = loss(0.0), loss(1.0), loss(2.0)
    a = 0.5 * (l2 - 2.0 * l1 + l0)
    b = l1 - l0 - a
    return max(-b / (2.0 * a), 0.0)


def mle_h2_delta(dataset, n_gwas: float, windows, alpha: float = 0.7, sigma2: float = 1.0) -> tuple[float, float]:
    """(h2, delta * N): the joint maximum over h2 and an extra noise variance delta."""
    from scipy.optimize import minimize

    from varfx.stages.evaluate import window_logliks

    shape = _shape(dataset, alpha)
    s2 = sigma2 / n_gwas

    def nll(x):
        lh, ld = float(np.clip(x[0], math.log(1e-4), 0.0)), float(np.clip(x[1], -12.0, 3.0))
        return -window_logliks(windows, math.exp(lh) * shape, s2 * (1.0 + math.exp(ld)))[0]

    best = None
    for start in ((math.log(0.05), -3.0), (math.log(0.2), -1.0)):
        res = minimize(nll, np.array(start), method="Nelder-Mead",
                       options={"xatol": 1e-3, "fatol": 1e-4, "maxiter": 400})
        if best is None or res.fun < best.fun:
            best = res
    lh, ld = float(np.clip(best.x[0], math.log(1e-4), 0.0)), float(np.clip(best.x[1], -12.0, 3.0))
    return math.exp(lh), math.exp(ld)


def _shrunk_correlation(kind):
    """A PlinkLD.correlation that shrinks the sample correlation towards I with the
    Ledoit-Wolf (2004) or Schaefer-Strimmer (2005) intensity, from the genotypes."""

    def correlation(self, idx, chrom=None, center_bp=None):
        x = self.standardized(idx)  # p x n, population sd 1
        n = x.shape[1]
        S = x @ x.T / n
        np.fill_diagonal(S, 1.0)
        off = S.copy()
        np.fill_diagonal(off, 0.0)
        sq = x * x
        if kind == "lw":
            p = S.shape[0]
            d2 = float(np.sum((S - np.eye(p)) ** 2)) / p
            # sum_k ||x_k x_k^T - S||_F^2 = sum_k ||x_k||^4 - n ||S||_F^2
            b2 = (float(np.sum(sq.sum(axis=0) ** 2)) - n * float(np.sum(S * S))) / (n * n) / p
            lam = 0.0 if d2 <= 0 else min(max(b2, 0.0), d2) / d2
        else:
            # Var(r_ij) = n / (n-1)^3 sum_k (w_kij - w_ij)^2, w_kij = x_ki x_kj, over i != j
            w2 = sq @ sq.T  # sum_k x_ki^2 x_kj^2
            np.fill_diagonal(w2, 0.0)
            var = n / (n - 1) ** 3 * (w2 - n * off * off)
            denom = float(np.sum(off * off))
            lam = 0.0 if denom <= 0 else float(np.clip(np.sum(var) / denom, 0.0, 1.0))
        _SHRINK.append(lam)
        R = (1.0 - lam) * S
        np.fill_diagonal(R, 1.0)
        return R

    return correlation


_SHRINK: list = []


def parse_candidate(text: str) -> dict:
    c = {"name": text, "eig_threshold": 1e-3, "ld_correction": "none", "max_rank_frac": None, "var_share": None,
         "wishart": False, "delta": False, "shrink": None, "flank_z": None, "nls": False, "eig_floor": 0.0,
         "noise": 0.0}
    if text == "default":
        c["ld_correction"] = None
        return c
    for tok in text.split("+"):
        key, _, val = tok.partition(":")
        if key == "none":
            pass
        elif key == "eig":
            c["eig_threshold"] = float(val)
        elif key == "rank":
            c.update(ld_correction="rank", max_rank_frac=float(val))
        elif key == "share":
            c.update(ld_correction="share", var_share=float(val))
        elif key == "flank":
            c["flank_z"] = float(val)
        elif key == "floor":
            c["eig_floor"] = float(val)
        elif key == "noise":
            c["noise"] = float(val)
        elif key in ("wishart", "delta", "nls"):
            c[key] = True
        elif key in ("lw", "ss"):
            c["shrink"] = key
        else:
            raise SystemExit(f"--candidates: unknown candidate {tok!r}")
    return c


def _precompute(ds_base, tag, fl, cand, window_kb=1000.0):
    from varfx.io import ld as ld_mod
    from varfx.stages.precompute import run_precompute

    ds = ds_base.parent / f"{ds_base.name}-{fl:g}-{tag}"
    ds.mkdir()
    (ds / "dataset.h5").symlink_to(ds_base / "dataset.h5")
    kw = {} if cand["ld_correction"] is None else dict(
        eig_threshold=cand["eig_threshold"], ld_correction=cand["ld_correction"],
        max_rank_frac=cand["max_rank_frac"], var_share=cand["var_share"], eig_floor=cand["eig_floor"],
        flank_noise_z=cand["flank_z"] if cand["flank_z"] is not None else 0.0)
    original = ld_mod.PlinkLD.correlation
    if cand["shrink"]:
        ld_mod.PlinkLD.correlation = _shrunk_correlation(cand["shrink"])
    with contextlib.ExitStack() as stack:
        if cand["nls"]:
            from _nls import installed

            from varfx.store.dataset import open_dataset

            with open_dataset(ds) as h5:
                stack.enter_context(installed(int(h5["ld"].attrs["n_people"])))
        try:
            return ds, run_precompute(ds, window_kb=window_kb, flank_kb=fl, progress=False, **kw)
        finally:
            ld_mod.PlinkLD.correlation = original


def fit_candidate(ds, cand, n_gwas, sigma2="truth") -> dict:
    """The candidate's maximum-likelihood h2, with sigma^2 the truth's (1), the
    LD-score-regression intercept (``sigma2='intercept'``) or `varfx fit`'s default
    (``'fit'``: the intercept, at least 1), on the same windows."""
    from varfx.store.dataset import open_dataset
    from varfx.store.windows import load_windows
    from varfx.train.setup import default_sigma2, ldsr_intercept

    windows, attrs = load_windows(ds)
    with open_dataset(ds) as h5:  # recorded with either choice: what fit's default would use
        kept = [w for w in windows if w.k > 0]
        z_all, n_all = h5["variants"]["z"][:], h5["variants"]["n"][:]
        fit_s2, fit_h2, intercept, _ = default_sigma2(kept, z_all, n_all, n_gwas)
    s2 = {"intercept": intercept, "fit": fit_s2, "truth": 1.0}[sigma2]
    if sigma2 != "fit":  # the LD score regression's h2 at this sigma^2: the LDSR objective's start
        fit_h2 = ldsr_intercept(kept, z_all, n_all, n_gwas, intercept=s2)[1]
    n_ref = attrs["n_ref"]
    if cand["wishart"]:
        for w in windows:
            if w.k:
                w.z = w.z * math.sqrt(max(n_ref - w.k - 1, 1) / n_ref)
    out = {"mean_k": float(np.mean([w.k for w in windows])), "sigma2": float(s2), "intercept": float(intercept)}
    from _panel_noise import installed

    with installed(cand.get("noise", 0.0)):  # kappa 0: the plain objective
        if cand["delta"]:
            out["h2"], out["delta_N"] = mle_h2_delta(ds, n_gwas, windows, sigma2=s2)
        else:
            out["h2"], out["loglik"] = mle_h2(ds, n_gwas, windows=windows, with_loglik=True, sigma2=s2)
    out["h2_ldsr"] = ldsr_h2(windows, _shape(ds, 0.7), s2, fit_h2)
    return out


def window_truth_sumstats(sim_dir, dataset, out_path, fl_kb, n_gwas, sigma2, seed, window_kb=1000.0):
    """z for ``--truth-ld window`` (see the module docstring), in the dataset's variant
    order and alleles, as a fastGWA file."""
    import h5py

    from varfx.io.ld import PlinkLD
    from varfx.stages.simulate import write_fastgwa
    from varfx.store.windows import plan_windows

    with h5py.File(Path(dataset) / "dataset.h5", "r") as h5:
        var = h5["variants"]
        v = {k: var[k].asstr()[:] for k in ("snp", "a1", "a2")}
        v.update({k: var[k][:] for k in ("chrom", "bp", "freq")})
        beta = truth_beta(sim_dir, v["snp"])
        ld = PlinkLD(h5)
        n = ld.n_people
        rng = np.random.default_rng(10_000 + seed)
        mean = np.zeros(len(beta))
        for spec in plan_windows(v["chrom"], v["bp"], int(window_kb * 1000), int(fl_kb * 1000)):
            xc = ld.standardized(spec.core_idx)
            xp = ld.standardized(spec.plus_idx)
            mean[spec.core_idx] = math.sqrt(n_gwas) * (xc @ (xp.T @ beta[spec.plus_idx])) / n
        noise = np.zeros(len(beta))
        u = rng.standard_normal(n)
        for c in np.unique(v["chrom"]):
            idx = np.flatnonzero(v["chrom"] == c)
            noise[idx] = ld.standardized(idx) @ (math.sqrt(sigma2 / n) * u)
    write_fastgwa(out_path, v, mean + noise, n_gwas)


def _stats(v, h2):
    v = np.asarray(v, dtype=np.float64)
    lr = np.log(v / h2)
    sd = float(v.std(ddof=1)) if len(v) > 1 else None
    return {"h2_hat_mean": float(v.mean()), "h2_hat_sd": sd,
            "h2_hat_se": sd / math.sqrt(len(v)) if sd is not None else None,
            "ratio": float(v.mean() / h2),
            "ratio_se": sd / math.sqrt(len(v)) / h2 if sd is not None else None,
            "mean_log_ratio": float(lr.mean()),
            "sd_log_ratio": float(lr.std(ddof=1)) if len(lr) > 1 else None}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--h2", type=float, default=0.05)
    ap.add_argument("--n", type=float, default=100_000)
    ap.add_argument("--flanks", default="0,1000")
    ap.add_argument("--window-kb", type=float, default=1000.0,
                    help="the fits' core windows (and the window truth's; the block truth stays in 1-Mb blocks)")
    ap.add_argument("--thin", type=int, default=1, help="keep every K-th variant of the panel")
    ap.add_argument("--setups", default="in-sample,out-of-sample")
    ap.add_argument("--candidates", default="none", help="comma-separated LD corrections (see the docstring)")
    ap.add_argument("--default", action="store_true", help="only run_precompute's defaults (candidate 'default')")
    ap.add_argument("--truth-ld", choices=("auto", "block", "window"), default="auto",
                    help="auto: window in-sample, block out-of-sample (see the docstring)")
    ap.add_argument("--switch-kb", type=float, default=200.0,
                    help="--setups mosaic: mean segment length of the population's copying (its LD decays as exp(-d/L))")
    ap.add_argument("--ref-people", type=int, default=None,
                    help="--setups mosaic: people in the reference panel (default: half the panel, 189)")
    ap.add_argument("--sigma2", choices=("truth", "intercept", "fit"), default="truth",
                    help="sigma^2 of the fits: the truth's (1), the LD-score-regression intercept, or fit's "
                         "default (the intercept, at least 1)")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from varfx.stages.ingest import run_ingest
    from varfx.stages.simulate import SUMSTATS_FILE, run_simulate
    from varfx.testing.data import EXAMPLE_DATA, PANEL_NAME, thinned_panel_halves

    cands = [parse_candidate("default")] if args.default else [parse_candidate(t) for t in args.candidates.split(",")]
    panel = EXAMPLE_DATA / PANEL_NAME
    n_people = len(Path(f"{panel}.fam").read_text().splitlines())
    flanks = [float(x) for x in args.flanks.split(",")]
    out: dict = {"h2": args.h2, "N": args.n, "reps": args.reps, "panel": str(panel), "n_people": n_people,
                 "thin": args.thin, "truth_ld": args.truth_ld, "switch_kb": args.switch_kb, "sigma2": args.sigma2, "window_kb": args.window_kb,
                 "candidates": [c["name"] for c in cands],
                 "settings": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        panel, half_a, half_b = thinned_panel_halves(panel, tmp, args.thin)
        # (the population, the reference: its people, or for the mosaics their founders)
        setups = {"in-sample": (panel, panel), "out-of-sample": (half_a, half_b), "mosaic": (panel, panel),
                  "mosaic-mismatch": (half_a, half_b)}
        ref_people = {"in-sample": n_people, "out-of-sample": n_people // 2,
                      "mosaic": args.ref_people or n_people // 2, "mosaic-mismatch": args.ref_people or n_people // 2}
        for name in args.setups.split(","):
            if name not in setups:
                raise SystemExit(f"--setups: unknown setting {name!r} (choose from {', '.join(setups)})")
            pop, ref = setups[name]
            res = {(fl, c["name"]): [] for fl in flanks for c in cands}
            meta = {}
            truth_ld = args.truth_ld if args.truth_ld != "auto" else ("window" if name == "in-sample" else "block")
            if name.startswith("mosaic"):
                truth_ld = "population"
            # in-sample the reference is the GWAS's own LD, so it stands for the GWAS's N
            # people (as LD computed from the GWAS genotypes would): `ingest --ld-people`
            ld_people = int(args.n) if name == "in-sample" else None
            for rep in range(args.reps):
                d = tmp / f"{name}-{rep}"
                run_simulate(pop, d / "sim", truth="constant", h2=args.h2, n_gwas=args.n, seed=rep, progress=False)
                if truth_ld == "block":
                    run_ingest(d / "sim" / SUMSTATS_FILE, ref, d / "ds", progress=False, ld_people=ld_people)
                elif truth_ld == "population":
                    run_ingest(d / "sim" / SUMSTATS_FILE, pop, d / "pop", progress=False)
                    mosaic_sumstats(d / "sim", d / "pop", d / "mosaic.fastGWA.gz", args.n, 1.0, rep,
                                    args.switch_kb * 1000)
                    founders = setups[name][1]
                    ref = mosaic_reference(founders, d / "ref", ref_people[name], args.switch_kb * 1000, rep)
                    run_ingest(d / "mosaic.fastGWA.gz", ref, d / "ds", progress=False)
                else:
                    # the population's own dataset (its genotypes, the dataset's alleles)
                    run_ingest(d / "sim" / SUMSTATS_FILE, pop, d / "pop", progress=False)
                for fl in flanks:
                    base = d / "ds"
                    if truth_ld == "window":
                        base = d / f"ds{fl:g}"
                        window_truth_sumstats(d / "sim", d / "pop", d / f"win{fl:g}.fastGWA.gz", fl, args.n, 1.0, rep,
                                              args.window_kb)
                        run_ingest(d / f"win{fl:g}.fastGWA.gz", ref, base, progress=False, ld_people=ld_people)
                    for ci, c in enumerate(cands):
                        _SHRINK.clear()
                        ds, pre = _precompute(base, f"c{ci}", fl, c, args.window_kb)
                        r = fit_candidate(ds, c, args.n, sigma2=args.sigma2)
                        if _SHRINK:
                            r["shrink_mean"] = float(np.mean(_SHRINK))
                        r["correction"] = pre.get("ld_correction")
                        res[(fl, c["name"])].append(r)
                        meta[fl] = pre["max_n_plus"]
                        print(name, rep, fl, c["name"], json.dumps(r), file=sys.stderr, flush=True)
            for (fl, cname), rs in res.items():
                entry = {"max_n_plus": meta[fl], "reference_people": ref_people[name],
                         "truth_ld": truth_ld, "ld_people": ld_people,
                         "mean_k": float(np.mean([r["mean_k"] for r in rs])),
                         "sigma2_mean": float(np.mean([r["sigma2"] for r in rs])),
                         "intercept_mean": float(np.mean([r["intercept"] for r in rs])),
                         **_stats([r["h2"] for r in rs], args.h2)}
                ldsr = _stats([r["h2_ldsr"] for r in rs], args.h2)
                entry.update(ldsr_ratio=ldsr["ratio"], ldsr_ratio_se=ldsr["ratio_se"])
                if "delta_N" in rs[0]:
                    entry["delta_N_mean"] = float(np.mean([r["delta_N"] for r in rs]))
                if "shrink_mean" in rs[0]:
                    entry["shrink_mean"] = float(np.mean([r["shrink_mean"] for r in rs]))
                if rs[0].get("correction") is not None:
                    entry["ld_correction"] = rs[0]["correction"]
                out["settings"][f"{name}, flank {fl:g} kb, {cname}"] = entry
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
