"""Torch implementations of the reduced-form window loss and its gradient.

Every solver computes, for one window with factors ``G`` (n+ x k) and ``z`` (k),

    L(f, sigma2) = z^T C^-1 z + log|C|,      C = sigma2 I_k + G^T diag(f) G,

as a 0-d tensor whose backward is written in closed form (a custom
``torch.autograd.Function``) instead of differentiating through a factorisation:

    dL/df_m    = -(G C^-1 z)_m^2 + (G C^-1 G^T)_mm
    dL/dsigma2 = -||C^-1 z||^2 + tr(C^-1)
    dL/dz      = 2 C^-1 z
    dL/dG      = 2 F G (C^-1 - C^-1 z z^T C^-1)        (exact solver only)

``G`` and ``z`` are per-window constants in training; their gradients are provided for
completeness (the exact solver gives both, the iterative ones ``dL/dz`` only and raise
if ``G`` requires grad).  See ``docs/math.md`` for the derivations.

Three methods:

- :func:`cholesky_loss` - exact.  ``G^T F G`` (lower block triangle only), a k x k
  Cholesky, and in the backward one triangular solve ``L^-1 G^T`` whose squared column
  norms are ``diag(G C^-1 G^T)``.
- :func:`cg_slq_loss` - conjugate gradients (cola-ml's ``CG``) for ``C^-1 z``, stochastic
  Lanczos quadrature for ``log|C|`` (cola-ml's batched ``lanczos`` with our own probes:
  cola's ``logdet(..., trace_alg=Hutch())`` draws min(100, k) probes from a fixed key on
  every call, so the same probes would be reused forever, and it has no backward), and
  Hutchinson probes solved by the same CG run for ``diag(G C^-1 G^T)`` with the
  closed-form diagonal estimator ``E[(G C^-1 w) * (G w)]``.
- :func:`nystrom_loss` - the same with a randomized Nystrom approximation
  ``P = U (Lam + mu) U^T + mu (I - U U^T)`` of C (Frangella, Tropp & Udell 2023), used as
  CG preconditioner, as the exactly known part of the log-determinant
  (``log|C| = log|P| + log|P^-1/2 C P^-1/2|``, the second term by SLQ) and as a control
  variate for the gradient (``diag(G P^-1 G^T)`` exactly, the remainder by Hutchinson).

All methods work in the dtype and on the device of ``G`` (float32 or float64, CPU or
CUDA); probes are drawn on the CPU from a ``torch.Generator`` seeded by ``(seed, call
counter)`` and moved to the device, so runs are reproducible across devices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from .ftz import flush_denormals

__all__ = ["cholesky_loss", "cg_slq_loss", "nystrom_loss", "preconditioned_loss", "Preconditioner", "probe_generator", "KOperator"]


# --------------------------------------------------------------------------- helpers


def _prepare(G, z, f, sigma2):
    """Cast the inputs to G's dtype/device (differentiably) and check shapes."""
    if not torch.is_tensor(G):
        raise TypeError("G must be a torch tensor (n+ x k)")
    if G.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"G must be float32 or float64, got {G.dtype}")
    if G.dim() != 2:
        raise ValueError(f"G must be 2-d (n+ x k), got shape {tuple(G.shape)}")
    dtype, device = G.dtype, G.device
    if device.type == "cpu":
        # Subnormal products run many times slower on x86 (issue 8); cached after the
        # first call of this thread, see varfx.linalg.ftz.
        flush_denormals()
    z = (z if torch.is_tensor(z) else torch.as_tensor(z)).to(dtype=dtype, device=device).reshape(-1)
    f = (f if torch.is_tensor(f) else torch.as_tensor(f)).to(dtype=dtype, device=device).reshape(-1)
    if torch.is_tensor(sigma2):
        s2 = sigma2.to(dtype=dtype, device=device).reshape(())
    else:
        s2 = torch.tensor(float(sigma2), dtype=dtype, device=device)
    n_plus, k = G.shape
    if f.shape[0] != n_plus:
        raise ValueError(f"f has {f.shape[0]} entries but G has {n_plus} rows")
    if z.shape[0] != k:
        raise ValueError(f"z has {z.shape[0]} entries but G has {k} columns")
    return G, z, f, s2


