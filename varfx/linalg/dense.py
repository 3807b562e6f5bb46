"""Independent dense reference formulas (numpy, float64) for tests and benchmarks.

Three ways to write the loss of one window, which must agree (``docs/math.md``):

1. :func:`dense_loss` - the definition: ``beta^T A^+ beta + log|A|_+`` with
   ``A = R_(i),+ F R_+,(i) + sigma2 R_(i),(i)`` built explicitly (n x n).
2. :func:`bform_loss` - the DeepWAS paper's form through the n+ x n+ matrix
   ``B = I + sigma2^-1 F^1/2 W F^1/2``, ``W = G G^T``.
3. :func:`reduced_loss` - varfx's k-space form ``z^T C^-1 z + log|C|``,
   ``C = sigma2 I_k + G^T F G``.

Conventions.  Forms 2 and 3 return the *reduced* loss; form 1 returns the *dense*
loss, which differs by the constant ``logdet_lambda = log|Lambda|`` (independent of f
and sigma2):

    dense_loss = reduced_loss + logdet_lambda.

The window log-likelihood of ``z ~ N(0, C)`` is ``-0.5 * (reduced_loss + k log 2 pi)``
(:func:`window_loglik`); that of ``beta_hat ~ N(0, A)`` on the range of ``R_(i),(i)`` is
``-0.5 * (dense_loss + k log 2 pi)``.  The two differ by ``0.5 * logdet_lambda``, the
Jacobian of ``z = P beta_hat``, so likelihood *differences* (for example
``LL(F) - LL(F=0)`` in evaluation) are the same in both conventions.

These functions are deliberately simple (eigh, explicit inverses): they are the
independent yardstick the fast solvers are tested against, not fast code.
"""

from __future__ import annotations

import math

import numpy as np


def _np(x) -> np.ndarray:
    """float64 numpy copy of an array-like (also accepts torch tensors, without importing torch)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _eigh(S):
    import scipy.linalg

    return scipy.linalg.eigh(0.5 * (S + S.T), check_finite=False)


def dense_A(R_plus, core_pos, f, sigma2) -> np.ndarray:
    """``A = R_(i),+ F R_+,(i) + sigma2 R_(i),(i)`` (n x n), the core window's covariance."""
    R_plus = _np(R_plus)
    core_pos = np.asarray(core_pos, dtype=np.int64)
    f = _np(f)
    Rc = R_plus[:, core_pos]  # R_+,(i)
    return Rc.T @ (f[:, None] * Rc) + float(sigma2) * Rc[core_pos, :]


def dense_loss(R_plus, core_pos, beta_core, f, sigma2, eig_threshold: float | None = None) -> float:
    """``beta^T A^+ beta + log|A|_+`` computed directly from the n x n matrix A.

    The pseudo-inverse and pseudo-determinant are taken over the **top k eigenvalues of
    A**, where k is the number of eigenvalues of ``R_(i),(i)`` above
    ``eig_threshold * lambda_max`` (the k of :func:`varfx.linalg.window.factorise_window`;
    default its default, :data:`varfx.linalg.window.EIG_THRESHOLD`).

    Why k and not a threshold on A's own spectrum: for a PSD ``R_plus = X^T X`` the range
    of ``R_(i),+`` is the range of ``R_(i),(i)``, and ``A >= sigma2 R_(i),(i)``, so A has
    exactly the rank and the range of ``R_(i),(i)``.  Its non-zero eigenvalues can
    be as small as ``sigma2 * lambda_min`` (``sigma2 = 1/N`` is ~1e-6), far below any
    sensible relative threshold on A, while its null directions are rounding noise of
    size ~1e-16 ||A||.  Counting from the top by the rank of the LD block picks exactly
    the same subspace as the reduced form, whatever the scale of F and sigma2.

    Returns the *dense* convention: ``reduced_loss + logdet_lambda``.
    """
    if eig_threshold is None:
        from .window import EIG_THRESHOLD as eig_threshold
    R_plus = _np(R_plus)
    core_pos = np.asarray(core_pos, dtype=np.int64)
    beta = _np(beta_core)
    R_core = R_plus[np.ix_(core_pos, core_pos)]
    lam_R = _eigh(R_core)[0]
    if lam_R.size == 0 or lam_R[-1] <= 0:
        return 0.0
    k = int(np.sum(lam_R > eig_threshold * lam_R[-1]))
    A = dense_A(R_plus, core_pos, f, sigma2)
    mu, U = _eigh(A)
    mu, U = mu[::-1][:k], U[:, ::-1][:, :k]
    proj = U.T @ beta
    return float(np.sum(proj**2 / mu) + np.sum(np.log(mu)))


