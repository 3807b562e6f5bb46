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
    for rep in tp["repeats"]:
        assert rep["gemm_gflop_per_s"] > 0 and abs(rep["gflop_per_s"] - tp["network_gflop"] / rep["step_s"]) < 1e-9
    # the same network work per variant as the step record (90 variants, scaled from 8)
    assert abs(tp["network_gflop"] / recs["transformer-default"]["network_gflop"] - 8 / 90) < 1e-6
