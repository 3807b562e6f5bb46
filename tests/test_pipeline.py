"""ingest -> precompute-ld -> fit -> evaluate -> score through the CLI on a slice of chr22."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from varfx.cli import cli

from _data import write_subset
from _train import interrupted_after_checkpoint, one_and_two_processes


def invoke(args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A dataset of ~1200 chr22 SNPs with its windows precomputed."""
    tmp = tmp_path_factory.mktemp("pipe")
    prefix, ss = write_subset(tmp / "in", 2000, 1200)
    ds = tmp / "ds"
    r = invoke(["ingest", "--sumstats", ss, "--ld", prefix, "-o", ds, "--json"])
    assert r.exit_code == 0, r.output
    r = invoke(["precompute-ld", ds, "--window-kb", 500, "--flank-kb", 250, "--json"])
    assert r.exit_code == 0, r.output
    return tmp, ds


def test_precompute_store_contents(small):
    _, ds = small
    with h5py.File(ds / "windows.h5", "r") as h5, h5py.File(ds / "dataset.h5", "r") as d:
        assert h5.attrs["format"] == "varfx-windows"
        idx = h5["index"]
        n_windows = len(idx["chrom"])
        assert n_windows >= 3
        core = np.concatenate([h5["windows"][f"{i:06d}"]["core_idx"][:] for i in range(n_windows)])
        # every variant is a core variant of exactly one window
        assert np.array_equal(np.sort(core), np.arange(d["variants"]["bp"].shape[0]))
        bp = d["variants"]["bp"][:]
        for i in range(n_windows):
            g = h5["windows"][f"{i:06d}"]
            plus = g["plus_idx"][:]
            c = g["core_idx"][:]
            assert np.array_equal(plus[g["core_pos"][:]], c)
            assert bp[plus].min() >= bp[c].min() - 250_000 and bp[plus].max() <= bp[c].max() + 250_000
            assert g["G"].shape == (len(plus), g.attrs["k"])
            assert g["P"].shape == (g.attrs["k"], len(c))
            assert g.attrs["k"] <= min(len(c), 378)
    assert not (ds / "windows.parts").exists()


