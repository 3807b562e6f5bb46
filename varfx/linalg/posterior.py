"""Posterior effect sizes ``E[beta | beta_hat]`` under a prior, window by window.

The model of the ``full`` objective (docs/math.md sections 1, 1a and 6): within a window,
``beta_+ ~ N(0, F_+)`` over the flanked variants ``(i)+`` and the core statistics
``beta_hat_(i) ~ N(D^1/2 R_(i),+ beta_+, sigma2 R_(i),(i))`` (``sigma2 = sigma^2 / N``).
The window store keeps ``z = P beta_hat`` and ``G^T = P D^1/2 R_(i),+``, and
``P R_(i),(i) P^T = I_k``, so

    z = G^T beta_+ + e,    e ~ N(0, sigma2 I_k):

a linear-Gaussian model in k dimensions.  Its posterior is

    E[beta_+ | z]   = F G C^-1 z,                   C = sigma2 I_k + G^T F G,
    Var[beta_m | z] = f_m - f_m^2 (G C^-1 G^T)_mm ,

the same ``C`` the likelihood factorises.  For a full-rank core block this is the
conditional mean given ``beta_hat_(i)`` itself (``F R_+,(i) A^-1 beta_hat``); with
eigen-directions dropped it is the conditional mean given the kept projections
``V^T beta_hat``, exactly the data the reduced likelihood uses.  Each variant takes its
value from the window where it is a core variant (the flank only carries the LD of
neighbouring windows into this one).

numpy float64, no I/O: the windows may be :class:`varfx.api.Window` objects (torch
tensors are converted) or anything with ``G``, ``z``, ``plus_idx``, ``core_idx`` and
``core_pos``.
"""

from __future__ import annotations

import numpy as np


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def window_posterior(G, z, f_plus, sigma2, core_pos, variance: bool = True):
    """Posterior mean (and variance) of the core variants' standardised effects.

    Parameters
    ----------
    G : (n+, k) ``R_+,(i) D^1/2 V Lambda^-1/2`` of the window store.
    z : (k,) ``P beta_hat_(i)``.
    f_plus : (n+,) prior variances of the window's ``(i)+`` variants (>= 0, finite).
    sigma2 : float, ``sigma^2 / N`` (> 0).
    core_pos : (n,) positions of the core variants inside ``(i)+``.

    Returns ``(mean, var)`` over the core variants, ``var`` None unless ``variance``.
    A window with k = 0 carries no data: the prior, mean 0 and variance f.
    """
    import scipy.linalg

    G = _np(G)
    z = _np(z).reshape(-1)
    f = _np(f_plus).reshape(-1)
    core_pos = np.asarray(core_pos, dtype=np.int64).reshape(-1)
    s2 = float(sigma2)
    if not (np.isfinite(s2) and s2 > 0):
        raise ValueError(f"sigma2 must be finite and positive, got {sigma2}")
    if not (np.isfinite(f).all() and (f >= 0).all()):
        raise ValueError("f_plus must be finite and >= 0")
    k = z.shape[0]
    if G.shape != (f.shape[0], k):
        raise ValueError(f"G has shape {G.shape}; expected ({f.shape[0]}, {k})")
    f_core = f[core_pos]
    if k == 0:
        return np.zeros(core_pos.shape[0]), (f_core.copy() if variance else None)
    C = s2 * np.eye(k) + G.T @ (f[:, None] * G)
    # Cholesky of C (SPD: sigma2 > 0); C = L L^T
    L = scipy.linalg.cholesky(0.5 * (C + C.T), lower=True, check_finite=False)
    u = scipy.linalg.cho_solve((L, True), z, check_finite=False)  # C^-1 z
    Gc = G[core_pos]
    mean = f_core * (Gc @ u)
    if not variance:
        return mean, None
    W = scipy.linalg.solve_triangular(L, Gc.T, lower=True, check_finite=False)  # L^-1 g_m, (k, n)
    q = np.einsum("ij,ij->j", W, W)  # g_m^T C^-1 g_m
    # f - f^2 q >= 0 in exact arithmetic (a conditional variance); rounding can take
    # it a few ulps of f below 0 when the data pin beta_m down
    var = np.maximum(f_core - f_core * f_core * q, 0.0)
    return mean, var


