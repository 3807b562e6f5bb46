"""Mixed sample sizes (issue 8, section 2): meta-analysed summary statistics whose n
varies across variants.

Model (docs/math.md): ``z_m = sqrt(n_m) (R beta)_m + e``, ``e ~ N(0, sigma^2 R)``.  The
engine stores ``beta_hat = z / sqrt(N)`` with one N (the data set's median) and puts
``n_m / N`` into the factor G (``factorise_window(..., n_scale=n / N)``), so that the
reduced loss is the exact Gaussian likelihood of z.  The old convention,
``beta_hat = z / sqrt(n_m)`` with noise ``sigma^2 / N``, mis-states the noise of every
variant whose n is not the median.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from varfx.linalg import dense
from varfx.linalg.window import factorise_window
from varfx.testing.solvers import ar1_ld

N_LOW = 20_000


def _sizes(n, rng):
    """Half the variants in N_LOW people, half in 3 N_LOW (two cohort sets), shuffled."""
    n_m = np.where(rng.permutation(n) % 2 == 0, N_LOW, 3 * N_LOW).astype(np.float64)
    return n_m


def _simulate(R, core, f, n_m, rng):
    """z of the core variants: sqrt(n_m) (R_(i),+ b)_m + e, b ~ N(0, F), e ~ N(0, R_(i),(i))."""
    b = rng.normal(size=R.shape[0]) * np.sqrt(f)
    Rcc = R[np.ix_(core, core)]
    e = np.linalg.cholesky(Rcc + 1e-12 * np.eye(len(core))) @ rng.normal(size=len(core))
    return np.sqrt(n_m) * (R[core] @ b) + e


def test_reduced_loss_is_the_z_space_likelihood():
    """reduced loss + log|Lambda| + k log N = z^T S^-1 z + log|S| for the z-space
    covariance ``S = diag(sqrt n) R_(i),+ F R_+,(i) diag(sqrt n) + R_(i),(i)``."""
    rng = np.random.default_rng(0)
    n_plus, n = 240, 80
    R = ar1_ld(n_plus, 0.9, seed=1)
    core = np.arange(80, 160)
    f = 2e-5 * rng.lognormal(0.0, 1.0, n_plus)
    n_m = _sizes(n, rng)
    N = float(np.median(n_m))
    z = _simulate(R, core, f, n_m, rng)
    win = factorise_window(R, core, z / np.sqrt(N), eig_threshold=1e-12, n_scale=n_m / N)
    assert win["k"] == n
    sq = np.sqrt(n_m)
    S = sq[:, None] * (R[core] @ (f[:, None] * R[:, core])) * sq[None, :] + R[np.ix_(core, core)]
    sign, logdet = np.linalg.slogdet(S)
    assert sign > 0
    want = float(z @ np.linalg.solve(S, z) + logdet)
    got = dense.reduced_loss(win["G"], win["z"], f, 1.0 / N) + win["logdet_lambda"] + n * math.log(N)
    assert abs(got - want) <= 1e-8 * abs(want)
    # the old convention is a different (wrong) likelihood for the same z
    old = factorise_window(R, core, z / sq, eig_threshold=1e-12)
    got_old = dense.reduced_loss(old["G"], old["z"], f, 1.0 / N) + old["logdet_lambda"] + n * math.log(N)
    assert abs(got_old - want) > 1e-3 * abs(want)


def test_constant_n_is_todays_model():
    R = ar1_ld(120, 0.9, seed=2)
    core = np.arange(40, 80)
    beta = np.random.default_rng(1).normal(size=40) * 1e-3
    a = factorise_window(R, core, beta)
    b = factorise_window(R, core, beta, n_scale=np.ones(40))
    for key in ("G", "P", "z", "eigvals"):
        np.testing.assert_allclose(b[key], a[key], rtol=1e-13, atol=1e-300)


def test_n_scale_is_checked():
    R = ar1_ld(20, 0.9, seed=0)
    with pytest.raises(ValueError):
        factorise_window(R, [1, 2], [0.1, 0.2], n_scale=[1.0])
    for bad in ([1.0, 0.0], [1.0, np.nan], [1.0, -2.0]):
        with pytest.raises(ValueError):
            factorise_window(R, [1, 2], [0.1, 0.2], n_scale=bad)


def _ml_log_f(windows, sigma2, grid):
    """Maximum-likelihood log f of a constant prior on a dense grid, and its standard
    error from the curvature of the total loss (= -2 log-likelihood) at the maximum."""
    losses = np.array([sum(dense.reduced_loss(G, z, np.full(G.shape[0], math.exp(t)), sigma2)
                           for G, z in windows) for t in grid])
    i = int(np.argmin(losses))
    assert 2 <= i <= len(grid) - 3, "the maximum is inside the grid"
    c2, c1, _ = np.polyfit(grid[i - 2:i + 3] - grid[i], losses[i - 2:i + 3], 2)
    t_hat = grid[i] - c1 / (2 * c2)
    se = math.sqrt(2.0 / (2 * c2))  # var = (1/2 d2L/dt2)^-1 with L = -2 LL
    return t_hat, se


def test_h2_recovery_with_n_varying_3x():
    """200 independent windows (8000 core variants), n in {N_LOW, 3 N_LOW}: the
    maximum-likelihood f of a constant prior is within 3 standard errors of the truth
    with the engine's convention, and the old one is off by more than 4, upwards
    (it takes the extra noise of the small-n variants, 4/3 of what it assumes on
    average, for signal)."""
    rng = np.random.default_rng(7)
    n_windows, n_plus, n = 200, 120, 40
    core = np.arange(40, 80)
    ld_score = (1 + 0.25) / (1 - 0.25)  # sum_j r^2 of an AR(1) with rho 0.5
    all_n = [_sizes(n, rng) for _ in range(n_windows)]
    N = float(np.median(np.concatenate(all_n)))  # 2 N_LOW
    f_true = 0.6 / (N * ld_score)
    new, old = [], []
    for w in range(n_windows):
        R = ar1_ld(n_plus, 0.5, seed=1000 + w)
        n_m = all_n[w]
        z = _simulate(R, core, np.full(n_plus, f_true), n_m, rng)
        a = factorise_window(R, core, z / np.sqrt(N), n_scale=n_m / N)
        b = factorise_window(R, core, z / np.sqrt(n_m))
        new.append((a["G"], a["z"]))
        old.append((b["G"], b["z"]))
    t0 = math.log(f_true)
    grid = t0 + np.linspace(-1.0, 1.5, 126)
    t_new, se_new = _ml_log_f(new, 1.0 / N, grid)
    t_old, se_old = _ml_log_f(old, 1.0 / N, grid)
    assert se_new < 0.1  # the test has power: f known to ~10%
    assert abs(t_new - t0) < 3 * se_new, (t_new - t0, se_new)
    assert t_old - t0 > 4 * se_old, (t_old - t0, se_old)


def test_precompute_stores_the_one_n_convention(tmp_path):
    """Through ingest and precompute-ld on real chr22 rows whose N alternates between n
    and 3n (a meta-analysis): stored beta = z / sqrt(N) with N the dataset's median,
    stored n_scale = n_m / N, and G carries D^1/2 = diag(sqrt(n_scale)):
    ``Lambda^-1/2 (P G_core) Lambda^1/2 = V^T D^1/2 V`` with ``V = P^T Lambda^1/2``."""
    import h5py
    from _data import mixed_n_dataset

    ds = mixed_n_dataset(tmp_path)
    with h5py.File(ds / "dataset.h5", "r") as d, h5py.File(ds / "windows.h5", "r") as w:
        N = float(d.attrs["N"])
        z_all, n_all = d["variants"]["z"][:], d["variants"]["n"][:].astype(float)
        assert n_all.max() == 3 * n_all.min()
        checked = 0
        for name in w["windows"]:
            g = w["windows"][name]
            core = g["core_idx"][:]
            np.testing.assert_allclose(g["beta"][:], z_all[core] / np.sqrt(N), rtol=1e-12)
            np.testing.assert_allclose(g["n_scale"][:], n_all[core] / N, rtol=1e-12)
            k = int(g.attrs["k"])
            if k == 0:
                continue
            P, G, lam = g["P"][:], g["G"][:], g["eigvals"][:]
            V = P.T * np.sqrt(lam)[None, :]
            got = (P @ G[g["core_pos"][:]]) * np.sqrt(lam)[None, :] / np.sqrt(lam)[:, None]
            want = V.T @ (np.sqrt(n_all[core] / N)[:, None] * V)
            assert np.abs(got - want).max() < 1e-6 * np.abs(want).max()
            checked += 1
        assert checked >= 2
