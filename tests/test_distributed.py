"""Training under ``torchrun`` with 2 CPU processes (gloo): each rank reads only its share
of the window store, a checkpoint resumes at another world size to the same fit, and a
rank's bad input stops every rank with one line and exit status 1.

Tolerance of the comparisons (float64).  Whatever the world size, every step sums the
same per-window losses and gradients; only the order of the additions changes (each
rank sums its share, then the ranks' sums are added).  Reordering a sum of B terms
changes it by at most (B - 1) eps sum|term| (eps = 2^-53); here B <= 4 windows a step,
so ~7e-16 of the loss's scale per step.  The constant prior has one parameter and its
loss is smooth and convex in log c, so AdamW's updates (lr 0.1, a few dozen of them)
carry such a perturbation forward with a factor of order one per update rather than
amplify it: the runs can differ by ~1e-14.  A relative 1e-10 leaves four orders of
magnitude of room and is far below what an update at the peak learning rate changes
(AdamW moves log c by up to lr = 0.1 a step), so a step skipped, repeated or taken on
another batch fails the comparison.
"""

from __future__ import annotations

import json
import re
import shutil

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from varfx.cli import cli

from _data import write_subset
from _train import interrupted_after_checkpoint, torchrun

TOL = 1e-10


def invoke(args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """~1200 chr22 SNPs, 9 windows; the windows whose core starts in the first 500 kb
    of the data are held out (a region), so there is validation."""
    tmp = tmp_path_factory.mktemp("ddp")
    prefix, ss = write_subset(tmp / "in", 2000, 1200)
    ds = tmp / "ds"
    assert invoke(["ingest", "--sumstats", ss, "--ld", prefix, "-o", ds, "--json"]).exit_code == 0
    assert invoke(["precompute-ld", ds, "--window-kb", 250, "--flank-kb", 100, "--json"]).exit_code == 0
    with h5py.File(ds / "windows.h5", "r") as h5:
        start = int(h5["index"]["start"][0])
        n_windows = int(h5.attrs["n_windows"])
    region = f"22:{start + 1}-{start + 500_000}"
    return tmp, ds, region, n_windows


def _args(ds, region, *extra):
    return ["fit", str(ds), "--optimizer", "adamw", "--alpha", "0", "--sigma2", "1", "--holdout-chroms", "none",
            "--holdout-region", region, "--lr", "0.1", "--batch-windows", "4", "--epochs", "6", "--seed", "2",
            "--checkpoint-every", "1", *extra]


def _same_fit(a, b):
    import torch

    ma, mb = (json.loads((d / "model.json").read_text()) for d in (a, b))
    assert len(ma["curve"]) == len(mb["curve"]) == 6
    for key in ("train_loss", "val_loss"):
        assert [x[key] for x in ma["curve"]] == pytest.approx([x[key] for x in mb["curve"]], rel=TOL)
    pa = torch.load(a / "checkpoint.pt", weights_only=True)["prior"]["log_c"]
    pb = torch.load(b / "checkpoint.pt", weights_only=True)["prior"]["log_c"]
    assert float(pa) == pytest.approx(float(pb), rel=TOL, abs=TOL)
    return ma, mb


@pytest.fixture(scope="module")
def uninterrupted(data):
    """The fit of :func:`_args` in this process, never stopped."""
    tmp, ds, region, _ = data
    one = tmp / "one"
    r = invoke(_args(ds, region) + ["-o", one])
    assert r.exit_code == 0, r.output
    return one


@pytest.mark.slow
def test_two_processes_read_only_their_share_and_fit_as_one(data, uninterrupted, tmp_path):
    """Each rank reads the factors of its half of every batch and of the held-out
    windows, never all of the store; the fit is the one-process fit."""
    _, ds, region, n_windows = data
    one, two = uninterrupted, tmp_path / "two"
    res = torchrun(_args(ds, region) + ["-o", two], env={"VARFX_PROBE_READS": str(tmp_path)})
    assert res.returncode == 0, res.stderr[-3000:]
    ma, mb = _same_fit(one, two)
    assert ma["world_size"] == 1 and mb["world_size"] == 2
    n_train, n_val = mb["n_train_windows"], mb["n_val_windows"]
    assert n_val >= 2 and n_train >= 4 and n_train + n_val <= n_windows
    reads = [json.loads((tmp_path / f"reads-{r}.json").read_text()) for r in (0, 1)]
    # a batch of b windows: rank 0 takes units 0, 2, .. (ceil(b/2)), rank 1 the rest;
    # the held-out windows likewise, read once.  Together exactly what one process
    # computes on (every training window 6 times, the held-out ones once): no window is
    # read by both ranks for one step, and neither rank reads the whole store
    sizes = [4] * (n_train // 4) + ([n_train % 4] if n_train % 4 else [])
    assert len(reads[0]) == 6 * sum(-(-b // 2) for b in sizes) + -(-n_val // 2)
    assert len(reads[1]) == 6 * sum(b // 2 for b in sizes) + n_val // 2
    assert len(set(reads[0]) | set(reads[1])) == n_train + n_val


@pytest.mark.slow
def test_resume_at_another_world_size_gives_the_same_fit(data, uninterrupted, tmp_path):
    """A checkpoint of a 1-process run resumed with 2 processes, and one of a 2-process
    run resumed in 1, end where the uninterrupted run ends."""
    _, ds, region, _ = data
    from varfx.stages.fit import run_fit

    full = uninterrupted
    # 1 -> 2: stopped after 7 checkpoints (mid-epoch 3), resumed by torchrun
    a = tmp_path / "a"
    interrupted_after_checkpoint(7, lambda: run_fit(
        ds, a, optimizer="adamw", alpha=0.0, sigma2=1.0, holdout_chroms="none", holdout_regions=[region], lr=0.1,
        batch_windows=4, epochs=6, seed=2, checkpoint_every=1, progress=False))
    res = torchrun(_args(ds, region) + ["-o", a])
    assert res.returncode == 0, res.stderr[-3000:]
    _, ma = _same_fit(full, a)
    assert ma["world_size"] == 2 and len(ma["resumes"]) == 1 and ma["resumes"][0].endswith("(world size 1 -> 2)")
    assert "resuming a checkpoint written by 1 process with 2" in res.stderr
    # 2 -> 1: rank 0 exits right after its 5th checkpoint, as if killed; resumed in one
    b = tmp_path / "b"
    res = torchrun(_args(ds, region) + ["-o", b], env={"VARFX_PROBE_STOP_AFTER": "5"}, timeout=120)
    assert res.returncode != 0 and (b / "checkpoint.pt").exists()
    assert not json.loads((b / "model.json").read_text())["finished"] if (b / "model.json").exists() else True
    r = invoke(_args(ds, region) + ["-o", b])
    assert r.exit_code == 0, r.output
    _, mb = _same_fit(full, b)
    assert mb["world_size"] == 1 and mb["resumes"][0].endswith("(world size 2 -> 1)")


def _garbled_copy(ds, dest, window: int):
    """A copy of the dataset whose window ``window`` has a NaN in its factor G (as a
    damaged disk might leave it); only the rank that reads this window can see it."""
    shutil.copytree(ds, dest)
    with h5py.File(dest / "windows.h5", "r+") as h5:
        g = h5[f"windows/{window:06d}/G"]
        values = g[...]
        values[0, 0] = np.nan
        g[...] = values
    return dest


def _one_error_line(stderr: str, pattern: str):
    """varfx's own output is one ``Error:`` line (torchrun adds its failure report, whose
    traceback is torchrun's own): no traceback through varfx's code."""
    lines = [ln for ln in stderr.splitlines() if ln.startswith("Error: ")]
    assert len(lines) == 1, stderr[-3000:]
    assert re.search(pattern, lines[0]), lines[0]
    assert not re.search(r'File "[^"]*varfx/', stderr), stderr[-3000:]
    return lines[0]


@pytest.mark.slow
def test_a_ranks_bad_window_stops_both_ranks(data, tmp_path):
    """Rank r reads a window with a NaN factor in its share of a batch: both processes
    exit 1 promptly, with the one line naming the window, and no model directory stays."""
    _, ds, region, _ = data
    with h5py.File(ds / "windows.h5", "r") as h5:
        last = int(h5.attrs["n_windows"]) - 1  # a training window (the region holds the first)
    bad = _garbled_copy(ds, tmp_path / "bad", last)
    out = tmp_path / "m"
    res = torchrun(_args(bad, region) + ["-o", out], timeout=120)
    assert res.returncode == 1, res.stderr[-3000:]
    line = _one_error_line(res.stderr, rf"non-finite values in windows/{last:06d}/G")
    assert "epoch" not in line  # the window's own message, not a loss's
    assert not out.exists()


@pytest.mark.slow
def test_a_nan_loss_on_rank_1_stops_both_ranks(data, tmp_path):
    """Rank 1's loss of one step is NaN (a test hook): rank 0 prints rank 1's message."""
    _, ds, region, _ = data
    out = tmp_path / "m"
    res = torchrun(_args(ds, region) + ["-o", out], env={"VARFX_PROBE_NAN": "1:3"}, timeout=120)
    assert res.returncode == 1, res.stderr[-3000:]
    _one_error_line(res.stderr, r"the loss became nan at epoch \d+ step \d+; try a smaller --lr \(rank 1 of 2\)")
    assert not out.exists()


@pytest.mark.slow
def test_two_nodes_of_one_process_each(data, uninterrupted, tmp_path):
    """``torchrun --nnodes 2 --nproc-per-node 1`` twice on this machine, meeting at a c10d
    rendezvous: both processes have LOCAL_RANK 0, only the global rank 0 writes the model
    and prints the summary, and the fit is the one-process fit."""
    import os
    import socket
    import subprocess

    if shutil.which("torchrun") is None:
        pytest.skip("torchrun not on PATH")
    _, ds, region, _ = data
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "m"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = ["torchrun", "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
           "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "varfx-test", "-m", "varfx",
           *_args(ds, region), "-o", str(out)]
    nodes = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    results = [p.communicate(timeout=300) for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], [e[-2000:] for _, e in results]
    _, meta = _same_fit(uninterrupted, out)
    assert meta["world_size"] == 2
    # the summary table (on stderr) is printed by one node only
    printed = ["varfx fit" in err for _, err in results]
    assert sorted(printed) == [False, True], results


@pytest.mark.slow
def test_mil_checkpoint_of_one_process_resumes_with_two(tmp_path):
    """Bags: a 1-process MIL fit stopped mid-epoch 4 (after the warm-up), resumed by 2
    processes, ends at the uninterrupted fit (the negatives of an epoch come from
    (seed, epoch) alone, so both world sizes draw the same ones)."""
    import torch

    import _mil_data
    from varfx.stages.fit import run_fit

    ds, _ = _mil_data.build(tmp_path / "mil")
    opts = dict(prior="glm", objective="mil", objective_options=["warmup_epochs=3"], epochs=6, batch_windows=10,
                checkpoint_every=1, seed=4, progress=False)
    run_fit(ds, tmp_path / "full", **opts)
    interrupted_after_checkpoint(17, lambda: run_fit(ds, tmp_path / "part", **opts))
    res = torchrun(["fit", ds, "--prior", "glm", "--objective", "mil", "-O", "warmup_epochs=3", "--epochs", "6",
                    "--batch-windows", "10", "--checkpoint-every", "1", "--seed", "4", "-o", tmp_path / "part"])
    assert res.returncode == 0, res.stderr[-3000:]
    ma, mb = (json.loads((tmp_path / d / "model.json").read_text()) for d in ("full", "part"))
    assert mb["world_size"] == 2 and mb["resumes"][0].endswith("(world size 1 -> 2)")
    for key in ("train_loss", "val_loss"):
        assert [x[key] for x in ma["curve"]] == pytest.approx([x[key] for x in mb["curve"]], rel=TOL)
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)["prior"]
    b = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)["prior"]
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=TOL, atol=TOL), k
