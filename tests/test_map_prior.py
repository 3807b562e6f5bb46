"""The GLM's prior on its coefficients (``-p coef_sd=``, a MAP fit) and the generic
``penalty()`` hook of varfx/train/penalty.py: `varfx fit`'s optimum against an
independent scipy minimisation of evaluate's exact log-likelihood plus the penalty, the
penalty's gradient, its per-batch share under AdamW, the units per objective, and the
option's validation.  (evaluate's refits with the prior: tests/test_evaluate_se.py.)"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from varfx.default_plugins.objectives import FullLikelihood, LDScoreRegression, MultipleInstance
from varfx.default_plugins.solvers import CholeskySolver
from varfx.nn.priors import GLMModule
from varfx.train.penalty import penalty_record, penalty_term

from _cli import invoke, ok
from _data import central_hessian, in_sample_glm_store


@pytest.fixture(scope="module")
def small_glm(tmp_path_factory):
    """~800 chr22 variants with two annotations (a GLM truth), in-sample LD, 250-kb
    windows: a window store small enough for an independent optimiser over evaluate's
    exact likelihood."""
    tmp = tmp_path_factory.mktemp("map")
    store = in_sample_glm_store(tmp, 800, annot_seed=21, h2=0.2, n=50000, sim_seed=3)
    return {"tmp": tmp, "ds": store["ds"]}


def _fit(small_glm, name, *extra):
    out = small_glm["tmp"] / name
    ok(["fit", small_glm["ds"], "--prior", "glm", "--objective", "full", "--sigma2", 1, "--alpha", 0,
        "--holdout-chroms", "none", *extra, "-o", out])
    return out


def _map_reference(ds, tau):
    """(theta, per-variant Hessian, n_train): scipy's minimum of
    ``-LL(window_logliks) + |w|^2 / (2 tau^2)`` (tau 0: the maximum likelihood) over
    ``(b, w)`` with alpha 0, on every window of the store."""
    from scipy.optimize import minimize

    from varfx.stages.evaluate import window_logliks
    from varfx.store.dataset import open_dataset
    from varfx.store.variants import variant_batch
    from varfx.store.windows import load_windows

    windows, meta = load_windows(ds)
    windows = [w for w in windows if w.k > 0]
    with open_dataset(ds) as h5:
        X = variant_batch(h5, dtype="float64", device="cpu")["features"].numpy()
    s2 = 1.0 / float(meta["N"])
    n_train = sum(w.n for w in windows)

    def objective(theta):
        f = np.exp(theta[0] + X @ theta[1:])
        pen = 0.5 * float(np.sum(theta[1:] ** 2)) / tau ** 2 if tau else 0.0
        return -window_logliks(windows, f, s2)[0] + pen

    x0 = np.array([math.log(0.2 / len(X))] + [0.0] * X.shape[1])
    ref = minimize(objective, x0, method="Nelder-Mead",
                   options={"xatol": 1e-7, "fatol": 1e-9, "maxiter": 20000, "maxfev": 40000})
    assert ref.success, ref
    return ref.x, central_hessian(objective, ref.x), n_train


def _theta(model):
    ck = torch.load(model / "checkpoint.pt", weights_only=True)["prior"]
    return np.concatenate([ck["linear.bias"].numpy(), ck["linear.weight"].numpy()[0]])


@pytest.mark.parametrize("coef_sd", ["none", "1"])
def test_fit_is_the_map_optimum_of_evaluates_likelihood(small_glm, coef_sd):
    """`varfx fit -p coef_sd=...` (L-BFGS) ends where scipy's Nelder-Mead finds the minimum
    of evaluate's exact -log-likelihood plus |w|^2 / (2 tau^2): to the error fit's
    gradient tolerance allows (|grad| <= gtol per variant, so |theta error| <=
    |H_pv^-1| gtol with H_pv the per-variant Hessian), tenfold, plus scipy's xatol."""
    model = _fit(small_glm, f"m-{coef_sd}", "-p", f"coef_sd={coef_sd}", "--gtol", "1e-7")
    tau = 0.0 if coef_sd == "none" else float(coef_sd)
    meta = json.loads((model / "model.json").read_text())
    assert meta["prior"]["options"]["coef_sd"] == tau
    assert meta["prior_penalty"]["applied"] is (tau > 0) and meta["prior_penalty"]["coef_sd"] == tau
    est = _theta(model)
    ref, H, n_train = _map_reference(small_glm["ds"], tau)
    bound = np.abs(np.linalg.inv(H / n_train)).sum(1) * 1e-7
    tol = 10 * bound + 1e-6
    assert np.all(np.abs(est - ref) < tol), (est, ref, tol)
    se = np.sqrt(np.diag(np.linalg.inv(H)))
    assert np.all(tol < 0.05 * se)  # a tolerance far below the statistical error
    if tau:
        # the prior moves the optimum by far more than the tolerance (a fit that ignored
        # it fails here): the ML optimum is a Newton step of the penalty's gradient away
        shift = np.linalg.solve(H, np.concatenate([[0.0], ref[1:] / tau ** 2]))
        assert np.max(np.abs(shift) / tol) > 10