def test_precompute_resumes_after_kill(small, tmp_path):
    """A kill -9 mid-run leaves no windows.h5; the re-run reuses the finished windows."""
    import shutil

    _, ds0 = small
    ds = tmp_path / "ds"
    shutil.copytree(ds0, ds)
    (ds / "windows.h5").unlink()
    cmd = [sys.executable, "-m", "varfx", "precompute-ld", str(ds), "--window-kb", "100", "--flank-kb", "250"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = ds / "windows.parts"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts.glob("w*.h5"))) < 3:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(parts.glob("w*.h5")))
    assert done_before >= 3
    assert not (ds / "windows.h5").exists()
    r = invoke(["precompute-ld", ds, "--window-kb", 100, "--flank-kb", 250, "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["resumed_windows"] >= done_before
    with h5py.File(ds / "windows.h5", "r") as h5:
        assert h5["index"]["chrom"].shape[0] == summary["windows"]


@pytest.mark.parametrize("solver", ["cholesky", "cg-slq", "nystrom"])
def test_fit_evaluate_score(small, solver):
    tmp, ds = small
    model = tmp / f"model-{solver}"
    r = invoke(["fit", ds, "--prior", "constant", "--objective", "full", "--solver", solver, "--optimizer", "adamw",
                "--alpha", 0, "--sigma2", 1.0, "--holdout-chroms", "none", "--epochs", 40, "--lr", 0.1,
                "-o", model])
    assert r.exit_code == 0, r.output
    meta = json.loads((model / "model.json").read_text())
    assert meta["finished"] and len(meta["curve"]) == 40 and meta["solver"]["name"] == solver
    r = invoke(["evaluate", model, ds, "--chroms", "all", "--json"])
    assert r.exit_code == 0, r.output
    ev = json.loads(r.stdout)
    for key in ("loglik", "loglik_null", "pct_increase_per_person", "N", "sigma2", "n_variants", "n_windows", "h2"):
        assert key in ev
    assert ev["loglik"] > ev["loglik_null"]  # height has signal on chr22
    assert ev["pct_increase_per_person"] == pytest.approx(100 * np.expm1((ev["loglik"] - ev["loglik_null"]) / ev["N"]))
    out = tmp / f"scores-{solver}.tsv"
    r = invoke(["score", model, ds, "-o", out])
    assert r.exit_code == 0, r.output
    lines = out.read_text().splitlines()
    assert lines[0].split("\t") == ["SNP", "CHR", "BP", "F"]
    assert len(lines) - 1 == ev["n_variants"]
    f = np.array([float(line.split("\t")[3]) for line in lines[1:]])
    assert np.allclose(f, f[0]) and f[0] > 0  # constant prior, alpha 0


def test_fit_resumes_from_checkpoint(small):
    tmp, ds = small
    args = ["fit", ds, "--optimizer", "adamw", "--alpha", 0, "--sigma2", 1.0, "--holdout-chroms", "none", "--lr", 0.1,
            "--seed", 3]
    full = tmp / "m-full"
    assert invoke(args + ["--epochs", 12, "-o", full]).exit_code == 0
    part = tmp / "m-part"
    # Run 12 epochs in two goes: the first run is stopped after 5 by editing nothing but
    # running with a checkpoint written at epoch 5 from an identical configuration.
    from varfx.stages.fit import run_fit

    interrupted_after_checkpoint(5, lambda: run_fit(ds, part, optimizer="adamw", alpha=0.0, sigma2=1.0,
                                                    holdout_chroms=[], epochs=12, lr=0.1, seed=3, progress=False))
    r = invoke(args + ["--epochs", 12, "-o", part])
    assert r.exit_code == 0, r.output
    a = json.loads((full / "model.json").read_text())["curve"]
    b = json.loads((part / "model.json").read_text())["curve"]
    assert len(b) == 12
    assert [x["train_loss"] for x in a] == pytest.approx([x["train_loss"] for x in b], rel=1e-12)
    # a different configuration is refused, not mixed
    r = CliRunner().invoke(cli, [str(x) for x in args] + ["--epochs", "13", "-o", str(part)])
    assert r.exit_code == 1 and "different fit" in r.output


def test_fit_kill9_and_resume_equals_uninterrupted(small):
    """kill -9 at an arbitrary moment, resume: the same parameters as a run never stopped."""
    import torch

    tmp, ds = small
    args = ["fit", str(ds), "--optimizer", "adamw", "--alpha", "0", "--sigma2", "1", "--holdout-chroms", "none",
            "--lr", "0.1", "--batch-windows", "1", "--epochs", "80", "--checkpoint-every", "1", "--seed", "5"]
    full = tmp / "k-full"
    assert invoke(args + ["-o", full]).exit_code == 0
    part = tmp / "k-part"
    proc = subprocess.Popen([sys.executable, "-m", "varfx", *args, "-o", str(part)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (part / "checkpoint.pt").exists():
        time.sleep(0.01)
    time.sleep(0.2)  # somewhere mid-run, most likely mid-epoch
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (part / "checkpoint.pt").exists()
    interrupted = json.loads((part / "model.json").read_text()) if (part / "model.json").exists() else {"finished": False}
    assert not interrupted["finished"], "the run finished before the kill; make it longer"
    r = invoke(args + ["-o", part])
    assert r.exit_code == 0, r.output
    a = torch.load(full / "checkpoint.pt", weights_only=True)["prior"]
    b = torch.load(part / "checkpoint.pt", weights_only=True)["prior"]
    assert float(a["log_c"]) == pytest.approx(float(b["log_c"]), rel=1e-12, abs=1e-12)
    ca = json.loads((full / "model.json").read_text())["curve"]
    cb = json.loads((part / "model.json").read_text())["curve"]
    assert [x["train_loss"] for x in ca] == pytest.approx([x["train_loss"] for x in cb], rel=1e-12)


@pytest.mark.slow
def test_data_parallel_two_processes_match_one(small):
    """torchrun with 2 CPU processes (gloo): the same loss trajectory and parameters as one
    process taking the same batches."""
    import torch

    tmp, ds = small
    args = ["fit", str(ds), "--optimizer", "adamw", "--alpha", "0", "--sigma2", "1", "--holdout-chroms", "none",
            "--lr", "0.1", "--batch-windows", "4", "--epochs", "6", "--seed", "2"]
    one, two = one_and_two_processes(invoke, args, tmp)
    ca = json.loads((one / "model.json").read_text())["curve"]
    cb = json.loads((two / "model.json").read_text())["curve"]
    assert [x["train_loss"] for x in ca] == pytest.approx([x["train_loss"] for x in cb], rel=1e-10)
    a = torch.load(one / "checkpoint.pt", weights_only=True)["prior"]["log_c"]
    b = torch.load(two / "checkpoint.pt", weights_only=True)["prior"]["log_c"]
    assert float(a) == pytest.approx(float(b), rel=1e-10)


def test_loader_workers_give_the_same_fit(small):
    """Windows read from disk by 2 loader processes per batch: the same trajectory as
    with every window in memory, and the wait fraction is reported."""
    tmp, ds = small
    from varfx.stages.fit import run_fit

    common = dict(optimizer="adamw", alpha=0.0, sigma2=1.0, holdout_chroms=[], epochs=4, lr=0.1, batch_windows=2,
                  seed=4, progress=False)
    a = run_fit(ds, tmp / "mem", **common)
    b = run_fit(ds, tmp / "loader", loader_workers=2, **common)
    assert a["loader_wait_fraction"] is None and 0.0 <= b["loader_wait_fraction"] <= 1.0
    ca = json.loads((tmp / "mem" / "model.json").read_text())["curve"]
    cb = json.loads((tmp / "loader" / "model.json").read_text())["curve"]
    assert [x["train_loss"] for x in ca] == pytest.approx([x["train_loss"] for x in cb], rel=1e-12)


def test_fit_dry_run_and_jsonl_log(small):
    tmp, ds = small
    r = invoke(["fit", ds, "--alpha", 0, "--sigma2", 1, "--holdout-chroms", "none", "--dry-run", "-o", tmp / "dry"])
    plan = json.loads(r.stdout)
    assert plan["dry_run"] and plan["parameters"] == 1 and plan["train_windows"] >= 3
    assert plan["optimizer"] == "lbfgs"  # the default for a constant prior
    assert plan["memory_per_step_mb"] > 0
    assert not (tmp / "dry" / "checkpoint.pt").exists()
    log = tmp / "fit.jsonl"
    r = invoke(["fit", ds, "--alpha", 0, "--sigma2", 1, "--holdout-chroms", "none", "--epochs", 3,
                "--batch-windows", 2, "--log-jsonl", log, "-o", tmp / "logged"])
    assert r.exit_code == 0, r.output
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    steps = [x for x in recs if "step" in x]
    ends = [x for x in recs if "epoch_end" in x]
    n_train = plan["train_windows"]
    assert len(ends) == 3 and len(steps) == 3 * ((n_train + 1) // 2)
    assert all({"loss", "lr", "windows_per_s"} <= set(x) for x in steps)


def test_user_errors_one_line(small, tmp_path):
    tmp, ds = small
    runner = CliRunner()
    cases = [
        (["precompute-ld", tmp_path / "nope"], "not a dataset directory"),
        (["fit", ds, "--holdout-chroms", "22", "-o", tmp_path / "m"], "no training windows"),
        (["fit", ds, "--sigma2", "-1", "-o", tmp_path / "m2"], "--sigma2"),
        (["fit", ds, "--solver", "nope", "-o", tmp_path / "m3"], "unknown solver"),
        (["fit", ds, "-s", "bogus=1", "-o", tmp_path / "m4"], "no option 'bogus'"),
        (["evaluate", tmp_path / "nomodel", ds], "model.json"),
    ]
    for args, needle in cases:
        r = runner.invoke(cli, [str(a) for a in args])
        assert r.exit_code == 1, (args, r.output)
        assert needle in r.output and "Traceback" not in r.output, (args, r.output)
        assert len(r.output.strip().splitlines()) == 1, r.output


def test_evaluate_chroms_without_windows(small):
    tmp, ds = small
    model = tmp / "m-eval"
    assert invoke(["fit", ds, "--alpha", 0, "--sigma2", 1, "--holdout-chroms", "none", "--epochs", 2, "-o", model]).exit_code == 0
    r = CliRunner().invoke(cli, ["evaluate", str(model), str(ds), "--chroms", "6,7,8"])
    assert r.exit_code == 1 and "chromosome 6, 7, 8 is not in the dataset (it has 22)" in r.output, r.output


@pytest.mark.slow
def test_demo_runs_the_whole_pipeline(tmp_path):
    """`varfx demo` (the README's main job) on the bundled example data, few epochs."""
    from varfx.stages.demo import MODELS

    out = tmp_path / "demo"
    r = CliRunner().invoke(cli, ["demo", "-o", str(out), "--epochs", "3", "--mil-epochs", "2"])
    assert r.exit_code == 0, r.output
    cmp = json.loads((out / "comparison.json").read_text())
    assert cmp["comparison"] and cmp["chroms"] == [22] and len(cmp["models"]) == len(MODELS)
    assert [m["rank"] for m in cmp["models"]] == list(range(1, len(MODELS) + 1))
    assert all(m["rmse_log_f"] is not None and m["delta_loglik_se"] > 0 for m in cmp["models"])
    # the simulation's truth is a GLM of the features: the GLM on the full likelihood must
    # beat the constant prior on held-out likelihood (by far more than 3 paired SEs here)
    by = {m["name"]: m for m in cmp["models"]}
    assert by["glm-full"]["loglik"] > by["constant-full"]["loglik"]
    assert by["glm-full"]["rmse_log_f"] < by["constant-full"]["rmse_log_f"]
    for png in ("compare.png", "curves_transformer-full.png", "ldsr.png"):
        assert (out / "figures" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"wrote {out / 'figures' / png}\n" in r.output
    assert (out / "scores.tsv").read_text().startswith("SNP\tCHR\tBP\tF\tBETA_POSTERIOR")
    assert (out / "pgs_weights.txt").read_text().startswith("###PGS CATALOG SCORING FILE")
    assert (out / "calls.varfx.vcf.gz").is_file()
    # the fine-mapping part: its own simulation, bags, a seqcnn MIL model evaluated within
    # held-out bags (2 epochs here: the structure, not the learning, which
    # tests/test_mil_simulation.py measures), a figure and VARFX_PCAUSAL in a VCF
    mil = cmp["mil"]
    assert mil["prior"] == "seqcnn" and mil["objective"] == "mil" and mil["epochs"] == 2 and mil["bags"] >= 50
    ev = mil["evaluation"]
    assert ev["chroms"] == [6] and ev["n_bags_with_causal"] >= 5 and ev["n_pairs"] > 0
    for key in ("auroc_within_bags", "top1_within_bags", "auroc_causal_vs_negatives"):
        assert 0.0 <= ev[key] <= 1.0, (key, ev)
    assert 0 < ev["top1_chance"] < 1
    assert ev["auroc_within_bags_abs_z"] > 0.9  # in-sample LD, |E z| = 12 at the causal variant
    png = out / "figures" / "bags_mil.png"
    assert mil["figure"] == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {png}\n" in r.output
    import pysam

    with pysam.VariantFile(mil["vcf"]) as vcf:
        assert "VARFX_PCAUSAL" in vcf.header.info
        p = [rec.info["VARFX_PCAUSAL"][0] for rec in vcf]
    assert len(p) == mil["vcf_scored"] == mil["simulation"]["n_variants"]
    assert all(0 < x < 1 for x in p)


def test_fit_ldsr_objective(small):
    tmp, ds = small
    model = tmp / "model-ldsr"
    r = invoke(["fit", ds, "--objective", "ldsr", "--alpha", 0, "--holdout-chroms", "none", "--epochs", 30,
                "--lr", 0.1, "-o", model])
    assert r.exit_code == 0, r.output
    meta = json.loads((model / "model.json").read_text())
    assert meta["objective"]["name"] == "ldsr" and meta["solver"] is None
    # the h2/M the regression weights used (set by the objective from the context),
    # not the option's 0 as it was before it was set
    h2_per_snp = meta["objective"]["options"]["h2_per_snp"]
    assert h2_per_snp == pytest.approx(max(meta["h2_ldsr"], 1e-3) / meta["n_train_variants"], rel=1e-12)
    assert meta["lr"] == 0.1 and meta["optimizer"] == "adamw"
    assert meta["curve"][-1]["train_loss"] < meta["curve"][0]["train_loss"]
    ev = json.loads(invoke(["evaluate", model, ds, "--chroms", "all", "--json"]).output)
    assert ev["objective"] == "ldsr" and ev["h2"] > 0


def test_fit_progress_shows_loss_rate_and_eta_on_stderr(small, tmp_path):
    """The bar (stderr only) carries the loss, windows/s and the elapsed time and ETA."""
    tmp, ds = small
    env = {**os.environ, "COLUMNS": "200", "FORCE_COLOR": "0", "TERM": "xterm", "TTY_COMPATIBLE": "1",
           "TTY_INTERACTIVE": "0"}
    r = subprocess.run([sys.executable, "-m", "varfx", "fit", str(ds), "--alpha", "0", "--sigma2", "1",
                        "--holdout-chroms", "none", "--epochs", "3", "--batch-windows", "1",
                        "-o", str(tmp_path / "m")], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    assert "loss" in r.stderr and "windows/s" in r.stderr and "0:00:" in r.stderr, r.stderr


def _nll_derivatives(ds, log_c, sigma2=1.0):
    """First and second derivative of the total training loss in ``log_c`` (constant
    prior, alpha 0, every window) by central differences of the exact loss (an
    independent evaluation: the objective called directly, not the trainer)."""
    import torch

    from varfx.default_plugins.objectives import FullLikelihood
    from varfx.default_plugins.solvers import CholeskySolver
    from varfx.store.windows import load_windows

    windows, attrs = load_windows(ds)
    windows = [w for w in windows if w.k > 0]
    obj = FullLikelihood(solver=CholeskySolver())
    s2 = torch.tensor(sigma2 / attrs["N"], dtype=torch.float64)

    def nll(c):
        return float(sum(obj.window_loss(w, torch.full((w.n_plus,), math.exp(c), dtype=torch.float64), s2)
                         for w in windows))

    h = 1e-3
    lo, mid, hi = nll(log_c - h), nll(log_c), nll(log_c + h)
    return (hi - lo) / (2 * h), (hi - 2 * mid + lo) / h ** 2


def _newton_step_in_se(ds, log_c, sigma2=1.0):
    """The remaining Newton step of the training loss at ``log_c``, in standard errors."""
    g, H = _nll_derivatives(ds, log_c, sigma2)
    return (g / H) * math.sqrt(H)  # step / se, se = 1 / sqrt(H)


def test_fit_default_reaches_the_maximum(small, tmp_path):
    """Default options, constant prior: L-BFGS to the maximum, the stopping rule in
    model.json; AdamW's default run (what fit did before) stops visibly short."""
    import torch

    _, ds = small
    r = invoke(["fit", ds, "--alpha", 0, "--sigma2", 1, "--holdout-chroms", "none", "-o", tmp_path / "m"])
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["optimizer"] == "lbfgs" and meta["stop_reason"] == "gradient below gtol", meta
    assert meta["grad_norm"] <= meta["gtol"] == 1e-6 and meta["iterations"] >= 1 and meta["finished"]
    log_c = float(torch.load(tmp_path / "m" / "checkpoint.pt", weights_only=True)["prior"]["log_c"])
    assert abs(_newton_step_in_se(ds, log_c)) < 0.01
    r = invoke(["fit", ds, "--alpha", 0, "--sigma2", 1, "--holdout-chroms", "none", "--optimizer", "adamw",
                "-o", tmp_path / "adamw"])
    assert r.exit_code == 0, r.output
    from varfx.default_plugins.priors import ConstantPrior

    assert json.loads((tmp_path / "adamw" / "model.json").read_text())["lr"] == ConstantPrior.default_lr
    log_c_adamw = float(torch.load(tmp_path / "adamw" / "checkpoint.pt", weights_only=True)["prior"]["log_c"])
    assert abs(_newton_step_in_se(ds, log_c_adamw)) > 0.05  # the defect the default fixes


def test_lbfgs_fit_interrupted_resumes_to_the_same_optimum(small, tmp_path):
    """An L-BFGS fit stopped right after its second checkpoint (every iteration) and
    run again restarts from the checkpointed parameters and ends at the same optimum."""
    import torch

    from varfx.stages.fit import run_fit

    _, ds = small
    common = dict(alpha=0.0, sigma2=1.0, holdout_chroms=[], checkpoint_every=1, gtol=1e-8, progress=False)
    full = run_fit(ds, tmp_path / "full", **common)
    assert full["optimizer"] == "lbfgs" and full["iterations"] >= 3

    interrupted_after_checkpoint(2, lambda: run_fit(ds, tmp_path / "part", **common))
    mid = json.loads((tmp_path / "part" / "model.json").read_text())
    assert not mid["finished"] and mid["stop_reason"] is None
    again = run_fit(ds, tmp_path / "part", **common)
    assert again["resumed_from"].startswith("iteration ") and again["stop_reason"] == full["stop_reason"]
    a = float(torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)["prior"]["log_c"])
    b = float(torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)["prior"]["log_c"])
    assert abs(a - b) < 1e-5 and abs(_newton_step_in_se(ds, b)) < 0.01


# ``python -c SLOW_FIT fit ...`` is ``varfx fit ...`` with every evaluation of the
# training loss made 50 ms slower: on this data set an L-BFGS fit converges in a few
# milliseconds after its first checkpoint, too fast to be killed mid-run reliably on any
# machine; the sleep stretches the run without changing any computation.
SLOW_FIT = """
import sys, time
import varfx.train.lbfgs as lbfgs
real = lbfgs.guarded_loss
def slow(*args, **kwargs):
    time.sleep(0.05)
    return real(*args, **kwargs)
lbfgs.guarded_loss = slow
from varfx.cli import main
main(sys.argv[1:])
"""


def test_lbfgs_fit_kill9_resumes_to_the_same_optimum(small, tmp_path):
    """``varfx fit`` with the default optimizer (L-BFGS) killed with SIGKILL once it has
    checkpointed, then the same command again: it resumes from the checkpoint (model.json
    says so), stops by the gradient rule and ends at the optimum of a run never stopped,
    within what --gtol allows."""
    import torch

    _, ds = small
    args = ["fit", str(ds), "--alpha", "0", "--sigma2", "1", "--holdout-chroms", "none", "--checkpoint-every", "1"]
    full = tmp_path / "full"
    assert invoke(args + ["-o", full]).exit_code == 0
    part = tmp_path / "part"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_FIT, *args, "-o", str(part)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not (part / "checkpoint.pt").exists():
        time.sleep(0.005)
    time.sleep(0.08)  # past the first checkpoint, inside a later iteration
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before the kill; make it longer"
    assert (part / "checkpoint.pt").exists()
    mid = json.loads((part / "model.json").read_text()) if (part / "model.json").exists() else {"finished": False}
    assert not mid["finished"]
    done_before = torch.load(part / "checkpoint.pt", weights_only=True)
    it_before = json.loads(done_before["state"])["iterations"]
    assert it_before >= 1
    res = subprocess.run([sys.executable, "-m", "varfx", *args, "-o", str(part)], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    ma, mb = (json.loads((d / "model.json").read_text()) for d in (full, part))
    assert ma["optimizer"] == mb["optimizer"] == "lbfgs" and ma["finished"] and mb["finished"]
    assert ma["resumes"] == [] and mb["resumes"] == [f"iteration {it_before}"]
    assert ma["stop_reason"] == mb["stop_reason"] == "gradient below gtol"
    gtol = mb["gtol"]
    assert ma["grad_norm"] <= gtol and mb["grad_norm"] <= gtol
    a = float(torch.load(full / "checkpoint.pt", weights_only=True)["prior"]["log_c"])
    b = float(torch.load(part / "checkpoint.pt", weights_only=True)["prior"]["log_c"])
    # Each run stops where the per-variant loss (total / n_train) has |gradient| <= gtol,
    # so within gtol / h of the optimum, h = H / n_train its curvature in log c (H of the
    # total loss, by central differences of the objective itself); two runs differ by at
    # most twice that.  1.25: the curvature is not exactly constant over the interval,
    # and H carries finite-difference error.
    _, H = _nll_derivatives(ds, b)
    tol = 1.25 * 2 * gtol * mb["n_train_variants"] / H
    assert abs(a - b) <= tol, (a, b, tol)


@pytest.mark.slow
def test_lbfgs_data_parallel_two_processes_match_one(small, tmp_path):
    """torchrun with 2 CPU processes (gloo), default options (L-BFGS): every rank takes
    every second window, the summed loss and gradient are the one process's, and so is
    the optimum."""
    import shutil

    import torch

    if shutil.which("torchrun") is None:
        pytest.skip("torchrun not on PATH")
    _, ds = small
    args = ["fit", str(ds), "--alpha", "0", "--sigma2", "1", "--holdout-chroms", "none"]
    one, two = tmp_path / "one", tmp_path / "two"
    assert invoke(args + ["-o", one]).exit_code == 0
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(["torchrun", "--standalone", "--nproc_per_node", "2", "-m", "varfx", *args, "-o", str(two)],
                         capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    ma, mb = (json.loads((d / "model.json").read_text()) for d in (one, two))
    assert ma["optimizer"] == mb["optimizer"] == "lbfgs" and mb["stop_reason"] == "gradient below gtol"
    a = torch.load(one / "checkpoint.pt", weights_only=True)["prior"]["log_c"]
    b = torch.load(two / "checkpoint.pt", weights_only=True)["prior"]["log_c"]
    assert float(a) == pytest.approx(float(b), abs=1e-8)
