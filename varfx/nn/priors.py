"""Torch modules for the built-in priors.  Each returns ``log f`` for a batch."""

from __future__ import annotations

import math

import torch


def log_freq_factor(freq: torch.Tensor, alpha: float) -> torch.Tensor:
    """``alpha * log(p (1 - p))``; zero when alpha is 0 (frequencies may then be NaN)."""
    if alpha == 0:
        return torch.zeros_like(freq)
    p = freq.clamp(1e-6, 1 - 1e-6)
    return alpha * torch.log(p * (1 - p))


class ConstantModule(torch.nn.Module):
    """``log f_m = log c + alpha log(p_m (1 - p_m))`` with one parameter ``log c``."""

    def __init__(self, init_f: float = 1e-6, alpha: float = 0.7):
        super().__init__()
        self.alpha = float(alpha)
        self.log_c = torch.nn.Parameter(torch.tensor(math.log(init_f), dtype=torch.float64))

    def forward(self, batch: dict) -> torch.Tensor:
        freq = batch["freq"]
        return self.log_c.to(freq.dtype) + log_freq_factor(freq, self.alpha)
