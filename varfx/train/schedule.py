"""The learning-rate schedule of the AdamW loop: linear warm-up, then cosine decay to 0."""

from __future__ import annotations

import math


def warmup_updates(warmup: float, total_updates: int) -> int:
    """``--warmup`` as a number of updates: a fraction of them when below 1, else a count."""
    return int(round(warmup * total_updates)) if warmup < 1 else int(warmup)


def lr_factor(update: int, total_updates: int, warmup: int) -> float:
    """Multiplier of the peak learning rate at optimiser update ``update`` (0-based).

    Linear warm-up ``(u + 1) / warmup`` over the first ``warmup`` updates (a fresh
    optimiser's moment estimates are poor, so the first steps are small), then a cosine
    from 1 down to 0 at ``total_updates`` (and 0 after it)."""
    if update < warmup:
        return (update + 1) / warmup
    span = max(1, total_updates - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(update - warmup, span) / span))


def make_scheduler(optimizer, total_updates: int, warmup: int):
    """A ``LambdaLR`` over ``optimizer`` following :func:`lr_factor` (its state is the
    update count, saved in checkpoints)."""
    import torch

    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda u: lr_factor(u, total_updates, warmup))
