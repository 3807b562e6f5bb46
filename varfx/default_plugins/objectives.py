"""Built-in objectives."""

from __future__ import annotations

import math

from varfx import hookimpl
from varfx.api import Objective


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


@hookimpl
def register_objectives(register):
    register(FullLikelihood)
