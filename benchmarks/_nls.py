"""Candidate LD correction for issue 12 (benchmark only; it lost): each kept
eigen-component's noise calibrated by Ledoit and Wolf's analytical nonlinear shrinkage.

A panel of n people estimates the core block's eigenvalues with a bias that grows as
they shrink: the sample eigenvector ``v`` of eigenvalue ``lambda`` has a true variance
``d = v' R v`` above ``lambda`` for the small ones.  Ledoit and Wolf (2020, Annals of
Statistics 48(5), "Analytical nonlinear shrinkage of large-dimensional covariance
matrices") estimate ``d`` from the sample spectrum alone (a kernel estimate of its
density and of that density's Hilbert transform).  With ``c = d / lambda`` the projected
noise ``sigma^2 diag(c)`` is made ``sigma^2 I`` again by rescaling ``P``, ``z`` and
``G`` by ``c^-1/2``, and the core rows of ``G`` use the shrunk block ``V D V'``; the
window store's format and every solver are unchanged.  ``with installed(n):`` patches
``varfx.linalg.window.factorise_window`` in this process (precompute-ld with one worker
runs in-process) and restores it after.

Measured (docs/benchmarks.md, "Nonlinear shrinkage"): h2 2.6-7.6x the truth out of
sample with up to 0.5 n or n components; the noise term alone is not what inflates h2.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

SQRT5 = math.sqrt(5.0)


def shrunk_eigenvalues(lam_desc, n: int) -> np.ndarray:
    """``d`` for the sample eigenvalues ``lam_desc`` (descending) of a p x p covariance
    or correlation from ``n`` people (mean removed: ``n - 1`` degrees of freedom); NaN
    for the numerically null ones.  A rank below ``n - 1`` (columns duplicated, as
    variants in perfect LD in a small panel) is taken as the dimension, so the
    ``p <= n`` formula applies to the distinct directions."""
    lam = np.asarray(lam_desc, dtype=np.float64)[::-1]  # ascending
    p_all, eta = len(lam), n - 1
    rank = int(np.sum(lam > 1e-6 * lam[-1])) if p_all else 0
    p = p_all if rank >= eta else rank
    m = min(p, eta)
    nz = lam[p_all - m:]
    h = eta ** (-1.0 / 3.0)  # the global bandwidth, local bandwidth h * lambda_j
    H = h * nz[None, :]
    x = (nz[:, None] - nz[None, :]) / H
    density = (3.0 / 4.0 / SQRT5) * np.mean(np.maximum(1.0 - x * x / 5.0, 0.0) / H, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ht = (-3.0 / 10.0 / math.pi) * x + (3.0 / 4.0 / SQRT5 / math.pi) * (1.0 - x * x / 5.0) * \
            np.log(np.abs((SQRT5 - x) / (SQRT5 + x)))
    ht = np.where(np.isfinite(ht), ht, (-3.0 / 10.0 / math.pi) * x)  # |x| = sqrt(5): the log term's limit is 0
    hilbert = np.mean(ht / H, axis=1)
    if p <= eta:
        c = p / eta
        d = nz / ((math.pi * c * nz * density) ** 2 + (1.0 - c - math.pi * c * nz * hilbert) ** 2)
    else:
        d = nz / (math.pi ** 2 * nz * nz * (density ** 2 + hilbert ** 2))
    out = np.full(p_all, np.nan)
    out[p_all - m:] = d
    return out[::-1]


@contextlib.contextmanager
def installed(n: int):
    """Within the block, precompute-ld (one worker, this process) calibrates each window's
    kept components for a panel of ``n`` people."""
    import varfx.linalg.window as window

    original = window.factorise_window

    def factorise(R_plus, core_pos, beta_core, **kw):
        fac = original(R_plus, core_pos, beta_core, **kw)
        k = fac["k"]
        if k == 0:
            return fac
        cp = np.asarray(core_pos)
        R_core = np.asarray(R_plus, dtype=np.float64)[np.ix_(cp, cp)]
        d = shrunk_eigenvalues(np.linalg.eigvalsh(0.5 * (R_core + R_core.T))[::-1], n)[:k]
        lam = fac["eigvals"]
        s = np.sqrt(lam / d)  # c^-1/2
        V = (fac["P"] * np.sqrt(lam)[:, None]).T  # (n, k) eigenvectors
        G = fac["G"] * s[None, :]
        G[cp] = V * np.sqrt(d)[None, :]  # the core rows from the shrunk block V D V'
        fac.update(P=fac["P"] * s[:, None], z=fac["z"] * s, G=np.ascontiguousarray(G),
                   logdet_lambda=float(np.sum(np.log(d))))
        return fac

    window.factorise_window = factorise
    try:
        yield
    finally:
        window.factorise_window = original
