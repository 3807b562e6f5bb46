"""A panel-noise term in the full likelihood (issue 12 candidate; benchmark only).

A kept eigen-component j of a panel's sample core block receives, through the panel's
sampling error (about 1/n_ref per correlation), a share of order ``1 / (n_ref
lambda_j)`` of every core variant's effect variance, which the reduced model attributes
to the variants loaded on that component.  This candidate treats it as noise:

    C = sigma_N^2 I_k + G^T F G + diag(kappa H_core / (n_ref lambda_j)),

``H_core`` the sum of the prior variances of the window's core variants.  It is added as
k pseudo-variants of variance ``H_core`` whose rows of ``G`` are
``diag(sqrt(kappa / (n_ref lambda_j)))``, so every solver takes it unchanged and the
gradient reaches f through ``H_core``.  Measured in docs/benchmarks.md ("GLM truth with
the external panel"): it sharpens the GLM's shape and lowers h2.
"""

from __future__ import annotations

import contextlib
import math


def augmented(window, f_plus, kappa: float):
    """``(G, f)`` with the k pseudo-variants appended (unchanged when the window has no
    panel size or no component)."""
    import torch

    n_ref = int(window.n_ref or 0)
    if kappa <= 0 or n_ref <= 0 or window.k == 0:
        return window.G, f_plus
    lam = window.eigvals_t(window.G)
    h_core = f_plus[torch.as_tensor(window.core_pos, device=f_plus.device)].sum()
    rows = torch.diag(torch.sqrt(kappa / (n_ref * lam)))
    return torch.cat([window.G, rows], 0), torch.cat([f_plus, h_core.expand(window.k)])


@contextlib.contextmanager
def installed(kappa: float):
    """Within the block, the ``full`` objective (fit's and evaluate's) has the term."""
    from varfx.default_plugins.objectives import FullLikelihood

    original = FullLikelihood.window_loss

    def window_loss(self, window, f_plus, sigma2):
        G, f = augmented(window, f_plus, kappa)
        if G is window.G:
            return original(self, window, f_plus, sigma2)
        core = self.solver.loss(G, window.z, f, sigma2)
        return 0.5 * (core + window.logdet_lambda + window.k * math.log(2 * math.pi))

    FullLikelihood.window_loss = window_loss
    try:
        yield
    finally:
        FullLikelihood.window_loss = original