def test_penalty_gradient_by_finite_difference():
    """GLMModule.penalty() = |w|^2 / (2 tau^2) on the weights only: its autograd gradient
    against central differences, and no gradient on the intercept."""
    torch.manual_seed(0)
    m = GLMModule(3, coef_sd=0.7)
    with torch.no_grad():
        m.linear.weight.copy_(torch.tensor([[0.4, -1.3, 2.1]], dtype=torch.float64))
        m.linear.bias.fill_(-9.0)
    pen = m.penalty()
    pen.backward()
    w = m.linear.weight.detach().clone()
    assert float(pen.detach()) == pytest.approx(0.5 * float((w ** 2).sum()) / 0.49, rel=1e-14)
    h = 1e-6
    for j in range(3):
        e = torch.zeros_like(w)
        e[0, j] = h
        with torch.no_grad():
            m.linear.weight.copy_(w + e)
            up = float(m.penalty())
            m.linear.weight.copy_(w - e)
            down = float(m.penalty())
        assert float(m.linear.weight.grad[0, j]) == pytest.approx((up - down) / (2 * h), rel=1e-7)
    assert m.linear.bias.grad is None or float(m.linear.bias.grad.abs().sum()) == 0.0
    assert GLMModule(3, coef_sd=0.0).penalty() is None


def test_penalty_units_follow_the_objective():
    """The term added to the loss is penalty / nll_scale: full 1 (its loss is -log p),
    ldsr 2x (its loss is twice a quasi -log-likelihood, docs/math.md), none for a bag
    objective (not a likelihood sum), which model.json's record says."""
    m = GLMModule(2, coef_sd=1.0)
    with torch.no_grad():
        m.linear.weight.copy_(torch.tensor([[1.0, -2.0]], dtype=torch.float64))
    assert float(penalty_term(m, FullLikelihood(solver=CholeskySolver())).detach()) == pytest.approx(2.5)
    assert float(penalty_term(m, LDScoreRegression()).detach()) == pytest.approx(5.0)
    mil = MultipleInstance()
    assert penalty_term(m, mil) is None
    rec = penalty_record(m, mil)
    assert rec["applied"] is False and rec["neg_log_prior"] is None and "not a log-likelihood" in rec["why"]
    rec = penalty_record(m, LDScoreRegression())
    assert rec == {"kind": "gaussian-coefficients", "coef_sd": 1.0, "applied": True, "nll_scale": 0.5,
                   "neg_log_prior": 2.5}


