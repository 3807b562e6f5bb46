"""The trainer's parts alone (varfx/train/): schedule, L-BFGS to the maximum against
independent optimisers on the dense likelihood, the LD score regression with per-variant
sample sizes, solver state, the typed context."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from varfx.api import FitContext
from varfx.default_plugins.objectives import FullLikelihood
from varfx.default_plugins.priors import ConstantPrior, GLMPrior
from varfx.default_plugins.solvers import CGSLQSolver, CholeskySolver
from varfx.testing.solvers import ar1_ld, simulate_beta
from varfx.train.distributed import Distributed
from varfx.train.lbfgs import STOP_GTOL, run_lbfgs
from varfx.train.schedule import lr_factor, warmup_updates
from varfx.train.setup import SIGMA2_FLOOR, SIGMA2_INTERCEPT, FitSetup, default_sigma2, ldsr_intercept

from _data import central_hessian
from test_ldsr import make_window


class NullBar:
    def add_task(self, *a, **k):
        return 0

    def update(self, *a, **k):
        pass


def lbfgs_fit(tmp_path, windows, batch, prior_cls, prior_opts, s2, context, gtol=1e-7, max_iter=200):
    """Fit with the trainer's L-BFGS part on hand-made windows; returns (module, record)."""
    obj = FullLikelihood(solver=CholeskySolver())
    module = prior_cls(**prior_opts).module(context)
    setup = FitSetup(dataset="-", prior_name=prior_cls.name, solver_name="cholesky", prior_cls=prior_cls,
                     prior_opts=prior_opts, objective=obj, solver=obj.solver, solver_opts={}, module=module,
                     context=context, train=windows, val=[], holdout=[], batch=batch, track_shape=None,
                     sigma2=s2, sigma2_source="option", s2=torch.tensor(s2, dtype=torch.float64), N=1.0,
                     h2_ldsr=0.0, windows_mb=0.0)
    res = run_lbfgs(setup, tmp_path, {}, Distributed("cpu"), None, gtol=gtol, max_iter=max_iter,
                    checkpoint_every=0, amp=False, log=lambda r: None, write_meta=lambda *a: None, bar=NullBar())
    return module, res["record"]


def dense_nll(R, core_pos, beta, f, s2):
    """-log p(beta_hat) up to a constant: beta_hat ~ N(0, R_c+ F R_+c + s2 R_cc), dense."""
    Rc = R[core_pos]
    S = (Rc * f) @ Rc.T + s2 * R[np.ix_(core_pos, core_pos)]
    sign, logdet = np.linalg.slogdet(S)
    return 0.5 * (beta @ np.linalg.solve(S, beta) + logdet)


