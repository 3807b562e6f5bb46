"""Window factorisation and the dense reference formulas (varfx.linalg.window / .dense).

The reduced (k-space) form, the paper's B-form and the direct pseudo-inverse formula must
agree to 1e-8 in float64; the closed-form gradient must match finite differences.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from varfx.linalg import dense
from varfx.linalg.window import factorise_window
from varfx.testing.solvers import (SIGMA2, SYNTHETIC_EIG_THRESHOLD, ar1_ld, panel_ld, simulate_beta,
                                  synthetic_window)


ET = SYNTHETIC_EIG_THRESHOLD  # the synthetic windows' threshold, for the dense formula


def _rel(a, b):
    return abs(a - b) / abs(b)


WINDOW_CASES = [
    (spectrum, regime, seed)
    for spectrum in ("panel", "full")
    for regime in ("weak", "strong")
    for seed in (0, 1)
]


# ----------------------------------------------------------------------------- factorisation


@pytest.mark.parametrize("spectrum", ["panel", "full"])
def test_factorise_window_identities(spectrum):
    win = synthetic_window(spectrum, regime="weak")
    R, core = win["R_plus"], win["core_pos"]
    n_plus, n, k = R.shape[0], len(core), win["k"]
    P, G, z = win["P"], win["G"], win["z"]
    assert P.shape == (k, n) and G.shape == (n_plus, k) and z.shape == (k,)
    assert win["eigvals"].shape == (k,)
    assert np.all(np.diff(win["eigvals"]) <= 0), "eigenvalues are returned in descending order"
    R_core = R[np.ix_(core, core)]
    # P whitens the core block on its range: P R P^T = I_k
    np.testing.assert_allclose(P @ R_core @ P.T, np.eye(k), atol=1e-9)
    np.testing.assert_allclose(G, R[:, core] @ P.T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(z, P @ win["beta_core"], rtol=1e-10, atol=1e-12)
    assert math.isclose(win["logdet_lambda"], float(np.sum(np.log(win["eigvals"]))), rel_tol=1e-12)
    ld = np.array([np.sum(R[:, c] ** 2) for c in core])
    np.testing.assert_allclose(win["ld_score"], ld, rtol=1e-12)
    assert win["beta_outside"] < 1e-10  # simulated statistics lie in the range of R_(i),(i)
    for v in (P, G, z, win["eigvals"]):
        assert v.dtype == np.float64


def test_panel_rank_is_kept_and_nothing_more():
    """A panel of 100 people gives an LD block of rank 99 (standardisation removes one)."""
    win = synthetic_window("panel", regime="weak")
    assert win["k"] == 99 < len(win["core_pos"])
    full = synthetic_window("full", regime="weak")
    assert full["k"] == len(full["core_pos"])


def test_beta_outside_range_is_reported():
    win = synthetic_window("panel", regime="weak")
    rng = np.random.default_rng(3)
    beta = rng.normal(size=len(win["core_pos"]))
    out = factorise_window(win["R_plus"], win["core_pos"], beta, eig_threshold=ET)
    assert out["beta_outside"] > 0.5  # 99 of 150 directions are covered


def test_eig_threshold_drops_negative_eigenvalues():
    """An LD block with a small negative eigenvalue (as from a shrunk or pairwise-estimated
    LD matrix): that eigenpair is dropped and the rest is unchanged."""
    R = ar1_ld(60, 0.9, seed=4)
    core = np.arange(20, 40)
    R_core = R[np.ix_(core, core)]
    lam, V = np.linalg.eigh(R_core)
    v = V[:, 0]
    R_bad = R.copy()
    R_bad[np.ix_(core, core)] -= (lam[0] + 1e-3) * np.outer(v, v)  # eigenvalue lam[0] -> -1e-3
    assert np.linalg.eigvalsh(R_bad[np.ix_(core, core)])[0] < 0
    beta = np.random.default_rng(0).normal(size=20)
    out = factorise_window(R_bad, core, beta, eig_threshold=1e-6)
    assert out["k"] == 19
    assert np.all(out["eigvals"] > 0)
    np.testing.assert_allclose(np.sort(out["eigvals"]), lam[1:], rtol=1e-10)
    np.testing.assert_allclose(out["P"] @ v, 0.0, atol=1e-10)  # the dropped direction
    # and a relative threshold drops near-zero positive ones too
    out2 = factorise_window(R, core, beta, eig_threshold=lam[3] / lam[-1] * 1.0000001)
    assert out2["k"] == 20 - 4


def test_empty_windows():
    R = ar1_ld(10, 0.9, seed=0)
    out = factorise_window(R, np.array([], dtype=int), np.array([]))
    assert out["k"] == 0 and out["G"].shape == (10, 0) and out["P"].shape == (0, 0)
    zero = np.zeros((5, 5))
    out = factorise_window(zero, [1, 2], [0.0, 0.0])
    assert out["k"] == 0 and out["G"].shape == (5, 0) and out["z"].shape == (0,)
    assert out["logdet_lambda"] == 0.0
    np.testing.assert_array_equal(out["ld_score"], [0.0, 0.0])


def test_factorise_window_input_checks():
    R = ar1_ld(10, 0.9, seed=0)
    with pytest.raises(ValueError):
        factorise_window(R[:, :5], [0], [0.1])
    with pytest.raises(ValueError):
        factorise_window(R, [0, 1], [0.1])
    with pytest.raises(ValueError):
        factorise_window(R, [12], [0.1])


# ----------------------------------------------------------------------------- the three forms


@pytest.mark.parametrize("spectrum,regime,seed", WINDOW_CASES)
def test_reduced_equals_bform_equals_dense(spectrum, regime, seed):
    win = synthetic_window(spectrum, n_plus=240, n=80, seed=seed, regime=regime)
    G, z, f, s2 = win["G"], win["z"], win["f"], win["sigma2"]
    L_red = dense.reduced_loss(G, z, f, s2)
    L_b = dense.bform_loss(G, z, f, s2)
    L_dense = dense.dense_loss(win["R_plus"], win["core_pos"], win["beta_core"], f, s2, eig_threshold=ET)
    assert _rel(L_b, L_red) < 1e-8
    assert _rel(L_dense, L_red + win["logdet_lambda"]) < 1e-8


@pytest.mark.parametrize("sigma2", [1e-3, 0.1])
def test_three_forms_agree_at_other_noise_levels(sigma2):
    win = synthetic_window("panel", n_plus=240, n=80, seed=2, regime="strong")
    G, z, f = win["G"], win["z"], win["f"]
    L_red = dense.reduced_loss(G, z, f, sigma2)
    assert _rel(dense.bform_loss(G, z, f, sigma2), L_red) < 1e-8
    L_dense = dense.dense_loss(win["R_plus"], win["core_pos"], win["beta_core"], f, sigma2,
                               eig_threshold=ET)
    assert _rel(L_dense, L_red + win["logdet_lambda"]) < 1e-8


def test_full_rank_dense_loss_is_the_ordinary_formula():
    """With a full-rank block the pseudo-inverse/determinant are the ordinary ones."""
    win = synthetic_window("full", n_plus=120, n=40, seed=5, regime="strong")
    A = dense.dense_A(win["R_plus"], win["core_pos"], win["f"], win["sigma2"])
    beta = win["beta_core"]
    sign, logdet = np.linalg.slogdet(A)
    assert sign > 0
    ref = beta @ np.linalg.solve(A, beta) + logdet
    got = dense.dense_loss(win["R_plus"], win["core_pos"], beta, win["f"], win["sigma2"],
                           eig_threshold=ET)
    assert _rel(got, ref) < 1e-9


@pytest.mark.parametrize("spectrum", ["panel", "full"])
def test_P_A_Pt_is_C(spectrum):
    win = synthetic_window(spectrum, n_plus=240, n=80, seed=1, regime="strong")
    A = dense.dense_A(win["R_plus"], win["core_pos"], win["f"], win["sigma2"])
    C = dense.reduced_C(win["G"], win["f"], win["sigma2"])
    PAP = win["P"] @ A @ win["P"].T
    assert np.linalg.norm(PAP - C) / np.linalg.norm(C) < 1e-10


def test_window_loglik_is_the_gaussian_density_of_z():
    win = synthetic_window("full", n_plus=120, n=40, seed=0, regime="strong")
    C = dense.reduced_C(win["G"], win["f"], win["sigma2"])
    ref = scipy.stats.multivariate_normal(mean=np.zeros(win["k"]), cov=C).logpdf(win["z"])
    got = dense.window_loglik(win["G"], win["z"], win["f"], win["sigma2"])
    assert _rel(got, ref) < 1e-10


def test_loglik_differences_agree_between_conventions():
    """LL(F) - LL(F=0) is the same from the dense (A) and reduced (C) conventions."""
    win = synthetic_window("panel", n_plus=240, n=80, seed=0, regime="strong")
    args = (win["R_plus"], win["core_pos"], win["beta_core"])
    f0 = np.zeros_like(win["f"])
    d_dense = (dense.dense_loss(*args, win["f"], SIGMA2, eig_threshold=ET)
               - dense.dense_loss(*args, f0, SIGMA2, eig_threshold=ET))
    d_red = (dense.reduced_loss(win["G"], win["z"], win["f"], SIGMA2)
             - dense.reduced_loss(win["G"], win["z"], f0, SIGMA2))
    assert abs(d_dense - d_red) <= 1e-8 * abs(dense.reduced_loss(win["G"], win["z"], f0, SIGMA2))


# ----------------------------------------------------------------------------- gradient


def _richardson(fun, x, step):
    """Central difference of ``fun`` at ``x``, Richardson-extrapolated; ``(value, tolerance)``.

    ``D(h) = (fun(x + h) - fun(x - h)) / 2h = L1 + h^2 L3 / 6 + O(h^4)`` (``Lj`` the j-th
    derivative).  The h^2 term is not negligible against ``L1`` when ``L1`` is itself a
    cancellation: for sigma2 in a full-rank strong window,
    ``dL/dsigma2 = sum_i (1 - chi2_i) / (mu_i + sigma2)`` (``mu_i`` the eigenvalues of
    ``G^T F G``, ``chi2_i`` the squared whitened z) nearly cancels (``|g| sigma2 ~ 0.08``
    against k = 80 terms of size ~1), while ``L3 = sum_i (2 - 6 chi2_i) / (mu_i +
    sigma2)^3`` does not: at h = 1e-3 sigma2 the truncation is 6.1 against g = 33466, 18
    times the old fixed tolerance of 1e-5 |g|.  (The window's data depend on the sign
    convention of the platform's eigenvectors, through the simulated noise, so a fixed
    tolerance passes or fails by machine.)  ``E = (4 D(h/2) - D(h)) / 3`` removes the h^2
    term; what is left is O(h^4), about ``(h / x)^2 ~ 1e-6`` of the removed term (the
    nearest singularity of L is at least |x| away), so 1e-3 |D(h) - D(h/2)| bounds it with
    a wide margin.  Rounding: each difference quotient is off by ~100 eps |L| / step, E
    (with the half step) by ``(4 * 2 + 1) / 3 = 3`` times that.
    """
    eps = np.finfo(float).eps

    def central(h):
        return (fun(x + h) - fun(x - h)) / (2 * h)

    d1, d2 = central(step), central(step / 2)
    value = (4 * d2 - d1) / 3
    tol = 1e-3 * abs(d1 - d2) + 3 * 100 * eps * abs(fun(x)) / step
    return value, tol


@pytest.mark.parametrize("spectrum,regime", [("panel", "weak"), ("panel", "strong"), ("full", "strong")])
def test_closed_form_gradient_vs_finite_differences(spectrum, regime):
    """Richardson-extrapolated central differences in float64 (relative step 1e-3)
    against the closed form, with the error derived in :func:`_richardson`."""
    win = synthetic_window(spectrum, n_plus=240, n=80, seed=3, regime=regime)
    G, z, f, s2 = win["G"], win["z"], np.array(win["f"]), win["sigma2"]
    g, gs2 = dense.reduced_grad(G, z, f, s2)
    h = 1e-3
    for m in np.random.default_rng(0).choice(len(f), 6, replace=False):
        def along_m(v, m=m):
            fv = f.copy()
            fv[m] = v
            return dense.reduced_loss(G, z, fv, s2)

        fd, tol = _richardson(along_m, f[m], h * f[m])
        assert abs(fd - g[m]) <= tol, (m, fd, g[m], tol)
    fd, tol = _richardson(lambda v: dense.reduced_loss(G, z, f, v), s2, h * s2)
    assert abs(fd - gs2) <= tol, (fd, gs2, tol)
    # the tolerance is tight enough to see a gradient off by 1e-6 relative
    assert tol < 1e-6 * abs(gs2)


def test_gradient_is_the_same_in_the_dense_convention():
    """d/df of the dense formula (finite differences) equals the reduced closed form."""
    win = synthetic_window("panel", n_plus=120, n=40, seed=1, regime="strong")
    args = (win["R_plus"], win["core_pos"], win["beta_core"])
    f = np.array(win["f"])
    g, _ = dense.reduced_grad(win["G"], win["z"], f, SIGMA2)
    L0 = abs(dense.dense_loss(*args, f, SIGMA2, eig_threshold=ET))
    m = int(np.argmax(np.abs(g)))
    step = 1e-3 * f[m]
    fp, fm = f.copy(), f.copy()
    fp[m] += step
    fm[m] -= step
    fd = (dense.dense_loss(*args, fp, SIGMA2, eig_threshold=ET)
          - dense.dense_loss(*args, fm, SIGMA2, eig_threshold=ET)) / (2 * step)
    assert abs(fd - g[m]) <= 1e-5 * abs(g[m]) + 1e4 * np.finfo(float).eps * L0 / step


# ----------------------------------------------------------------------------- builders


def test_synthetic_ld_builders():
    R = ar1_ld(200, 0.9, seed=1)
    np.testing.assert_allclose(np.diag(R), 1.0)
    np.testing.assert_allclose(R, R.T)
    assert np.linalg.eigvalsh(R)[0] > 0  # full rank
    Rp = panel_ld(200, 50, seed=1)
    np.testing.assert_allclose(np.diag(Rp), 1.0)
    lam = np.linalg.eigvalsh(Rp)
    assert np.sum(lam > 1e-8 * lam[-1]) == 49  # rank people - 1
    rng = np.random.default_rng(0)
    core = np.arange(50, 150)
    beta = simulate_beta(Rp, core, np.full(200, 1e-5), SIGMA2, rng)
    assert factorise_window(Rp, core, beta, eig_threshold=1e-6)["beta_outside"] < 1e-10


# ----------------------------------------------------------------------------- defaults


def test_one_default_eig_threshold():
    """factorise_window, dense_loss and `varfx precompute-ld` share one default (issue 8:
    they were 1e-6 and 1e-3)."""
    import inspect

    from varfx.cli import precompute_ld
    from varfx.linalg.window import EIG_THRESHOLD

    assert inspect.signature(factorise_window).parameters["eig_threshold"].default == EIG_THRESHOLD
    opt = {p.name: p for p in precompute_ld.params}["eig_threshold"]
    assert opt.default == EIG_THRESHOLD
    # dense_loss counts k with the same default as factorise_window
    R = ar1_ld(90, 0.995, seed=2)  # a core block with eigenvalues on both sides of 1e-3
    core = np.arange(30, 60)
    lam = np.linalg.eigvalsh(R[np.ix_(core, core)])
    assert lam[0] < EIG_THRESHOLD * lam[-1] < lam[-2]
    beta = simulate_beta(R, core, np.full(90, 1e-5), SIGMA2, np.random.default_rng(0))
    assert factorise_window(R, core, beta)["k"] == int(np.sum(lam > EIG_THRESHOLD * lam[-1])) < len(core)
    f = np.full(90, 1e-5)
    got = dense.dense_loss(R, core, beta, f, SIGMA2)
    assert got == dense.dense_loss(R, core, beta, f, SIGMA2, eig_threshold=EIG_THRESHOLD)
    assert got != dense.dense_loss(R, core, beta, f, SIGMA2, eig_threshold=1e-12)
