"""Delete-a-block jackknife for ``varfx evaluate`` (docs/evaluate.md, "Standard errors").

Two kinds of quantity get a standard error:

- **Held-out sums** (``delta_loglik``, a paired difference of log-likelihoods): the sum
  over the evaluated windows of a per-window value.  Nothing is refitted: with the
  windows cut into ``B`` contiguous blocks, the delete-block estimate of the total is
  the sum over the other blocks scaled back to all windows (:func:`sum_replicates`).
- **Quantities of the fitted prior** (``h2``, enrichment, h2 by quintile of f): their
  uncertainty comes from the prior's parameters, estimated on the training windows.
  For each of ``B`` contiguous blocks of the training windows the parameters are
  re-estimated with that block deleted (:func:`refit_blocks`) and every quantity is
  recomputed on the evaluated variants.

Both use the usual delete-a-block variance ``(B - 1) / B sum_b (t_b - mean t)^2``
(:func:`jackknife_se`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from ..errors import UserError

#: blocks when not given: ldsc's 200, or one window per block when there are fewer
#: windows (a window is then the unit; with block-diagonal LD, windows are independent)
DEFAULT_BLOCKS = 200
#: priors with at most this many trainable parameters are refitted exactly; larger ones
#: (networks) by their global scale only
EXACT_MAX_PARAMS = 500
#: the refit stops when its step is below STEP_TOL (1 + max |theta|).  The iteration
#: is superlinear (steps of 3e-2, 2e-4, 1e-6, 3e-11 on a constant prior), so the error
#: left is far below the step that stopped it; and deleting a block moves the
#: parameters by about SE / sqrt(B) (1e-2 there), far above it
STEP_TOL = 1e-7
MAX_NEWTON = 30
#: ... or when the largest gradient component of the per-variant loss is below GTOL
#: (1000 times below what `varfx fit` stops at)
GTOL = 1e-9
#: central-difference step of the Hessian (only the Newton direction depends on it, not
#: where the iteration converges)
FD_STEP = 1e-5
#: above this many numbers (B p^2) the per-block Hessians are not kept: the full one,
#: scaled by the share of training variants left, is the Newton matrix
MAX_BLOCK_HESSIANS = 4_000_000

class RefitFailed(UserError):
    """A delete-block refit could not be done (evaluate then reports no h2_se and why)."""


METHOD_EXACT = "jackknife-exact"
METHOD_SCALE = "jackknife-scale"


def n_blocks(n_units: int, requested: int = DEFAULT_BLOCKS) -> int:
    return int(min(max(int(requested), 0), n_units))


def contiguous_blocks(n_units: int, n_blocks_: int) -> list[np.ndarray]:
    """``n_blocks_`` runs of consecutive unit indices of near-equal length."""
    return [a for a in np.array_split(np.arange(n_units), n_blocks_) if len(a)]


def jackknife_se(replicates):
    """``sqrt((B-1)/B sum_b (t_b - mean)^2)`` along axis 0 (a float for a 1-D input)."""
    t = np.asarray(replicates, dtype=np.float64)
    B = t.shape[0]
    if B < 2:
        return math.nan if t.ndim == 1 else np.full(t.shape[1:], np.nan)
    se = np.sqrt((B - 1) / B * ((t - t.mean(axis=0)) ** 2).sum(axis=0))
    return float(se) if t.ndim == 1 else se


def sum_replicates(values, blocks) -> np.ndarray:
    """Delete-block estimates of ``sum(values)``: the other blocks' sum times
    ``n / (n - n_b)`` (so that every replicate estimates the total over all units).
    For blocks of equal size the jackknife variance of these is ``B/(B-1) sum_b (D_b -
    mean D)^2``, the variance of a sum of B independent block sums."""
    v = np.asarray(values, dtype=np.float64)
    n, total = len(v), float(v.sum())
    return np.array([(total - v[b].sum()) * n / (n - len(b)) for b in blocks])


@dataclass
class Refits:
    """What :func:`refit_blocks` did: ``replicates`` (B, q) of ``stats`` at each
    delete-block refit."""

    method: str
    replicates: np.ndarray
    n_blocks: int
    sigma2: str  # "fixed" or "re-estimated"
    max_newton_iterations: int
    lbfgs_fallbacks: int
    seconds: float


class _ExactParams:
    """All trainable parameters of a small prior, as one float64 vector."""

    def __init__(self, module, batch):
        import torch

        self.module, self.batch = module, batch
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self.names = [n for n, _ in named]
        self.shapes = [tuple(p.shape) for _, p in named]
        self.dtypes = [p.dtype for _, p in named]
        self.theta0 = (torch.cat([p.detach().reshape(-1).to(torch.float64) for _, p in named])
                       if named else torch.zeros(0, dtype=torch.float64))
        self.others = {n: p.detach() for n, p in module.named_parameters() if not p.requires_grad}
        self.others.update(dict(module.named_buffers()))

    def log_f_of(self, theta):
        import torch
        from torch.func import functional_call

        params, at = dict(self.others), 0
        for name, shape, dtype in zip(self.names, self.shapes, self.dtypes):
            size = int(np.prod(shape)) if shape else 1
            # float64 whatever the prior was trained in: the refit is a float64 problem
            params[name] = theta[at:at + size].reshape(shape)
            at += size

        def evaluate(idx):
            dev = self.batch["freq"].device
            sub = {k: v[torch.as_tensor(idx, device=dev)] for k, v in self.batch.items()}
            return functional_call(self.module, params, (sub,)).to(torch.float64)

        return evaluate

    def penalty_of(self, theta):
        """The module's ``penalty()`` (``-log p(theta)``) at ``theta``, with a graph."""
        import torch
        from torch.func import functional_call

        class _Penalty(torch.nn.Module):
            # functional_call substitutes parameters by name and calls forward: a
            # wrapper whose forward is the inner module's penalty
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self):
                return self.inner.penalty()

        params, at = {f"inner.{n}": v for n, v in self.others.items()}, 0
        for name, shape in zip(self.names, self.shapes):
            size = int(np.prod(shape)) if shape else 1
            params[f"inner.{name}"] = theta[at:at + size].reshape(shape)
            at += size
        return functional_call(_Penalty(self.module), params, ())


