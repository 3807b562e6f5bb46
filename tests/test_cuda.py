"""GPU correctness: the same numbers on CUDA as on the CPU.

Skipped on machines without CUDA (CI here has none); run on a GPU machine with
``python -m pytest tests/test_cuda.py``.  Data parallel over several GPUs (nccl) needs
two GPUs and runs with ``torchrun --nproc_per_node 2 -m varfx fit ... --device cuda``.
"""

import json

import pytest
import torch
from click.testing import CliRunner

from varfx.cli import cli
from varfx.testing.solvers import SolverConformance

from _data import write_subset
from test_priors_objectives import amp_case

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def invoke(args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


class TestCholeskyCuda(SolverConformance):
    """The whole solver conformance suite with the tensors on the GPU."""

    solver_name = "cholesky"
    device = "cuda"


class TestCGSLQCuda(SolverConformance):
    solver_name = "cg-slq"
    device = "cuda"


class TestNystromCuda(SolverConformance):
    solver_name = "nystrom"
    device = "cuda"


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cuda")
    prefix, ss = write_subset(tmp / "in", 2000, 1200)
    ds = tmp / "ds"
    assert invoke(["ingest", "--sumstats", ss, "--ld", prefix, "-o", ds, "--json"]).exit_code == 0
    assert invoke(["precompute-ld", ds, "--window-kb", 500, "--flank-kb", 250, "--json"]).exit_code == 0
    return tmp, ds


def test_fit_on_cuda_matches_the_cpu(small):
    tmp, ds = small
    args = ["fit", ds, "--alpha", "0.7", "--sigma2", 1, "--holdout-chroms", "none", "--epochs", 30, "--lr", 0.1,
            "--batch-windows", 2, "--seed", 4]
    for dev in ("cpu", "cuda"):
        r = invoke(args + ["--device", dev, "-o", tmp / f"m-{dev}"])
        assert r.exit_code == 0, r.output
    a = torch.load(tmp / "m-cpu" / "checkpoint.pt", weights_only=True)["prior"]["log_c"]
    b = torch.load(tmp / "m-cuda" / "checkpoint.pt", weights_only=True)["prior"]["log_c"]
    assert float(b) == pytest.approx(float(a), rel=1e-8)
    ca = json.loads((tmp / "m-cpu" / "model.json").read_text())["curve"]
    cb = json.loads((tmp / "m-cuda" / "model.json").read_text())["curve"]
    assert [x["train_loss"] for x in cb] == pytest.approx([x["train_loss"] for x in ca], rel=1e-8)
    # a model trained on the GPU loads and evaluates on the CPU
    r = invoke(["evaluate", tmp / "m-cuda", ds, "--chroms", "all", "--json"])
    assert r.exit_code == 0, r.output


def test_transformer_forward_under_amp_on_cuda():
    """bfloat16 autocast on the GPU gives log f close to the float64-summed CPU forward,
    within the tolerance of the CPU autocast test."""
    module, batch, ref, tol = amp_case()
    with torch.no_grad():
        module.cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            got = module({k: v.cuda() for k, v in batch.items()}).cpu()
    assert got.dtype == torch.float64 and torch.isfinite(got).all()
    assert float((got - ref).abs().max()) < tol
