"""The benchmark scripts keep running (their numbers live in docs/benchmarks.md)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_fit_benchmark_runs_and_counts_the_work():
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fit.py"), "--json", "--sizes", "90",
                        "--priors", "constant,transformer-default", "--transformer-cap", "8", "--repeats", "2",
                        "--throughput-variants", "8", "--throughput-repeats", "2"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    recs = {rec["prior"]: rec for rec in out if "task" not in rec}
    n_plus, k = 90, 30
    for rec in recs.values():
        assert rec["n_plus"] == n_plus and rec["k"] == k and rec["repeats"] == 2
        assert rec["step_s"] == rec["forward_s"] + rec["linalg_s"] + rec["backward_s"]
        # the Gram matrix (between a half and a whole GEMM), the Cholesky and the TRSM
        low, high = (n_plus * k * k + k ** 3 / 3 + n_plus * k * k) / 1e9, (4 * n_plus * k * k + k ** 3 / 3) / 1e9
        assert low <= rec["linalg_gflop"] <= high
    assert recs["constant"]["network_gflop"] == 0
    assert recs["transformer-default"]["extrapolated"] and recs["transformer-default"]["network_gflop"] > 0
    # the network's GFLOP/s beside a GEMM timed in the same run (the speed goal of issue 11)
    (tp,) = [rec for rec in out if rec.get("task") == "network-throughput"]
    assert tp["prior"] == "transformer-default" and tp["variants"] == 8 and len(tp["repeats"]) == 2
    # the host the share was measured on (it differs between hosts of one kind)
    assert set(tp["cpu"]) == {"model", "caches", "logical_cpus"} and tp["cpu"]["logical_cpus"] >= 1
    for rep in tp["repeats"]:
        assert rep["gemm_gflop_per_s"] > 0 and abs(rep["gflop_per_s"] - tp["network_gflop"] / rep["step_s"]) < 1e-9
    # the same network work per variant as the step record (90 variants, scaled from 8)
    assert abs(tp["network_gflop"] / recs["transformer-default"]["network_gflop"] - 8 / 90) < 1e-6


def test_nonlinear_shrinkage_candidate_estimates_the_true_variance_of_sample_eigenvectors():
    """benchmarks/_nls.py (an issue-12 candidate): Ledoit-Wolf's shrunk eigenvalue d_u
    estimates v_u' Sigma v_u, the true variance along the sample eigenvector, far better
    than the sample eigenvalue does, both with p < n and with p > n (a spiked spectrum)."""
    import numpy as np

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _nls import shrunk_eigenvalues

    rng = np.random.default_rng(0)
    for p, n in ((100, 200), (300, 200)):
        mu = np.concatenate([np.full(p // 10, 10.0), np.full(p - p // 10, 1.0)])
        x = rng.standard_normal((n, p)) * np.sqrt(mu)
        x -= x.mean(0)
        lam, v = np.linalg.eigh(x.T @ x / (n - 1))
        lam, v = lam[::-1], v[:, ::-1]
        d = shrunk_eigenvalues(lam, n)
        oracle = np.einsum("ji,j,ji->i", v, mu, v)
        ok = np.isfinite(d)
        assert ok.sum() == min(p, n - 1)
        err_d, err_lam = np.abs(d[ok] - oracle[ok]).mean(), np.abs(lam[ok] - oracle[ok]).mean()
        # measured 0.08 vs 0.65 (p < n) and 0.15 vs 1.21 (p > n)
        assert err_d < 0.3 * err_lam, (p, n, err_d, err_lam)


def _mosaic_case(rng):
    """Panel genotypes with LD (a latent factor per 3 neighbours), 2 chromosomes."""
    import numpy as np

    S, M = 40, 9
    latent = rng.standard_normal((S, 3)).repeat(3, axis=1)
    dos = (rng.random((S, M)) < 1 / (1 + np.exp(-1.5 * latent))).astype(float) + (rng.random((S, M)) < 0.4)
    chrom = np.array([1] * 6 + [2] * 3)
    bp = np.array([100, 180, 400, 450, 900, 2000, 50, 60, 300])
    return dos, chrom, bp


def _dense_population_ld(x, chrom, bp, L):
    import numpy as np

    K = np.exp(-np.abs(bp[:, None] - bp[None, :]) / L) * (chrom[:, None] == chrom[None, :])
    return (x @ x.T / x.shape[1]) * K


def _std(dos):
    x = (dos - dos.mean(0)) / dos.std(0)
    return x.T  # M x S


def test_population_ld_times_matches_the_dense_schur_product():
    """benchmarks/_population.py: the forward/backward recursion of the exponential kernel
    gives (R_panel o K) v exactly (against the dense M x M matrix)."""
    import numpy as np

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _population import population_ld_times

    rng = np.random.default_rng(1)
    dos, chrom, bp = _mosaic_case(rng)
    x = _std(dos)
    v = rng.standard_normal(len(bp))
    for L in (30.0, 500.0):
        dense = _dense_population_ld(x, chrom, bp, L) @ v
        assert np.allclose(population_ld_times(x, chrom, bp, L, v), dense, rtol=1e-12, atol=1e-12)


def test_population_noise_and_mosaic_people_have_the_population_ld():
    """The exact Gaussian draw e ~ N(0, R_panel o K) and the mosaic people both have the
    population's correlation R_panel o K (Monte Carlo: 20,000 draws; the SE of a sample
    correlation is at most 1/sqrt(n) = 0.007, tolerance 6 SE)."""
    import numpy as np

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _population import mosaic_dosages, population_noise

    rng = np.random.default_rng(2)
    dos, chrom, bp = _mosaic_case(rng)
    x = _std(dos)
    L, n = 300.0, 20_000
    truth = _dense_population_ld(x, chrom, bp, L)
    e = np.stack([population_noise(x, chrom, bp, L, rng) for _ in range(n)])
    assert np.abs(np.cov(e.T, bias=True) - truth).max() < 6 / np.sqrt(n)
    people = mosaic_dosages(dos, chrom, bp, n, L, rng)
    assert np.allclose(people.mean(0), dos.mean(0), atol=6 * dos.std(0).max() / np.sqrt(n))
    assert np.abs(np.corrcoef(people.T) - truth).max() < 6 / np.sqrt(n)
    # the long-range spurious LD of the panel is damped: far variants are nearly independent
    assert abs(truth[0, 5]) < 0.01


def _load_simulate_benchmark():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_simulate", ROOT / "benchmarks" / "simulate.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_simulate_benchmarks_ldsr_h2_is_the_ldsr_objectives_minimum(tmp_path):
    """benchmarks/simulate.py's LDSR h2 (the parabola through three values of the loss)
    equals the minimum of the LDSR objective's own summed window_loss over the prior's
    scale, found numerically, on real chr22 windows of a capped (small-panel) store."""
    import torch
    from scipy.optimize import minimize_scalar

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _data import precomputed_subset

    from varfx.plugins import lookup
    from varfx.store.windows import load_windows

    bench = _load_simulate_benchmark()
    ds, _ = precomputed_subset(tmp_path, 800, ["--window-kb", "300", "--flank-kb", "100"])
    windows, _ = load_windows(ds)
    shape = bench._shape(ds, 0.7)
    sigma2, h2_start = 1.1, 0.02
    got = bench.ldsr_h2(windows, shape, sigma2, h2_start)

    obj = lookup("objectives", "ldsr")()
    obj.config["h2_per_snp"] = h2_start / sum(w.n for w in windows)

    def loss(c):
        return sum(float(obj.window_loss(w, torch.as_tensor(c * shape[w.plus_idx]), sigma2 / w.N))
                   for w in windows if w.k)

    ref = minimize_scalar(loss, bounds=(0.0, 10.0), method="bounded", options={"xatol": 1e-10}).x
    assert got > 0 and abs(got - ref) < 1e-6 * max(ref, 1e-3), (got, ref)
