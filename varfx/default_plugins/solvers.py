"""Built-in solver plugins: ``cholesky`` (exact), ``cg-slq`` and ``nystrom`` (iterative).

Each computes the reduced window loss ``L = z^T C^-1 z + log|C|``,
``C = sigma2 I_k + G^T diag(f) G``, with a closed-form backward (see
``varfx.linalg.solvers_impl`` and ``docs/math.md``).  This module must stay cheap to
import: torch and cola are imported inside the methods, so ``varfx --help`` and
``varfx plugins`` never load them.

Accuracy statements (``loss_tolerance``, ``grad_tolerance``, and ``tolerance`` = the
larger of the two) are relative errors of one call against the exact reduced form, as
measured on realistic windows (``docs/benchmarks.md``, ``tests/test_solvers.py``).  For
the probe-based solvers they are about two standard errors of an *unbiased* estimate:
averaging calls with fresh probes (as SGD does across steps) shrinks the error like
1/sqrt(calls).
"""

from __future__ import annotations

from varfx import hookimpl
from varfx.api import Option, ProbeSolver, Solver


class CholeskySolver(Solver):
    """Exact: Cholesky of the k x k matrix C, closed-form gradient."""

    name = "cholesky"
    description = "Exact reduced-form loss: Cholesky of the k x k matrix C, closed-form gradient"
    exact = True
    options = {}

    loss_tolerance = 0.0
    grad_tolerance = 0.0

    def loss(self, G, z, f, sigma2):
        from varfx.linalg.solvers_impl import cholesky_loss

        value, info = cholesky_loss(G, z, f, sigma2)
        self.last_info = info
        return value


class CGSLQSolver(ProbeSolver):
    """Conjugate gradients + stochastic Lanczos quadrature + Hutchinson gradient probes.

    Matrix-free (only products with G), so memory is O(n+ k) and the cost per iteration
    is ``4 n+ k (probes + 1)``; the log-determinant and the gradient are unbiased
    stochastic estimates whose noise falls like ``1/sqrt(probes)``.
    """

    name = "cg-slq"
    description = ("Iterative: CG (cola-ml) for C^-1 z, stochastic Lanczos quadrature for "
                   "log|C|, Hutchinson probes for the gradient")
    exact = False
    options = {
        "tol": Option(float, 1e-5, "CG relative residual tolerance (cola stops at 2*tol)"),
        "max_iters": Option(int, 1000, "maximum CG iterations"),
        "probes": Option(int, 30, "Rademacher probes for log|C| and diag(G C^-1 G^T)"),
        "lanczos_iters": Option(int, 40, "Lanczos steps per probe for the quadrature"),
        "seed": Option(int, 0, "seed of the probes (fresh probes every call)"),
    }

    # Measured (docs/benchmarks.md, "Accuracy of the iterative solvers"): worst
    # single-call relative errors over the test and benchmark windows (n+ 450-8000,
    # weak and strong signal) were 2.5e-3 (loss) and 0.40 (dL/df) at 30 probes, i.e.
    # 0.014 / sqrt(probes) and 2.2 / sqrt(probes); the constants add a margin.  The
    # noise is unbiased and falls like 1/sqrt(probes) (and 1/sqrt(calls) on average).
    _LOSS_C = 0.025  # loss error <~ _LOSS_C / sqrt(probes)
    _GRAD_C = 3.0  # gradient error <~ _GRAD_C / sqrt(probes)

    def loss(self, G, z, f, sigma2):
        from varfx.linalg.solvers_impl import cg_slq_loss

        c = self.config
        value, info = cg_slq_loss(G, z, f, sigma2, tol=c["tol"], max_iters=c["max_iters"],
                                  probes=c["probes"], lanczos_iters=c["lanczos_iters"],
                                  seed=c["seed"], call=self._next_call())
        self.last_info = info
        return value


class NystromSolver(ProbeSolver):
    """Nystrom-preconditioned CG, preconditioned SLQ and a Nystrom control variate.

    The rank-r Nystrom approximation of ``G^T F G`` captures the large eigenvalues that
    make plain CG slow and plain Hutchinson noisy; only the remainder is estimated with
    probes.  With ``rank >= k`` it is exact.
    """

    name = "nystrom"
    description = ("Iterative: CG with a randomized Nystrom preconditioner (Frangella et al. "
                   "2023), preconditioned SLQ, Nystrom control variate for the gradient")
    exact = False
    options = {
        "rank": Option(int, 100, "rank of the randomized Nystrom approximation"),
        "tol": Option(float, 1e-5, "CG relative residual tolerance (cola stops at 2*tol)"),
        "max_iters": Option(int, 1000, "maximum CG iterations"),
        "probes": Option(int, 20, "Rademacher probes for the remainders"),
        "lanczos_iters": Option(int, 30, "Lanczos steps per probe for the quadrature"),
        "seed": Option(int, 0, "seed of the sketch and probes (fresh every call)"),
    }

    # Measured as for cg-slq: worst single-call errors 4.2e-3 (loss) and 0.46 (dL/df)
    # at 20 probes, i.e. 0.019 / sqrt(probes) and 2.1 / sqrt(probes), in the
    # strong-signal windows where rank 100 misses much of the spectrum (0.70 at 10
    # probes with rank 20); in typical windows the errors are 1-10x smaller, and the
    # solver is exact when rank >= k.
    _LOSS_C = 0.025
    _GRAD_C = 3.0

    def loss(self, G, z, f, sigma2):
        from varfx.linalg.solvers_impl import nystrom_loss

        c = self.config
        value, info = nystrom_loss(G, z, f, sigma2, rank=c["rank"], tol=c["tol"],
                                   max_iters=c["max_iters"], probes=c["probes"],
                                   lanczos_iters=c["lanczos_iters"], seed=c["seed"],
                                   call=self._next_call())
        self.last_info = info
        return value


@hookimpl
def register_solvers(register):
    register(CholeskySolver)
    register(CGSLQSolver)
    register(NystromSolver)
