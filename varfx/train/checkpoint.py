"""The trainer's side of checkpoints: the weights of the best epoch and the finiteness
of parameters after an update.  Reading, writing and validating ``checkpoint.pt`` is the
model directory's job (:mod:`varfx.store.model`); the names are re-exported here because
the loops call them through this module (tests interrupt a fit by patching
``save_checkpoint`` here)."""

from __future__ import annotations

from ..errors import UserError
from ..store.model import (CHECKPOINT, REQUIRED_KEYS, check_prior_state, read_checkpoint,  # noqa: F401
                           save_checkpoint)


def copy_state(module) -> dict:
    """A detached copy of the module's weights (the best epoch's, kept aside)."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def check_finite_parameters(module, where: str) -> None:
    """Stop with the parameter's name when an update made one non-finite."""
    import torch

    for name, p in module.named_parameters():
        if not bool(torch.isfinite(p.detach()).all()):
            raise UserError(f"parameter {name} became NaN or infinite {where}; try a smaller --lr "
                            "(or --optimizer lbfgs for a prior with few parameters)")
