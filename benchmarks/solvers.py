#!/usr/bin/env python
"""Benchmark of the window loss + gradient: varfx solvers against the paper's baselines.

    python benchmarks/solvers.py [--json] [--sizes 2000,4000,8000]
        [--dtypes float64,float32] [--spectra panel,genotypes,full] [--methods ...] [--repeats N]
        [--quick] [--seed S] [--accuracy CALLS] [--threads N] [--clock wall|cpu]

For one window of ``n_plus`` variants with the ``n = n_plus // 3`` core variants in the
middle, it times one forward + backward (loss and dL/df) of

- ``cholesky-A-autograd``: the paper's baseline, ``A = R_(i),+ F R_+,(i) + sigma2
  R_(i),(i)`` (n x n), ``torch.linalg.cholesky`` and autograd.  On the ``panel``
  spectrum A is singular (rank <= 377 from 378 people); a jitter ``eps I`` is added,
  starting at ``10 * machine-eps * mean(diag A)`` and multiplied by 10 until the Cholesky
  succeeds; its loss is reported after removing the ``(n - k) log eps`` of the null space
  (``info.jitter``), so ``loss_rel_err`` measures what the jitter did to the rest.
- ``eigh-B``: what the public DeepWAS code does every step: eigh of ``R_(i),(i)``, the
  factors G and z, then the Cholesky of the n+ x n+ matrix
  ``B = I + sigma2^-1 F^1/2 G G^T F^1/2`` with autograd.
- ``varfx-cholesky``, ``varfx-cg-slq``, ``varfx-nystrom``: the varfx solver plugins on
  the reduced form (G, z).  The once-per-window precompute (eigh, G, z) is excluded from
  their timings and reported as its own record ``precompute-eigh``.

Spectra: ``panel`` is the LD of a contiguous block of the 1000 Genomes EUR chr22 PLINK
panel (378 people, read here with numpy); ``genotypes`` the LD of genotypes simulated
for ``1.25 n_plus`` people (haplotype mosaics, :func:`genotype_ld`): realistic and full
rank; ``full`` a full-rank LD-like correlation (a non-stationary AR(1) /
Ornstein-Uhlenbeck correlation with per-step correlations around 0.9 and random allele
flips: exactly PSD, see ``varfx.testing.solvers.ar1_ld``).  ``full`` is the
*pathological* case: its exponential decay gives window factors with entries down to
1e-273, whose products are subnormal (issue 8); varfx flushes them at precompute and
runs with flush-to-zero in every thread (``varfx.linalg.ftz``), set here for all
methods alike.
Prior variances: ``f_true = h2/M * LogNormal(0, 1)`` (h2 = 0.5, M = 1e6), marginal effects
simulated from the model with ``sigma2 = 1/N``, N = 400,000, and the loss evaluated at
``f = f_true * LogNormal(0, 0.5)`` (a point mid-training, where the gradient is not ~0).

Errors are against a float64 reference from ``varfx.linalg.dense`` (numpy):
``loss_rel_err = |L - L_ref| / |L_ref|`` in the reduced convention
(A-form losses minus ``logdet_lambda``), ``grad_rel_err = ||g - g_ref|| / ||g_ref||`` for
``g = dL/df``.  Output: a JSON list of records (``--json``) or a table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PANEL_CANDIDATES = [
    ROOT.parent / "shared" / "data" / "chr22_1000g_ukb_height" / "1000G_eur_chr22",
    Path("/work/shared/data/chr22_1000g_ukb_height/1000G_eur_chr22"),
    ROOT / "varfx" / "example_data" / "1000G_eur_chr22",
]
H2, M_GENOME, N_GWAS = 0.5, 1_000_000, 400_000
#: the clock of every timing: wall time by default; ``--clock cpu`` (process CPU time,
#: all threads summed) is robust to other processes on a shared machine when run with
#: ``--threads 1``
_now = time.perf_counter
METHODS = ("cholesky-A-autograd", "eigh-B", "varfx-cholesky", "varfx-cg-slq", "varfx-nystrom")


# ----------------------------------------------------------------------------- data


def read_bed_block(prefix, start: int, count: int) -> np.ndarray:
    """Standardised genotypes (people x SNPs) of ``count`` polymorphic SNPs from ``start``.

    PLINK .bed: 3 magic bytes 0x6c 0x1b 0x01, SNP-major, ceil(people/4) bytes per SNP,
    2 bits per genotype, first person in the lowest bits; 00 hom A1, 01 missing,
    10 het, 11 hom A2.  Missing genotypes are mean-imputed; monomorphic SNPs skipped.
    """
    prefix = str(prefix)
    n_people = sum(1 for _ in open(prefix + ".fam"))
    n_snps = sum(1 for _ in open(prefix + ".bim"))
    nbytes = (n_people + 3) // 4
    raw = np.fromfile(prefix + ".bed", dtype=np.uint8)
    if raw[:3].tolist() != [0x6C, 0x1B, 0x01]:
        raise ValueError(f"{prefix}.bed: not a SNP-major PLINK .bed file")
    out = []
    lookup = np.array([2.0, np.nan, 1.0, 0.0])
    pos = start
    while len(out) < count and pos < n_snps:
        chunk = min(2 * (count - len(out)) + 16, n_snps - pos)
        block = raw[3 + pos * nbytes: 3 + (pos + chunk) * nbytes].reshape(chunk, nbytes)
        codes = np.stack([(block >> s) & 3 for s in (0, 2, 4, 6)], axis=2).reshape(chunk, -1)
        dos = lookup[codes[:, :n_people]]  # snps x people
        mean = np.nanmean(dos, axis=1, keepdims=True)
        dos = np.where(np.isnan(dos), mean, dos)
        sd = dos.std(axis=1)
        for j in np.flatnonzero(sd > 0):
            out.append((dos[j] - mean[j, 0]) / sd[j])
            if len(out) == count:
                break
        pos += chunk
    if len(out) < count:
        raise ValueError(f"only {len(out)} polymorphic SNPs after {start}")
    return np.stack(out, axis=1)


def panel_prefix():
    for p in PANEL_CANDIDATES:
        if Path(str(p) + ".bed").is_file():
            return p
    raise FileNotFoundError("1000G_eur_chr22.bed not found (looked in ../shared/data and varfx/example_data)")


def genotype_ld(n_plus: int, n_ref: int, seed: int, n_founders: int = 10, switch: float = 0.01,
                chunk: int = 512) -> np.ndarray:
    """LD of ``n_plus`` SNPs from ``n_ref > n_plus`` simulated people: realistic and full rank.

    Haplotypes are mosaics of ``n_founders`` founder haplotypes (a founder switch with
    probability ``switch`` per SNP, so LD decays over ~1/switch SNPs, plus 1% mutation
    noise), two haplotypes per person; ``R = X^T X / n_ref`` for standardised dosages,
    accumulated over chunks of people so that memory stays ~n_plus^2.  With more people
    than SNPs the block is full rank, with the spread spectrum of real LD (no entries
    decaying to 1e-270 as in the AR(1) kernel).
    """
    rng = np.random.default_rng(seed)
    freq = rng.uniform(0.05, 0.5, n_plus)
    founders = (rng.random((n_founders, n_plus)) < freq).astype(np.int8)
    cols = np.arange(n_plus)[None, :]

    def people(m):
        haps = []
        for _ in range(2):
            sw = rng.random((m, n_plus)) < switch
            sw[:, 0] = True
            src = rng.integers(n_founders, size=(m, n_plus), dtype=np.int16)
            last = np.maximum.accumulate(np.where(sw, cols, 0), axis=1)
            h = founders[np.take_along_axis(src, last, axis=1), cols]
            haps.append(h ^ (rng.random(h.shape) < 0.01))
        return (haps[0] + haps[1]).astype(np.float64)

    # dosages kept as int8 (n_ref x n_plus bytes): the moments need every person first
    dos = np.concatenate([people(min(chunk, n_ref - i)).astype(np.int8) for i in range(0, n_ref, chunk)])
    mean = dos.mean(0, dtype=np.float64)
    sd = dos.std(0, dtype=np.float64)
    sd[sd == 0] = 1.0  # a monomorphic SNP (never at these sizes) gets r = 0 with the rest
    R = np.zeros((n_plus, n_plus))
    for i in range(0, n_ref, chunk):
        X = (dos[i:i + chunk] - mean) / sd
        R += X.T @ X
    R /= n_ref
    np.fill_diagonal(R, 1.0)
    return R


#: what each spectrum stands for in the tables
SPECTRA = {
    "panel": "1000G EUR chr22 block, 378 people: rank-deficient (k = 377)",
    "genotypes": "simulated genotypes of 1.25 n+ people: realistic, full rank",
    "full": "AR(1) kernel: full rank, pathological (factor entries down to 1e-273)",
}
#: eigenvalue threshold of the benchmark windows (the varfx solvers and eigh-B alike):
#: the smallest in use, so that the full-rank spectra keep k = n (the hardest case)
EIG_THRESHOLD = 1e-6
#: flush factor entries and set flush-to-zero (False: ``--no-flush``)
FLUSH = True


def make_window(spectrum: str, n_plus: int, seed: int):
    """R_plus, core_pos, beta_core, f (evaluation point), sigma2 for one benchmark window."""
    from varfx.testing.solvers import ar1_ld

    rng = np.random.default_rng(seed)
    if spectrum == "panel":
        X = read_bed_block(panel_prefix(), start=2000, count=n_plus)
        R = X.T @ X / X.shape[0]
    elif spectrum == "full":
        R = ar1_ld(n_plus, rho=0.9, seed=seed)
    elif spectrum == "genotypes":
        R = genotype_ld(n_plus, n_plus + n_plus // 4, seed)
    else:
        raise ValueError(f"unknown spectrum {spectrum!r} (known: {', '.join(SPECTRA)})")
    n = n_plus // 3
    start = (n_plus - n) // 2
    core = np.arange(start, start + n)
    sigma2 = 1.0 / N_GWAS
    f_true = H2 / M_GENOME * rng.lognormal(0.0, 1.0, n_plus) / math.exp(0.5)
    b = rng.normal(size=n_plus) * np.sqrt(f_true)
    R_core = R[np.ix_(core, core)]
    lam, V = np.linalg.eigh(R_core)
    keep = lam > EIG_THRESHOLD * lam[-1]
    noise = V[:, keep] @ (np.sqrt(lam[keep] * sigma2) * rng.normal(size=int(keep.sum())))
    beta = R[core] @ b + noise
    f = f_true * rng.lognormal(0.0, 0.5, n_plus)
    return R, core, beta, f, sigma2


# ----------------------------------------------------------------------------- methods


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def run_cholesky_A(R, core, beta, f, sigma2, dtype, device, k):
    import torch

    Rc = torch.as_tensor(R[core], dtype=dtype, device=device)  # R_(i),+ (n x n+)
    Rii = Rc[:, torch.as_tensor(core, device=device)]
    b = torch.as_tensor(beta, dtype=dtype, device=device)
    ft = torch.as_tensor(f, dtype=dtype, device=device).requires_grad_(True)
    _sync(device)
    t0 = _now()
    A = (Rc * ft[None, :]) @ Rc.T + sigma2 * Rii
    n = A.shape[0]
    eye = torch.eye(n, dtype=dtype, device=device)
    jitter = 0.0
    with torch.no_grad():
        _, info = torch.linalg.cholesky_ex(A)
        if int(info) != 0:
            jitter = 10 * torch.finfo(dtype).eps * float(A.diagonal().mean())
            while int(torch.linalg.cholesky_ex(A + jitter * eye)[1]) != 0:
                jitter *= 10
    L = torch.linalg.cholesky(A + jitter * eye if jitter else A)
    w = torch.linalg.solve_triangular(L, b[:, None], upper=False)
    loss = (w * w).sum() + 2 * torch.log(torch.diagonal(L)).sum()
    loss.backward()
    _sync(device)
    secs = _now() - t0
    value = float(loss.detach())
    if jitter:
        value -= (n - k) * math.log(jitter)
    return secs, value, ft.grad.detach().double().cpu().numpy(), {"jitter": jitter, "a_form": True}


def run_eigh_B(R, core, beta, f, sigma2, dtype, device, k_ref):
    import torch

    Rc = torch.as_tensor(R[core], dtype=dtype, device=device)
    Rii = Rc[:, torch.as_tensor(core, device=device)]
    b = torch.as_tensor(beta, dtype=dtype, device=device)
    ft = torch.as_tensor(f, dtype=dtype, device=device).requires_grad_(True)
    _sync(device)
    t0 = _now()
    lam, V = torch.linalg.eigh(Rii)
    keep = lam > EIG_THRESHOLD * lam[-1]
    lam, V = lam[keep], V[:, keep]
    s = lam.rsqrt()
    G = (Rc.T @ V) * s[None, :]
    z = (V.T @ b) * s
    k = z.shape[0]
    sf = ft.sqrt()
    W = G @ G.T
    B = torch.eye(W.shape[0], dtype=dtype, device=device) + (sf[:, None] * W * sf[None, :]) / sigma2
    L = torch.linalg.cholesky(B)
    Hz = sf * (G @ z)
    w = torch.linalg.solve_triangular(L, Hz[:, None], upper=False)
    quad = (z @ z - (w * w).sum() / sigma2) / sigma2
    loss = quad + 2 * torch.log(torch.diagonal(L)).sum() + k * math.log(sigma2)
    loss.backward()
    _sync(device)
    secs = _now() - t0
    return secs, float(loss.detach()), ft.grad.detach().double().cpu().numpy(), {"k": int(k)}


def run_varfx(solver_name, G, z, f, sigma2, dtype, device, seed):
    import torch

    from varfx.default_plugins import solvers as S

    cls = {"cholesky": S.CholeskySolver, "cg-slq": S.CGSLQSolver, "nystrom": S.NystromSolver}[solver_name]
    solver = cls(seed=seed) if "seed" in cls.options else cls()
    Gt = torch.as_tensor(G, dtype=dtype, device=device)
    zt = torch.as_tensor(z, dtype=dtype, device=device)
    ft = torch.as_tensor(f, dtype=dtype, device=device).requires_grad_(True)
    _sync(device)
    t0 = _now()
    loss = solver.loss(Gt, zt, ft, sigma2)
    loss.backward()
    _sync(device)
    secs = _now() - t0
    info = {k: v for k, v in solver.last_info.items() if isinstance(v, (int, float, str, bool))}
    return secs, float(loss.detach()), ft.grad.detach().double().cpu().numpy(), info


# ----------------------------------------------------------------------------- driver


def run_method(method, R, core, beta, f, sigma2, G, z, k, dtype, device, seed):
    if method == "cholesky-A-autograd":
        return run_cholesky_A(R, core, beta, f, sigma2, dtype, device, k)
    if method == "eigh-B":
        return run_eigh_B(R, core, beta, f, sigma2, dtype, device, k)
    if method.startswith("varfx-"):
        return run_varfx(method[len("varfx-"):], G, z, f, sigma2, dtype, device, seed)
    raise ValueError(f"unknown method {method!r} (known: {', '.join(METHODS)})")


def _rel(a, b):
    return abs(a - b) / abs(b) if b else abs(a)


def benchmark(sizes, dtypes, spectra, methods, repeats, seed, device_name, log):
    import torch

    from varfx.linalg import dense
    from varfx.linalg.ftz import flush_denormals
    from varfx.linalg.window import FLUSH_RELATIVE as FLUSH_REL, factorise_window

    device = torch.device(device_name)
    # Flush-to-zero for every method alike (baselines included), in every thread
    # (the varfx solvers would set it at their first call, after the baselines ran).
    ftz = flush_denormals() if FLUSH else "off (--no-flush)"
    log(f"flush-to-zero: {ftz}")
    records = []
    # Warm-up on a tiny window: first calls pay for imports and allocator growth.
    Rw, cw, bw, fw, s2w = make_window("full", 120, seed)
    ww = factorise_window(Rw, cw, bw, eig_threshold=EIG_THRESHOLD, flush=FLUSH_REL if FLUSH else 0.0)
    for dtname in dtypes:
        for method in methods:
            run_method(method, Rw, cw, bw, fw, s2w, ww["G"], ww["z"], ww["k"], getattr(torch, dtname),
                       device, seed)
    for spectrum in spectra:
        for n_plus in sizes:
            R, core, beta, f, sigma2 = make_window(spectrum, n_plus, seed)
            n = len(core)
            t0 = _now()
            win = factorise_window(R, core, beta, eig_threshold=EIG_THRESHOLD, flush=FLUSH_REL if FLUSH else 0.0)
            t_pre = _now() - t0
            G, z, k = win["G"], win["z"], win["k"]
            t0 = _now()
            L_ref = dense.reduced_loss(G, z, f, sigma2)
            g_ref, _ = dense.reduced_grad(G, z, f, sigma2)
            log(f"[{spectrum} n+={n_plus} n={n} k={k}] precompute {t_pre:.2f}s, reference "
                f"{_now() - t0:.2f}s")
            base = {"spectrum": spectrum, "n_plus": n_plus, "n": n, "k": k}
            Gabs = np.abs(G[G != 0])
            log(f"  G entries: max {Gabs.max() if Gabs.size else 0:.1e}, min non-zero "
                f"{Gabs.min() if Gabs.size else 0:.1e}, {np.mean(G == 0):.1%} flushed to 0")
            records.append({**base, "dtype": "float64", "method": "precompute-eigh", "seconds": t_pre,
                            "loss_rel_err": None, "grad_rel_err": None,
                            "info": {"logdet_lambda": win["logdet_lambda"],
                                     "beta_outside": win["beta_outside"],
                                     "G_zero_fraction": float(np.mean(G == 0)),
                                     "G_flushed_fro": win["G_flushed_fro"],
                                     "spectrum_note": SPECTRA[spectrum]}})
            for dtname in dtypes:
                dtype = getattr(torch, dtname)
                for method in methods:
                    # Minimum over runs: `repeats` runs, and runs shorter than a second are
                    # repeated up to 5 times (at most 3 s in all), whatever the method, so
                    # that scheduling noise on a shared machine does not decide a ratio.
                    best, spent, runs = None, 0.0, 0
                    while runs < repeats or (best[0] < 1.0 and runs < 5 and spent < 3.0):
                        out = run_method(method, R, core, beta, f, sigma2, G, z, k, dtype, device, seed)
                        runs += 1
                        spent += out[0]
                        if best is None or out[0] < best[0]:
                            best = out
                    secs, value, grad, info = best
                    if info.pop("a_form", False):
                        value -= win["logdet_lambda"]
                    info["runs"] = runs
                    rec = {**base, "dtype": dtname, "method": method, "seconds": secs,
                           "loss_rel_err": _rel(value, L_ref),
                           "grad_rel_err": float(np.linalg.norm(grad - g_ref) / np.linalg.norm(g_ref)),
                           "info": info}
                    records.append(rec)
                    log(f"  {dtname:8s} {method:20s} {secs:9.4f}s  loss err {rec['loss_rel_err']:.2e}"
                        f"  grad err {rec['grad_rel_err']:.2e}")
    return records


def ratios(records):
    """Speed-up of the best exact varfx solver (grad err <= 1e-6, else the most accurate
    exact one) over the baselines, per spectrum / size / dtype."""
    out = []
    keys = sorted({(r["spectrum"], r["n_plus"], r["dtype"]) for r in records if r["method"] != "precompute-eigh"})
    for key in keys:
        rs = {r["method"]: r for r in records if (r["spectrum"], r["n_plus"], r["dtype"]) == key}
        exact = [rs[m] for m in ("varfx-cholesky",) if m in rs]
        if not exact:
            continue
        ok = [r for r in exact if r["grad_rel_err"] <= 1e-6] or exact
        best = min(ok, key=lambda r: r["seconds"])
        row = {"spectrum": key[0], "n_plus": key[1], "dtype": key[2], "best": best["method"],
               "best_seconds": best["seconds"], "best_grad_rel_err": best["grad_rel_err"]}
        for m in ("cholesky-A-autograd", "eigh-B"):
            if m in rs:
                row[f"speedup_vs_{m}"] = rs[m]["seconds"] / best["seconds"]
        out.append(row)
    return out


def accuracy(sizes, spectra, calls, seed, log):
    """Single-call errors of the iterative solvers (default options) over ``calls`` calls
    with fresh probes, on the conformance-test windows and on benchmark windows at the
    realistic f ("x1") and at 40x larger f ("x40", strong signal, ill-conditioned C)."""
    import torch

    from varfx.default_plugins import solvers as S
    from varfx.linalg import dense
    from varfx.linalg.window import factorise_window
    from varfx.testing.solvers import synthetic_window

    windows = []
    for spectrum in spectra:
        for regime in ("weak", "strong"):
            w = synthetic_window(spectrum, regime=regime)
            windows.append((f"test-{regime}", spectrum, w["G"], w["z"], w["f"], w["sigma2"]))
        for n_plus in sizes:
            R, core, beta, f, sigma2 = make_window(spectrum, n_plus, seed)
            win = factorise_window(R, core, beta, eig_threshold=EIG_THRESHOLD)
            for scale in (1, 40):
                windows.append((f"bench-{n_plus}-x{scale}", spectrum, win["G"], win["z"], f * scale, sigma2))
    records = []
    for name, spectrum, G, z, f, sigma2 in windows:
        L_ref = dense.reduced_loss(G, z, f, sigma2)
        g_ref, _ = dense.reduced_grad(G, z, f, sigma2)
        Gt, zt = torch.as_tensor(np.array(G)), torch.as_tensor(np.array(z))
        for cls in (S.CGSLQSolver, S.NystromSolver):
            solver = cls(seed=seed)
            le, ge, se, its = [], [], [], []
            for _ in range(calls):
                ft = torch.as_tensor(np.array(f)).requires_grad_(True)
                loss = solver.loss(Gt, zt, ft, sigma2)
                loss.backward()
                le.append(_rel(float(loss.detach()), L_ref))
                ge.append(float(np.linalg.norm(ft.grad.numpy() - g_ref) / np.linalg.norm(g_ref)))
                se.append(solver.last_info.get("grad_rel_se", float("nan")))
                its.append(solver.last_info.get("iterations", 0))
            rec = {"window": name, "spectrum": spectrum, "k": int(len(z)), "method": cls.name,
                   "calls": calls, "loss_rel_err_max": max(le), "loss_rel_err_mean": float(np.mean(le)),
                   "grad_rel_err_max": max(ge), "grad_rel_err_mean": float(np.mean(ge)),
                   "grad_rel_se_reported": float(np.mean(se)), "iterations": float(np.mean(its)),
                   "loss_tolerance": solver.loss_tolerance, "grad_tolerance": solver.grad_tolerance}
            records.append(rec)
            log(f"{spectrum:6s} {name:16s} k={rec['k']:5d} {cls.name:8s} loss err max {max(le):.1e} "
                f"| grad err max {max(ge):.2f} mean {np.mean(ge):.2f} (reported se {np.mean(se):.2f}) "
                f"| tolerances {solver.loss_tolerance:.1e} / {solver.grad_tolerance:.2f}")
    return records


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print the records as one JSON list")
    ap.add_argument("--sizes", default="2000,4000,8000")
    ap.add_argument("--dtypes", default="float64,float32")
    ap.add_argument("--spectra", default="panel,genotypes,full",
                    help="; ".join(f"{k}: {v}" for k, v in SPECTRA.items()))
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--repeats", type=int, default=1, help="timed runs per method (the minimum is kept)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="sizes 600,1200, one repeat")
    ap.add_argument("--no-flush", action="store_true",
                    help="the pre-fix engine, for comparison: factors not flushed, no flush-to-zero")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall time, or process CPU time (with --threads 1: robust to a busy machine)")
    ap.add_argument("--accuracy", type=int, default=0, metavar="CALLS",
                    help="instead of timings: single-call errors of the iterative solvers over "
                         "CALLS calls (test windows, and benchmark windows at f x1 and x40)")
    args = ap.parse_args(argv)
    sizes = [600, 1200] if args.quick else [int(s) for s in args.sizes.split(",") if s]
    repeats = 1 if args.quick else max(1, args.repeats)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    import torch

    global _now
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu":
        _now = time.process_time
    if args.no_flush:
        import varfx.linalg.solvers_impl as impl

        global FLUSH
        FLUSH = False
        impl.flush_denormals = lambda: None  # the solvers' call at their first use
    log(f"clock {args.clock}, torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
        f"cpu count {os.cpu_count()}")
    if args.accuracy:
        records = accuracy(sizes, args.spectra.split(","), args.accuracy, args.seed, log)
        print(json.dumps(records, indent=1) if args.json else
              "\n".join(json.dumps(r) for r in records))
        return 0
    records = benchmark(sizes, args.dtypes.split(","), args.spectra.split(","),
                        [m for m in args.methods.split(",") if m], repeats, args.seed, args.device, log)
    if args.json:
        print(json.dumps(records, indent=1))
    else:
        print(f"{'spectrum':8s} {'dtype':8s} {'n+':>6s} {'n':>5s} {'k':>5s} {'method':20s} "
              f"{'seconds':>9s} {'loss err':>9s} {'grad err':>9s}")
        for r in records:
            le = "-" if r["loss_rel_err"] is None else f"{r['loss_rel_err']:.1e}"
            ge = "-" if r["grad_rel_err"] is None else f"{r['grad_rel_err']:.1e}"
            print(f"{r['spectrum']:8s} {r['dtype']:8s} {r['n_plus']:6d} {r['n']:5d} {r['k']:5d} "
                  f"{r['method']:20s} {r['seconds']:9.4f} {le:>9s} {ge:>9s}")
    for row in ratios(records):
        log(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