def reduced_C(G, f, sigma2) -> np.ndarray:
    """``C = sigma2 I_k + G^T F G`` (k x k)."""
    G = _np(G)
    f = _np(f)
    return float(sigma2) * np.eye(G.shape[1]) + G.T @ (f[:, None] * G)


def reduced_loss(G, z, f, sigma2) -> float:
    """``z^T C^-1 z + log|C|`` with ``C = sigma2 I + G^T F G`` (Cholesky, float64).

    The window log-likelihood of ``z ~ N(0, C)`` is
    ``-0.5 * (reduced_loss + k log 2 pi)``; the dense pseudo-log-determinant is
    ``log|A|_+ = logdet_lambda + log|C|``.
    """
    import scipy.linalg

    z = _np(z)
    if z.size == 0:
        return 0.0
    C = reduced_C(G, f, sigma2)
    L = scipy.linalg.cholesky(C, lower=True)
    w = scipy.linalg.solve_triangular(L, z, lower=True)
    return float(w @ w + 2.0 * np.sum(np.log(np.diag(L))))


def window_loglik(G, z, f, sigma2) -> float:
    """Gaussian log-likelihood of ``z ~ N(0, C)``: ``-0.5 (reduced_loss + k log 2 pi)``."""
    k = _np(z).size
    return -0.5 * (reduced_loss(G, z, f, sigma2) + k * math.log(2.0 * math.pi))


def bform_loss(G, z, f, sigma2) -> float:
    """The reduced loss computed the DeepWAS-paper way, through the n+ x n+ matrix B.

    ``B = I + sigma2^-1 F^1/2 W F^1/2`` with ``W = G G^T``.  With ``H = F^1/2 G``,
    ``C = sigma2 (I_k + H^T H / sigma2)`` and ``|I_k + H^T H/sigma2| = |I_n+ + H H^T/sigma2|
    = |B|`` (Sylvester), so ``log|C| = k log sigma2 + log|B|``; by Woodbury,
    ``C^-1 = sigma2^-1 (I - H^T B^-1 H / sigma2)``, so
    ``z^T C^-1 z = (||z||^2 - (Hz)^T B^-1 (Hz) / sigma2) / sigma2``.
    The ``k log sigma2`` term is added so the result equals :func:`reduced_loss`.
    """
    import scipy.linalg

    G = _np(G)
    z = _np(z)
    f = _np(f)
    s2 = float(sigma2)
    k = z.size
    if k == 0:
        return 0.0
    sf = np.sqrt(f)
    H = sf[:, None] * G
    W = G @ G.T
    B = np.eye(G.shape[0]) + (sf[:, None] * W * sf[None, :]) / s2
    L = scipy.linalg.cholesky(B, lower=True)
    Hz = H @ z
    w = scipy.linalg.solve_triangular(L, Hz, lower=True)
    quad = (z @ z - (w @ w) / s2) / s2
    return float(quad + 2.0 * np.sum(np.log(np.diag(L))) + k * math.log(s2))


def reduced_grad(G, z, f, sigma2) -> tuple[np.ndarray, float]:
    """Closed-form gradient of :func:`reduced_loss`: ``(dL/df, dL/dsigma2)``.

    From ``dC = G^T dF G + dsigma2 I`` and ``dL = -z^T C^-1 dC C^-1 z + tr(C^-1 dC)``:

        dL/df_m    = -(G C^-1 z)_m^2 + (G C^-1 G^T)_mm
        dL/dsigma2 = -||C^-1 z||^2 + tr(C^-1)
    """
    G = _np(G)
    z = _np(z)
    f = _np(f)
    if z.size == 0:
        return np.zeros(G.shape[0]), 0.0
    C = reduced_C(G, f, sigma2)
    Cinv = np.linalg.inv(C)
    Cinv = 0.5 * (Cinv + Cinv.T)
    u = Cinv @ z
    a = G @ u
    d = np.sum((G @ Cinv) * G, axis=1)
    return -(a**2) + d, float(-(u @ u) + np.trace(Cinv))