def _empty_loss(G, z, f, s2):
    """k = 0: the window carries no information; L = 0 with zero gradients."""
    return (f.sum() * 0.0) + (s2 * 0.0) + (z.sum() * 0.0) + (G.sum() * 0.0)


def _wants_grad(*tensors) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def probe_generator(seed: int, call: int) -> torch.Generator:
    """A CPU generator for the ``call``-th evaluation of a solver seeded with ``seed``.

    Fresh probes every call (an SGD step must not reuse the previous step's noise), yet
    the whole sequence is a deterministic function of the seed.
    """
    g = torch.Generator(device="cpu")
    g.manual_seed((int(seed) * 1_000_003 + int(call) * 7_919 + 12_345) % (2**63 - 1))
    return g


def _rademacher(k: int, p: int, gen: torch.Generator, dtype, device):
    w = torch.randint(0, 2, (k, p), generator=gen, dtype=torch.int8)
    return (w.to(dtype) * 2 - 1).to(device)


def _gram(G, f):
    """``G^T diag(f) G`` (k x k, symmetric), computing only the lower block triangle.

    With ``H = sqrt(f) G`` the product is ``H^T H``.  BLAS GEMM cannot exploit the
    symmetry and torch has no SYRK, so the lower triangle is built from row panels
    ``C[a:b, :b] = H[:, a:b]^T H[:, :b]`` (about half the flops of one GEMM for 8 or more
    panels: 0.74 s instead of 1.27 s for n+ = 8000, k = 2666 in float64 on 2 cores) and
    mirrored.  Calling scipy's SYRK instead was as fast in isolation but left OpenBLAS
    threads spinning, which slowed the next torch (MKL) kernels 2-3x on a 2-core machine.
    Negative f (not a valid prior variance, but allowed by the formula) falls back to
    ``G^T (f G)``.
    """
    k = G.shape[1]
    if not bool((f >= 0).all()):
        M = G.T @ (f[:, None] * G)
        return 0.5 * (M + M.T)
    H = G * f.sqrt()[:, None]
    block = max(256, -(-k // 8))
    if k <= block:
        M = H.T @ H
        return 0.5 * (M + M.T)
    C = torch.zeros(k, k, dtype=G.dtype, device=G.device)
    for a in range(0, k, block):
        b = min(a + block, k)
        C[a:b, :b] = H[:, a:b].T @ H[:, :b]
    C.diagonal().mul_(0.5)  # mirrored below: the diagonal must not be counted twice
    C = C.tril()
    return C + C.T


def _cholesky(C):
    """Cholesky factor of C; in float32, retry in float64 if rounding broke positivity."""
    L, info = torch.linalg.cholesky_ex(C)
    if int(info) == 0:
        return L, False
    if C.dtype == torch.float32:
        L64, info64 = torch.linalg.cholesky_ex(C.double())
        if int(info64) == 0:
            return L64.to(C.dtype), True
    raise FloatingPointError(
        "C = sigma2 I + G^T F G is not positive definite: check that f >= 0, sigma2 > 0 "
        "and that the inputs are finite"
    )


# --------------------------------------------------------------------------- exact


class _CholeskyFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, G, z, f, s2, info):
        C = _gram(G, f)
        C.diagonal().add_(s2)
        L, upcast = _cholesky(C)
        u = torch.cholesky_solve(z[:, None], L)[:, 0]
        loss = z @ u + 2.0 * torch.log(torch.diagonal(L)).sum()
        ctx.save_for_backward(G, f, L, u)
        info.update({"method": "cholesky", "k": int(G.shape[1]), "n_plus": int(G.shape[0]),
                     "float64_retry": upcast})
        return loss

    @staticmethod
    def backward(ctx, grad):
        G, f, L, u = ctx.saved_tensors
        need_G, need_z, need_f, need_s2 = ctx.needs_input_grad[:4]
        gG = gz = gf = gs2 = None
        if need_f:
            # Y = L^-1 G^T: its squared column norms are diag(G C^-1 G^T).
            Y = torch.linalg.solve_triangular(L, G.T, upper=False)
            d = torch.linalg.vector_norm(Y, dim=0).square()
            a = G @ u
            gf = grad * (d - a * a)
            del Y
        if need_s2:
            eye = torch.eye(L.shape[0], dtype=L.dtype, device=L.device)
            Linv = torch.linalg.solve_triangular(L, eye, upper=False)
            gs2 = grad * ((Linv * Linv).sum() - u @ u)
        if need_z:
            gz = 2.0 * grad * u
        if need_G:
            GCinv = torch.cholesky_solve(G.T, L).T  # G C^-1
            a = G @ u
            gG = 2.0 * grad * f[:, None] * (GCinv - a[:, None] * u[None, :])
        return gG, gz, gf, gs2, None


def cholesky_loss(G, z, f, sigma2) -> tuple[torch.Tensor, dict[str, Any]]:
    """Exact reduced loss by Cholesky of the k x k matrix C; returns ``(loss, info)``.

    Cost: ``~n+ k^2`` (half a GEMM) + ``k^3/3`` (Cholesky) forward, ``n+ k^2`` (TRSM) backward,
    against ``~4 n+ n^2`` plus a differentiated n x n Cholesky for the paper's dense A.
    """
    G, z, f, s2 = _prepare(G, z, f, sigma2)
    info: dict[str, Any] = {}
    if G.shape[1] == 0:
        return _empty_loss(G, z, f, s2), {"method": "cholesky", "k": 0, "n_plus": int(G.shape[0])}
    loss = _CholeskyFn.apply(G, z, f, s2, info)
    return loss, info


# --------------------------------------------------------------------------- iterative

try:  # cola is a hard dependency; keep the import error readable if it is broken
    import cola
    from cola.linalg.decompositions.lanczos import lanczos as _cola_lanczos
except Exception as exc:  # pragma: no cover
    cola = None
    _COLA_ERROR = exc
else:
    _COLA_ERROR = None


def _need_cola():
    if cola is None:  # pragma: no cover
        raise ImportError(f"the iterative solvers need cola-ml 0.0.7: {_COLA_ERROR}")


if cola is not None:

    class KOperator(cola.ops.LinearOperator):
        """``C = sigma2 I_k + G^T diag(f) G`` as a cola operator, never formed.

        A product with a block of b vectors costs two GEMMs, ``4 n+ k b`` flops.
        """

        def __init__(self, G, f, s2):
            super().__init__(G.dtype, (G.shape[1], G.shape[1]))
            self.G = G
            self.f = f
            self.s2 = s2

        def _matmat(self, X):
            return self.s2 * X + self.G.T @ (self.f[:, None] * (self.G @ X))

    class _SpectralOperator(cola.ops.LinearOperator):
        """``U diag(a) U^T + b (I - U U^T)`` for orthonormal U (k x r): the Nystrom
        preconditioner and its powers, applied in O(k r) per vector."""

        def __init__(self, U, a, b):
            super().__init__(U.dtype, (U.shape[0], U.shape[0]))
            self.U = U
            self.a = a
            self.b = b

        def _matmat(self, X):
            UX = self.U.T @ X
            return self.U @ ((self.a - self.b)[:, None] * UX) + self.b * X

    class _ScaledIdentity(cola.ops.LinearOperator):
        """``a I_k`` for a scalar tensor ``a``."""

        def __init__(self, k, a, dtype):
            super().__init__(dtype, (k, k))
            self.a = a

        def _matmat(self, X):
            return self.a * X

    class _Sandwich(cola.ops.LinearOperator):
        """``S C S`` for a symmetric S (here ``P^-1/2``): the preconditioned operator."""

        def __init__(self, S, C):
            super().__init__(C.dtype, C.shape)
            self.S = S
            self.C = C

        def _matmat(self, X):
            return self.S @ (self.C @ (self.S @ X))

else:  # pragma: no cover
    KOperator = None


def _cg(op, rhs, tol, max_iters, P=None):
    """Batched (preconditioned) CG through cola-ml; returns ``(X, iterations)``.

    cola quirks (0.0.7): each column is normalised to unit norm and iterated until its
    residual is below ``tol * ||r0|| + tol`` = ``2 tol`` relative (x0 = 0), all columns
    until the slowest one converges; ``info['iterations']`` counts loop tests, i.e.
    one more than the CG steps taken.
    """
    alg = cola.linalg.CG(tol=tol, max_iters=max_iters, P=P)
    X, cinfo = alg(op, rhs)
    return X, max(int(cinfo.get("iterations", 1)) - 1, 0)


def _slq(op, W, iters, clamp_min):
    """Stochastic Lanczos quadrature of ``tr log(op)`` with probes W (k x p).

    Uses cola's batched Lanczos (full reorthogonalisation) on our own probes and does the
    Gauss quadrature here: for probe w with tridiagonal ``T = S diag(theta) S^T``,
    ``w^T log(op) w ~ ||w||^2 sum_i S_0i^2 log theta_i``.  Returns the mean over probes,
    its standard error, and the number of Lanczos steps.
    """
    k, p = W.shape
    m = max(1, min(int(iters), k))
    eps = 1e-10 if W.dtype == torch.float64 else 1e-6
    if k == 1:  # a 1 x 1 operator: its value is its only Ritz value
        theta = (op @ W)[0] / W[0]
        est = W[0] ** 2 * torch.log(theta.clamp_min(clamp_min))
        return est.mean(), torch.zeros((), dtype=W.dtype, device=W.device), 1
    _, T, _ = _cola_lanczos(op, start_vector=W, max_iters=m, tol=eps)
    diag = T.beta[..., 0]  # (p, m')
    off = T.alpha[..., 0]  # (p, m'-1)
    m_eff = diag.shape[-1]
    Tm = torch.diag_embed(diag)
    if m_eff > 1:
        Tm = Tm + torch.diag_embed(off, offset=-1) + torch.diag_embed(off, offset=1)
    theta, S = torch.linalg.eigh(Tm)
    theta = theta.clamp_min(clamp_min)
    w2 = (W * W).sum(0)
    est = w2 * (S[:, 0, :] ** 2 * torch.log(theta)).sum(-1)
    se = est.std(unbiased=True) / math.sqrt(p) if p > 1 else torch.zeros((), dtype=W.dtype)
    return est.mean(), se, m_eff


class _ProbeFn(torch.autograd.Function):
    """Wraps precomputed value and gradient pieces into an autograd node.

    forward returns ``value``; backward uses ``a = G C^-1 z``, ``d ~ diag(G C^-1 G^T)``,
    ``u = C^-1 z`` and ``trinv ~ tr(C^-1)`` computed by the iterative solver.
    """

    @staticmethod
    def forward(ctx, G, z, f, s2, value, a, d, u, trinv):
        ctx.save_for_backward(a, d, u, trinv)
        return value.clone()

    @staticmethod
    def backward(ctx, grad):
        a, d, u, trinv = ctx.saved_tensors
        need_G, need_z, need_f, need_s2 = ctx.needs_input_grad[:4]
        if need_G:
            raise NotImplementedError(
                "the iterative solvers do not differentiate with respect to G "
                "(a per-window constant); use the cholesky solver"
            )
        gf = grad * (d - a * a) if need_f else None
        gs2 = grad * (trinv - u @ u) if need_s2 else None
        gz = 2.0 * grad * u if need_z else None
        return None, gz, gf, gs2, None, None, None, None, None


def _quadratic(op, z, x):
    """``z^T C^-1 z`` from an approximate solution x, with error O(residual^2).

    ``2 z.x - x.Cx = z^T C^-1 z - r^T C^-1 r`` for ``r = z - Cx``: the energy-norm
    form is quadratically accurate in the CG residual, where ``z.x`` is only linearly.
    Also returns the relative residual ``||r|| / ||z||``.
    """
    Cx = op @ x[:, None]
    Cx = Cx[:, 0]
    r = z - Cx
    zn = torch.linalg.vector_norm(z)
    rel = float(torch.linalg.vector_norm(r) / zn) if float(zn) > 0 else 0.0
    return 2.0 * (z @ x) - x @ Cx, rel


def _max_rel_residual(op, X, B):
    R = B - op @ X
    num = torch.linalg.vector_norm(R, dim=0)
    den = torch.linalg.vector_norm(B, dim=0).clamp_min(torch.finfo(B.dtype).tiny)
    return float((num / den).max())


def cg_slq_loss(G, z, f, sigma2, *, tol=1e-5, max_iters=1000, probes=30, lanczos_iters=40,
                seed=0, call=0) -> tuple[torch.Tensor, dict[str, Any]]:
    """Reduced loss by CG + stochastic Lanczos quadrature + Hutchinson; ``(loss, info)``.

    - ``z^T C^-1 z``: CG (cola) to relative residual ``2 tol``, evaluated in the
      energy-norm form (error ~ residual^2).
    - ``log|C|``: SLQ with ``probes`` Rademacher probes and ``lanczos_iters`` Lanczos
      steps (unbiased up to the quadrature error; standard error in ``info``).
    - ``diag(G C^-1 G^T)`` for the gradient: ``mean_j (G C^-1 w_j) * (G w_j)`` over the
      same probes, solved in the same CG block as z.  This closed-form diagonal estimator
      is unbiased and far less noisy than differentiating a Hutchinson surrogate of the
      log-determinant.  ``tr(C^-1) = mean_j w_j^T C^-1 w_j`` for the sigma2 gradient.
    The probe solves are skipped when no gradient is needed.

    This is :func:`preconditioned_loss` with the scalar approximation ``P = tau I``,
    ``tau = sigma2 + tr(G^T F G) / k`` (the mean eigenvalue of C, known exactly since
    ``tr G^T F G = sum_m f_m ||G_m||^2``), used only where it is free: not in CG (a
    scalar preconditioner changes no CG iterate), in ``log|C| = k log tau + log|C / tau|``
    (the same Lanczos run on a rescaled operator), and as the control variate
    ``diag(G C^-1 G^T) = ||G_m||^2 / tau + diag(G (C^-1 - I / tau) G^T)``, which removes
    most of the probe noise when C is close to a multiple of I (weak signal: most
    windows) and costs O(n+ k).
    """

    def scalar(Gd, fd, s2d, gen):
        k = Gd.shape[1]
        rowsq = (Gd * Gd).sum(1)
        tau = s2d + (fd * rowsq).sum() / k
        return Preconditioner(
            inv=_ScaledIdentity(k, 1.0 / tau, Gd.dtype),
            inv_half=_ScaledIdentity(k, tau.rsqrt(), Gd.dtype),
            logdet=k * torch.log(tau),
            diag_quad=rowsq / tau,
            trace_inv=k / tau,
            use_in_cg=False,
            # Ritz values of C / tau are >= sigma2 / tau in exact arithmetic: clamp at
            # half of that against rounding (the bound the unscaled SLQ used)
            ritz_floor=float(s2d / tau) * 0.5,
        )

    return preconditioned_loss(G, z, f, sigma2, scalar, method="cg-slq", tol=tol,
                               max_iters=max_iters, probes=probes, lanczos_iters=lanczos_iters,
                               seed=seed, call=call)


def _rel_se(samples, g) -> float:
    """Estimated relative standard error of the gradient from the probe samples."""
    p = samples.shape[1]
    if p < 2:
        return float("nan")
    var = samples.var(1, unbiased=True) / p
    gn = torch.linalg.vector_norm(g)
    return float(var.sum().sqrt() / gn) if float(gn) > 0 else float("nan")


def nystrom_factor(op_M, k, rank, gen, dtype, device):
    """Randomized Nystrom approximation ``M ~ U diag(lam) U^T`` of a PSD operator.

    Frangella, Tropp & Udell (2023), Alg. 2.1: Gaussian test matrix Omega (orthonormalised),
    ``Y = M Omega``, shift ``nu = eps * ||Y||_F`` for stability, Cholesky of
    ``Omega^T (Y + nu Omega)``, ``B = (Y + nu Omega) L^-T``, thin SVD ``B = U S``,
    ``lam = max(S^2 - nu, 0)``.  Cost: one block product with M (r columns), a QR and an
    SVD of k x r matrices.
    """
    r = max(1, min(int(rank), k))
    Omega = torch.randn(k, r, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device)
    Omega, _ = torch.linalg.qr(Omega)
    Y = op_M @ Omega
    eps = torch.finfo(dtype).eps
    nu = eps * torch.linalg.matrix_norm(Y) * math.sqrt(k)
    nu = nu.clamp_min(torch.finfo(dtype).tiny)
    Ynu = Y + nu * Omega
    core = Omega.T @ Ynu
    core = 0.5 * (core + core.T)
    Lc, info = torch.linalg.cholesky_ex(core)
    if int(info) != 0:  # rank-deficient M in low precision: a slightly bigger shift
        nu = nu * 1e3 + eps * torch.linalg.matrix_norm(core)
        Ynu = Y + nu * Omega
        core = Omega.T @ Ynu
        Lc = torch.linalg.cholesky(0.5 * (core + core.T))
    B = torch.linalg.solve_triangular(Lc, Ynu.T, upper=False).T  # Ynu L^-T
    U, S, _ = torch.linalg.svd(B, full_matrices=False)
    lam = (S * S - nu).clamp_min(0.0)
    return U, lam


class _MOperator(cola.ops.LinearOperator if cola is not None else object):
    """``M = G^T diag(f) G`` (no shift), for the Nystrom sketch."""

    def __init__(self, G, f):
        super().__init__(G.dtype, (G.shape[1], G.shape[1]))
        self.G = G
        self.f = f

    def _matmat(self, X):
        return self.G.T @ (self.f[:, None] * (self.G @ X))


def nystrom_loss(G, z, f, sigma2, *, rank=100, tol=1e-5, max_iters=1000, probes=10,
                 lanczos_iters=30, seed=0, call=0) -> tuple[torch.Tensor, dict[str, Any]]:
    """Reduced loss by Nystrom-preconditioned CG, preconditioned SLQ and a control
    variate for the gradient; returns ``(loss, info)``.

    With the rank-r Nystrom approximation ``M ~ U Lam U^T`` of ``M = G^T F G``,
    ``mu = sigma2`` and ``tau = mu + (tr M - sum Lam) / (k - r)`` (mu plus the mean
    eigenvalue the sketch missed; ``tr M = sum_m f_m ||G_m||^2`` is known exactly),
    ``P = U (Lam + mu I) U^T + tau (I - U U^T)`` approximates C and

    - its inverse is the CG preconditioner (passed to cola's CG as an operator).  This
      is Frangella et al.'s ``P^-1 = (lam_r + mu) U (Lam + mu)^-1 U^T + (I - U U^T)`` up
      to a rescaling of the complement of U, which changes the condition number of the
      preconditioned system only through ``lam_r`` vs ``tau`` (both ~ the edge of the
      captured spectrum);
    - ``log|C| = log|P| + log|P^-1/2 C P^-1/2|``: ``log|P|`` exactly, the second term
      by SLQ on the preconditioned operator.  With our scaling the preconditioned
      operator is ~I on span(U) and has mean eigenvalue ~1 on its complement, so its
      logarithm (whose off-diagonal mass is what makes Hutchinson noisy) is small;
      Frangella's scaling would put ``log(lam_r + mu) U U^T`` there and make SLQ noisier;
    - ``diag(G C^-1 G^T) = diag(G P^-1 G^T) + diag(G (C^-1 - P^-1) G^T)``: the first term
      exactly (O(n+ k r)), the second by Hutchinson with the closed-form estimator; same
      for ``tr(C^-1)``.
    """

    def nystrom(Gd, fd, s2d, gen):
        k = Gd.shape[1]
        U, lam = nystrom_factor(_MOperator(Gd, fd), k, rank, gen, Gd.dtype, Gd.device)
        r = U.shape[1]
        mu = s2d
        # Level of P on the complement of U: mu plus the mean of the eigenvalues the
        # sketch missed, known exactly because tr(G^T F G) = sum_m f_m ||G_m||^2.
        rowsq = (Gd * Gd).sum(1)
        missed = ((fd * rowsq).sum() - lam.sum()).clamp_min(0.0)
        tau = mu + missed / (k - r) if k > r else mu
        GU = Gd @ U  # (n+, r)
        return Preconditioner(
            inv=_SpectralOperator(U, 1.0 / (lam + mu), 1.0 / tau),
            inv_half=_SpectralOperator(U, (lam + mu).rsqrt(), tau.rsqrt()),
            logdet=torch.log(lam + mu).sum() + (k - r) * torch.log(tau),
            diag_quad=(GU * GU) @ (1.0 / (lam + mu) - 1.0 / tau) + rowsq / tau,
            trace_inv=(1.0 / (lam + mu)).sum() + (k - r) / tau,
            info={"rank": int(r), "lam_r_over_mu": float(lam[-1] / mu) if r else 0.0},
        )

    return preconditioned_loss(G, z, f, sigma2, nystrom, method="nystrom", tol=tol,
                               max_iters=max_iters, probes=probes, lanczos_iters=lanczos_iters,
                               seed=seed, call=call)


@dataclass
class Preconditioner:
    """An approximation ``P`` of ``C`` that :func:`preconditioned_loss` can use.

    - ``inv``, ``inv_half``: cola operators applying ``P^-1`` and ``P^-1/2`` (k x k);
    - ``logdet``: ``log|P|`` (0-d tensor), the exactly known part of ``log|C|``;
    - ``diag_quad``: ``diag(G P^-1 G^T)`` (n+), the exactly known part of the gradient;
    - ``trace_inv``: ``tr(P^-1)``, the known part of ``dL/dsigma2``;
    - ``info``: anything worth reporting in the solver's ``last_info``;
    - ``use_in_cg``: pass ``inv`` to CG as its preconditioner (False for a multiple of
      the identity, which would change no iterate and only cost a product);
    - ``ritz_floor``: lower clamp of the Ritz values of ``P^-1/2 C P^-1/2`` in SLQ
      (against rounding; they are positive in exact arithmetic).
    """

    inv: Any
    inv_half: Any
    logdet: Any
    diag_quad: Any
    trace_inv: Any
    info: dict = field(default_factory=dict)
    use_in_cg: bool = True
    ritz_floor: float = 1e-30


def preconditioned_loss(G, z, f, sigma2, make_preconditioner, *, method="preconditioned", tol=1e-5,
                        max_iters=1000, probes=10, lanczos_iters=30, seed=0,
                        call=0) -> tuple[torch.Tensor, dict[str, Any]]:
    """Reduced loss with any preconditioner ``P ~ C``; returns ``(loss, info)``.

    ``make_preconditioner(G, f, sigma2, generator) -> Preconditioner`` (detached
    tensors).  ``P`` serves three times: as the CG preconditioner for ``C^-1 [z, W]``;
    for ``log|C| = log|P| + log|P^-1/2 C P^-1/2|`` (the second term by SLQ on the
    preconditioned operator); and as a control variate,
    ``diag(G C^-1 G^T) = diag(G P^-1 G^T) + diag(G (C^-1 - P^-1) G^T)`` with the
    second term by Hutchinson probes ``W`` (the closed-form diagonal estimator), and
    the same for ``tr(C^-1)``.  The better ``P``, the fewer CG iterations and the less
    probe noise.  Used by the ``nystrom`` solver and by plugins (``varfx-jacobi``).
    """
    _need_cola()
    G, z, f, s2 = _prepare(G, z, f, sigma2)
    n_plus, k = G.shape
    if k == 0:
        return _empty_loss(G, z, f, s2), {"method": method, "k": 0, "n_plus": int(n_plus)}
    want_grad = _wants_grad(G, z, f, s2)
    dtype, device = G.dtype, G.device
    p = max(1, int(probes))
    with torch.no_grad():
        Gd, zd, fd, s2d = G.detach(), z.detach(), f.detach(), s2.detach()
        op = KOperator(Gd, fd, s2d)
        gen = probe_generator(seed, call)
        P = make_preconditioner(Gd, fd, s2d, gen)
        W = _rademacher(k, p, gen, dtype, device)
        rhs = torch.cat([zd[:, None], W], dim=1) if want_grad else zd[:, None]
        X, iters = _cg(op, rhs, tol, max_iters, P=P.inv if P.use_in_cg else None)
        x = X[:, 0]
        quad, res_z = _quadratic(op, zd, x)
        residual = _max_rel_residual(op, X, rhs)
        pre = _Sandwich(P.inv_half, op)
        logdet_rest, logdet_se, m_eff = _slq(pre, W, lanczos_iters, clamp_min=P.ritz_floor)
        value = quad + P.logdet + logdet_rest
        a = Gd @ x
        info = {
            "method": method, "k": int(k), "n_plus": int(n_plus), **P.info,
            "iterations": iters, "residual": residual, "residual_z": res_z, "probes": p, "lanczos_iters": m_eff,
            "logdet_se": float(logdet_se), "tol": tol, "seed": int(seed), "call": int(call),
        }
        if want_grad:
            Y = X[:, 1:]
            D = Y - P.inv @ W  # (C^-1 - P^-1) W
            samples = (Gd @ D) * (Gd @ W)
            d = P.diag_quad + samples.mean(1)
            trinv = P.trace_inv + (W * D).sum(0).mean()
            info["grad_rel_se"] = _rel_se(samples, d - a * a)
        else:
            d = torch.zeros_like(a)
            trinv = torch.zeros((), dtype=dtype, device=device)
    loss = _ProbeFn.apply(G, z, f, s2, value, a, d, x, trinv)
    return loss, info
