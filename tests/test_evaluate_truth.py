"""`varfx evaluate --truth`'s split of the RMSE of log f into a level and a shape error
(:func:`varfx.stages.evaluate.truth_errors`), against direct computations."""

import math

import numpy as np
import pytest

from varfx.stages.evaluate import TRUTH_KEYS, truth_errors


def test_split_matches_the_direct_formulae():
    rng = np.random.default_rng(0)
    t = rng.normal(-11.0, 1.3, 5000)
    fit = -10.6 + 0.7 * (t + 11.0) + rng.normal(0, 0.3, t.size)
    out = truth_errors(fit, t)
    assert set(out) == set(TRUTH_KEYS) - {"h2_true"}
    err = fit - t
    assert out["rmse_log_f"] == pytest.approx(math.sqrt(np.mean(err ** 2)), rel=1e-12)
    assert out["bias_log_f"] == pytest.approx(err.mean(), rel=1e-12)
    assert out["sd_log_f_error"] == pytest.approx(err.std(), rel=1e-12)
    assert out["rmse_log_f"] ** 2 == pytest.approx(out["bias_log_f"] ** 2 + out["sd_log_f_error"] ** 2, rel=1e-12)
    assert out["slope_log_f"] == pytest.approx(np.polyfit(t, fit, 1)[0], rel=1e-10)
    assert out["slope_log_f"] == pytest.approx(0.7, abs=4 * 0.3 / (1.3 * math.sqrt(t.size)))
    assert out["n_truth"] == t.size


def test_an_attenuated_shape_with_the_right_h2_reads_as_a_positive_bias():
    """log F ~ N(0, v) and log f = a + s log F with sum f = sum F (h2 exact): the level
    a is log E[e^t] - log E[e^(s t)] = v (1 - s^2) / 2, which is the mean error."""
    rng = np.random.default_rng(1)
    v, s = 1.0, 0.5
    t = rng.normal(0.0, math.sqrt(v), 400_000)
    a = math.log(np.exp(t).sum()) - math.log(np.exp(s * t).sum())
    out = truth_errors(a + s * t, t)
    # the sampling SD of log mean e^t is about sqrt((e^v - 1) / n) = 0.002
    assert out["bias_log_f"] == pytest.approx(v * (1 - s * s) / 2, abs=0.02)
    assert out["slope_log_f"] == pytest.approx(s, rel=1e-9)
    assert out["sd_log_f_error"] == pytest.approx((1 - s) * math.sqrt(v), rel=0.01)


def test_a_constant_truth_has_no_slope():
    t = np.full(100, -9.0)
    out = truth_errors(t + 0.25, t)
    assert out["slope_log_f"] is None
    assert out["bias_log_f"] == pytest.approx(0.25) and out["sd_log_f_error"] == pytest.approx(0.0, abs=1e-12)
    assert out["rmse_log_f"] == pytest.approx(0.25)
