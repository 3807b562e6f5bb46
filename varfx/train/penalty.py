"""A prior's log-density of its own parameters, added to the training loss (MAP fits).

A prior module may define ``penalty()``: a 0-d tensor, ``-log p(theta)`` of its
parameters in natural-log units (any constant that does not depend on theta may be
left out), or None when it has no such prior (e.g. the GLM with ``coef_sd=0``).  It may
also define ``penalty_config()``: a JSON-able dict of what that prior is (model.json
records it as ``prior_penalty``, and evaluate's jackknife refits check it).

The objective's loss is in its own units; :attr:`varfx.api.Objective.nll_scale` says
how many units of negative log-likelihood one unit of loss is (``full``: 1, its loss is
``-log p``; ``ldsr``: 1/2, a quasi-likelihood, docs/math.md; None: the loss is not a
likelihood sum and a parameter prior is not applied).  The term added to the loss over
all training units is ``penalty / nll_scale``: once per evaluation of the whole training
loss (L-BFGS), or its share ``batch / epoch`` per mini-batch (AdamW), so an epoch sums to
one penalty.  Evaluate's refits minimise the same sum on the data with a block left out.
"""

from __future__ import annotations

import math


def has_penalty(module) -> bool:
    """Whether the module declares a prior on its parameters (it may still be off)."""
    return callable(getattr(module, "penalty", None))


def loss_factor(objective) -> float | None:
    """Loss units per unit of ``-log p``: ``1 / nll_scale``; None when the objective's
    loss is not a log-likelihood sum (no parameter prior can be added to it)."""
    scale = getattr(objective, "nll_scale", 1.0)
    if scale is None:
        return None
    scale = float(scale)
    if not (math.isfinite(scale) and scale > 0):
        # a plugin's declaration, not user input
        raise ValueError(f"objective {getattr(objective, 'name', '?')!r}: nll_scale = {scale}, expected > 0")
    return 1.0 / scale


def penalty_term(module, objective):
    """``penalty / nll_scale`` (a 0-d tensor with a graph, in the objective's loss units
    summed over every training unit), or None when there is nothing to add."""
    if not has_penalty(module):
        return None
    factor = loss_factor(objective)
    if factor is None:
        return None
    value = module.penalty()
    if value is None:
        return None
    return value * factor


def penalty_record(module, objective) -> dict | None:
    """model.json's ``prior_penalty``: the module's ``penalty_config()`` with ``applied``
    (whether the loss included it), ``nll_scale`` (the objective's) and ``neg_log_prior``
    (``-log p(theta)`` at the current parameters, null when not applied); None for a
    module without a parameter prior."""
    if not has_penalty(module):
        return None
    import torch

    config = getattr(module, "penalty_config", None)
    rec = dict(config()) if callable(config) else {}
    factor = loss_factor(objective)
    with torch.no_grad():
        value = module.penalty()
    applied = value is not None and factor is not None
    rec.update(applied=applied, nll_scale=getattr(objective, "nll_scale", 1.0),
               neg_log_prior=float(value) if applied else None)
    if value is not None and factor is None:
        rec["why"] = (f"objective {getattr(objective, 'name', '?')!r} is not a log-likelihood sum "
                      "(nll_scale None): the prior on the parameters is not applied")
    return rec


def config_of(record: dict | None) -> dict:
    """The module's own part of a ``prior_penalty`` record (what ``penalty_config()``
    returned), to compare a rebuilt module with the fitted one."""
    return {k: v for k, v in (record or {}).items() if k not in ("applied", "nll_scale", "neg_log_prior", "why")}