class _ScaleParams:
    """``log f + c`` with the network fixed: one parameter, ``c`` (0 at the fit)."""

    def __init__(self, base_log_f):
        import torch

        self.base = torch.as_tensor(base_log_f, dtype=torch.float64)
        self.theta0 = torch.zeros(1, dtype=torch.float64)

    def log_f_of(self, theta):
        import torch

        def evaluate(idx):
            return self.base[torch.as_tensor(idx)] + theta[0]

        return evaluate


def fitted_objective(meta):
    """The objective the model was fitted with (its recorded options), through the
    registry; a solver-using objective gets the recorded solver when it is exact, else
    ``cholesky`` (a stochastic solver's loss estimates the same function)."""
    from ..plugins import lookup

    obj = meta.get("objective") or {}
    cls = lookup("objectives", obj.get("name", "full"))
    solver = None
    if cls.uses_solver:
        rec = meta.get("solver") or {}
        name = rec.get("name") or "cholesky"
        try:
            solver = lookup("solvers", name)(**(rec.get("options") or {}))
        except (UserError, TypeError):
            solver = None
        if solver is None or not getattr(solver, "exact", False):
            solver = lookup("solvers", "cholesky")()
    return cls(solver=solver, **(obj.get("options") or {}))


def fitted_penalty(module, meta, objective, par):
    """``theta -> penalty(theta) / nll_scale`` (the fit's prior on the parameters, in the
    objective's loss units) when model.json's ``prior_penalty`` says the fit applied one,
    else None (a maximum-likelihood fit, or a model fitted before the hook existed).  The
    module rebuilt from model.json must describe the same prior as the record."""
    from ..train.penalty import config_of, has_penalty, loss_factor

    rec = meta.get("prior_penalty")
    if not (isinstance(rec, dict) and rec.get("applied")):
        return None
    if not isinstance(par, _ExactParams):
        return None  # a network's scale refit leaves its weights, so their prior, fixed
    config = getattr(module, "penalty_config", None)
    if not has_penalty(module) or (callable(config) and dict(config()) != config_of(rec)):
        raise RefitFailed(f"model.json records the prior on the parameters {config_of(rec)}, but the prior "
                          f"rebuilt from it has {dict(config()) if callable(config) else 'none'}")
    factor = loss_factor(objective)
    if factor is None:
        return None

    def penalty(theta):
        value = par.penalty_of(theta)
        return None if value is None else value * factor

    return penalty


