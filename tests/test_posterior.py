"""Posterior effect sizes (varfx/linalg/posterior.py) against the dense Gaussian
conditional mean, its limits, and a Monte-Carlo check of the posterior variance."""

from __future__ import annotations

import numpy as np
import pytest

from varfx.linalg.posterior import dense_posterior_mean, posterior_effects, window_posterior
from varfx.linalg.window import factorise_window
from varfx.testing.solvers import ar1_ld, panel_ld, simulate_beta


def _setup(R, core_pos, seed, s2=1e-4, n_scale=None, eig_threshold=1e-3):
    rng = np.random.default_rng(seed)
    n_plus = R.shape[0]
    f = np.exp(rng.normal(np.log(2e-4), 1.0, n_plus))
    beta_hat = simulate_beta(R, core_pos, f, s2, rng)
    fac = factorise_window(R, core_pos, beta_hat, eig_threshold=eig_threshold, n_scale=n_scale)
    return f, beta_hat, fac


def _pinv_top_k(A, k):
    """A^+ over the top k eigenvalues of A (k = the rank of the core LD block), as
    dense.dense_loss takes it: A's own small eigenvalues (~sigma2 lambda_min) sit below
    any relative cut on A, its null directions are rounding noise."""
    mu, U = np.linalg.eigh(0.5 * (A + A.T))
    mu, U = mu[::-1][:k], U[:, ::-1][:, :k]
    return (U / mu) @ U.T


def _issue_formula(R, core_pos, beta_hat, f, s2, k):
    """``F R_+,(i) (R_(i),+ F R_+,(i) + sigma2 R_(i),(i))^+ beta_hat_(i)``, core rows."""
    Rc = R[:, core_pos]
    A = Rc.T @ (f[:, None] * Rc) + s2 * R[np.ix_(core_pos, core_pos)]
    return (f[:, None] * Rc @ _pinv_top_k(A, k) @ beta_hat)[core_pos]


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("seed", [0, 1])
def test_full_rank_window_equals_the_dense_formula(seed):
    R = ar1_ld(90, rho=0.6, seed=seed)
    core_pos = np.arange(30, 60)
    f, beta_hat, fac = _setup(R, core_pos, seed)
    assert fac["k"] == len(core_pos)  # full rank: nothing dropped
    mean, var = window_posterior(fac["G"], fac["z"], f, 1e-4, core_pos)
    want = _issue_formula(R, core_pos, beta_hat, f, 1e-4, fac["k"])
    assert _rel(mean, want) < 1e-8
    # the posterior variance: diag(F - F R_+(i) A^-1 R_(i)+ F) on the core
    Rc = R[:, core_pos]
    A = Rc.T @ (f[:, None] * Rc) + 1e-4 * R[np.ix_(core_pos, core_pos)]
    cov = np.diag(f) - (f[:, None] * Rc) @ np.linalg.solve(A, Rc.T * f[None, :])
    np.testing.assert_allclose(var, np.diag(cov)[core_pos], rtol=1e-8)
    assert np.all(var < f[core_pos])  # the data are informative


def test_rank_deficient_panel_window_equals_the_pseudo_inverse_formula():
    # 24 people, 40 core variants: R_(i),(i) has rank < 24, A is singular
    R = panel_ld(100, 24, seed=4)
    core_pos = np.arange(30, 70)
    f, beta_hat, fac = _setup(R, core_pos, 4)
    assert fac["k"] < 24 < len(core_pos)
    mean, _ = window_posterior(fac["G"], fac["z"], f, 1e-4, core_pos)
    assert _rel(mean, _issue_formula(R, core_pos, beta_hat, f, 1e-4, fac["k"])) < 1e-8
    assert _rel(mean, dense_posterior_mean(R, core_pos, beta_hat, f, 1e-4)) < 1e-8


