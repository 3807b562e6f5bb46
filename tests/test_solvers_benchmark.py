"""benchmarks/solvers.py on tiny windows: the spectra it builds and its --no-flush switch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*extra):
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "solvers.py"), "--json",
                        "--sizes", "450", "--dtypes", "float64,float32", "--spectra", "genotypes,full",
                        "--methods", "cholesky-A-autograd,varfx-cholesky", "--threads", "1",
                        "--clock", "cpu", *extra], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_spectra_and_flush():
    recs = _run()
    pre = {r["spectrum"]: r for r in recs if r["method"] == "precompute-eigh"}
    # genotypes of 1.25 n+ people: full rank, nothing to flush; AR(1): much to flush
    assert pre["genotypes"]["k"] == pre["genotypes"]["n"] == 150
    assert pre["genotypes"]["info"]["G_zero_fraction"] == 0.0
    assert pre["full"]["info"]["G_zero_fraction"] > 0.05
    for r in recs:
        if r["method"] == "varfx-cholesky":
            assert r["seconds"] > 0
            assert r["grad_rel_err"] < (1e-10 if r["dtype"] == "float64" else 1e-4)
    raw = _run("--no-flush")
    pre_raw = {r["spectrum"]: r for r in raw if r["method"] == "precompute-eigh"}
    assert pre_raw["full"]["info"]["G_zero_fraction"] == 0.0


def test_genotype_ld_is_a_correlation_matrix():
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        from solvers import genotype_ld
    finally:
        sys.path.pop(0)
    R = genotype_ld(200, 250, seed=0)
    np.testing.assert_allclose(np.diag(R), 1.0)
    np.testing.assert_allclose(R, R.T, atol=1e-12)
    lam = np.linalg.eigvalsh(R)
    assert lam[0] > 1e-6 * lam[-1]  # full rank: more people than SNPs
    assert np.mean(np.abs(np.diag(R, 1))) > 0.1  # neighbours in LD
