"""precompute-ld --dask-scheduler: a LocalCluster gives the single-process store, bit for
bit; a worker killed mid-window loses nothing; bad addresses and a missing dask are
one-line errors (docs/scale.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from varfx.cli import cli
from varfx.stages.precompute_dask import KILL_ENV

from _data import precomputed_subset, without_windows

try:
    import distributed  # noqa: F401

    HAVE_DASK = True
except ImportError:  # pragma: no cover - CI installs it with the test extra
    HAVE_DASK = False

needs_dask = pytest.mark.skipif(not HAVE_DASK, reason="dask.distributed is not installed (varfx[dask])")

# small windows: about a dozen of them, so that two workers share the work and a kill
# lands while others are in flight
OPTS = ["--window-kb", 100, "--flank-kb", 100]


def invoke(args, **kw):
    return CliRunner().invoke(cli, [str(a) for a in args], **kw)


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    """An ingested dataset of ~500 chr22 SNPs and its single-process windows.h5."""
    ds, summary = precomputed_subset(tmp_path_factory.mktemp("dask"), 500, OPTS)
    assert summary["windows"] >= 6
    return ds


def fresh(ds, tmp_path) -> Path:
    return without_windows(ds, tmp_path, "ds")


def h5_contents(path) -> dict:
    """Every attribute and every array of an HDF5 file, by name."""
    out = {}
    with h5py.File(path, "r") as h5:
        def visit(name, obj):
            out[name + "/@"] = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in obj.attrs.items()}
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()]

        visit("", h5)
        h5.visititems(visit)
    return out


def assert_same_store(a, b):
    ca, cb = h5_contents(a), h5_contents(b)
    assert sorted(ca) == sorted(cb)
    for k in ca:
        if isinstance(ca[k], np.ndarray):
            # exact: the same code on the same data, one BLAS thread in both
            assert ca[k].dtype == cb[k].dtype and np.array_equal(ca[k], cb[k]), k
        else:
            assert ca[k] == cb[k], k


@needs_dask
def test_local_cluster_of_two_gives_the_single_process_store(ref, tmp_path):
    ds = fresh(ref, tmp_path)
    r = invoke(["precompute-ld", ds, *OPTS, "--dask-scheduler", "local:2", "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["dask_scheduler"] == "local:2" and summary["dask_workers"] == 2
    assert summary["resumed_windows"] == 0 and not summary["up_to_date"]
    assert_same_store(ds / "windows.h5", ref / "windows.h5")
    assert not (ds / "windows.parts").exists()
    # a re-run reuses the store without connecting anywhere
    r = invoke(["precompute-ld", ds, *OPTS, "--dask-scheduler", "local:2", "--json"])
    assert r.exit_code == 0, r.output
    again = json.loads(r.stdout)
    assert again["up_to_date"] and again["dask_workers"] is None


@needs_dask
def test_local_cluster_of_two_writes_the_shards_of_the_single_process_store(ref, tmp_path):
    """--shards chrom: the parent commits the shard as the windows come back; every
    window group (arrays and attributes) is the single-process store's."""
    ds = fresh(ref, tmp_path)
    r = invoke(["precompute-ld", ds, *OPTS, "--dask-scheduler", "local:2", "--shards", "chrom", "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["shards"] == "chrom" and summary["shards_written"] == [22] and summary["dask_workers"] == 2
    shard = h5_contents(ds / "windows.shards" / "chr22.h5")
    single = h5_contents(ref / "windows.h5")
    windows = sorted(k for k in single if k.startswith("windows/"))
    assert windows and sorted(k for k in shard if k.startswith("windows/")) == windows
    for k in windows:
        if isinstance(single[k], np.ndarray):
            assert single[k].dtype == shard[k].dtype and np.array_equal(single[k], shard[k]), k
        else:
            assert single[k] == shard[k], k
    assert not (ds / "windows.parts").exists()


@needs_dask
def test_worker_killed_mid_window_loses_nothing(ref, tmp_path, monkeypatch):
    """Window 2's first worker SIGKILLs itself with its part file half-written; the
    scheduler runs the window again on the restarted worker and the store is whole."""
    ds = fresh(ref, tmp_path)
    marker = tmp_path / "killed-once"
    monkeypatch.setenv(KILL_ENV, f"2:{marker}")
    r = invoke(["precompute-ld", ds, *OPTS, "--dask-scheduler", "local:2", "--json"])
    assert r.exit_code == 0, r.output
    assert marker.exists()  # the kill did happen
    assert_same_store(ds / "windows.h5", ref / "windows.h5")
    assert not (ds / "windows.parts").exists()


@needs_dask
def test_window_that_keeps_killing_workers_then_rerun_completes(ref, tmp_path, monkeypatch):
    """Every worker that runs window 2 dies: the run stops with one line, keeps the
    finished parts (and never a windows.h5); the re-run computes only the rest."""
    import dask

    ds = fresh(ref, tmp_path)
    monkeypatch.setenv(KILL_ENV, "2")
    # the scheduler lives in this process (LocalCluster): give up after the 2nd death
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        r = invoke(["precompute-ld", ds, *OPTS, "--dask-scheduler", "local:2"])
    assert r.exit_code == 1, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "killed every Dask worker" in lines[0] and "re-run" in lines[0], r.output
    assert not (ds / "windows.h5").exists()
    parts = ds / "windows.parts"
    done = sorted(p.name for p in parts.glob("w*.h5"))
    assert done and "w000002.h5" not in done
    # the killed writes left their half-written temp files, which nothing reads
    assert list(parts.glob(".w000002.h5.*.tmp"))
    for name in done:  # every part kept is whole
        with h5py.File(parts / name, "r") as h5:
            assert h5["window"]["G"].shape[1] == h5["window"].attrs["k"]
    monkeypatch.delenv(KILL_ENV)
    r = invoke(["precompute-ld", ds, *OPTS, "--dask-scheduler", "local:2", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["resumed_windows"] == len(done)
    assert_same_store(ds / "windows.h5", ref / "windows.h5")


@needs_dask
def test_unreachable_scheduler_is_one_line(ref, tmp_path):
    ds = fresh(ref, tmp_path)
    # a real process: stderr exactly as a user sees it (no distributed log lines)
    r = subprocess.run([sys.executable, "-m", "varfx", "precompute-ld", str(ds), *map(str, OPTS),
                        "--dask-scheduler", "tcp://127.0.0.1:9"],
                       capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach a Dask scheduler at 'tcp://127.0.0.1:9'" in lines[0], r.stderr
    assert not (ds / "windows.h5").exists() and not (ds / "windows.parts").exists()


@pytest.mark.parametrize("args, needle", [
    (["--dask-scheduler", "local:0"], "expected local:N with N >= 1"),
    (["--dask-scheduler", "local:two"], "expected local:N with N >= 1"),
    (["--dask-scheduler", ""], "expected a scheduler address"),
    (["--dask-scheduler", "local:2", "--workers", 2], "not with --dask-scheduler"),
])
@needs_dask
def test_bad_dask_options_are_one_line(ref, tmp_path, args, needle):
    ds = fresh(ref, tmp_path)
    r = invoke(["precompute-ld", ds, *OPTS, *args])
    assert r.exit_code == 1, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.output
    assert not (ds / "windows.parts").exists()


def test_without_dask_the_option_names_the_extra_and_workers_still_work(ref, tmp_path, monkeypatch):
    # None in sys.modules makes `import distributed` raise ImportError, as when absent
    monkeypatch.setitem(sys.modules, "distributed", None)
    ds = fresh(ref, tmp_path)
    r = invoke(["precompute-ld", ds, *OPTS, "--dask-scheduler", "local:2"])
    assert r.exit_code == 1, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and 'pip install "varfx[dask]"' in lines[0], r.output
    r = invoke(["precompute-ld", ds, *OPTS, "--workers", 2, "--json"])
    assert r.exit_code == 0, r.output
    assert_same_store(ds / "windows.h5", ref / "windows.h5")


@needs_dask
@pytest.mark.slow
def test_benchmark_runs_and_fits_its_power_law(tmp_path):
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, str(root / "benchmarks" / "precompute.py"), "--json", "--sizes", "150,300,600",
                        "--repeats", "1", "--window-kb", "1500", "--flank-kb", "50", "--workdir", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    recs = {rec["task"]: rec for rec in json.loads(r.stdout)}
    costs = [rec for rec in json.loads(r.stdout) if rec["task"] == "window-cost"]
    assert [c["n_plus"] for c in costs] == [150, 300, 600] and all(c["seconds"] > 0 for c in costs)
    fit = recs["window-cost-fit"]
    # the fitted law reproduces each point within the residual it reports
    for c in costs:
        assert abs(fit["a"] * c["n_plus"] ** fit["b"] / c["seconds"] - 1) <= fit["max_rel_residual"] + 1e-9
    sp = recs["dask-speedup"]
    assert sp["windows"] > 2
    assert sp["speedup_2_over_1"] == pytest.approx(sp["dask_1_s"] / sp["dask_2_s"])


@needs_dask
def test_scheduler_without_workers_is_one_error_after_the_wait(ref, tmp_path, monkeypatch):
    import logging

    from varfx.stages import precompute_dask

    monkeypatch.setattr(precompute_dask, "WORKER_WAIT_S", 1)
    ds = fresh(ref, tmp_path)
    with distributed.LocalCluster(n_workers=0, dashboard_address=None, silence_logs=logging.ERROR) as cluster:
        r = invoke(["precompute-ld", ds, *OPTS, "--dask-scheduler", cluster.scheduler_address])
    assert r.exit_code == 1, r.output
    assert "has no worker (none joined within 1 s)" in r.output.strip().splitlines()[-1], r.output
    assert not (ds / "windows.h5").exists()


def test_worker_refuses_a_dataset_it_cannot_see_or_another_one(ref, tmp_path):
    """What a worker on another host checks before computing (here called in-process)."""
    import h5py as _h5py

    from varfx.errors import UserError
    from varfx.stages import precompute, precompute_dask

    with _h5py.File(ref / "dataset.h5", "r") as h5:
        good = {"n_variants": int(h5["variants"]["bp"].shape[0]), "created": str(h5.attrs.get("created", ""))}
    try:
        with pytest.raises(UserError, match="must be on a filesystem every worker sees"):
            precompute_dask._open_dataset(tmp_path / "elsewhere", good)
        with pytest.raises(UserError, match="another dataset.h5 than the one planned"):
            precompute_dask._open_dataset(ref, {**good, "created": "another ingest"})
        precompute_dask._open_dataset(ref, good)  # the right one opens
        assert precompute._worker_state["beta"].shape == (good["n_variants"],)
    finally:
        if "h5" in precompute._worker_state:
            precompute._worker_state["h5"].close()
        precompute._worker_state.clear()
        precompute_dask._opened.clear()