def refit_blocks(module, meta, train, batch, eval_idx, stats, *, blocks, z_all, n_all, N, base_log_f=None,
                 progress=None, closed_form=True) -> Refits:
    """Re-estimate the prior with each block of ``train`` deleted and return ``stats``
    of the refitted log f on ``eval_idx`` (the evaluated core variants).

    A prior with at most :data:`EXACT_MAX_PARAMS` trainable parameters is refitted
    exactly: a quasi-Newton iteration on the fitted objective's loss over the other
    blocks, started at the fitted parameters, whose matrix starts as the delete-block
    Hessian ``H - H_b`` at the fit (central differences of the exact gradient) and is
    updated by Broyden's rule; it stops when the step is below :data:`STEP_TOL`, else
    falls back to L-BFGS.  A larger prior gets the
    same refit of its global scale ``c`` in ``log f + c`` only (``base_log_f``: its log
    f on every dataset variant), which leaves out the uncertainty of the network's
    shape.  When model.json says sigma^2 came from the LD score regression intercept,
    it is re-estimated on the other blocks too, as the fit would.

    A MAP fit (model.json's ``prior_penalty`` applied: the GLM's ``coef_sd``) is refitted
    to the same MAP objective on the other blocks, ``loss_rest + penalty / nll_scale``
    (:func:`fitted_penalty`): the penalty's gradient and Hessian (by autograd) enter
    every Newton step and the L-BFGS fallback.

    A one-parameter scale family on the full likelihood (the constant prior, a network's
    scale) is refitted in closed form (:func:`_scale_refits`) unless ``closed_form`` is
    False; the result is the same (tests/test_evaluate_se.py)."""
    import torch

    t0 = time.perf_counter()
    objective = fitted_objective(meta)
    n_params = sum(p.numel() for p in module.parameters() if p.requires_grad)
    exact = n_params <= EXACT_MAX_PARAMS
    par = _ExactParams(module, batch) if exact else _ScaleParams(base_log_f)
    theta0 = par.theta0
    p = int(theta0.numel())
    sigma2 = float(meta["sigma2"])
    from ..train.setup import DEFAULT_SIGMA2_SOURCES

    # fit's default rule was applied: each replicate re-applies it without its block
    reestimate = meta.get("sigma2_source") in DEFAULT_SIGMA2_SOURCES
    s2_full = torch.tensor(sigma2 / N, dtype=torch.float64)
    if p == 0:  # nothing to re-estimate: every replicate is the fit
        same = np.asarray(stats(par.log_f_of(theta0)(np.asarray(eval_idx)).detach().cpu().numpy()))
        return Refits(METHOD_EXACT, np.stack([same] * len(blocks)), len(blocks), "fixed", 0, 0, 0.0)
    penalty = fitted_penalty(module, meta, objective, par)
    if closed_form and p == 1 and getattr(objective, "name", None) == "full" and penalty is None:
        fast = _scale_refits(objective, par, theta0, train, blocks, eval_idx, stats, reestimate, z_all, n_all, N,
                             s2_full, METHOD_EXACT if exact else METHOD_SCALE, t0)
        if fast is not None:
            return fast
    sizes = np.array([objective.batch_size([train[i] for i in b]) for b in blocks], dtype=np.float64)

    def loss_grad(theta, units, s2, with_penalty=True):
        th = theta.detach().clone().requires_grad_(True)
        try:
            loss = objective.batch_loss(units, par.log_f_of(th), s2)
            if with_penalty and penalty is not None:
                pen = penalty(th)
                if pen is not None:
                    loss = loss + pen
        except FloatingPointError:
            # a Newton step so long that F overflows (C no longer positive definite in
            # floating point): not a loss; the caller falls back to L-BFGS from the fit
            return math.inf, torch.full_like(th, math.nan)
        if not torch.is_tensor(loss) or not loss.requires_grad:
            return float(loss), torch.zeros_like(th)
        (g,) = torch.autograd.grad(loss, th)
        return float(loss.detach()), g.detach()

    unit_blocks = [[train[i] for i in b] for b in blocks]

    def block_grads(theta):
        # the data's part only: the penalty is not the blocks', it is added once below
        return torch.stack([loss_grad(theta, u, s2_full, with_penalty=False)[1] for u in unit_blocks])  # (B, p)

    keep_blocks = len(blocks) * p * p <= MAX_BLOCK_HESSIANS
    H_blocks = torch.zeros((len(blocks) if keep_blocks else 1, p, p), dtype=torch.float64)
    for j in range(p):
        h = FD_STEP * max(1.0, abs(float(theta0[j])))
        e = torch.zeros(p, dtype=torch.float64)
        e[j] = h
        d = (block_grads(theta0 + e) - block_grads(theta0 - e)) / (2 * h)
        H_blocks[:, :, j] = d if keep_blocks else d.sum(0, keepdim=True)
        if progress:
            progress(f"Hessian {j + 1}/{p}")
    H_blocks = 0.5 * (H_blocks + H_blocks.transpose(1, 2))
    H_total = H_blocks.sum(0)
    # the penalty's gradient and Hessian at the fit (exact, by autograd): every refit
    # keeps the whole penalty, whichever block it leaves out
    g_pen, H_pen = torch.zeros(p, dtype=torch.float64), torch.zeros((p, p), dtype=torch.float64)
    if penalty is not None:
        def pen_value(th):
            value = penalty(th)
            return th.sum() * 0.0 if value is None else value

        th0 = theta0.detach().clone().requires_grad_(True)
        (g_pen,) = torch.autograd.grad(pen_value(th0), th0)
        H_pen = torch.autograd.functional.hessian(pen_value, theta0.detach().clone())
        H_pen = 0.5 * (H_pen + H_pen.T)
    # the gradient of every block at the fit: with sigma^2 fixed, the first Newton step of
    # each refit needs no pass over the windows (the other blocks' gradients sum to it)
    G0 = None if reestimate else block_grads(theta0)

    eval_idx = np.asarray(eval_idx)
    out, max_it, fallbacks = [], 0, 0
    for bi in range(len(unit_blocks)):
        rest = [w for ci, u in enumerate(unit_blocks) if ci != bi for w in u]
        n_rest = float(sizes.sum() - sizes[bi])
        if reestimate:
            s2v = _sigma2_without(rest, z_all, n_all, N, bi)
            s2 = torch.tensor(s2v / N, dtype=torch.float64)
        else:
            s2 = s2_full
        H = (H_total - H_blocks[bi] if keep_blocks else H_total * (1.0 - sizes[bi] / sizes.sum())) + H_pen
        theta, converged, prev = theta0.clone(), False, None
        for it in range(1, MAX_NEWTON + 1):
            if it == 1 and G0 is not None:
                loss, g = 0.0, G0.sum(0) - G0[bi] + g_pen
            else:
                loss, g = loss_grad(theta, rest, s2)
            if not (math.isfinite(loss) and bool(torch.isfinite(g).all())):
                break
            if prev is not None:
                # Broyden's update: H agrees with the last step's change of gradient
                # (the secant; superlinear convergence from the delete-block Hessian)
                s_, y_ = theta - prev[0], g - prev[1]
                ss = float(s_ @ s_)
                if ss > 0:
                    H = H + torch.outer(y_ - H @ s_, s_) / ss
            if it > 1 and float(g.abs().max()) <= GTOL * n_rest:
                # at the optimum by the gradient (a nearly flat direction, e.g. LDSR
                # with a GLM, can keep the steps long while the loss no longer changes)
                converged = True
                break
            prev = (theta, g)
            step = torch.linalg.lstsq(H, g.unsqueeze(1)).solution.squeeze(1)
            theta = theta - step
            if float(step.abs().max()) <= STEP_TOL * (1.0 + float(theta.abs().max())):
                converged = True
                break
        max_it = max(max_it, it)
        if not converged:
            fallbacks += 1
            theta = _lbfgs(objective, par, theta0, rest, s2, penalty)
        lf = par.log_f_of(theta.detach())(eval_idx).detach().cpu().numpy()
        if not np.all(np.isfinite(lf)):
            raise RefitFailed(f"the refit without training block {bi + 1} of {len(blocks)} gives a non-finite F")
        out.append(np.asarray(stats(lf), dtype=np.float64))
        if progress:
            progress(f"block {bi + 1}/{len(blocks)}")
    return Refits(method=METHOD_EXACT if exact else METHOD_SCALE, replicates=np.stack(out), n_blocks=len(blocks),
                  sigma2="re-estimated" if reestimate else "fixed", max_newton_iterations=max_it,
                  lbfgs_fallbacks=fallbacks, seconds=round(time.perf_counter() - t0, 3))