def posterior_effects(windows, f, sigma2, n_variants: int, variance: bool = True) -> dict:
    """Posterior means of every variant of a dataset from the windows where it is core.

    ``f``: (n_variants,) the prior variance of every dataset variant; ``sigma2``:
    ``sigma^2 / N``.  Returns a dict of ``mean`` and ``var`` (n_variants; ``var`` None
    unless ``variance``), ``in_core`` (bool: the variant is a core variant of one of the
    windows), ``covered`` (bool: ... of a window with k > 0, so data entered its
    posterior) and ``n_windows``.  ``windows`` may be any iterable (a generator reading
    one window at a time keeps one window's factors in memory).  Variants that are
    not covered get the prior (mean 0, variance f).  A variant that is a core variant
    of two windows is a ValueError (the stores never make one).
    """
    f = _np(f).reshape(-1)
    if f.shape[0] != n_variants:
        raise ValueError(f"f has {f.shape[0]} entries for {n_variants} variants")
    mean = np.zeros(n_variants)
    var = f.copy() if variance else None
    seen = np.zeros(n_variants, dtype=bool)
    covered = np.zeros(n_variants, dtype=bool)
    count = 0
    for w in windows:
        core = np.asarray(w.core_idx, dtype=np.int64)
        if seen[core].any():
            raise ValueError(f"variant {int(core[seen[core]][0])} is a core variant of two windows")
        seen[core] = True
        count += 1
        z = _np(w.z)
        if z.shape[0] == 0:
            continue
        plus = np.asarray(w.plus_idx, dtype=np.int64)
        m, v = window_posterior(w.G, z, f[plus], sigma2, w.core_pos, variance=variance)
        mean[core] = m
        if variance:
            var[core] = v
        covered[core] = True
    return {"mean": mean, "var": var, "in_core": seen, "covered": covered, "n_windows": count}


def dense_posterior_mean(R_plus, core_pos, beta_core, f_plus, sigma2, eig_threshold=None, n_scale=None,
                         max_rank=None, flank_r_min=None, core_rank_frac=None, eig_floor=None):
    """The Gaussian conditional mean computed from the dense matrices (a reference).

    ``beta_+ ~ N(0, F)``, ``beta_hat = D^1/2 R_(i),+ beta_+ + e``,
    ``e ~ N(0, sigma2 R_(i),(i))``; conditioning on ``y = V^T beta_hat`` (V: the
    eigenvectors of ``R_(i),(i)`` above ``eig_threshold * lambda_max``, all of them for
    a full-rank block with a threshold below its smallest eigenvalue):

        E[beta_+ | y] = Cov(beta_+, y) Cov(y)^-1 y
                      = F R_+,(i) D^1/2 V (V^T A V)^-1 V^T beta_hat,
        A = D^1/2 R_(i),+ F R_+,(i) D^1/2 + sigma2 R_(i),(i).

    ``max_rank`` / ``core_rank_frac`` / ``eig_floor`` / ``flank_r_min``: the model of
    precompute-ld's LD correction (the top ``max_rank`` eigenvectors at most, at most
    ``core_rank_frac`` of the core's variants, only those of eigenvalue at least
    ``eig_floor`` times the mean (the first always); core-flank ``|r| < flank_r_min``
    set to 0 in ``R_+,(i)``; docs/math.md, "LD from a small panel").

    Returns the core variants' means.  Written with explicit inverses: a yardstick,
    not fast code.
    """
    if eig_threshold is None:
        from .window import EIG_THRESHOLD as eig_threshold
    R_plus = _np(R_plus)
    core_pos = np.asarray(core_pos, dtype=np.int64)
    beta = _np(beta_core)
    f = _np(f_plus)
    d = np.ones(core_pos.shape[0]) if n_scale is None else _np(n_scale)
    Rpc = R_plus[:, core_pos].copy()
    if flank_r_min:
        flank = np.setdiff1d(np.arange(R_plus.shape[0]), core_pos)
        sub = Rpc[flank]
        sub[np.abs(sub) < flank_r_min] = 0.0
        Rpc[flank] = sub
    Rc = Rpc * np.sqrt(d)[None, :]  # R_+,(i) D^1/2
    R_core = R_plus[np.ix_(core_pos, core_pos)]
    lam, V = np.linalg.eigh(0.5 * (R_core + R_core.T))
    lam, V = lam[::-1], V[:, ::-1]
    k = int(np.sum(lam > eig_threshold * lam.max()))
    if core_rank_frac:  # at most this share of the core's variants (at least one)
        max_rank = min(max(1, int(np.floor(core_rank_frac * len(core_pos)))),
                       len(core_pos) if max_rank is None else int(max_rank))
    if max_rank is not None:
        k = min(k, int(max_rank))
    if eig_floor:  # the mean eigenvalue is trace / n
        k = min(k, max(1, int(np.sum(lam >= eig_floor * np.trace(R_core) / len(core_pos) * (1 - 1e-9)))))
    V = V[:, :k]
    A = Rc.T @ (f[:, None] * Rc) + float(sigma2) * R_core
    cov_by = (f[:, None] * Rc) @ V
    mean_plus = cov_by @ np.linalg.solve(V.T @ A @ V, V.T @ beta)
    return mean_plus[core_pos]
