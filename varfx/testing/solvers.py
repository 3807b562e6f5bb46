"""Conformance tests every solver plugin must pass, and the synthetic LD windows they use.

Subclass in a test module (the class name must start with ``Test`` there)::

    from varfx.testing.solvers import SolverConformance

    class TestMySolver(SolverConformance):
        solver_name = "my-solver"
        solver_options = {}

The solver is looked up through the plugin manager, so a third-party solver is tested
exactly as varfx will load it.  Reference values come from ``varfx.linalg.dense``
(numpy float64, independent of any solver).  Exact solvers (``exact = True``) must
match to 1e-8 relative in float64 and pass central finite differences; inexact ones
must match within their stated ``loss_tolerance`` / ``grad_tolerance`` (or
``tolerance``) times :attr:`SolverConformance.safety`.

Windows (all with fixed seeds, small enough for a laptop):

- ``panel``: LD from a simulated reference panel of 100 people (haplotype mosaics of
  a few founders), so ``R`` has rank < n and ``R_(i),(i)`` is singular;
  ``beta_core`` simulated from the model, hence in the range of ``R_(i),(i)``;
- ``full``: a full-rank AR(1)-type correlation (per-step correlation around 0.9);

each in two regimes of prior variance against ``sigma2 = 1/N`` (N = 400,000):
``weak`` (``f ~ h2/M = 5e-7``, most windows) and ``strong`` (``f ~ 2e-5``, a window with
large effects; C is ill-conditioned, iterative solvers work hardest).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from varfx.linalg import dense
from varfx.linalg.window import factorise_window

SIGMA2 = 1.0 / 400_000
#: eigenvalue threshold of the synthetic windows: lower than the CLI's default
#: (``varfx.linalg.window.EIG_THRESHOLD``) so that the full-rank windows keep k = n and
#: the panel windows their whole rank, the hardest case for the solvers
SYNTHETIC_EIG_THRESHOLD = 1e-6
REGIMES = {"weak": 5e-7, "strong": 2e-5}


# ----------------------------------------------------------------------------- LD builders


def panel_genotypes(n_people: int, n_snps: int, seed: int, n_founders: int = 12,
                    switch: float = 0.03) -> np.ndarray:
    """Genotype dosages (people x SNPs) with realistic LD from a haplotype mosaic.

    Each haplotype copies one of ``n_founders`` founder haplotypes and switches founder
    with probability ``switch`` per SNP (a crude Li-Stephens model), plus 1% mutation
    noise; every SNP is made polymorphic.  Pairs of haplotypes make genotypes.
    """
    rng = np.random.default_rng(seed)
    freq = rng.uniform(0.05, 0.5, n_snps)
    founders = (rng.random((n_founders, n_snps)) < freq).astype(np.int8)
    H = 2 * n_people
    sw = rng.random((H, n_snps)) < switch
    sw[:, 0] = True
    src = rng.integers(n_founders, size=(H, n_snps))
    pos = np.where(sw, np.arange(n_snps)[None, :], 0)
    last = np.maximum.accumulate(pos, axis=1)
    row_src = np.take_along_axis(src, last, axis=1)
    haps = founders[row_src, np.arange(n_snps)[None, :]]
    haps ^= (rng.random(haps.shape) < 0.01).astype(np.int8)
    g = (haps[0::2] + haps[1::2]).astype(np.float64)
    mono = g.std(0) == 0
    g[0, mono] = np.where(g[0, mono] > 0, g[0, mono] - 1, 1)
    return g


def panel_ld(n_plus: int, n_people: int, seed: int) -> np.ndarray:
    """``R = X^T X / n_people`` from standardised :func:`panel_genotypes`: rank < n_people."""
    g = panel_genotypes(n_people, n_plus, seed)
    X = (g - g.mean(0)) / g.std(0)
    return X.T @ X / n_people


def ar1_ld(n_plus: int, rho: float = 0.9, seed: int = 0) -> np.ndarray:
    """A full-rank LD-like correlation: a non-stationary AR(1) with random allele flips.

    ``x_j = rho_j x_{j-1} + sqrt(1 - rho_j^2) e_j`` with per-step correlations ``rho_j``
    spread around ``rho`` has ``corr(x_i, x_j) = prod_{i<l<=j} rho_l = exp(-|c_i - c_j|)``
    with ``c = cumsum(-log rho)``: an exponential kernel on a warped line, hence exactly
    PSD and full rank (every step adds fresh variance), with LD blocks where the
    ``rho_j`` are high.  Random signs mimic arbitrary allele coding.
    """
    rng = np.random.default_rng(seed)
    r = 1.0 - (1.0 - rho) * np.exp(rng.normal(0.0, 0.75, n_plus))
    r = np.clip(r, 0.3, 0.995)
    c = np.cumsum(-np.log(r))
    R = np.exp(-np.abs(c[:, None] - c[None, :]))
    s = rng.choice([-1.0, 1.0], n_plus)
    return R * s[:, None] * s[None, :]


def simulate_beta(R_plus, core_pos, f_true, sigma2, rng) -> np.ndarray:
    """``beta_hat = R_(i),+ beta + e``, ``beta ~ N(0, F)``, ``e ~ N(0, sigma2 R_(i),(i))``.

    The noise is drawn on the eigenvectors of ``R_(i),(i)`` with positive eigenvalues,
    so ``beta_hat`` lies in its range (as real summary statistics computed on the same
    panel would).
    """
    b = rng.normal(size=R_plus.shape[0]) * np.sqrt(f_true)
    R_core = R_plus[np.ix_(core_pos, core_pos)]
    lam, V = np.linalg.eigh(R_core)
    keep = lam > 1e-10 * max(lam[-1], 1e-300)
    noise = V[:, keep] @ (np.sqrt(lam[keep] * sigma2) * rng.normal(size=int(keep.sum())))
    return R_plus[core_pos] @ b + noise


@functools.lru_cache(maxsize=64)
def synthetic_window(spectrum: str = "full", n_plus: int = 450, n: int = 150, seed: int = 0,
                     regime: str = "weak", n_people: int = 100) -> dict:
    """A window with its factors, f and sigma2 (cached; treat as read-only).

    ``f`` is the evaluation point: the simulation truth times LogNormal(0, 0.5), so the
    gradient is not ~0 as it would be at the truth.
    """
    rng = np.random.default_rng(10_000 + seed)
    if spectrum == "panel":
        R = panel_ld(n_plus, n_people, seed)
    elif spectrum == "full":
        R = ar1_ld(n_plus, 0.9, seed)
    else:
        raise ValueError(spectrum)
    start = (n_plus - n) // 2
    core = np.arange(start, start + n)
    scale = REGIMES[regime]
    f_true = scale * rng.lognormal(0.0, 1.0, n_plus) / math.exp(0.5)
    beta = simulate_beta(R, core, f_true, SIGMA2, rng)
    f = f_true * rng.lognormal(0.0, 0.5, n_plus)
    win = factorise_window(R, core, beta, eig_threshold=SYNTHETIC_EIG_THRESHOLD)
    out = dict(win)
    out.update({"R_plus": R, "core_pos": core, "beta_core": beta, "f": f, "sigma2": SIGMA2,
                "spectrum": spectrum, "regime": regime})
    for v in out.values():
        if isinstance(v, np.ndarray):
            v.setflags(write=False)
    return out


def _rel(a, b):
    return abs(a - b) / max(abs(b), 1e-300)


def _relvec(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


WINDOWS = [("panel", "weak"), ("panel", "strong"), ("full", "weak"), ("full", "strong")]


# ----------------------------------------------------------------------------- conformance


class SolverConformance:
    """Subclass with ``solver_name`` (and optionally ``solver_options``)."""

    solver_name: str = ""
    solver_options: dict = {}
    #: multiple of the solver's stated tolerance accepted for inexact solvers (the stated
    #: tolerances are already ~2 standard errors; 2x more keeps fixed-seed tests robust
    #: to unlucky probes without hiding a bias, which test_unbiased checks separately)
    safety: float = 2.0
    #: float32 vs float64: rounding of G (eps 6e-8) amplified by cond(C) (<= ~1e3 in
    #: these windows) and by the cancellation in -(G C^-1 z)^2 + diag(G C^-1 G^T)
    float32_loss_rtol: float = 1e-5
    float32_grad_rtol: float = 1e-3
    #: where the tensors live: a subclass with "cuda" runs the suite on the GPU
    device: str = "cpu"

    # ---- helpers
    def solver_class(self):
        from varfx.plugins import lookup

        return lookup("solvers", self.solver_name)

    def make_solver(self, **extra):
        return self.solver_class()(**{**self.solver_options, **extra})

    def loss_tol(self, solver) -> float:
        if solver.exact:
            return 1e-8
        return self.safety * float(getattr(solver, "loss_tolerance", solver.tolerance))

    def grad_tol(self, solver) -> float:
        if solver.exact:
            return 1e-8
        return self.safety * float(getattr(solver, "grad_tolerance", solver.tolerance))

    def tensors(self, win, dtype="float64", grad_sigma2=False):
        import torch

        dt = getattr(torch, dtype)
        dev = self.device
        G = torch.tensor(np.array(win["G"]), dtype=dt, device=dev)
        z = torch.tensor(np.array(win["z"]), dtype=dt, device=dev)
        f = torch.tensor(np.array(win["f"]), dtype=dt, device=dev, requires_grad=True)
        s2 = torch.tensor(win["sigma2"], dtype=dt, device=dev, requires_grad=grad_sigma2)
        return G, z, f, s2

    def evaluate(self, solver, win, dtype="float64", grad_sigma2=False):
        G, z, f, s2 = self.tensors(win, dtype, grad_sigma2)
        loss = solver.loss(G, z, f, s2)
        loss.backward()
        gs2 = float(s2.grad) if grad_sigma2 else None
        return float(loss.detach()), f.grad.detach().double().cpu().numpy(), gs2

    # ---- registration
    def test_registered(self):
        from varfx.api import Solver

        cls = self.solver_class()
        assert issubclass(cls, Solver)
        assert cls.name == self.solver_name
        assert cls.description
        solver = self.make_solver()
        assert solver.tolerance >= 0.0
        if solver.exact:
            assert solver.tolerance == 0.0
        else:
            assert 0.0 < solver.tolerance < 1.0
        cls.describe()

    # ---- values
    @pytest.mark.parametrize("spectrum,regime", WINDOWS)
    def test_loss_matches_reduced_form(self, spectrum, regime):
        win = synthetic_window(spectrum, regime=regime)
        solver = self.make_solver()
        L, _, _ = self.evaluate(solver, win)
        ref = dense.reduced_loss(win["G"], win["z"], win["f"], win["sigma2"])
        assert _rel(L, ref) <= self.loss_tol(solver), (L, ref)

    @pytest.mark.parametrize("spectrum,regime", WINDOWS)
    def test_loss_matches_dense_formula(self, spectrum, regime):
        win = synthetic_window(spectrum, regime=regime)
        solver = self.make_solver()
        L, _, _ = self.evaluate(solver, win)
        ref = dense.dense_loss(win["R_plus"], win["core_pos"], win["beta_core"], win["f"], win["sigma2"],
                               SYNTHETIC_EIG_THRESHOLD)
        assert _rel(L + win["logdet_lambda"], ref) <= self.loss_tol(solver), (L, ref)

    @pytest.mark.parametrize("spectrum,regime", WINDOWS)
    def test_gradient_matches_closed_form(self, spectrum, regime):
        win = synthetic_window(spectrum, regime=regime)
        solver = self.make_solver()
        _, g, _ = self.evaluate(solver, win)
        ref, _ = dense.reduced_grad(win["G"], win["z"], win["f"], win["sigma2"])
        assert _relvec(g, ref) <= self.grad_tol(solver)

    @pytest.mark.parametrize("spectrum,regime", [("panel", "weak"), ("full", "strong")])
    def test_sigma2_gradient(self, spectrum, regime):
        win = synthetic_window(spectrum, regime=regime)
        solver = self.make_solver()
        _, _, gs2 = self.evaluate(solver, win, grad_sigma2=True)
        _, ref = dense.reduced_grad(win["G"], win["z"], win["f"], win["sigma2"])
        assert _rel(gs2, ref) <= self.grad_tol(solver), (gs2, ref)

    @pytest.mark.parametrize("spectrum,regime", [("panel", "strong"), ("full", "weak")])
    def test_gradient_finite_differences(self, spectrum, regime):
        """Exact solvers: central differences of the solver's own loss.

        Relative step h = 1e-3 on f_m.  Error of the central difference: truncation
        ~ (h f_m)^2 |d^3L/df^3| / 6, below 1e-5 |g_m| here (f_m (G C^-1 G^T)_mm <~ 1), plus
        rounding ~ eps |L| / step (|L| ~ 1e3 while the step is ~1e-9: the dominant term,
        up to ~1e-4 absolute), bounded by 100 eps |L| / step.
        """
        import torch

        solver = self.make_solver()
        if not solver.exact:
            pytest.skip("finite differences need a deterministic, exact loss")
        win = synthetic_window(spectrum, regime=regime)
        G, z, f, s2 = self.tensors(win, grad_sigma2=True)
        loss = solver.loss(G, z, f, s2)
        loss.backward()
        h = 1e-3
        eps = np.finfo(np.float64).eps
        rng = np.random.default_rng(0)
        for m in rng.choice(G.shape[0], 5, replace=False):
            fp = f.detach().clone()
            fm = f.detach().clone()
            step = h * float(f[m].detach())
            fp[m] += step
            fm[m] -= step
            with torch.no_grad():
                fd = (float(solver.loss(G, z, fp, s2)) - float(solver.loss(G, z, fm, s2))) / (2 * step)
            bound = 1e-5 * abs(float(f.grad[m])) + 100 * eps * abs(float(loss.detach())) / step
            assert abs(fd - float(f.grad[m])) <= bound, (m, fd, float(f.grad[m]))
        step = h * float(s2.detach())
        with torch.no_grad():
            fd = (float(solver.loss(G, z, f, s2 + step)) - float(solver.loss(G, z, f, s2 - step))) / (2 * step)
        bound = 1e-5 * abs(float(s2.grad)) + 100 * eps * abs(float(loss.detach())) / step
        assert abs(fd - float(s2.grad)) <= bound

    def test_gradient_wrt_z(self):
        """dL/dz = 2 C^-1 z (for every solver)."""
        win = synthetic_window("full", regime="weak")
        solver = self.make_solver()
        G, z, f, s2 = self.tensors(win)
        z.requires_grad_(True)
        solver.loss(G, z, f, s2).backward()
        C = dense.reduced_C(win["G"], win["f"], win["sigma2"])
        ref = 2 * np.linalg.solve(C, win["z"])
        tol = 1e-8 if solver.exact else self.safety * max(1e-4, 10 * solver.config.get("tol", 1e-5))
        assert _relvec(z.grad.cpu().numpy(), ref) <= tol

    # ---- precision, edge cases, bookkeeping
    @pytest.mark.parametrize("spectrum", ["panel", "full"])
    def test_float32(self, spectrum):
        win = synthetic_window(spectrum, regime="weak")
        solver = self.make_solver()
        L32, g32, _ = self.evaluate(solver, win, dtype="float32")
        ref = dense.reduced_loss(win["G"], win["z"], win["f"], win["sigma2"])
        gref, _ = dense.reduced_grad(win["G"], win["z"], win["f"], win["sigma2"])
        assert np.isfinite(L32) and np.all(np.isfinite(g32))
        assert _rel(L32, ref) <= max(self.float32_loss_rtol, self.loss_tol(solver))
        assert _relvec(g32, gref) <= max(self.float32_grad_rtol, self.grad_tol(solver))

    def test_last_info(self):
        win = synthetic_window("panel", regime="weak")
        solver = self.make_solver()
        self.evaluate(solver, win)
        info = solver.last_info
        assert isinstance(info, dict) and info
        assert info.get("k") == win["k"]
        assert "method" in info

    def test_k1_window(self):
        """A single core variant: k = 1, C is a scalar."""
        win = synthetic_window("full", n_plus=31, n=1, regime="strong")
        assert win["k"] == 1
        solver = self.make_solver()
        L, g, _ = self.evaluate(solver, win)
        ref = dense.reduced_loss(win["G"], win["z"], win["f"], win["sigma2"])
        gref, _ = dense.reduced_grad(win["G"], win["z"], win["f"], win["sigma2"])
        assert _rel(L, ref) <= self.loss_tol(solver)
        assert _relvec(g, gref) <= self.grad_tol(solver)

    def test_k0_window(self):
        """No informative direction: loss 0, zero gradient, no error."""
        import torch

        solver = self.make_solver()
        G = torch.zeros(7, 0, dtype=torch.float64, device=self.device)
        z = torch.zeros(0, dtype=torch.float64, device=self.device)
        f = torch.full((7,), 1e-6, dtype=torch.float64, device=self.device, requires_grad=True)
        loss = solver.loss(G, z, f, SIGMA2)
        loss.backward()
        assert float(loss.detach()) == 0.0
        assert torch.all(f.grad == 0)

    def test_deterministic(self):
        """Same options (and seed) -> identical results, call for call."""
        win = synthetic_window("full", regime="strong")
        a, b = self.make_solver(), self.make_solver()
        for _ in range(2):
            La, ga, _ = self.evaluate(a, win)
            Lb, gb, _ = self.evaluate(b, win)
            assert La == Lb
            np.testing.assert_array_equal(ga, gb)

    def test_no_grad_evaluation(self):
        """Under torch.no_grad the value is the same estimate of the loss."""
        import torch

        win = synthetic_window("panel", regime="strong")
        solver = self.make_solver()
        G, z, f, s2 = self.tensors(win)
        with torch.no_grad():
            L = float(solver.loss(G, z, f.detach(), s2))
        ref = dense.reduced_loss(win["G"], win["z"], win["f"], win["sigma2"])
        assert _rel(L, ref) <= self.loss_tol(solver)

    def test_unbiased(self):
        """Inexact solvers: fresh probes each call and an unbiased gradient, so the mean
        of 16 calls is ~4x closer to the exact gradient than one call may be."""
        solver = self.make_solver()
        if solver.exact:
            pytest.skip("exact solver")
        win = synthetic_window("full", regime="strong")
        ref, _ = dense.reduced_grad(win["G"], win["z"], win["f"], win["sigma2"])
        grads = [self.evaluate(solver, win)[1] for _ in range(16)]
        assert not np.array_equal(grads[0], grads[1]), "probes must change between calls"
        assert _relvec(np.mean(grads, axis=0), ref) <= self.grad_tol(solver) / 4 * 1.5
