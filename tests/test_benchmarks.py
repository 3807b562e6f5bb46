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


def test_ld_glm_summary_is_the_paired_comparison_of_its_replicates():
    """benchmarks/ld_glm.py's summary (issue 12's GLM must-show numbers), against the
    arithmetic on three made-up replicates."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from ld_glm import summarise

    def rep(full, ldsr, const, ll_glm, ll_const, rank_glm, rank_const):
        return {"ld_correction": "auto", "models": {
            "glm-full": {"rmse_log_f": full, "loglik": ll_glm, "rank": rank_glm},
            "glm-ldsr": {"rmse_log_f": ldsr, "loglik": 0.0, "rank": 2},
            "constant-full": {"rmse_log_f": const, "loglik": ll_const, "rank": rank_const}}}

    runs = [rep(0.2, 0.5, 1.0, 10.0, 4.0, 1, 3), rep(0.6, 0.4, 1.1, 3.0, 5.0, 3, 1), rep(0.3, 0.6, 1.2, 8.0, 1.0, 1, 3)]
    s = summarise(runs)["auto"]
    assert s["reps"] == 3 and s["full_better"] == 2 and s["glm_above_constant"] == 2
    assert abs(s["full_minus_ldsr"] - (-0.3 + 0.2 - 0.3) / 3) < 1e-12
    d = [-0.3, 0.2, -0.3]
    m = sum(d) / 3
    assert abs(s["full_minus_ldsr_se"] - (sum((x - m) ** 2 for x in d) / 2) ** 0.5 / 3 ** 0.5) < 1e-12
    assert abs(s["glm_minus_constant_loglik"] - (6.0 - 2.0 + 7.0) / 3) < 1e-12
    assert abs(s["rmse_mean"]["glm-ldsr"] - 0.5) < 1e-12 and s["rmse_median"]["glm-full"] == 0.3


def test_panel_noise_candidate_is_the_dense_likelihood_with_its_diagonal_term():
    """benchmarks/_panel_noise.py (an issue-12 candidate): the full objective with the
    pseudo-variants equals the Gaussian -log-density with C = s I + G^T F G +
    diag(kappa H_core / (n_ref lambda)), computed densely; its gradient reaches the core's
    f through H_core; kappa 0 restores the plain objective."""
    import math

    import numpy as np
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _panel_noise import installed

    from varfx.api import Window
    from varfx.plugins import lookup

    rng = np.random.default_rng(4)
    n_plus, k, n_ref, kappa, s2 = 9, 4, 50, 0.7, 0.3
    G = torch.as_tensor(rng.normal(size=(n_plus, k)))
    lam = np.sort(rng.uniform(0.5, 4.0, k))[::-1].copy()
    core_pos = np.array([2, 3, 4, 5, 6])
    w = Window(index=0, chrom=1, start=0, end=1, G=G, z=torch.as_tensor(rng.normal(size=k)), eigvals=lam,
               logdet_lambda=float(np.log(lam).sum()), plus_idx=np.arange(n_plus), core_idx=core_pos,
               core_pos=core_pos, n_ref=n_ref)
    f = torch.as_tensor(rng.uniform(0.1, 1.0, n_plus), dtype=torch.float64).requires_grad_(True)
    obj = lookup("objectives", "full")(solver=lookup("solvers", "cholesky")())
    with torch.no_grad():
        plain = float(obj.window_loss(w, f, torch.tensor(s2, dtype=torch.float64)))
    with installed(kappa):
        loss = obj.window_loss(w, f, torch.tensor(s2, dtype=torch.float64))
    loss.backward()
    Gn, fn, z = G.numpy(), f.detach().numpy(), w.z.numpy()
    C = s2 * np.eye(k) + Gn.T @ np.diag(fn) @ Gn + np.diag(kappa * fn[core_pos].sum() / (n_ref * lam))
    dense = 0.5 * (z @ np.linalg.solve(C, z) + np.linalg.slogdet(C)[1] + np.log(lam).sum() + k * math.log(2 * math.pi))
    assert abs(float(loss.detach()) - dense) < 1e-10 * abs(dense)
    # a flank variant's gradient has no H_core term; a core variant's has
    Ci = np.linalg.inv(C)
    M = Ci - np.outer(Ci @ z, Ci @ z)
    d_noise = 0.5 * np.trace(M @ np.diag(kappa / (n_ref * lam)))
    grad = 0.5 * np.einsum("ij,jk,ik->i", Gn, M, Gn) + np.where(np.isin(np.arange(n_plus), core_pos), d_noise, 0.0)
    np.testing.assert_allclose(f.grad.numpy(), grad, rtol=1e-9, atol=1e-12)
    with installed(0.0), torch.no_grad():
        assert float(obj.window_loss(w, f, torch.tensor(s2, dtype=torch.float64))) == plain
    assert abs(plain - dense) > 1e-6  # the term changes the likelihood
