"""Sampling SD of the per-SNP variance estimated by the ldsr and full objectives.

The set-up of tests/test_ldsr.py::test_ldsr_and_full_recover_the_per_snp_variance
(60 AR(1) windows, rho 0.6, constant f = 2e-4, N = 5e4) repeated over 20 simulation
seeds; prints one JSON object with the mean and SD of log(c_hat / c) per objective.
Run: python benchmarks/objective_sd.py
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_ldsr import make_window  # noqa: E402

from varfx.default_plugins.objectives import FullLikelihood, LDScoreRegression  # noqa: E402
from varfx.default_plugins.solvers import CholeskySolver  # noqa: E402
from varfx.testing.solvers import ar1_ld, simulate_beta  # noqa: E402


def main(reps=20):
    torch.set_num_threads(1)
    c_true, N, s2 = 2e-4, 5e4, 1 / 5e4
    core_pos = np.arange(40, 80)
    Rs = [ar1_ld(120, rho=0.6, seed=1000 + s) for s in range(60)]
    grid = np.exp(np.linspace(np.log(5e-5), np.log(8e-4), 81))
    out = {"ldsr": [], "full": []}
    for rep in range(reps):
        rng = np.random.default_rng(rep + 500)
        ws = [make_window(R, core_pos, simulate_beta(R, core_pos, np.full(120, c_true), s2, rng), N) for R in Rs]
        for obj in (LDScoreRegression(h2_per_snp=c_true), FullLikelihood(solver=CholeskySolver())):
            losses = [sum(float(obj.window_loss(w, torch.full((120,), c, dtype=torch.float64), torch.tensor(s2)))
                          for w in ws) for c in grid]
            out[obj.name].append(float(np.log(grid[int(np.argmin(losses))] / c_true)))
    print(json.dumps({k: {"mean_log_ratio": float(np.mean(v)), "sd_log_ratio": float(np.std(v)), "reps": reps}
                      for k, v in out.items()}))


if __name__ == "__main__":
    main()