def _sigma2_without(rest, z_all, n_all, N, bi) -> float:
    """fit's default sigma^2 (:func:`varfx.train.setup.default_sigma2`) on the windows
    ``rest`` (training block ``bi`` deleted)."""
    from ..train.setup import default_sigma2

    try:
        s2v, _, _, _ = default_sigma2(rest, z_all, n_all, N)
    except UserError as exc:
        raise RefitFailed(f"sigma^2 without training block {bi + 1}: {exc}") from None
    return float(s2v)  # at least 1 by the rule, so always a usable noise variance


def _lbfgs(objective, par, theta0, units, s2, penalty=None):
    """L-BFGS from the fit on the per-variant loss (when Newton does not converge),
    with the fit's penalty (in loss units) when it had one."""
    import torch

    n = objective.batch_size(units)
    th = theta0.detach().clone().requires_grad_(True)
    opt = torch.optim.LBFGS([th], lr=1.0, max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-16,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = objective.batch_loss(units, par.log_f_of(th), s2)
        pen = penalty(th) if penalty is not None else None
        loss = (loss if pen is None else loss + pen) / n
        loss.backward()
        return loss

    try:
        opt.step(closure)
    except FloatingPointError as exc:
        raise RefitFailed(f"a delete-block refit of the prior left the likelihood's domain ({exc})") from None
    if not bool(torch.isfinite(th).all()):
        raise RefitFailed("a delete-block refit of the prior diverged (non-finite parameters)")
    return th.detach()


def _scale_refits(objective, par, theta0, train, blocks, eval_idx, stats, reestimate, z_all, n_all, N, s2_full,
                  method, t0):
    """The refits of a scale family (one parameter c with ``log f = log f_fit + c``: the
    constant prior with a fixed alpha, a network's scale) on the full likelihood, in
    closed form.  Per window, ``M = G^T F_fit G = U diag(S) U^T`` once; then with
    ``u = U^T z`` the loss at any ``(c, sigma2)`` is
    ``0.5 sum_i (u_i^2 / (s2 + e^c S_i) + log(s2 + e^c S_i)) + const``, so every refit is
    a 1-D Newton iteration over these numbers (no pass over the windows).  None (use the
    general path) unless the parameter really shifts log f uniformly and the closed form
    reproduces the objective's loss of a window."""
    import torch

    union = np.unique(np.concatenate([w.plus_idx for w in train]))
    with torch.no_grad():
        lf0 = par.log_f_of(theta0)(union)
        lf1 = par.log_f_of(theta0 + 1.0)(union)
    if not torch.allclose(lf1 - lf0, torch.ones_like(lf0), rtol=0, atol=1e-10):
        return None
    f_fit = torch.exp(lf0)
    S_all, u2_all, owner = [], [], []
    with torch.no_grad():
        for wi, w in enumerate(train):
            fp = f_fit[torch.as_tensor(np.searchsorted(union, w.plus_idx))].to(w.G.dtype)
            M = w.G.T @ (fp[:, None] * w.G)
            S, U = torch.linalg.eigh(0.5 * (M + M.T))
            S_all.append(S.clamp_min(0.0).double())
            u2_all.append(((U.T @ w.z) ** 2).double())
            owner.append(np.full(w.k, wi))
            if wi == 0:  # the closed form must be the objective's own loss
                direct = float(objective.window_loss(w, fp, s2_full.to(w.G.dtype)))
                closed = 0.5 * float((u2_all[0] / (s2_full + S_all[0])).sum() + torch.log(s2_full + S_all[0]).sum()
                                     + w.logdet_lambda + w.k * math.log(2 * math.pi))
                if not math.isclose(direct, closed, rel_tol=1e-9, abs_tol=1e-9):
                    return None
    S_all, u2_all = torch.cat(S_all).numpy(), torch.cat(u2_all).numpy()
    owner = np.concatenate(owner)
    win_block = np.empty(len(train), dtype=np.int64)
    for bi, b in enumerate(blocks):
        win_block[b] = bi
    eig_block = win_block[owner]
    s2_value = float(s2_full)
    out, max_it = [], 0
    for bi in range(len(blocks)):
        keep = eig_block != bi
        S, u2 = S_all[keep], u2_all[keep]
        if reestimate:
            rest = [w for ci, b in enumerate(blocks) if ci != bi for w in (train[i] for i in b)]
            s2v = _sigma2_without(rest, z_all, n_all, N, bi)
            s2 = s2v / N
        else:
            s2 = s2_value
        c = 0.0
        for it in range(1, MAX_NEWTON + 1):
            a = math.exp(c) * S
            d = s2 + a
            g = 0.5 * np.sum(a / d - a * u2 / d ** 2)
            h = 0.5 * np.sum(a / d - a * u2 / d ** 2 - a ** 2 / d ** 2 + 2 * a ** 2 * u2 / d ** 3)
            if not (h > 0 and math.isfinite(g)):
                return None  # not a minimum here: the general path decides
            step = g / h
            c -= step
            if abs(step) <= 1e-13 * (1.0 + abs(float(theta0[0]) + c)):
                break
        else:
            return None
        max_it = max(max_it, it)
        with torch.no_grad():
            lf = par.log_f_of(theta0 + c)(eval_idx).cpu().numpy()
        out.append(np.asarray(stats(lf), dtype=np.float64))
    return Refits(method=method, replicates=np.stack(out), n_blocks=len(blocks),
                  sigma2="re-estimated" if reestimate else "fixed", max_newton_iterations=max_it,
                  lbfgs_fallbacks=0, seconds=round(time.perf_counter() - t0, 3))