def test_adamw_counts_the_penalty_once_per_epoch(tmp_path):
    """AdamW with 12 windows in batches of 5 (5, 5, 2: unequal shares) and lr 0, so the
    parameters stay put: the epoch's train_loss, the sum of each step's loss times its
    variants over the epoch's variants, equals (the data's loss + one penalty) / n_train."""
    from test_ldsr import make_window
    from test_train import NullBar

    from varfx.api import FitContext
    from varfx.default_plugins.priors import GLMPrior
    from varfx.testing.solvers import ar1_ld, simulate_beta
    from varfx.train.distributed import Distributed
    from varfx.train.loop import run_adamw
    from varfx.train.setup import FitSetup

    rng = np.random.default_rng(5)
    s2, n_plus, d = 1e-5, 40, 2
    windows, feats = [], []
    for s in range(12):
        core_pos = np.arange(10, 30 if s % 3 else 20)  # cores of 20 and 10 variants
        R = ar1_ld(n_plus, rho=0.5, seed=40 + s)
        x = rng.standard_normal((n_plus, d))
        beta = simulate_beta(R, core_pos, np.exp(math.log(2e-4) + x @ np.array([0.5, -0.3])), s2, rng)
        w = make_window(R, core_pos, beta, 1e5)
        w.index, w.plus_idx, w.core_idx = s, w.plus_idx + s * n_plus, w.core_idx + s * n_plus
        windows.append(w)
        feats.append(x)
    X = np.concatenate(feats)
    batch = {"freq": torch.full((len(X),), 0.3, dtype=torch.float64), "index": torch.arange(len(X)),
             "features": torch.tensor(X)}
    context = FitContext(init_f=2e-4, n_features=d)
    obj = FullLikelihood(solver=CholeskySolver())
    module = GLMPrior(alpha=0.0, coef_sd=0.5).module(context)
    with torch.no_grad():
        module.linear.weight.copy_(torch.tensor([[1.5, -2.0]], dtype=torch.float64))  # penalty 12.5
    setup = FitSetup(dataset="-", prior_name="glm", solver_name="cholesky", prior_cls=GLMPrior, prior_opts={},
                     objective=obj, solver=obj.solver, solver_opts={}, module=module, context=context,
                     train=windows, val=[], holdout=[], batch=batch, track_shape=None, sigma2=s2,
                     sigma2_source="option", s2=torch.tensor(s2, dtype=torch.float64), N=1.0, h2_ldsr=0.0,
                     windows_mb=0.0)
    res = run_adamw(setup, tmp_path, {"dtype": "float64"}, Distributed("cpu"), None, epochs=1, lr=0.0,
                    batch_windows=5, accumulate=1, warmup=0, clip=0, weight_decay=0, patience=0,
                    checkpoint_every=0, seed=0, amp=False, loader_workers=0, log=lambda r: None,
                    write_meta=lambda *a: None, bar=NullBar())
    n_train = sum(w.n for w in windows)
    with torch.no_grad():
        data = float(obj.batch_loss(windows, setup.log_f_of(), setup.s2))
    pen = 0.5 * (1.5 ** 2 + 2.0 ** 2) / 0.25
    got = res["curve"][0]["train_loss"]
    assert got == pytest.approx((data + pen) / n_train, rel=1e-10)
    # counting it per step instead of per share would be off by (3 - 1) penalties
    assert abs(got - (data + 3 * pen) / n_train) > 1e3 * abs(got) * 1e-10
    assert res["record"]["prior_penalty"]["neg_log_prior"] == pytest.approx(pen)


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "abc"])
def test_coef_sd_must_be_a_finite_non_negative_number(small_glm, value):
    out = small_glm["tmp"] / f"bad-{value}"
    r = invoke(["fit", small_glm["ds"], "--prior", "glm", "-p", f"coef_sd={value}", "-o", out])
    assert r.exit_code == 1, r.output
    text = r.output.strip()
    assert "\n" not in text and "coef_sd" in text and "Traceback" not in text, text
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["lbfgs", "adamw"])
def test_two_processes_count_the_penalty_once(small_glm, optimizer, tmp_path):
    """torchrun with 2 CPU processes: rank 0 alone adds the penalty (or its batch's share),
    so the trajectory and the parameters are the one-process fit's (a penalty added on
    every rank would double it: the loss would differ by ~penalty / n_train, far above
    the 1e-10 of reordered sums; tests/test_distributed.py explains that tolerance)."""
    from _train import one_and_two_processes

    extra = (["--optimizer", "adamw", "--lr", "0.1", "--batch-windows", "3", "--epochs", "4", "--seed", "2"]
             if optimizer == "adamw" else ["--optimizer", "lbfgs", "--max-iter", "8", "--checkpoint-every", "4"])
    args = ["fit", str(small_glm["ds"]), "--prior", "glm", "-p", "coef_sd=0.3", "--alpha", "0", "--sigma2", "1",
            "--holdout-chroms", "none", *extra]
    one, two = one_and_two_processes(invoke, args, tmp_path)
    ma, mb = (json.loads((d / "model.json").read_text()) for d in (one, two))
    assert mb["world_size"] == 2 and ma["prior_penalty"]["applied"] and mb["prior_penalty"]["applied"]
    assert [x["train_loss"] for x in ma["curve"]] == pytest.approx([x["train_loss"] for x in mb["curve"]], rel=1e-10)
    np.testing.assert_allclose(_theta(one), _theta(two), rtol=1e-9, atol=1e-10)
    pen = ma["prior_penalty"]["neg_log_prior"]
    assert pen / ma["n_train_variants"] > 1e-8 * abs(ma["curve"][-1]["train_loss"])  # the penalty is visible
