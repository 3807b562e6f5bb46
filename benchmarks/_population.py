"""A synthetic population whose LD decays with distance: mosaics of a panel's genotypes.

Why: the out-of-sample set-up of simulate.py draws z through the LD of 189 real people
(half A of the bundled panel) and fits with the other 189.  Those 189 people's sample
correlations, of order 1/sqrt(189) between *every* pair of a 1-Mb block, then act as
the GWAS population's LD: each effect leaks into the whole block, which adds about
``N h2 M_block / (M n_A)`` to every chi2 (0.8 at the benchmark's settings: the LD-score-
regression intercept comes out at 1.83 where the noise is 1).  A real GWAS of 100,000
people has population LD, which decays with distance; only the reference panel is small.

The population here copies the panel's genotypes in segments.  Each person's source (a
panel person, uniform with replacement) switches between consecutive variants with
probability ``1 - exp(-d / L)`` (``d`` the distance in bp, ``L`` the switch length) and
at every chromosome start.  At two variants ``d`` apart the source is the same with
probability ``exp(-d / L)``, and otherwise independent of it, so the population's
standardised genotypes have correlation exactly

    R_pop = R_panel o K,   K_mm' = exp(-|bp_m - bp_m'| / L) on one chromosome, 0 across,

(``o`` the elementwise product; ``R_panel = X X^T / S`` of the S panel people; positive
semi-definite as the Schur product of two such matrices).  Within ``L`` the panel's real
LD is kept; its spurious long-range correlations are damped by ``exp(-d / L)``.

- :func:`mosaic_dosages` draws people of this population (the external reference panel:
  a sample of ``n_ref`` people with the sampling noise a real panel has).
- :func:`population_ld_times` computes ``R_pop v`` exactly in ``O(S M)`` with a forward
  and a backward recursion of the exponential kernel (no M x M matrix).
- :func:`population_noise` draws ``e ~ N(0, R_pop)`` exactly: ``e_m = S^-1/2 sum_s
  x_sm u_sm`` with independent unit Ornstein-Uhlenbeck processes ``u_s`` along each
  chromosome (``Cov(u_sm, u_sm') = K_mm'``), so ``Cov(e) = R_panel o K``.

The GWAS's z are then ``sqrt(N) R_pop beta + sigma e``: the GWAS sample is large, so its
LD is the population's.

:func:`mosaic_sumstats` and :func:`mosaic_reference` put these together with varfx's
stages for benchmarks/simulate.py and benchmarks/ld_glm.py: the sumstats of a GWAS of
the population for a `varfx simulate` truth, and a PLINK reference of its people.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def _decay(chrom, bp, switch_bp: float) -> np.ndarray:
    """``a_m = exp(-(bp_m - bp_m-1) / L)`` between consecutive variants; 0 at the first
    variant of each chromosome (the kernel's 0 across chromosomes).  Variants must be
    sorted by chromosome and position."""
    chrom, bp = np.asarray(chrom), np.asarray(bp, dtype=np.float64)
    a = np.zeros(len(bp))
    if len(bp) > 1:
        same = chrom[1:] == chrom[:-1]
        gap = np.diff(bp)
        if np.any(same & (gap < 0)):
            raise ValueError("variants are not sorted by position within a chromosome")
        a[1:] = np.where(same, np.exp(-np.maximum(gap, 0.0) / switch_bp), 0.0)
    return a


def mosaic_dosages(panel_dosages, chrom, bp, n_people: int, switch_bp: float, rng) -> np.ndarray:
    """(n_people x M) dosages of new people of the population: each copies the panel's
    people (rows of ``panel_dosages``, S x M, NaN missing) in segments whose source
    switches between consecutive variants with probability ``1 - a_m``."""
    panel_dosages = np.asarray(panel_dosages)
    S, M = panel_dosages.shape
    a = _decay(chrom, bp, switch_bp)
    switch = rng.random((n_people, M)) >= a[None, :]  # a_0 = 0: always a fresh source first
    fresh = rng.integers(0, S, size=(n_people, M))
    # the column of each person's latest switch at or before m, then its fresh source
    last = np.maximum.accumulate(np.where(switch, np.arange(M)[None, :], 0), axis=1)
    source = np.take_along_axis(fresh, last, axis=1)
    return panel_dosages[source, np.arange(M)[None, :]]


def population_ld_times(x, chrom, bp, switch_bp: float, v) -> np.ndarray:
    """``(R_panel o K) v`` for standardised panel genotypes ``x`` (M x S, rows of unit
    population variance, as :meth:`varfx.io.ld.PlinkLD.standardized` gives them).

    ``sum_m' K_mm' w_m'`` for ``w = x_s v`` is a forward sum ``F_m = w_m + a_m F_m-1``
    plus a backward sum ``B_m = w_m + a_m+1 B_m+1``, less ``w_m`` counted twice."""
    x = np.asarray(x, dtype=np.float64)
    M, S = x.shape
    a = _decay(chrom, bp, switch_bp)
    w = x * np.asarray(v, dtype=np.float64)[:, None]  # M x S
    fwd = np.empty_like(w)
    bwd = np.empty_like(w)
    fwd[0] = w[0]
    for m in range(1, M):
        fwd[m] = w[m] + a[m] * fwd[m - 1]
    bwd[M - 1] = w[M - 1]
    for m in range(M - 2, -1, -1):
        bwd[m] = w[m] + a[m + 1] * bwd[m + 1]
    return (x * (fwd + bwd - w)).sum(axis=1) / S


def population_noise(x, chrom, bp, switch_bp: float, rng) -> np.ndarray:
    """One draw of ``e ~ N(0, R_panel o K)`` (length M), exactly Gaussian."""
    x = np.asarray(x, dtype=np.float64)
    M, S = x.shape
    a = _decay(chrom, bp, switch_bp)
    eps = rng.standard_normal((M, S))
    u = np.empty((M, S))
    u[0] = eps[0]
    for m in range(1, M):  # stationary unit-variance AR(1) along the variants
        u[m] = a[m] * u[m - 1] + np.sqrt(1.0 - a[m] ** 2) * eps[m]
    return (x * u).sum(axis=1) / np.sqrt(S)


def truth_beta(sim_dir, snps) -> np.ndarray:
    """The true effects (truth.tsv of `varfx simulate`) of ``snps``, in their order."""
    from varfx.stages.simulate import TRUTH_FILE

    truth = {}
    with open(Path(sim_dir) / TRUTH_FILE) as fh:
        next(fh)
        for line in fh:
            snp, _, _, _, beta = line.split("\t")
            truth[snp] = float(beta)
    return np.array([truth[s] for s in snps])


def mosaic_sumstats(sim_dir, dataset, out_path, n_gwas, sigma2, seed, switch_bp):
    """z of a GWAS of the mosaic population (``--setups mosaic``): ``sqrt(N) R_pop beta
    + sqrt(sigma2) e``, ``e ~ N(0, R_pop)``, in the variant order and alleles of
    ``dataset`` (ingested from the founders' panel), as a fastGWA file."""
    import h5py

    from varfx.io.ld import PlinkLD
    from varfx.stages.simulate import write_fastgwa

    with h5py.File(Path(dataset) / "dataset.h5", "r") as h5:
        var = h5["variants"]
        v = {k: var[k].asstr()[:] for k in ("snp", "a1", "a2")}
        v.update({k: var[k][:] for k in ("chrom", "bp", "freq")})
        x = PlinkLD(h5).standardized(np.arange(len(v["snp"])))  # M x S
    beta = truth_beta(sim_dir, v["snp"])
    rng = np.random.default_rng(20_000 + seed)
    z = (math.sqrt(n_gwas) * population_ld_times(x, v["chrom"], v["bp"], switch_bp, beta)
         + math.sqrt(sigma2) * population_noise(x, v["chrom"], v["bp"], switch_bp, rng))
    write_fastgwa(out_path, v, z, n_gwas)


def mosaic_reference(panel, out_prefix, n_people, switch_bp, seed):
    """A PLINK reference of ``n_people`` new people copying ``panel``'s people (their
    founders) in segments of mean length ``switch_bp``."""
    from varfx.testing.data import read_bed_dosages, write_bed

    bim = Path(f"{panel}.bim").read_text()
    rows = [line.split() for line in bim.splitlines()]
    chrom = np.array([r[0] for r in rows])
    bp = np.array([int(r[3]) for r in rows], dtype=np.int64)
    S = len(Path(f"{panel}.fam").read_text().splitlines())
    dos = read_bed_dosages(panel, S, range(len(rows)))
    new = mosaic_dosages(dos, chrom, bp, n_people, switch_bp, np.random.default_rng(30_000 + seed))
    return write_bed(out_prefix, new, bim, [f"m{i} m{i} 0 0 0 -9" for i in range(n_people)])
