"""Conformance tests every objective plugin must pass.

Subclass with ``objective_name`` (and ``solver_name`` for objectives that use one).
The window is a small synthetic one with known dense LD, so the loss can be checked
for finiteness, gradient correctness (finite differences) and its response to signal.
"""

from __future__ import annotations

import numpy as np


def synthetic_window(n_plus=60, n_core=20, n_ref=40, seed=0, h2_per_snp=2e-4, N=5e4):
    """A window from a random low-rank genotype panel with simulated summary statistics.

    Returns (Window with float64 tensors, R_plus, core_pos, beta_core, f_true, sigma2).
    """
    import torch

    from varfx.api import Window
    from varfx.linalg.window import factorise_window

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_ref, n_plus)).cumsum(axis=1)  # correlated neighbours
    X = (X - X.mean(0)) / X.std(0)
    R = X.T @ X / n_ref
    start = (n_plus - n_core) // 2
    core_pos = np.arange(start, start + n_core)
    f_true = np.full(n_plus, h2_per_snp)
    beta = rng.standard_normal(n_plus) * np.sqrt(f_true)
    s2 = 1.0 / N
    Rc = R[core_pos]
    mean = Rc @ beta
    cov = s2 * R[np.ix_(core_pos, core_pos)]
    w, V = np.linalg.eigh(cov)
    beta_core = mean + V @ (np.sqrt(np.clip(w, 0, None)) * rng.standard_normal(n_core))
    fac = factorise_window(R, core_pos, beta_core, eig_threshold=1e-6)  # keeps its whole rank
    win = Window(index=0, chrom=1, start=0, end=1, G=torch.tensor(fac["G"]), z=torch.tensor(fac["z"]),
                 eigvals=fac["eigvals"], logdet_lambda=float(fac["logdet_lambda"]),
                 plus_idx=np.arange(n_plus), core_idx=core_pos, core_pos=core_pos,
                 ld_score=fac["ld_score"],
                 P=torch.tensor(fac["P"]), beta=torch.tensor(beta_core), N=N, n_ref=0)
    return win, R, core_pos, beta_core, f_true, s2


class ObjectiveConformance:
    objective_name: str = ""
    objective_options: dict = {}
    solver_name: str | None = "cholesky"

    def _objective(self):
        from varfx.plugins import lookup

        cls = lookup("objectives", self.objective_name)
        solver = lookup("solvers", self.solver_name)() if (cls.uses_solver and self.solver_name) else None
        return cls(solver=solver, **self.objective_options)

    def test_registered_with_metadata(self):
        from varfx.api import Objective
        from varfx.plugins import lookup

        cls = lookup("objectives", self.objective_name)
        assert issubclass(cls, Objective) and cls.name == self.objective_name and cls.description

    def test_loss_finite_scalar(self):
        import torch

        win, *_, f, s2 = synthetic_window()
        loss = self._objective().window_loss(win, torch.tensor(f), torch.tensor(s2, dtype=torch.float64))
        assert loss.dim() == 0 and bool(torch.isfinite(loss))

    def test_gradient_matches_finite_differences(self):
        import torch

        win, *_, f, s2 = synthetic_window(seed=3)
        obj = self._objective()
        s2t = torch.tensor(s2, dtype=torch.float64)
        # Perturb log f (what priors parametrise).
        log_f = torch.tensor(np.log(f) + np.random.default_rng(4).normal(0, 0.5, len(f)), requires_grad=True)
        obj.window_loss(win, torch.exp(log_f), s2t).backward()
        g = log_f.grad.numpy()
        rng = np.random.default_rng(5)
        for _ in range(3):
            d = rng.standard_normal(len(f))
            eps = 1e-4
            with torch.no_grad():
                lp = float(obj.window_loss(win, torch.exp(log_f + eps * torch.tensor(d)), s2t))
                lm = float(obj.window_loss(win, torch.exp(log_f - eps * torch.tensor(d)), s2t))
            fd = (lp - lm) / (2 * eps)
            assert abs(fd - g @ d) <= 1e-5 * max(1.0, abs(fd)), (fd, g @ d)

    def test_prefers_the_true_scale(self):
        # On a window simulated with per-SNP variance c, scaling f by 100x either way
        # must not beat the truth by a wide margin (a loss that ignores the data fails).
        import torch

        obj = self._objective()
        better = 0
        for seed in range(8):
            win, *_, f, s2 = synthetic_window(seed=10 + seed, h2_per_snp=5e-4)
            s2t = torch.tensor(s2, dtype=torch.float64)
            with torch.no_grad():
                l_true = float(obj.window_loss(win, torch.tensor(f), s2t))
                l_lo = float(obj.window_loss(win, torch.tensor(f / 100), s2t))
                l_hi = float(obj.window_loss(win, torch.tensor(f * 100), s2t))
            better += (l_true < l_hi) + (l_true < l_lo)
        assert better >= 12, better
