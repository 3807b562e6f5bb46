"""Torch modules for the built-in priors.  Each returns ``log f`` for a batch."""

from __future__ import annotations

import math

import torch


ALPHA_START = 0.7  # where a learnt alpha starts


def log_freq_factor(freq: torch.Tensor, alpha) -> torch.Tensor:
    """``alpha * log(p (1 - p))``; zero when alpha is 0 (frequencies may then be NaN)."""
    if not torch.is_tensor(alpha) and alpha == 0:
        return torch.zeros_like(freq)
    p = freq.clamp(1e-6, 1 - 1e-6)
    return alpha * torch.log(p * (1 - p))


class _FreqFactor(torch.nn.Module):
    """The ``(p (1 - p))^alpha`` factor, with alpha fixed or a learnt parameter."""

    def __init__(self, alpha):
        super().__init__()
        if alpha == "learn":
            self.alpha = torch.nn.Parameter(torch.tensor(ALPHA_START, dtype=torch.float64))
        else:
            self.alpha = float(alpha)

    def log_factor(self, freq):
        a = self.alpha.to(freq.dtype) if torch.is_tensor(self.alpha) else self.alpha
        return log_freq_factor(freq, a)


class ConstantModule(_FreqFactor):
    """``log f_m = log c + alpha log(p_m (1 - p_m))`` with one parameter ``log c``."""

    def __init__(self, init_f: float = 1e-6, alpha=0.7):
        super().__init__(alpha)
        self.log_c = torch.nn.Parameter(torch.tensor(math.log(init_f), dtype=torch.float64))

    def forward(self, batch: dict) -> torch.Tensor:
        freq = batch["freq"]
        return self.log_c.to(freq.dtype) + self.log_factor(freq)


class GLMModule(_FreqFactor):
    """``log f_m = b + w . x_m + alpha log(p_m (1 - p_m))``.

    With ``coef_sd = tau > 0`` each standardised coefficient ``w_j`` has the prior
    ``N(0, tau^2)`` (not ``b``, not alpha): :meth:`penalty` is its ``-log p(w)``, which the
    trainer adds to the objective, so the fit is the MAP estimate.  Under the LD
    correction's rank cap the likelihood hardly sees a depleted annotation and the
    maximum-likelihood ``w_j`` drifts towards minus infinity (docs/math.md, "A prior on
    the GLM's coefficients"); the prior bounds that drift.  ``coef_sd = 0`` is the
    maximum-likelihood fit (no penalty).
    """

    def __init__(self, n_features: int, init_f: float = 1e-6, alpha=0.7, coef_sd: float = 0.0):
        super().__init__(alpha)
        coef_sd = float(coef_sd)
        if not (math.isfinite(coef_sd) and coef_sd >= 0):
            raise ValueError(f"coef_sd={coef_sd}: expected a finite number >= 0")
        self.coef_sd = coef_sd
        self.linear = torch.nn.Linear(n_features, 1, dtype=torch.float64)
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.bias.fill_(math.log(init_f))

    def penalty(self):
        """``-log p(w) = |w|^2 / (2 tau^2)`` (natural log, up to the constant that does not
        depend on ``w``), or None for the maximum-likelihood fit."""
        if not self.coef_sd:
            return None
        w = self.linear.weight
        return 0.5 * (w * w).sum() / (self.coef_sd * self.coef_sd)

    def penalty_config(self) -> dict:
        """What model.json records of the prior on the parameters (``prior_penalty``)."""
        return {"kind": "gaussian-coefficients", "coef_sd": self.coef_sd}

    def forward(self, batch: dict) -> torch.Tensor:
        freq = batch["freq"]
        x = batch["features"].to(self.linear.weight.dtype)
        return self.linear(x).squeeze(-1).to(freq.dtype) + self.log_factor(freq)
