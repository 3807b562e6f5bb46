"""Built-in priors and objectives pass their conformance test cases."""

import numpy as np
import pytest
import torch

from varfx.testing.objectives import ObjectiveConformance, synthetic_window
from varfx.testing.priors import PriorConformance


class TestConstantPrior(PriorConformance):
    prior_name = "constant"


class TestConstantPriorNoFreq(PriorConformance):
    prior_name = "constant"
    prior_options = {"alpha": 0.0}


class TestConstantPriorLearntAlpha(PriorConformance):
    prior_name = "constant"
    prior_options = {"alpha": "learn"}


class TestGLMPrior(PriorConformance):
    prior_name = "glm"


class TestGLMPriorLearntAlpha(PriorConformance):
    prior_name = "glm"
    prior_options = {"alpha": "learn"}


class TestTransformerPrior(PriorConformance):
    prior_name = "transformer"
    prior_options = {"width": 16, "heads": 2, "chunk": 100, "dropout": 0.0}


class TestTransformerPriorLearntAlpha(PriorConformance):
    prior_name = "transformer"
    prior_options = {"width": 16, "heads": 2, "chunk": 100, "dropout": 0.0, "alpha": "learn"}


def test_transformer_paper_size_reachable():
    from varfx.default_plugins.priors import TransformerPrior

    m = TransformerPrior(width=1536, depth=2, tower=1).module(
        {"init_f": 1e-6, "n_features": 10, "n_tracks": 5, "window": 256})
    n = sum(p.numel() for p in m.parameters())
    assert 50e6 < n < 54e6  # the paper's ~52M


def test_transformer_chunks_do_not_change_the_output():
    from varfx.default_plugins.priors import TransformerPrior

    rng = np.random.default_rng(0)
    batch = {"freq": torch.tensor(rng.uniform(0.05, 0.5, 90)), "features": torch.tensor(rng.standard_normal((90, 4))),
             "window": torch.tensor(rng.standard_normal((90, 64, 2)), dtype=torch.float16)}
    ctx = {"init_f": 1e-5, "n_features": 4, "n_tracks": 2, "window": 64}
    torch.manual_seed(0)
    a = TransformerPrior(width=16, heads=2, chunk=1000).module(ctx).eval()
    torch.manual_seed(0)
    b = TransformerPrior(width=16, heads=2, chunk=7).module(ctx).eval()
    with torch.no_grad():
        assert torch.allclose(a(batch), b(batch), atol=1e-5)



def amp_case():
    """A small transformer with a trained-looking head (it starts at 0), its inputs, and
    the tolerance on log f under bfloat16 autocast (see the test below)."""
    from varfx.default_plugins.priors import TransformerPrior

    rng = np.random.default_rng(3)
    m = 200
    batch = {"freq": torch.tensor(rng.uniform(0.05, 0.5, m)), "features": torch.tensor(rng.standard_normal((m, 4))),
             "window": torch.tensor(rng.standard_normal((m, 64, 2)), dtype=torch.float16)}
    torch.manual_seed(0)
    module = TransformerPrior(width=16, heads=2, dropout=0.0).module(
        {"init_f": 1e-6, "n_features": 4, "n_tracks": 2, "window": 64}).eval()
    with torch.no_grad():
        module.head[-1].weight.normal_(0, 0.5)
        ref = module(batch)
    net = ref - module.log_scale.detach().double() - 0.7 * torch.log(batch["freq"] * (1 - batch["freq"]))
    assert float(net.std()) > 0.1  # the network's part varies
    return module, batch, ref, 0.1 * float(net.std()) + 1e-3


def test_transformer_under_bfloat16_autocast_keeps_log_f_precise():
    """Under --amp the network runs in bfloat16 but log f = network + log c is added in
    the frequencies' float64: bfloat16 would round log f ~ -14 to steps of 1/16 (6% in f).
    The tolerance: bfloat16 keeps 8 bits (relative 2^-8 = 0.004) per operation, and the
    rounding of the stem, tower, attention and head adds up to a few % of the network
    output's spread (4.6% here); 10% of it still fails the float64-free sum (0.045 of
    error against 0.033 allowed)."""
    module, batch, ref, tol = amp_case()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        amp = module(batch)
    assert amp.dtype == torch.float64
    assert float((amp - ref).abs().max()) < tol


class TestFullObjective(ObjectiveConformance):
    objective_name = "full"


def test_constant_prior_formula():
    from varfx.default_plugins.priors import ConstantPrior

    m = ConstantPrior(alpha=0.7).module({"init_f": 2e-6})
    p = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    expected = 2e-6 * (p * (1 - p)) ** 0.7
    assert torch.allclose(torch.exp(m({"freq": p, "index": torch.arange(3)})), expected, rtol=1e-12)


def test_full_objective_is_dense_gaussian_nll():
    """0.5 (beta^T A^+ beta + log|A|_+ + k log 2 pi): the negative log pseudo-density."""
    from varfx.default_plugins.objectives import FullLikelihood
    from varfx.default_plugins.solvers import CholeskySolver
    from varfx.linalg.dense import dense_loss

    win, R, core_pos, beta, f, s2 = synthetic_window(seed=7)
    obj = FullLikelihood(solver=CholeskySolver())
    got = float(obj.window_loss(win, torch.tensor(f), torch.tensor(s2, dtype=torch.float64)))
    want = 0.5 * (dense_loss(R, core_pos, beta, f, s2, 1e-6) + win.k * np.log(2 * np.pi))
    assert got == pytest.approx(want, rel=1e-9)


def test_full_objective_needs_solver():
    from varfx.default_plugins.objectives import FullLikelihood
    from varfx.errors import UserError

    win, *_, f, s2 = synthetic_window()
    with pytest.raises(UserError, match="needs a solver"):
        FullLikelihood(solver=None).window_loss(win, torch.tensor(f), torch.tensor(s2))
