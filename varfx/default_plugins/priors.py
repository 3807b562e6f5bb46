"""Built-in priors.  Torch is imported only when a model is built."""

from __future__ import annotations

from varfx import hookimpl
from varfx.api import Option, Prior


class ConstantPrior(Prior):
    """One per-SNP variance for every variant, scaled by allele frequency.

    ``f_m = c * (p_m (1 - p_m))^alpha`` with a single learnt ``c`` (stored as
    ``log c``).  ``alpha = 0`` gives the same variance for every standardised variant
    (the infinitesimal model); ``alpha`` near 0.7 down-weights rare variants less than
    the standardised model would (the LDAK/"alpha model" convention).
    """

    name = "constant"
    description = "one learnt per-SNP variance c, f = c * (p(1-p))^alpha"
    options = {
        "alpha": Option(float, 0.7, "frequency exponent (0: same variance for every SNP)"),
        "init": Option(float, 0.0, "initial per-SNP variance c (0: from the data)"),
    }

    def module(self, context):
        from varfx.nn.priors import ConstantModule

        init = self.config["init"] or float(context.get("init_f", 1e-6))
        return ConstantModule(init_f=init, alpha=self.config["alpha"])


@hookimpl
def register_priors(register):
    register(ConstantPrior)
