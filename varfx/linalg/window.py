"""Once-per-window factorisation of the LD block into the reduced (k-space) form.

For a core window ``(i)`` with flanked window ``(i)+`` the likelihood of the standardised
marginal effects of the core variants is ``beta_hat ~ N(0, A)`` with

    A = R_(i),+ F R_+,(i) + sigma2 R_(i),(i).

With ``R_(i),(i) = V Lambda V^T`` restricted to its k eigenpairs above a relative
threshold, ``P = Lambda^-1/2 V^T`` (k x n) gives

    P A P^T = C = sigma2 I_k + G^T F G,   G = R_+,(i) V Lambda^-1/2  (n+ x k),

so the loss of a window depends on ``f`` only through ``G`` and ``z = P beta_hat``,
which do not depend on the prior and are computed here once (see ``docs/math.md``).
Everything is numpy float64: this runs once per window in ``precompute-ld``, and the
eigen-decomposition is the numerically delicate step.
"""

from __future__ import annotations

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


def factorise_window(R_plus, core_pos, beta_core, eig_threshold: float = 1e-6) -> dict:
    """Reduce one LD window to its k-space factors.

    Parameters
    ----------
    R_plus : (n+, n+) array
        Dense LD (correlation) matrix over the window's ``(i)+`` variants.
    core_pos : (n,) int array
        Positions of the core variants ``(i)`` inside ``(i)+``.
    beta_core : (n,) array
        Standardised marginal effects ``Z / sqrt(N)`` of the core variants.
    eig_threshold : float
        Eigenpairs of ``R_(i),(i)`` with ``lambda <= eig_threshold * lambda_max`` are
        dropped: LD matrices from a reference panel are singular (rank at most the
        panel size) and, when estimated pairwise or shrunk, have small *negative*
        eigenvalues.  Both carry no information and would make ``Lambda^-1/2``
        explode, so the likelihood is taken on the range of the kept eigenvectors
        (the pseudo-inverse / pseudo-determinant convention of the design notes).

    Returns
    -------
    dict with
        ``P`` (k, n) ``Lambda^-1/2 V^T``;
        ``G`` (n+, k) ``R_+,(i) V Lambda^-1/2``;
        ``z`` (k,) ``P beta_core``;
        ``eigvals`` (k,) the kept eigenvalues, descending;
        ``logdet_lambda`` ``sum(log eigvals)`` (so that ``log|A|_+ = logdet_lambda +
        log|C|``);
        ``ld_score`` (n,) ``sum_{m' in (i)+} R_mm'^2`` for each core variant ``m``;
        ``k`` the number of kept eigenpairs;
        ``beta_outside`` ``||(I - V V^T) beta|| / ||beta||``, the part of ``beta_core``
        outside the kept range, which the reduced likelihood ignores (near 0 for
        summary statistics consistent with the panel; large values flag an LD
        mismatch).
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
            "beta_outside": 1.0 if np.any(beta) else 0.0,
        }

    if n == 0:
        return _empty()
    R_core = R_plus_core[core_pos, :]
    R_core = 0.5 * (R_core + R_core.T)  # exact symmetry for eigh
    lam, V = _eigh(R_core)
    lam_max = float(lam[-1])
    if not np.isfinite(lam_max) or lam_max <= 0.0:
        return _empty()
    keep = lam > eig_threshold * lam_max
    lam = lam[keep][::-1].copy()
    V = V[:, keep][:, ::-1].copy()
    k = lam.shape[0]
    s = 1.0 / np.sqrt(lam)
    P = V.T * s[:, None]  # Lambda^-1/2 V^T
    G = (R_plus_core @ V) * s[None, :]  # R_+,(i) V Lambda^-1/2
    z = P @ beta
    bnorm = float(np.linalg.norm(beta))
    inside = V @ (V.T @ beta)
    outside = float(np.linalg.norm(beta - inside)) / bnorm if bnorm > 0 else 0.0
    return {
        "P": P,
        "G": np.ascontiguousarray(G),
        "z": z,
        "eigvals": lam,
        "logdet_lambda": float(np.sum(np.log(lam))),
        "ld_score": ld_score,
        "k": int(k),
        "beta_outside": outside,
    }
