"""Hook specifications: every hook hands the plugin a ``register`` callback.

A plugin module implements any of these with ``@varfx.hookimpl``::

    from varfx import hookimpl

    @hookimpl
    def register_solvers(register):
        register(MySolver)

Built-in plugins (``varfx.default_plugins``) use exactly the same hooks.
"""

import pluggy

hookspec = pluggy.HookspecMarker("varfx")
hookimpl = pluggy.HookimplMarker("varfx")


@hookspec
def register_priors(register):
    """Register prior classes (subclasses of :class:`varfx.api.Prior`)."""


@hookspec
def register_objectives(register):
    """Register objective classes (subclasses of :class:`varfx.api.Objective`)."""


@hookspec
def register_solvers(register):
    """Register solver classes (subclasses of :class:`varfx.api.Solver`)."""


@hookspec
def register_feature_sources(register):
    """Register feature-source classes (subclasses of :class:`varfx.api.FeatureSource`)."""


@hookspec
def register_commands(cli):
    """Add click commands to the ``varfx`` command group ``cli``."""


@hookspec
def register_sumstats_formats(register):
    """Register summary-statistics formats (:class:`varfx.api.SumstatsFormat` records)."""


@hookspec
def register_ld_formats(register):
    """Register LD reference formats (subclasses of :class:`varfx.api.LDFormat`)."""