def test_truncated_window_is_the_conditional_mean_given_the_kept_projections():
    # strong LD: the smallest eigenvalues fall below 1e-3 of the largest and are dropped
    R = ar1_ld(90, rho=0.995, seed=7)
    core_pos = np.arange(30, 60)
    f, beta_hat, fac = _setup(R, core_pos, 7)
    assert 0 < fac["k"] < len(core_pos)
    mean, _ = window_posterior(fac["G"], fac["z"], f, 1e-4, core_pos)
    assert _rel(mean, dense_posterior_mean(R, core_pos, beta_hat, f, 1e-4)) < 1e-8
    # and with no threshold (all directions kept) the dense formula is the plain one
    fac_all = factorise_window(R, core_pos, beta_hat, eig_threshold=1e-14)
    assert fac_all["k"] == len(core_pos)
    m_all, _ = window_posterior(fac_all["G"], fac_all["z"], f, 1e-4, core_pos)
    assert _rel(m_all, _issue_formula(R, core_pos, beta_hat, f, 1e-4, len(core_pos))) < 1e-7


def test_mixed_sample_sizes_match_the_dense_formula():
    R = ar1_ld(70, rho=0.7, seed=3)
    core_pos = np.arange(20, 50)
    d = np.where(np.arange(30) % 2, 3.0, 1.0) / 2.0  # n_m / N
    rng = np.random.default_rng(3)
    f = np.exp(rng.normal(np.log(2e-4), 1.0, 70))
    b = rng.normal(size=70) * np.sqrt(f)
    noise = rng.multivariate_normal(np.zeros(30), 1e-4 * R[np.ix_(core_pos, core_pos)])
    beta_hat = np.sqrt(d) * (R[core_pos] @ b) + noise  # E beta_hat_m = sqrt(n_m / N) (R beta)_m
    fac = factorise_window(R, core_pos, beta_hat, n_scale=d)
    mean, _ = window_posterior(fac["G"], fac["z"], f, 1e-4, core_pos)
    assert _rel(mean, dense_posterior_mean(R, core_pos, beta_hat, f, 1e-4, n_scale=d)) < 1e-8


def test_limits_of_the_prior_variance():
    R = ar1_ld(60, rho=0.6, seed=5)
    core_pos = np.arange(20, 40)
    f, beta_hat, fac = _setup(R, core_pos, 5)
    # F -> 0: the posterior mean is the prior mean, 0 (linear in f for small f)
    m, v = window_posterior(fac["G"], fac["z"], f * 1e-12, 1e-4, core_pos)
    assert np.max(np.abs(m)) < 1e-12 * np.max(np.abs(beta_hat)) * 1e3
    np.testing.assert_allclose(v, f[core_pos] * 1e-12, rtol=1e-6)
    # R = I and F -> inf: beta_hat itself (shrinkage f / (f + sigma2) -> 1)
    n = 25
    bh = np.random.default_rng(6).normal(size=n) * 0.01
    fac_i = factorise_window(np.eye(n), np.arange(n), bh)
    m, v = window_posterior(fac_i["G"], fac_i["z"], np.full(n, 1e6), 1e-4, np.arange(n))
    np.testing.assert_allclose(m, bh, rtol=1e-9)
    np.testing.assert_allclose(v, np.full(n, 1e-4), rtol=1e-6)  # -> sigma2
    # R = I, finite f: the scalar shrinkage f / (f + sigma2)
    fv = np.linspace(1e-5, 1e-3, n)
    m, v = window_posterior(fac_i["G"], fac_i["z"], fv, 1e-4, np.arange(n))
    np.testing.assert_allclose(m, fv / (fv + 1e-4) * bh, rtol=1e-12)
    np.testing.assert_allclose(v, fv * 1e-4 / (fv + 1e-4), rtol=1e-10)


