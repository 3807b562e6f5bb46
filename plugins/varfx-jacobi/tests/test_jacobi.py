"""The cg-jacobi solver, found through its entry point, passes varfx's solver conformance."""

import json
import os
import subprocess
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")  # small matrices, two pytest workers

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

from varfx import plugins  # noqa: E402
from varfx.testing.solvers import SolverConformance  # noqa: E402


def test_found_through_entry_point():
    plugins.reset()
    assert "cg-jacobi" in plugins.get_solvers()
    res = subprocess.run([sys.executable, "-m", "varfx", "plugins", "--json"], capture_output=True, text=True, timeout=120)
    recs = {r["name"]: r for r in json.loads(res.stdout)["plugins"]}
    assert recs["jacobi"]["solvers"] == ["cg-jacobi"]
    assert recs["jacobi"]["version"] == "0.1.0"


def test_preconditioner_is_the_exact_diagonal():
    from varfx_jacobi import jacobi_preconditioner

    rng = np.random.default_rng(0)
    G = torch.tensor(rng.standard_normal((50, 12)))
    f = torch.tensor(rng.uniform(0.1, 2.0, 50))
    s2 = torch.tensor(0.3, dtype=torch.float64)
    C = s2 * torch.eye(12, dtype=torch.float64) + G.T @ (f[:, None] * G)
    P = jacobi_preconditioner(G, f, s2)
    d = torch.diagonal(C)
    assert torch.allclose(P.logdet, torch.log(d).sum())
    assert torch.allclose(P.trace_inv, (1 / d).sum())
    assert torch.allclose(P.diag_quad, torch.diagonal(G @ torch.diag(1 / d) @ G.T))
    v = torch.tensor(rng.standard_normal((12, 3)))
    assert torch.allclose(P.inv @ v, v / d[:, None])
    assert torch.allclose(P.inv_half @ (P.inv_half @ v), v / d[:, None])


def test_fit_with_cg_jacobi_matches_cholesky(tmp_path):
    """The plugin solver drives a real `varfx fit` (2,500 SNPs of UKB height chr22, from
    the bundled example data) to the same per-SNP variance as the exact solver: the
    gradient noise of the probes averages out over the variants sharing one parameter."""
    from click.testing import CliRunner

    from varfx.cli import cli

    from varfx.testing.data import write_subset

    prefix, sumstats = write_subset(tmp_path / "in", 4000, 2500)
    ds = tmp_path / "ds"

    def run(args):
        r = CliRunner().invoke(cli, [str(a) for a in args])
        assert r.exit_code == 0, r.output
        return r

    run(["ingest", "--sumstats", sumstats, "--ld", prefix, "-o", ds, "--json"])
    run(["precompute-ld", ds, "--window-kb", 1000, "--flank-kb", 100, "--json"])
    log_c = {}
    for solver in ("cholesky", "cg-jacobi"):
        model = tmp_path / solver
        run(["fit", ds, "--solver", solver, "--alpha", 0, "--sigma2", 1.0, "--holdout-chroms", "none",
             "--epochs", 50, "--lr", 0.3, "-o", model])
        meta = json.loads((model / "model.json").read_text())
        assert meta["solver"]["name"] == solver
        state = torch.load(model / "checkpoint.pt", weights_only=True)["prior"]
        log_c[solver] = float(state["log_c"])
    assert abs(log_c["cg-jacobi"] - log_c["cholesky"]) < 0.05, log_c
    # ...and that variance is the optimum of the exact likelihood (not just the same
    # path): moving log c by 0.2 either way makes the exact loss worse.
    from varfx.stages.evaluate import window_logliks
    from varfx.store.windows import load_windows

    windows, attrs = load_windows(ds)
    M = max(int(w.plus_idx.max()) for w in windows) + 1
    ll = {d: window_logliks(windows, np.full(M, np.exp(log_c["cg-jacobi"] + d)), 1.0 / attrs["N"])[0]
          for d in (-0.2, 0.0, 0.2)}
    assert ll[0.0] > ll[-0.2] and ll[0.0] > ll[0.2], ll


class TestJacobiConformance(SolverConformance):
    solver_name = "cg-jacobi"
