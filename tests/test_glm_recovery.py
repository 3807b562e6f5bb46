"""On data simulated from a GLM prior, the GLM prior fitted with the full likelihood
recovers the true coefficients, within 4 standard errors from the observed Fisher
information (the exact likelihood's Hessian at the optimum)."""

import numpy as np
import pytest
import torch

from varfx.default_plugins.objectives import FullLikelihood
from varfx.default_plugins.solvers import CholeskySolver
from varfx.nn.priors import GLMModule
from varfx.testing.solvers import ar1_ld, simulate_beta

from test_ldsr import make_window

pytestmark = pytest.mark.slow


def test_glm_prior_recovers_true_coefficients():
    rng = np.random.default_rng(2024)
    N, s2 = 1e5, 1e-5
    n_plus, core_pos = 120, np.arange(40, 80)
    w_true, b_true = np.array([0.8, -0.5, 0.0]), np.log(2e-4)
    windows, feats, freqs = [], [], []
    for s in range(80):
        R = ar1_ld(n_plus, rho=0.6, seed=2000 + s)
        x = rng.standard_normal((n_plus, 3))
        f = np.exp(b_true + x @ w_true)
        windows.append(make_window(R, core_pos, simulate_beta(R, core_pos, f, s2, rng), N))
        feats.append(torch.tensor(x))
        freqs.append(torch.full((n_plus,), 0.5, dtype=torch.float64))
    obj = FullLikelihood(solver=CholeskySolver())
    s2t = torch.tensor(s2, dtype=torch.float64)

    def nll_of(theta):
        b, w = theta[0], theta[1:]
        return sum(obj.window_loss(win, torch.exp(b + x @ w), s2t) for win, x in zip(windows, feats))

    module = GLMModule(3, init_f=1e-4, alpha=0.0)
    params = list(module.parameters())
    opt = torch.optim.LBFGS(params, lr=1, max_iter=200, tolerance_grad=1e-10, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = sum(obj.window_loss(win, torch.exp(module({"freq": p, "features": x})), s2t)
                   for win, x, p in zip(windows, feats, freqs))
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    theta = torch.cat([module.linear.bias.detach(), module.linear.weight.detach()[0]])
    # Observed information by central differences of the exact gradient (the solvers'
    # backward is closed-form, not twice differentiable).
    def grad_at(t):
        t = t.clone().requires_grad_(True)
        nll_of(t).backward()
        return t.grad.detach()

    eps = 1e-4
    H = torch.stack([(grad_at(theta + eps * e) - grad_at(theta - eps * e)) / (2 * eps)
                     for e in torch.eye(4, dtype=torch.float64)])
    H = 0.5 * (H + H.T)
    # converged: the remaining Newton step is tiny against the standard errors
    step = torch.linalg.solve(H, grad_at(theta))
    assert torch.all(step.abs() < 0.01 * torch.sqrt(torch.diagonal(torch.linalg.inv(H))))
    se = torch.sqrt(torch.diagonal(torch.linalg.inv(H))).numpy()
    est = theta.numpy()
    truth = np.concatenate([[b_true], w_true])
    assert np.all(se < 0.25), se  # informative enough for the test to mean something
    assert np.all(np.abs(est - truth) < 4 * se), (est, truth, se)
