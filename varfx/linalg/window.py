"""Once-per-window factorisation of the LD block into the reduced (k-space) form.

For a core window ``(i)`` with flanked window ``(i)+`` the likelihood of the standardised
marginal effects of the core variants is ``beta_hat ~ N(0, A)`` with

    A = R_(i),+ F R_+,(i) + sigma2 R_(i),(i).

With ``R_(i),(i) = V Lambda V^T`` restricted to its k eigenpairs above a relative
threshold, ``P = Lambda^-1/2 V^T`` (k x n) gives

    P A P^T = C = sigma2 I_k + G^T F G,   G = R_+,(i) V Lambda^-1/2  (n+ x k),

so the loss of a window depends on ``f`` only through ``G`` and ``z = P beta_hat``,
which do not depend on the prior and are computed here once (see ``docs/math.md``).
With per-variant sample sizes ``n_m`` and ``beta_hat = Z / sqrt(N)`` for the data
set's one N, the signal term is ``D^1/2 R_(i),+ F R_+,(i) D^1/2`` (``D = diag(n_m / N)``)
and ``G = R_+,(i) D^1/2 V Lambda^-1/2`` (the ``n_scale`` argument).  Negligible entries
of ``G`` and ``P`` are stored as exact zeros, so that no product of them is subnormal.
Everything is numpy float64: this runs once per window in ``precompute-ld``, and the
eigen-decomposition is the numerically delicate step.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg


def _eigh(S: np.ndarray):
    """Symmetric eigen-decomposition, ascending eigenvalues.

    LAPACK's divide-and-conquer driver (``syevd``) is several times faster than the
    default ``syevr`` for the full spectrum of a dense block of a few thousand.
    """
    try:
        return scipy.linalg.eigh(S, driver="evd", check_finite=False)
    except (ValueError, np.linalg.LinAlgError, TypeError):  # pragma: no cover - old scipy
        return np.linalg.eigh(S)


#: Default relative eigenvalue threshold of the core LD block: eigenpairs with
#: ``lambda <= EIG_THRESHOLD * lambda_max`` are dropped.  The one default of
#: :func:`factorise_window`, :func:`varfx.linalg.dense.dense_loss` and
#: ``varfx precompute-ld --eig-threshold`` (the CLI cannot import numpy-heavy modules,
#: so tests/test_linalg.py checks that its default equals this).
EIG_THRESHOLD = 1e-3

#: Entries of the stored factors ``G`` and ``P`` below this fraction of the largest
#: entry are set to exact zero (:func:`flush_small`).  Why 2^-64 (5.4e-20): products of
#: two kept entries (>= 2.9e-39 max^2) stay far above the float64 subnormal range for
#: any prior variance f >= 1e-260 max^-2, and a kept entry is a normal float32 whenever
#: max|G| > 2.2e-19.  The loss moves by at most ``~2 e (k + z^T C^-1 z)`` with
#: ``e = sqrt(N f_max) ||dG||_F`` (:func:`flush_loss_bound`, docs/math.md); since
#: ``|G_mj| <= sqrt(n+)``, ``||dG||_F <= 2^-64 n+ sqrt(k)``, so for n+ <= 10^4 and
#: ``N f_max <= 10^4`` (a single variant with chi2 10^4) ``e <= 5.4e-12``: the change is
#: ~1e-11 per eigen-direction, against a loss of ~k |log sigma2| and the exact solver's
#: stated tolerance of 1e-8 relative.  AR(1)-type LD gives entries down to 1e-273.
FLUSH_RELATIVE = 2.0**-64


def flush_small(X: np.ndarray, relative: float = FLUSH_RELATIVE) -> tuple[np.ndarray, float]:
    """``X`` with entries ``|x| < relative * max|X|`` set to 0, and ``||removed||_F``."""
    X = np.array(X, dtype=np.float64, copy=True)
    if X.size == 0 or relative <= 0:
        return X, 0.0
    mx = float(np.max(np.abs(X)))
    small = np.abs(X) < relative * mx
    removed = float(np.linalg.norm(X[small])) if small.any() else 0.0
    X[small] = 0.0
    return X, removed


def flush_loss_bound(G_removed_fro: float, k: int, quad: float, f_max: float, sigma2: float) -> float:
    """Upper bound on ``|L(G) - L(G + dG)|`` for a perturbation with ``||dG||_F = G_removed_fro``.

    With ``H = F^1/2 G``, ``C = sigma2 I + H^T H`` and ``E = C^-1/2 dC C^-1/2``:
    ``||H C^-1/2|| <= 1`` and ``||dH C^-1/2|| <= e = sqrt(f_max / sigma2) ||dG||_F``, so
    ``||E|| <= d = 2e + e^2``; then ``|d log|C|| <= -k log(1 - d)`` and
    ``|d z^T C^-1 z| <= quad * d / (1 - d)`` (``quad = z^T C^-1 z``).  Infinite when
    ``d >= 1`` (no bound).  Derivation in docs/math.md.
    """
    e = np.sqrt(max(f_max, 0.0) / sigma2) * G_removed_fro
    d = 2.0 * e + e * e
    if d >= 1.0:
        return float("inf")
    return float(-k * np.log1p(-d) + abs(quad) * d / (1.0 - d))


def kept_rank(lam_desc: np.ndarray, eig_threshold: float = EIG_THRESHOLD, max_rank: int | None = None,
              var_share: float | None = None, eig_floor: float | None = None) -> int:
    """How many of the descending eigenvalues ``lam_desc`` the factorisation keeps.

    Every rule applies at once: ``lambda > eig_threshold * lambda_max``; at most
    ``max_rank`` (the panel-size cap of ``precompute-ld --ld-correction``); and the fewest
    leading components whose cumulative share of the positive eigenvalues' sum reaches
    ``var_share`` (SBayesRC-style truncation, a measured candidate); and only components
    whose eigenvalue is at least ``eig_floor`` times the mean eigenvalue (the mean is 1
    for a correlation block: the Kaiser-Guttman rule at ``eig_floor = 1``), always the
    first.  Keeping the *top* components is a projection of the summary statistics, so
    with the true LD the reduced likelihood stays exact (docs/math.md, "LD from a small
    panel")."""
    lam_desc = np.asarray(lam_desc, dtype=np.float64)
    if lam_desc.size == 0 or not np.isfinite(lam_desc[0]) or lam_desc[0] <= 0.0:
        return 0
    k = int(np.sum(lam_desc > eig_threshold * lam_desc[0]))
    if max_rank is not None:
        k = min(k, int(max_rank))
    if var_share is not None and k > 0:
        pos = np.clip(lam_desc, 0.0, None)
        share = np.cumsum(pos) / pos.sum()
        # the first index where the share reaches var_share, plus one (rounding slack
        # so that var_share = 1 keeps every positive component)
        k = min(k, int(np.searchsorted(share, var_share - 1e-12, side="left")) + 1)
    if eig_floor is not None and k > 0:
        # relative rounding slack: a block of unlinked variants (R = I) keeps them all
        floor = eig_floor * float(np.mean(lam_desc)) * (1.0 - 1e-9)
        k = min(k, max(1, int(np.sum(lam_desc >= floor))))
    return max(k, 0)


def core_rank_cap(n_core: int, core_rank_frac: float, max_rank: int | None = None) -> int:
    """The rank cap of a window with ``n_core`` core variants: at most ``core_rank_frac``
    of them (at least 1), and at most ``max_rank`` (the panel's cap, ``frac * n_ref``).
    Together: a fraction of the rank ``min(n_core, n_ref)`` the panel's sample LD of the
    core block can have (docs/math.md, "LD from a small panel")."""
    cap = max(1, math.floor(core_rank_frac * n_core))
    return cap if max_rank is None else min(cap, int(max_rank))


def factorise_window(R_plus, core_pos, beta_core, eig_threshold: float = EIG_THRESHOLD,
                     flush: float = FLUSH_RELATIVE, n_scale=None, max_rank: int | None = None,
                     var_share: float | None = None, flank_r_min: float | None = None,
                     core_rank_frac: float | None = None, eig_floor: float | None = None) -> dict:
    """Reduce one LD window to its k-space factors.

    Parameters
    ----------
    R_plus : (n+, n+) array
        Dense LD (correlation) matrix over the window's ``(i)+`` variants.
    core_pos : (n,) int array
        Positions of the core variants ``(i)`` inside ``(i)+``.
    beta_core : (n,) array
        Standardised marginal effects ``Z / sqrt(N)`` of the core variants, with ``N``
        one sample size for the whole data set (the dataset's median N), not each
        variant's own: the per-variant sizes enter through ``n_scale``.
    eig_threshold : float
        Eigenpairs of ``R_(i),(i)`` with ``lambda <= eig_threshold * lambda_max`` are
        dropped: LD matrices from a reference panel are singular (rank at most the
        panel size) and, when estimated pairwise or shrunk, have small *negative*
        eigenvalues.  Both carry no information and would make ``Lambda^-1/2``
        explode, so the likelihood is taken on the range of the kept eigenvectors
        (the pseudo-inverse / pseudo-determinant convention of the design notes).
    n_scale : (n,) array or None
        ``n_m / N`` for each core variant (meta-analyses: variants measured in different
        numbers of people).  With ``z_m = sqrt(n_m) (R beta)_m + e``,
        ``e ~ N(0, sigma^2 R)``, ``beta_hat = z / sqrt(N)`` has covariance
        ``D^1/2 R_(i),+ F R_+,(i) D^1/2 + (sigma^2/N) R_(i),(i)`` with
        ``D = diag(n_scale)``, so ``G = R_+,(i) D^1/2 V Lambda^-1/2`` and nothing else
        changes (docs/math.md).  None: all ones (one sample size), today's model.
    max_rank, var_share, eig_floor : int or None, float or None, float or None
        Further truncation to the top components (:func:`kept_rank`): at most
        ``max_rank`` of them, only as many as reach the share ``var_share`` of the
        block's variance, and only those with an eigenvalue of at least ``eig_floor``
        times the block's mean.  None: no such limit.
    flank_r_min : float or None
        Correlations between a core variant and a flank variant (one of ``(i)+`` outside
        ``(i)``) with ``|r| < flank_r_min`` are set to zero in ``G``'s ``R_+,(i)``: in a
        panel of n people an unrelated pair has ``r ~ N(0, 1/n)``, and the model would
        read each such noise row as signal reaching the core (``G^T F G`` grows by about
        ``f / n I_k`` per flank variant).  The core block, whose eigenvectors define the
        projection, is never changed.  ``ld_score`` is computed before.  None: no change.
    flush : float
        Entries of ``G`` and ``P`` below ``flush`` times their largest entry are stored
        as exact zeros (:data:`FLUSH_RELATIVE`; 0 keeps everything).  ``z`` is computed
        from the unflushed ``P``.

    Returns
    -------
    dict with
        ``P`` (k, n) ``Lambda^-1/2 V^T``;
        ``G`` (n+, k) ``R_+,(i) D^1/2 V Lambda^-1/2`` (``D = diag(n_scale)``, I by default);
        ``z`` (k,) ``P beta_core``;
        ``eigvals`` (k,) the kept eigenvalues, descending;
        ``logdet_lambda`` ``sum(log eigvals)`` (so that ``log|A|_+ = logdet_lambda +
        log|C|``);
        ``ld_score`` (n,) ``sum_{m' in (i)+} R_mm'^2`` for each core variant ``m``;
        ``k`` the number of kept eigenpairs;
        ``k_threshold`` how many the eigen-threshold alone would keep (``k`` is smaller
        when ``max_rank`` or ``var_share`` truncated the window);
        ``beta_outside`` ``||(I - V V^T) beta|| / ||beta||``, the part of ``beta_core``
        outside the kept range, which the reduced likelihood ignores (near 0 for
        summary statistics consistent with the panel; large values flag an LD
        mismatch);
        ``G_flushed_fro`` ``||dG||_F``, the Frobenius norm of the entries of ``G`` set
        to zero (for :func:`flush_loss_bound`).
    All arrays are float64.  A window whose block has no eigenvalue above the threshold
    (all-zero block, or n = 0) gives k = 0 and empty arrays of the right shapes.
    """
    R_plus = np.asarray(R_plus, dtype=np.float64)
    core_pos = np.asarray(core_pos, dtype=np.int64).reshape(-1)
    beta = np.asarray(beta_core, dtype=np.float64).reshape(-1)
    if R_plus.ndim != 2 or R_plus.shape[0] != R_plus.shape[1]:
        raise ValueError(f"R_plus must be square, got shape {R_plus.shape}")
    n_plus = R_plus.shape[0]
    n = core_pos.shape[0]
    if beta.shape[0] != n:
        raise ValueError(f"beta_core has {beta.shape[0]} entries for {n} core variants")
    if n and (core_pos.min() < 0 or core_pos.max() >= n_plus):
        raise ValueError("core_pos indexes outside R_plus")
    if n_scale is not None:
        n_scale = np.asarray(n_scale, dtype=np.float64).reshape(-1)
        if n_scale.shape[0] != n:
            raise ValueError(f"n_scale has {n_scale.shape[0]} entries for {n} core variants")
        if not np.all(np.isfinite(n_scale)) or np.any(n_scale <= 0):
            raise ValueError("n_scale must be finite and positive (n_m / N)")

    R_plus_core = R_plus[:, core_pos]  # R_+,(i), (n+, n)
    ld_score = np.einsum("ij,ij->j", R_plus_core, R_plus_core) if n else np.zeros(0)

    def _empty():
        return {
            "P": np.zeros((0, n)),
            "G": np.zeros((n_plus, 0)),
            "z": np.zeros(0),
            "eigvals": np.zeros(0),
            "logdet_lambda": 0.0,
            "ld_score": ld_score,
            "k": 0,
            "k_threshold": 0,
            "beta_outside": 1.0 if np.any(beta) else 0.0,
            "G_flushed_fro": 0.0,
        }

    if n == 0:
        return _empty()
    if flank_r_min is not None and flank_r_min > 0:
        flank = np.ones(n_plus, dtype=bool)
        flank[core_pos] = False
        block = R_plus_core[flank]
        block[np.abs(block) < flank_r_min] = 0.0
        R_plus_core = R_plus_core.copy()
        R_plus_core[flank] = block
    R_core = R_plus_core[core_pos, :]
    R_core = 0.5 * (R_core + R_core.T)  # exact symmetry for eigh
    lam, V = _eigh(R_core)
    lam_max = float(lam[-1])
    if not np.isfinite(lam_max) or lam_max <= 0.0:
        return _empty()
    lam, V = lam[::-1], V[:, ::-1]
    k_threshold = kept_rank(lam, eig_threshold)
    if core_rank_frac:
        max_rank = core_rank_cap(n, core_rank_frac, max_rank)
    k = kept_rank(lam, eig_threshold, max_rank, var_share, eig_floor)
    if k == 0:
        return _empty()
    lam = lam[:k].copy()
    V = V[:, :k].copy()
    s = 1.0 / np.sqrt(lam)
    P = V.T * s[:, None]  # Lambda^-1/2 V^T
    if n_scale is None:
        G = (R_plus_core @ V) * s[None, :]  # R_+,(i) V Lambda^-1/2
    else:  # R_+,(i) D^1/2 V Lambda^-1/2: the signal of variant m is sqrt(n_m / N) times
        G = ((R_plus_core * np.sqrt(n_scale)[None, :]) @ V) * s[None, :]
    z = P @ beta
    bnorm = float(np.linalg.norm(beta))
    inside = V @ (V.T @ beta)
    outside = float(np.linalg.norm(beta - inside)) / bnorm if bnorm > 0 else 0.0
    G, g_removed = flush_small(G, flush)
    P, _ = flush_small(P, flush)
    return {
        "P": P,
        "G": np.ascontiguousarray(G),
        "z": z,
        "eigvals": lam,
        "logdet_lambda": float(np.sum(np.log(lam))),
        "ld_score": ld_score,
        "k": int(k),
        "k_threshold": int(k_threshold),
        "beta_outside": outside,
        "G_flushed_fro": g_removed,
    }