def test_monte_carlo_residuals_have_the_posterior_variance():
    """Simulated truth: over draws of (beta, beta_hat) from the model, beta - E[beta|z]
    has mean 0, is uncorrelated with the data, and has the stated variance."""
    R = panel_ld(40, 200, seed=8)
    core_pos = np.arange(10, 30)
    rng = np.random.default_rng(8)
    f = np.exp(rng.normal(np.log(1e-3), 1.0, 40))
    s2, reps = 1e-3, 4000
    fac0 = factorise_window(R, core_pos, np.zeros(len(core_pos)))
    P, G = fac0["P"], fac0["G"]
    resid, datas = [], []
    var = None
    for _ in range(reps):
        b = rng.normal(size=40) * np.sqrt(f)
        bh = R[core_pos] @ b + rng.multivariate_normal(np.zeros(20), s2 * R[np.ix_(core_pos, core_pos)])
        m, var = window_posterior(G, P @ bh, f, s2, core_pos)
        resid.append(b[core_pos] - m)
        datas.append(bh)
    resid, datas = np.array(resid), np.array(datas)
    se_mean = np.sqrt(var / reps)
    assert np.all(np.abs(resid.mean(0)) < 5 * se_mean)
    # E[r^2] = var; the sd of a mean of r^2 of a Gaussian is var sqrt(2 / reps)
    assert np.all(np.abs((resid ** 2).mean(0) - var) < 5 * var * np.sqrt(2 / reps))
    # orthogonality: corr(residual_m, beta_hat_j) ~ 0 (sd 1/sqrt(reps))
    rc = (resid - resid.mean(0)) / resid.std(0)
    dc = (datas - datas.mean(0)) / datas.std(0)
    assert np.max(np.abs(rc.T @ dc / reps)) < 5 / np.sqrt(reps)


class _W:
    def __init__(self, core_idx, plus_idx, core_pos, G, z):
        self.core_idx, self.plus_idx, self.core_pos, self.G, self.z = core_idx, plus_idx, core_pos, G, z


def test_posterior_effects_takes_each_variant_from_its_core_window():
    R = ar1_ld(60, rho=0.7, seed=9)
    rng = np.random.default_rng(9)
    f = np.exp(rng.normal(np.log(2e-4), 1.0, 60))
    beta_hat = simulate_beta(R, np.arange(60), f, 1e-4, rng)
    # two windows: cores 0-29 and 30-49 with flanks of 10; variants 50-59 in a k = 0 window
    wins, want = [], np.zeros(60)
    for lo, hi in ((0, 30), (30, 50)):
        plus = np.arange(max(lo - 10, 0), min(hi + 10, 60))
        core_pos = np.arange(lo, hi) - plus[0]
        Rp = R[np.ix_(plus, plus)]
        fac = factorise_window(Rp, core_pos, beta_hat[lo:hi])
        wins.append(_W(np.arange(lo, hi), plus, core_pos, fac["G"], fac["z"]))
        want[lo:hi] = dense_posterior_mean(Rp, core_pos, beta_hat[lo:hi], f[plus], 1e-4)
    wins.append(_W(np.arange(50, 60), np.arange(50, 60), np.arange(10), np.zeros((10, 0)), np.zeros(0)))
    out = posterior_effects(wins, f, 1e-4, 60)
    assert _rel(out["mean"], want) < 1e-8
    assert out["covered"][:50].all() and not out["covered"][50:].any()
    assert np.all(out["mean"][50:] == 0) and np.all(out["var"][50:] == f[50:])
    assert out["n_windows"] == 3
    with pytest.raises(ValueError, match="core variant of two windows"):
        posterior_effects(wins + [wins[0]], f, 1e-4, 60)
    with pytest.raises(ValueError, match="sigma2"):
        window_posterior(wins[0].G, wins[0].z, f[wins[0].plus_idx], 0.0, wins[0].core_pos)
    with pytest.raises(ValueError, match="finite"):
        window_posterior(wins[0].G, wins[0].z, np.full(40, np.nan), 1e-4, wins[0].core_pos)


def test_constant_prior_is_ldpred_inf():
    """f = h2/M everywhere, sigma^2 = 1, a window without flank: LDpred-inf's
    ``(R + M / (N h2) I)^-1 beta_hat``."""
    R = ar1_ld(50, rho=0.8, seed=12)
    N, h2, M = 20_000.0, 0.2, 50
    rng = np.random.default_rng(12)
    f = np.full(M, h2 / M)
    beta_hat = simulate_beta(R, np.arange(M), f, 1 / N, rng)
    fac = factorise_window(R, np.arange(M), beta_hat, eig_threshold=1e-12)
    mean, _ = window_posterior(fac["G"], fac["z"], f, 1 / N, np.arange(M))
    want = np.linalg.solve(R + M / (N * h2) * np.eye(M), beta_hat)
    assert _rel(mean, want) < 1e-8
