"""Built-in input formats: summary statistics (``gwas-vcf``, ``ldsc``, ``ukb``, ``fastGWA``,
``bolt``, ``gwas-ssf``, ``custom``) and LD references (``vcf``, ``ukbb``, ``plink``).

Registered through the same hooks as a third-party plugin's; the registration order is
the detection order (see :class:`varfx.api.SumstatsFormat` and
:class:`varfx.api.LDFormat`).
"""

from varfx import hookimpl


@hookimpl
def register_sumstats_formats(register):
    from varfx.io.sumstats import BUILTIN_FORMATS

    for fmt in BUILTIN_FORMATS:
        register(fmt)


@hookimpl
def register_ld_formats(register):
    from varfx.io.ld_formats import BUILTIN_LD_FORMATS

    for fmt in BUILTIN_LD_FORMATS:
        register(fmt)