def test_schedule_warmup_then_cosine():
    total, warm = 100, warmup_updates(0.05, 100)
    assert warm == 5 and warmup_updates(7, 100) == 7
    assert [lr_factor(u, total, warm) for u in range(5)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    for u in (5, 30, 52, 99, 100, 150):
        want = 0.5 * (1 + math.cos(math.pi * min(u - 5, 95) / 95))
        assert lr_factor(u, total, warm) == pytest.approx(want)
    assert lr_factor(100, total, warm) == pytest.approx(0.0, abs=1e-15)


def test_lbfgs_constant_prior_reaches_the_dense_grid_maximum(tmp_path):
    """One window, constant prior: L-BFGS's log c is the maximum a dense grid of the
    dense likelihood finds (AdamW's default run stopped 0.075 short)."""
    rng = np.random.default_rng(7)
    n_plus, core_pos, s2 = 150, np.arange(30, 120), 1e-5
    R = ar1_ld(n_plus, rho=0.7, seed=11)
    f_true = np.full(n_plus, 3e-4)
    beta = simulate_beta(R, core_pos, f_true, s2, rng)
    win = make_window(R, core_pos, beta, 1e5)
    batch = {"freq": torch.full((n_plus,), 0.3, dtype=torch.float64), "index": torch.arange(n_plus)}
    module, rec = lbfgs_fit(tmp_path, [win], batch, ConstantPrior, {"alpha": 0.0}, s2,
                            FitContext(init_f=1e-5))
    assert rec["stop_reason"] == STOP_GTOL and rec["grad_norm"] <= 1e-7
    grid = np.linspace(math.log(1e-5), math.log(1e-2), 3001)  # steps of 0.0023 in log c
    nll = np.array([dense_nll(R, core_pos, beta, np.full(n_plus, math.exp(g)), s2) for g in grid])
    i = int(np.argmin(nll))
    assert 0 < i < len(grid) - 1  # an interior maximum
    # refine by the parabola through the grid's three best points
    a, b, c = nll[i - 1:i + 2]
    h = grid[1] - grid[0]
    best = grid[i] + 0.5 * h * (a - c) / (a - 2 * b + c)
    assert abs(float(module.log_c.detach()) - best) < 0.01, (float(module.log_c.detach()), best)
    assert abs(float(module.log_c.detach()) - best) < 1e-3  # in fact far tighter than the grid step


@pytest.mark.parametrize("coef_sd", ["none", 1.0])
def test_lbfgs_glm_matches_scipy_on_the_dense_likelihood(tmp_path, coef_sd):
    """GLM prior on 12 windows: the trainer's coefficients equal scipy's optimum of the
    dense likelihood (an independent formula and optimiser), to a small fraction of a
    standard error: the maximum likelihood with ``coef_sd=none``, the MAP estimate (the
    dense loss plus ``|w|^2 / (2 tau^2)``, not on the intercept) with ``coef_sd=1``."""
    from scipy.optimize import minimize

    rng = np.random.default_rng(3)
    s2, n_plus, core_pos, d = 1e-5, 80, np.arange(20, 60), 2
    theta_true = np.array([math.log(2e-4), 0.6, -0.4])
    windows, Rs, betas, feats = [], [], [], []
    for s in range(12):
        R = ar1_ld(n_plus, rho=0.6, seed=300 + s)
        x = rng.standard_normal((n_plus, d))
        f = np.exp(theta_true[0] + x @ theta_true[1:])
        beta = simulate_beta(R, core_pos, f, s2, rng)
        w = make_window(R, core_pos, beta, 1e5)
        w.index, w.plus_idx, w.core_idx = s, w.plus_idx + s * n_plus, w.core_idx + s * n_plus
        windows.append(w)
        Rs.append(R)
        betas.append(beta)
        feats.append(x)
    X = np.concatenate(feats)
    batch = {"freq": torch.full((len(X),), 0.3, dtype=torch.float64), "index": torch.arange(len(X)),
             "features": torch.tensor(X)}
    module, rec = lbfgs_fit(tmp_path, windows, batch, GLMPrior, {"alpha": 0.0, "coef_sd": coef_sd}, s2,
                            FitContext(init_f=1e-4, n_features=d))
    assert rec["stop_reason"] == STOP_GTOL, rec
    est = np.concatenate([module.linear.bias.detach().numpy(), module.linear.weight.detach().numpy()[0]])
    tau = 0.0 if coef_sd == "none" else float(coef_sd)
    pen = rec["prior_penalty"]
    assert pen["coef_sd"] == tau and pen["applied"] is (tau > 0) and pen["nll_scale"] == 1.0
    if tau:
        assert pen["neg_log_prior"] == pytest.approx(0.5 * float((est[1:] ** 2).sum()) / tau ** 2, rel=1e-12)

    def penalty(theta):
        return 0.5 * float(np.sum(theta[1:] ** 2)) / tau ** 2 if tau else 0.0

    def data(theta):
        return sum(dense_nll(R, core_pos, b, np.exp(theta[0] + x @ theta[1:]), s2)
                   for R, b, x in zip(Rs, betas, feats))

    def total(theta):
        return data(theta) + penalty(theta)

    ref = minimize(total, np.array([math.log(1e-4), 0.0, 0.0]), method="Nelder-Mead",
                   options={"xatol": 1e-7, "fatol": 1e-10, "maxiter": 20000, "maxfev": 40000})
    assert ref.success
    # standard errors from the dense Hessian (central differences of the dense loss)
    H = central_hessian(total, ref.x)
    se = np.sqrt(np.diag(np.linalg.inv(H)))
    assert np.all(se < 0.3), se  # informative enough to mean something
    assert np.all(np.abs(est - ref.x) < 0.01 * se), (est, ref.x, se)
    if tau:
        # the prior moves the optimum by far more than the tolerance (a fit that ignored
        # it would fail): the Newton step of the data's loss alone from the MAP optimum
        g_pen = np.concatenate([[0.0], ref.x[1:] / tau ** 2])
        assert np.max(np.abs(np.linalg.solve(H, g_pen)) / se) > 0.03


def test_ldsr_uses_each_variants_sample_size():
    """chi2 simulated with E[chi2_m] = n_m h2 l_m / M + a from a 70/30 mix of sample
    sizes: the regression recovers h2 and a (with the median N, h2 came out ~3.7x off)."""
    from types import SimpleNamespace

    rng = np.random.default_rng(5)
    M, h2, a = 200_000, 0.3, 1.1
    l = rng.uniform(1, 150, M)
    n = np.where(rng.random(M) < 0.7, 50_000.0, 500_000.0)
    mean = n * h2 * l / M + a
    chi2 = mean * rng.chisquare(1, M)
    w = SimpleNamespace(core_idx=np.arange(M), ld_score=l)
    a_hat, h2_hat = ldsr_intercept([w], np.sqrt(chi2), n, N=float(np.median(n)))
    # sampling sd of the weighted regression here is ~0.02 (h2) and ~0.006 (a),
    # measured over seeds; 4 sd
    assert abs(h2_hat - h2) < 0.08, h2_hat
    assert abs(a_hat - a) < 0.025, a_hat
    # the intercept fixed (--sigma2): only the slope is fitted, the intercept is kept
    a_fix, h2_fix = ldsr_intercept([w], np.sqrt(chi2), n, N=float(np.median(n)), intercept=a)
    assert a_fix == a and abs(h2_fix - h2) < 0.08


def test_default_sigma2_is_the_intercept_but_at_least_one():
    from types import SimpleNamespace

    """fit's default rule: an intercept above 1 is kept (confounding inflates the noise),
    one below 1 gives sigma^2 = 1, with the slope refitted at 1 (noise-free chi2 on the
    regression line, so the intercept and slope are recovered to rounding)."""
    M, N = 400, 1000.0
    l = np.linspace(1.0, 60.0, M)
    w = SimpleNamespace(core_idx=np.arange(M), ld_score=l)
    n = np.full(M, N)
    for a, h2 in ((1.3, 0.4), (0.6, 0.4)):
        z = np.sqrt(N * h2 * l / M + a)
        s2, h2_hat, intercept, source = default_sigma2([w], z, n, N)
        assert abs(intercept - a) < 1e-8
        if a >= 1:
            assert source == SIGMA2_INTERCEPT and s2 == intercept and abs(h2_hat - h2) < 1e-8
        else:
            assert source == SIGMA2_FLOOR and s2 == 1.0
            assert h2_hat == ldsr_intercept([w], z, n, N, intercept=1.0)[1] and h2_hat < h2


def test_probe_solver_state_round_trips():
    s = CGSLQSolver()
    for _ in range(3):
        s._next_call()
    t = CGSLQSolver()
    t.load_state_dict(s.state_dict())
    assert t.state_dict() == {"calls": 3} and t._next_call() == 3
    assert CholeskySolver().state_dict() == {}


def test_fit_context_reads_like_the_old_dict():
    ctx = FitContext(init_f=2e-5, n_features=3)
    assert ctx.get("n_features", 0) == 3 and ctx["init_f"] == 2e-5 and ctx.get("nope", 7) == 7
    with pytest.raises(KeyError):
        ctx["nope"]
    assert ctx.inputs() == {"n_features": 3, "n_tracks": 0, "window": 0}


def _setup(windows, val, batch, prior_cls, prior_opts, s2, context):
    obj = FullLikelihood(solver=CholeskySolver())
    return FitSetup(dataset="-", prior_name=prior_cls.name, solver_name="cholesky", prior_cls=prior_cls,
                    prior_opts=prior_opts, objective=obj, solver=obj.solver, solver_opts={},
                    module=prior_cls(**prior_opts).module(context), context=context, train=windows, val=val,
                    holdout=[2], batch=batch, track_shape=None, sigma2=s2, sigma2_source="option",
                    s2=torch.tensor(s2, dtype=torch.float64), N=1.0, h2_ldsr=0.0, windows_mb=0.0)


def test_early_stopping_restores_the_best_validation_epoch(tmp_path):
    """Training and validation windows with different per-SNP variances: AdamW walks
    log c from below through the validation optimum towards the training one, the
    validation loss falls then rises, --patience stops the run and the weights kept
    are the best validation epoch's (they were the last epoch's)."""
    from varfx.train.loop import run_adamw

    rng = np.random.default_rng(9)
    n_plus, core_pos, s2 = 100, np.arange(20, 80), 1e-5
    windows = []
    for s, f in enumerate([3e-3, 3e-3, 3e-5]):  # two training windows, one validation window
        R = ar1_ld(n_plus, rho=0.6, seed=700 + s)
        w = make_window(R, core_pos, simulate_beta(R, core_pos, np.full(n_plus, f), s2, rng), 1e5)
        w.index, w.chrom = s, 1 if s < 2 else 2
        w.plus_idx, w.core_idx = w.plus_idx + s * n_plus, w.core_idx + s * n_plus
        windows.append(w)
    M = 3 * n_plus
    batch = {"freq": torch.full((M,), 0.3, dtype=torch.float64), "index": torch.arange(M)}
    setup = _setup(windows[:2], windows[2:], batch, ConstantPrior, {"alpha": 0.0}, s2, FitContext(init_f=1e-6))
    metas = []
    res = run_adamw(setup, tmp_path, {"dtype": "float64"}, Distributed("cpu"), None, epochs=200, lr=0.1,
                    batch_windows=0, accumulate=1, warmup=0, clip=0, weight_decay=0, patience=3,
                    checkpoint_every=0, seed=0, amp=False, loader_workers=0, log=lambda r: None,
                    write_meta=lambda done, curve, rec: metas.append(rec), bar=NullBar())
    curve, rec = res["curve"], res["record"]
    vals = [c["val_loss"] for c in curve]
    best = int(np.argmin(vals))
    assert rec["stopped_early"] and len(curve) == best + 1 + 3 and rec["best_epoch"] == best + 1
    assert vals[-1] > vals[best] + 1e-6  # the last epoch is measurably worse
    n_val = setup.n_val_variants
    with torch.no_grad():
        at_end = float(setup.objective.batch_loss(setup.val, setup.log_f_of(), setup.s2)) / n_val
    assert at_end == pytest.approx(vals[best], rel=1e-12)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert float(saved["prior"]["log_c"]) == pytest.approx(float(setup.module.log_c.detach()), rel=1e-15)


def test_auto_optimizer_choice():
    """auto: L-BFGS only for a small prior, in memory, with an exact solver and no
    AdamW option; otherwise AdamW, with the reason recorded."""
    from types import SimpleNamespace

    from varfx.default_plugins.priors import TransformerPrior
    from varfx.default_plugins.solvers import NystromSolver
    from varfx.stages.fit import choose_optimizer

    def setup(prior_cls=ConstantPrior, solver=None):
        solver = solver or CholeskySolver()
        return SimpleNamespace(prior_cls=prior_cls, prior_name=prior_cls.name, solver=solver,
                               solver_name=solver.name)

    assert choose_optimizer("auto", setup(), [], [], 0)[0] == "lbfgs"
    assert choose_optimizer("auto", setup(GLMPrior), [], [], 0)[0] == "lbfgs"
    assert choose_optimizer("auto", setup(TransformerPrior), [], [], 0) == ("adamw", "prior 'transformer' is a network")
    assert choose_optimizer("auto", setup(), ["epochs"], [], 0) == ("adamw", "--epochs given")
    assert choose_optimizer("auto", setup(), [], [], 2)[0] == "adamw"
    assert choose_optimizer("auto", setup(solver=NystromSolver()), [], [], 0)[0] == "adamw"
    assert choose_optimizer("auto", setup(TransformerPrior), [], ["gtol"], 0)[0] == "lbfgs"  # asked for it
    assert choose_optimizer("adamw", setup(), [], [], 0)[0] == "adamw"
