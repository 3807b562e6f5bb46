"""Issue 8, section 4: no subnormal numbers in the engine's hot paths.

Two defences, each tested here: the stored window factors have their negligible
entries flushed to exact zero at precompute (with a proven bound on the loss change),
and every CPU thread that runs torch kernels has flush-to-zero / denormals-are-zero set
(``varfx.linalg.ftz``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from varfx.linalg import dense
from varfx.linalg.window import FLUSH_RELATIVE, factorise_window, flush_loss_bound, flush_small
from varfx.testing.solvers import REGIMES, SIGMA2, SYNTHETIC_EIG_THRESHOLD as ET, ar1_ld, simulate_beta

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ar1_window(n_plus=1200, seed=0, regime="strong"):
    """The pathological AR(1) window of the benchmark, smaller: G spans ~1e-60 to 1."""
    R = ar1_ld(n_plus, 0.9, seed=seed)
    n = n_plus // 3
    core = np.arange((n_plus - n) // 2, (n_plus - n) // 2 + n)
    rng = np.random.default_rng(100 + seed)
    f = REGIMES[regime] * rng.lognormal(0.0, 1.0, n_plus)
    beta = simulate_beta(R, core, f, SIGMA2, rng)
    return R, core, beta, f * rng.lognormal(0.0, 0.5, n_plus)


def test_flush_small():
    X = np.array([[1.0, -1e-25, 3e-20], [-2.0, 1e-300, 0.0]])
    Y, removed = flush_small(X, 1e-20)
    np.testing.assert_array_equal(Y, [[1.0, 0.0, 3e-20], [-2.0, 0.0, 0.0]])
    assert removed == pytest.approx(np.hypot(1e-25, 1e-300), rel=1e-12)
    assert X[0, 1] == -1e-25  # the input is not modified
    Z, r0 = flush_small(X, 0.0)
    np.testing.assert_array_equal(Z, X)
    assert r0 == 0.0


def test_stored_factors_have_no_negligible_entries():
    R, core, beta, _ = _ar1_window()
    raw = factorise_window(R, core, beta, eig_threshold=ET, flush=0.0)
    G0 = raw["G"]
    tiny = np.abs(G0) < FLUSH_RELATIVE * np.abs(G0).max()
    # the case this defends against: many entries far below the largest (down to 1e-60
    # here, 1e-273 at n+ = 8000), whose products are subnormal
    assert tiny.mean() > 0.05 and np.abs(G0[G0 != 0]).min() < 1e-40
    win = factorise_window(R, core, beta, eig_threshold=ET)
    for key in ("G", "P"):
        A = win[key]
        nz = np.abs(A[A != 0])
        assert nz.min() >= FLUSH_RELATIVE * nz.max()
    np.testing.assert_array_equal(win["G"][~tiny], G0[~tiny])  # nothing else changes
    np.testing.assert_array_equal(win["z"], raw["z"])  # z from the unflushed P
    assert win["G_flushed_fro"] == pytest.approx(np.linalg.norm(G0[tiny]), rel=1e-12)


@pytest.mark.parametrize("regime", ["weak", "strong"])
def test_flushed_loss_equals_unflushed_dense_loss(regime):
    """The reduced loss on the flushed factors equals the dense formula on R itself
    (which never sees the flush) to the exact solver's tolerance, and the change from
    flushing is within the stated bound."""
    R, core, beta, f = _ar1_window(regime=regime)
    win = factorise_window(R, core, beta, eig_threshold=ET)
    raw = factorise_window(R, core, beta, eig_threshold=ET, flush=0.0)
    L = dense.reduced_loss(win["G"], win["z"], f, SIGMA2)
    L_raw = dense.reduced_loss(raw["G"], raw["z"], f, SIGMA2)
    L_dense = dense.dense_loss(R, core, beta, f, SIGMA2, eig_threshold=ET)
    assert abs(L + win["logdet_lambda"] - L_dense) <= 1e-8 * abs(L_dense)
    C = dense.reduced_C(raw["G"], f, SIGMA2)
    quad = float(raw["z"] @ np.linalg.solve(C, raw["z"]))
    bound = flush_loss_bound(win["G_flushed_fro"], win["k"], quad, f.max(), SIGMA2)
    assert bound < 1e-10 * abs(L)
    assert abs(L - L_raw) <= bound + 1e-12 * abs(L)  # + rounding of the two Choleskys


def test_flush_loss_bound_holds_for_a_coarse_flush():
    """The bound is a bound: with a flush coarse enough to move the loss well above
    rounding (1e-4 of the largest entry), the change is non-zero and below it."""
    R, core, beta, f = _ar1_window(n_plus=600, regime="strong")
    raw = factorise_window(R, core, beta, eig_threshold=ET, flush=0.0)
    coarse = factorise_window(R, core, beta, eig_threshold=ET, flush=1e-4)
    L_raw = dense.reduced_loss(raw["G"], raw["z"], f, SIGMA2)
    L = dense.reduced_loss(coarse["G"], coarse["z"], f, SIGMA2)
    C = dense.reduced_C(raw["G"], f, SIGMA2)
    quad = float(raw["z"] @ np.linalg.solve(C, raw["z"]))
    bound = flush_loss_bound(coarse["G_flushed_fro"], raw["k"], quad, f.max(), SIGMA2)
    assert np.isfinite(bound)
    assert 1e-9 * abs(L_raw) < abs(L - L_raw) <= bound


# ----------------------------------------------------------------------------- FTZ

_PROBE = textwrap.dedent("""
    import json, sys
    import torch
    torch.set_num_threads(2)  # a real worker thread, even on a 1-core machine

    def nonzero(dtype):
        # x * x and x @ x.T are subnormal in exact arithmetic (1e-320 / ~1e-38):
        # with FTZ every thread writes exact zeros
        x = torch.full((512, 512), 1e-160 if dtype == torch.float64 else 1e-20, dtype=dtype)
        return int(((x * x) != 0).sum()) + int(((x @ x.T) != 0).sum())

    torch.ones(600, 600) @ torch.ones(600, 600)  # the OpenMP pool exists from here on
    out = {"before": nonzero(torch.float64)}
    mode = sys.argv[1]
    if mode == "torch-only":
        torch.set_flush_denormal(True)
    elif mode == "varfx":
        from varfx.linalg.ftz import flush_denormals
        out["report"] = flush_denormals()
    elif mode == "solver":
        from varfx.linalg.solvers_impl import cholesky_loss
        G = torch.eye(3, dtype=torch.float64)
        cholesky_loss(G, torch.ones(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64), 1.0)
    out["float64"] = nonzero(torch.float64)
    out["float32"] = nonzero(torch.float32)
    print(json.dumps(out))
""")


def _probe(mode):
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("OMP_NUM_THREADS", None)
    r = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def _supported():
    import torch

    return torch.backends.cpu.get_cpu_capability() != "DEFAULT" and \
        __import__("platform").machine().lower() in ("x86_64", "amd64")


@pytest.mark.skipif(not _supported(), reason="flush-to-zero is an x86 SSE/AVX mode")
def test_torch_flag_alone_misses_existing_openmp_workers():
    """The control: torch.set_flush_denormal after the pool started leaves the worker
    threads producing subnormals (why varfx.linalg.ftz exists)."""
    out = _probe("torch-only")
    assert out["before"] > 0
    assert out["float64"] > 0 or out["float32"] > 0


@pytest.mark.skipif(not _supported(), reason="flush-to-zero is an x86 SSE/AVX mode")
@pytest.mark.parametrize("mode", ["varfx", "solver"])
def test_every_thread_flushes_subnormal_products(mode):
    out = _probe(mode)
    assert out["before"] > 0  # subnormals were produced before
    assert out["float64"] == 0 and out["float32"] == 0
    if mode == "varfx":
        assert out["report"]["supported"] and out["report"]["openmp"]
