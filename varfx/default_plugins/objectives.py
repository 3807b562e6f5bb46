"""Built-in objectives."""

from __future__ import annotations

import math

from varfx import hookimpl
from varfx.api import Objective, Option


class FullLikelihood(Objective):
    """The exact Gaussian marginal likelihood of the window's summary statistics.

    In the reduced form (DESIGN §1, docs/math.md) the window's ``z = P beta_hat`` is
    ``N(0, C)`` with ``C = sigma2 I + G^T F G``, and

        -log p(beta_hat) = 0.5 * (z^T C^-1 z + log|C| + log|Lambda| + k log 2 pi)

    (a density on the range of ``R_(i),(i)``).  The solver plugin computes the first
    two terms and their gradient.
    """

    name = "full"
    description = "exact marginal likelihood of the summary statistics, reduced k-space form"
    uses_solver = True

    def window_loss(self, window, f_plus, sigma2):
        if self.solver is None:
            from varfx.errors import UserError

            raise UserError("objective 'full' needs a solver (--solver)")
        core = self.solver.loss(window.G, window.z, f_plus, sigma2)
        return 0.5 * (core + window.logdet_lambda + window.k * math.log(2 * math.pi))


class LDScoreRegression(Objective):
    """LD score regression with a flexible prior (DeepWAS App. A.4).

    For each core variant ``m`` of the window,

        E[chi2_m] = N sum_{m' in (i)+} f_m' r2_mm' + sigma^2,    chi2_m = N beta_hat_m^2,

    fitted by weighted least squares, ``0.5 sum_m w_m (chi2_m - E[chi2_m])^2``, with the
    paper's (and ldsc's) weights ``w_m = 1/l_m * 1/(N h2 l_m / M + 1)^2``: ``1/l_m``
    down-weights variants whose chi2 are correlated with many others, and the second
    factor is the inverse variance of a scaled chi2(1) under a constant per-SNP
    variance ``h2/M``.  ``h2/M`` is the option ``h2_per_snp``; ``varfx fit`` sets it from
    its initial LD score regression when it is 0 (the default).  The weights are fixed
    (they do not depend on f), so the loss is an ordinary function of f and its
    gradient is exact.

    ``r2`` comes from the stored window factors, ``R_+,(i) = G diag(lambda) P``
    (eigen-directions dropped at precompute are left out), and is bias-corrected to
    ``r2 - (1 - r2)/(n_ref - 2)`` when R came from a panel of ``n_ref`` people, as in
    ldsc.  The diagonal (``r2 = 1``) is not corrected.
    """

    name = "ldsr"
    description = "LD score regression with a flexible prior (weighted least squares on chi2)"
    uses_solver = False
    options = {"h2_per_snp": Option(float, 0.0, "h2/M in the regression weights (0: set by fit)")}

    def setup(self, context):
        super().setup(context)
        if not self.config["h2_per_snp"] and context.n_train_variants:
            # the initial LD score regression's per-SNP h2 (floored: a null trait's
            # regression h2 of ~0 would give the weights no second factor at all)
            self.config["h2_per_snp"] = max(context.h2, 1e-3) / context.n_train_variants

    def r2(self, window):
        """(n, n+) squared correlations of the core variants with (i)+ (cached)."""
        cached = window.objective_cache.get("ldsr_r2")
        if cached is not None:
            return cached
        import torch

        # G = R_+,(i) D^1/2 V Lambda^-1/2 with D = diag(n_m / N), so row m of r2 is
        # (n_m / N) r2_m (exact for a full-rank block): N r2 f = n_m sum r2 f, the
        # expected chi2 of variant m.  d = n_m / N (1 where the store does not say).
        R = (window.G * window.eigvals_t(window.G)) @ window.P  # (n+, n)
        r2 = (R * R).T
        d = window.n_scale
        d = (torch.ones(window.n, dtype=r2.dtype, device=r2.device) if d is None
             else torch.as_tensor(d, dtype=r2.dtype, device=r2.device))
        n_ref = int(window.n_ref or 0)
        if n_ref > 2:  # d (r2 - (1 - r2) / (n_ref - 2)) on the scaled r2
            r2 = r2 - (d[:, None] - r2) / (n_ref - 2)
        r2[torch.arange(window.n), torch.as_tensor(window.core_pos)] = d
        window.objective_cache["ldsr_r2"] = r2
        return r2

    def expected_chi2(self, window, f_plus, sigma2):
        """``E[chi2]`` of the core variants: ``N (r2 f + sigma2)`` (``sigma2`` = sigma^2/N)."""
        return window.N * (self.r2(window) @ f_plus + sigma2)

    def window_loss(self, window, f_plus, sigma2):
        import torch

        N = window.N
        chi2 = N * window.beta ** 2
        pred = self.expected_chi2(window, f_plus, sigma2)
        ld = torch.as_tensor(window.ld_score, dtype=pred.dtype, device=pred.device).clamp_min(1.0)
        w = 1.0 / (ld * (N * self.config["h2_per_snp"] * ld + 1.0) ** 2)
        return 0.5 * (w * (chi2 - pred) ** 2).sum()


@hookimpl
def register_objectives(register):
    register(FullLikelihood)
    register(LDScoreRegression)
