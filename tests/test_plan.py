"""``varfx plan`` and ``--dry-run``: the planned windows are precompute-ld's, the costs
are close to what the stages then measure, and nothing is written."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pytest
from _cli import invoke, ok
from _data import write_subset
from _train import tree

from varfx.linalg import costs

# 3,000 chr22 SNPs in windows of a few thousand variants (n+ up to ~2,300): the largest
# window takes a few tenths of a second, long enough to time against the plan
OPTS = ["--window-kb", "2000", "--flank-kb", "500"]


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """A dataset, its plan before precompute-ld (with the calibration saved), and the
    precompute-ld summary after."""
    d = tmp_path_factory.mktemp("plan")
    prefix, ss = write_subset(d / "in", 2000, 3000)
    ds = d / "ds"
    ok(["ingest", "--sumstats", ss, "--ld", prefix, "-o", ds, "--json"])
    bare = d / "bare"  # a copy that stays without windows.h5
    shutil.copytree(ds, bare)
    cal = d / "cal.json"
    before = json.loads(ok(["plan", ds, *OPTS, "--save-calibration", cal, "--json"]).stdout)
    summary = json.loads(ok(["precompute-ld", ds, *OPTS, "--json"]).stdout)
    return {"ds": ds, "bare": bare, "cal": cal, "before": before, "summary": summary, "dir": d}


def test_plan_windows_are_precompute_lds(planned):
    from varfx.stages.plan import window_plan
    from varfx.store.windows import open_windows

    p, s = planned["before"]["precompute_ld"], planned["summary"]
    assert p["k_source"] == "estimated"
    assert p["windows"] == s["windows"] and p["max_n_plus"] == s["max_n_plus"]
    assert p["mean_n_plus"] == pytest.approx(s["mean_n_plus"], rel=1e-12)
    wp = window_plan(planned["bare"], window_kb=2000, flank_kb=500)
    h5, attrs = open_windows(planned["ds"])
    h5.close()
    assert np.array_equal(wp["n_plus"], attrs["index"]["n_plus"])
    assert np.array_equal(wp["n"], attrs["index"]["n"])
    # the estimated rank: the LD correction's cap (frac x min(378 people, the core size)),
    # scaled by the share of it the eigenvalue floor keeps on the sampled windows
    from varfx.linalg.correction import DEFAULT_MAX_RANK_FRAC as frac
    from varfx.stages.plan import floor_share

    n, k = attrs["index"]["n"], attrs["index"]["k"]
    cap = np.minimum(n, np.minimum(int(frac * 378), np.maximum(1, np.floor(frac * n).astype(int))))
    share = floor_share(planned["bare"], _specs(planned["bare"]), cap, 1.0)
    assert 0 < share < 1
    np.testing.assert_array_equal(wp["k"], np.maximum(1, np.round(share * cap)).astype(int))
    # every window is sampled here (4 of at most 5): the estimate's total is the store's
    # up to the rounding of one mean share (measured 332 against 341)
    assert np.all(k <= cap) and abs(wp["k"].sum() / k.sum() - 1) < 0.1, (wp["k"], k)
    # a core represented by its middle part (large windows): the count scaled to the
    # core's size keeps the share within a quarter of the whole core's (measured 0.728 against 0.733)
    part = floor_share(planned["bare"], _specs(planned["bare"]), cap, 1.0, max_core=int(n.max()) // 3)
    assert abs(part / share - 1) < 0.25, (part, share)
    # with the store present, its ranks are used
    after = json.loads(ok(["plan", planned["ds"], *OPTS, "--calibration", planned["cal"], "--json"]).stdout)
    assert after["precompute_ld"]["k_source"] == "windows.h5"
    assert after["precompute_ld"]["mean_k"] == pytest.approx(s["mean_k"])


def test_disk_estimate_within_30_percent(planned):
    real = (planned["ds"] / "windows.h5").stat().st_size
    est = planned["before"]["precompute_ld"]["disk_bytes"]
    assert abs(est / real - 1) < 0.3, (est, real)
    after = json.loads(ok(["plan", planned["ds"], *OPTS, "--calibration", planned["cal"], "--json"]).stdout)
    assert after["precompute_ld"]["actual_disk_bytes"] == real
    assert abs(after["precompute_ld"]["disk_bytes"] / real - 1) < 0.3


def _specs(ds):
    import h5py

    from varfx.store.windows import plan_windows

    with h5py.File(ds / "dataset.h5", "r") as h5:
        chrom = h5["variants"]["chrom"][:].astype(np.int64)
        bp = h5["variants"]["bp"][:].astype(np.int64)
    return plan_windows(chrom, bp, 2_000_000, 500_000)


def _largest_spec(ds):
    import h5py

    with h5py.File(ds / "dataset.h5", "r") as h5:
        n_ref = int(h5.attrs["n_ref"])
    return max(_specs(ds), key=lambda s: len(s.plus_idx)), n_ref


@pytest.mark.slow
def test_largest_window_time_within_factor_3(planned, tmp_path):
    """The plan's seconds for the largest window against that window computed as a
    precompute-ld worker computes it (the same process, the minimum of three)."""
    from varfx.stages import precompute as pc

    spec, n_ref = _largest_spec(planned["bare"])
    corr = pc.resolve_correction("auto", n_ref, len(spec.plus_idx))
    trunc = pc.truncation_of(corr)
    pc._worker_init(str(planned["bare"]))
    try:
        pc._compute_window(spec, 1e-3, str(tmp_path), n_ref, trunc)  # warm-up
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            pc._compute_window(spec, 1e-3, str(tmp_path), n_ref, trunc)
            times.append(time.perf_counter() - t0)
    finally:
        pc._worker_state.pop("h5").close()
    # timed afresh next to the measurement, so that both see the same load
    plan = json.loads(ok(["plan", planned["bare"], *OPTS, "--json"]).stdout)["precompute_ld"]
    lw = plan["largest_window"]
    assert lw["n_plus"] == len(spec.plus_idx)
    ratio = lw["seconds"] / min(times)
    assert 1 / 3 < ratio < 3, (lw, times)


def test_window_memory_estimate_against_tracemalloc(planned, tmp_path):
    """The peak memory of the largest window (numpy and LAPACK workspaces are numpy
    arrays, which tracemalloc sees) within a factor 2 of the model."""
    from varfx.stages import precompute as pc

    spec, n_ref = _largest_spec(planned["bare"])
    pc._worker_init(str(planned["bare"]))
    try:
        tracemalloc.start()
        pc._compute_window(spec, 1e-3, str(tmp_path), n_ref, None)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    finally:
        pc._worker_state.pop("h5").close()
    n_plus, n = len(spec.plus_idx), len(spec.core_idx)
    est = float(costs.window_memory_bytes(n_plus, n, min(n, n_ref - 1), n_ref))
    assert 0.5 < est / peak < 2, (est, peak)


def test_twice_the_variants_twice_the_windows(planned):
    base = planned["before"]
    M = base["dataset_variants"]
    r = json.loads(ok(["plan", planned["bare"], *OPTS, "--variants", 2 * M, "--workers", 4,
                       "--calibration", planned["cal"], "--json"]).stdout)
    p, b = r["precompute_ld"], base["precompute_ld"]
    assert r["variants"] == 2 * M and r["scale"] == pytest.approx(2.0)
    assert p["windows"] == 2 * b["windows"]
    assert p["max_n_plus"] == b["max_n_plus"] and p["mean_n_plus"] == b["mean_n_plus"]  # same density
    # the costs that add up double (the calibration file: no timing noise between runs)
    assert p["cpu_seconds"] == pytest.approx(2 * b["cpu_seconds"], rel=1e-9)
    assert p["commit_seconds"] == pytest.approx(2 * b["commit_seconds"], rel=1e-9)
    assert (p["disk_bytes"] - 64 * 1024) == pytest.approx(2 * (b["disk_bytes"] - 64 * 1024), rel=1e-9)
    assert p["memory_per_worker_bytes"] == b["memory_per_worker_bytes"]
    # 4 workers: at least a quarter of the CPU time, at most a quarter plus the longest window
    lo = p["cpu_seconds"] / 4
    assert lo <= p["compute_seconds"] <= lo + p["largest_window"]["seconds"] + 1e-12
    f, fb = r["fit"][0], base["fit"][0]
    assert f["train_windows"] == 2 * fb["train_windows"]
    assert f["engine_seconds_per_pass"] == pytest.approx(2 * fb["engine_seconds_per_pass"], rel=1e-9)
    # the prior's fixed cost per step does not double (one full-batch step either way)
    assert f["seconds_per_pass"] == pytest.approx(2 * fb["seconds_per_pass"], rel=0.05)
    # 3 GPUs at 10x: 30 times less per pass than one CPU process
    g = json.loads(ok(["plan", planned["bare"], *OPTS, "--gpus", 3, "--calibration", planned["cal"],
                       "--json"]).stdout)["fit"][0]
    assert g["device"] == "cuda" and g["engine_seconds_per_pass"] == pytest.approx(fb["engine_seconds_per_pass"])
    assert g["seconds"] == pytest.approx(g["cpu_seconds_per_pass"] * g["passes"] / 30, rel=1e-9)
    # each rank pays the prior's fixed cost of a step: a little more CPU than one process
    assert fb["cpu_seconds_per_pass"] <= g["cpu_seconds_per_pass"] <= 1.2 * fb["cpu_seconds_per_pass"]


def test_fit_plan_counts(planned):
    """The fit entry: the constant prior fits by L-BFGS on every window with k > 0 (one
    chromosome: nothing held out), the memory of windows in memory as fit counts it."""
    from varfx.store.windows import load_windows

    f = planned["before"]["fit"][0]
    windows, _ = load_windows(planned["ds"], meta_only=True)
    live = [w for w in windows if w.k > 0]
    assert f["optimizer"] == "lbfgs" and f["passes"] == costs.LBFGS_PASSES and f["parameters"] == 1
    assert f["train_windows"] == len(live) == f["windows_per_step"]
    # the estimated k against the stored k (the eigenvalue floor's share is estimated
    # from sampled windows: docs/scale.md)
    stored_mem = sum(8 * (w.n_plus * w.k + w.k * w.n) for w in live)
    assert abs(f["memory_bytes"]["windows"] / stored_mem - 1) < 0.3
    assert f["seconds"] == pytest.approx(f["seconds_per_pass"] * f["passes"])
    assert set(planned["before"]) >= {"precompute_ld", "fit", "evaluate", "score", "calibration"}


def test_plan_follows_eig_floor(planned):
    """``--eig-floor 0`` (the cap alone) is priced as such by ``varfx plan`` and by
    ``precompute-ld --dry-run``: the cap's larger k; a bad value is a usage error (and a
    UserError from the API)."""
    ds = planned["bare"]
    default = json.loads(ok(["plan", ds, *OPTS, "--calibration", planned["cal"], "--json"]).stdout)["precompute_ld"]
    off = json.loads(ok(["plan", ds, *OPTS, "--eig-floor", 0, "--calibration", planned["cal"], "--json"]).stdout)
    off = off["precompute_ld"]
    assert off["ld_correction"] == default["ld_correction"] == "rank"
    assert off["mean_k"] > default["mean_k"]  # the cap alone keeps more
    dry = json.loads(ok(["precompute-ld", ds, *OPTS, "--eig-floor", 0, "--dry-run"]).stdout)
    assert dry["mean_k"] == off["mean_k"]
    r = invoke(["plan", ds, "--eig-floor", "-1"])
    assert r.exit_code == 2 and "--eig-floor" in r.output
    from varfx.errors import UserError
    from varfx.stages.plan import run_plan

    with pytest.raises(UserError, match="--eig-floor"):
        run_plan(ds, eig_floor=float("nan"), stages=("precompute-ld",))


def test_precompute_dry_run_writes_nothing(planned):
    ds = planned["bare"]
    before = tree(ds)
    r = ok(["precompute-ld", ds, *OPTS, "--workers", 2, "--dry-run"])
    plan = json.loads(r.stdout)
    assert tree(ds) == before
    assert plan["dry_run"] and plan["stage"] == "precompute-ld" and not plan["existing_store"]
    assert plan["windows"] == planned["summary"]["windows"] and plan["workers"] == 2
    # the same numbers as varfx plan's (the deterministic ones; the times are measured afresh)
    ref = planned["before"]["precompute_ld"]
    for key in ("windows", "max_n_plus", "max_n", "max_k", "mean_k", "memory_per_worker_bytes"):
        assert plan[key] == ref[key], key
    local = json.loads(ok(["precompute-ld", ds, *OPTS, "--dask-scheduler", "local:3", "--dry-run"]).stdout)
    assert local["workers"] == 3 and tree(ds) == before


def test_fit_dry_run_writes_nothing_and_has_the_plan(planned):
    ds, out = planned["ds"], planned["dir"] / "model"
    before = tree(planned["dir"])
    r = ok(["fit", ds, "--alpha", 0, "--sigma2", 1, "--dry-run", "-o", out])
    assert tree(planned["dir"]) == before and not out.exists()
    got = json.loads(r.stdout)["plan"]
    ref = json.loads(ok(["plan", ds, *OPTS, "--calibration", planned["cal"], "--json"]).stdout)["fit"][0]
    for key in ("optimizer", "passes", "train_windows", "windows_per_step", "parameters"):
        assert got[key] == ref[key], key
    assert got["memory_bytes"]["windows"] == ref["memory_bytes"]["windows"]  # the store's k in both
    assert got["seconds_per_pass"] > 0


def test_evaluate_and_score_dry_runs_price_the_model_and_write_nothing(planned):
    """``evaluate --dry-run`` and ``score --dry-run``: the model's prior as model.json
    records it, the store's windows; nothing written (score's OUT not created)."""
    from varfx.store.windows import load_windows

    ds, model = planned["ds"], planned["dir"] / "dry-model"
    ok(["fit", ds, "--prior", "constant", "--alpha", 0, "--sigma2", 1, "-o", model])
    before = tree(planned["dir"])
    ev = json.loads(ok(["evaluate", model, ds, "--chroms", "all", "--dry-run"]).stdout)
    live = [w for w in load_windows(ds, meta_only=True)[0] if w.k > 0]
    assert ev["dry_run"] and ev["stage"] == "evaluate" and len(ev["models"]) == 1
    row = ev["models"][0]
    assert row["prior"] == "constant" and row["objective"] == "full" and row["val_windows"] == len(live)
    assert row["seconds"] > 0 and ev["window_kb"] == 2000 and ev["flank_kb"] == 500  # the store's own
    # the model held nothing out (one chromosome): nothing to evaluate by default
    assert json.loads(ok(["evaluate", model, ds, "--dry-run"]).stdout)["models"][0]["val_windows"] == 0
    out = planned["dir"] / "scores.tsv"
    sc = json.loads(ok(["score", model, ds, "-o", out, "--dry-run"]).stdout)
    assert sc["stage"] == "score" and sc["models"][0]["variants"] == planned["before"]["dataset_variants"]
    assert sc["models"][0]["disk_bytes"] > 0
    assert tree(planned["dir"]) == before and not out.exists()
    r = invoke(["evaluate", model, planned["bare"], "--dry-run"])
    assert r.exit_code == 1 and "windows.h5" in r.output and "Traceback" not in r.output
    # a model trained on bags is not priced: one line naming it (its model.json alone is read)
    bagged = planned["dir"] / "bag-model"
    shutil.copytree(model, bagged)
    meta = json.loads((bagged / "model.json").read_text())
    meta["objective"] = {"name": "mil", "options": {}}
    (bagged / "model.json").write_text(json.dumps(meta))
    r = invoke(["score", bagged, ds, "-o", out, "--dry-run"])
    assert r.exit_code == 1 and "trained on bags" in r.output and "bag-model" in r.output and not out.exists()


def test_calibration_from_benchmark_json(planned, tmp_path):
    """benchmarks/precompute.py --json records as the calibration: a window's seconds
    interpolated in log-log between the measured sizes, n^3 beyond the largest."""
    records = [{"task": "window-cost", "n_plus": 1000, "n_core": 333, "k": 37, "seconds": 0.1},
               {"task": "window-cost", "n_plus": 2000, "n_core": 666, "k": 37, "seconds": 0.8},
               {"task": "window-cost-fit", "a": 1.0, "b": 3.0}]
    f = tmp_path / "bench.json"
    f.write_text(json.dumps(records))
    r = json.loads(ok(["plan", planned["bare"], *OPTS, "--calibration", f, "--json"]).stdout)
    lw = r["precompute_ld"]["largest_window"]
    assert r["calibration"]["source"] == "benchmarks/precompute.py"
    # 0.1 s at 1000 and 0.8 s at 2000: slope 3 in log-log between them and beyond
    assert lw["seconds"] == pytest.approx(0.1 * (lw["n_plus"] / 1000) ** 3, rel=1e-9)


def test_cost_laws_against_direct_computation():
    sizes = [128, 256, 512, 1024]
    secs = [2e-9 * s ** 2.7 for s in sizes]
    fit = costs.fit_power_law(sizes, secs)
    assert fit["a"] == pytest.approx(2e-9, rel=1e-9) and fit["b"] == pytest.approx(2.7, rel=1e-12)
    assert fit["max_rel_residual"] < 1e-9
    c = costs.Curve(sizes, secs)
    assert c(700) == pytest.approx(2e-9 * 700 ** 2.7, rel=1e-9)  # on the law between the points
    assert c(4096) == pytest.approx(secs[-1] * 4 ** 3, rel=1e-9)  # n^3 beyond the largest
    assert c(64) == pytest.approx(2e-9 * 64 ** 2.7, rel=1e-9)  # the fitted slope below
    # the greedy longest-first schedule against every assignment of 6 tasks to 2 workers
    tasks = [5.0, 4.0, 3.0, 3.0, 2.0, 2.0]
    best = min(max(sum(t for t, b in zip(tasks, bits) if b), sum(t for t, b in zip(tasks, bits) if not b))
               for bits in np.ndindex(*(2,) * len(tasks)))
    got = costs.makespan(tasks, 2)
    assert best <= got <= best * 4 / 3 and got == 10.0 == best
    assert costs.makespan(tasks, 1) == sum(tasks) and costs.makespan(tasks, 100) == 5.0
    # the engine's law: full's work is 2 n+ k^2 + k^3/3 (docs/math.md)
    assert costs.step_work("full", 3000, 1000, 300) == 2 * 3000 * 300 ** 2 + 300 ** 3 / 3


@pytest.mark.parametrize("args, code, words", [
    (["plan", "{missing}"], 1, ["missing", "not a dataset"]),
    (["plan", "{ds}", "--workers", "0"], 2, ["--workers"]),
    (["plan", "{ds}", "--variants", "-5"], 2, ["--variants"]),
    (["plan", "{ds}", "--variants", "nan"], 2, ["--variants"]),
    (["plan", "{ds}", "--gpus", "-1"], 2, ["--gpus"]),
    (["plan", "{ds}", "--gpu-speedup", "0"], 2, ["--gpu-speedup"]),
    (["plan", "{ds}", "--gpus", "2", "--processes", "4"], 1, ["--processes 4", "--gpus 2"]),
    (["plan", "{ds}", "--window-kb", "0"], 2, ["--window-kb"]),
    (["plan", "{ds}", "--calibration", "{garbled}"], 1, ["garbled.json", "JSON"]),
    (["plan", "{ds}", "--calibration", "{wrong}"], 1, ["wrong.json", "calibration"]),
    (["plan", "{ds}", "--calibration", "{missing}"], 1, ["missing", "calibration"]),
    (["plan", "{ds}", "--prior", "nosuchprior"], 1, ["nosuchprior"]),
    (["plan", "{ds}", "--prior", "constant:nosuch=1"], 1, ["nosuch"]),
    (["plan", "{ds}", "--objective", "mil"], 1, ["--objective mil", "bags"]),
    (["plan", "{ds}", "--calibration", "{cal}", "--save-calibration", "{garbled}/cal.json"], 1, ["garbled.json"]),
    (["precompute-ld", "{ds}", "--dry-run", "--dask-scheduler", "local:0"], 1, ["local:0"]),
])
def test_bad_inputs(planned, tmp_path, args, code, words):
    (tmp_path / "garbled.json").write_text("{not json")
    (tmp_path / "wrong.json").write_text(json.dumps({"format": "something-else"}))
    subs = {"ds": planned["bare"], "missing": tmp_path / "missing", "garbled": tmp_path / "garbled.json",
            "wrong": tmp_path / "wrong.json", "cal": planned["cal"]}
    before = tree(planned["bare"])
    r = invoke([a.format(**subs) for a in args])
    assert r.exit_code == code, r.output
    assert "Traceback" not in r.output
    if code == 1:
        line = r.output.strip()
        assert line.startswith("Error:") and "\n" not in line, line
        for w in words:
            assert w in line, (w, line)
    else:
        for w in words:
            assert w in r.output, (w, r.output)
    assert tree(planned["bare"]) == before


def test_plan_help_does_not_import_torch():
    code = ("import sys, runpy\n"
            "sys.argv = ['varfx', 'plan', '--help']\n"
            "try:\n    runpy.run_module('varfx', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "print('HEAVY=' + ','.join(m for m in ('torch', 'h5py', 'scipy') if m in sys.modules), file=sys.stderr)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.stderr.rstrip().endswith("HEAVY="), res.stderr[-500:]
    assert "--variants" in res.stdout


def test_plan_table_on_stderr(planned):
    r = invoke(["plan", planned["bare"], *OPTS, "--calibration", planned["cal"]])
    assert r.exit_code == 0, r.output
    for word in ("precompute-ld", "fit constant/full", "score constant", "4 windows"):
        assert word in r.output


@pytest.mark.parametrize("edit, words", [
    (lambda c: c["engines"]["full"].update(gflops=0.0), ["engines.full.gflops", "> 0"]),
    (lambda c: c["eigh"]["seconds"].__setitem__(0, float("inf")), ["'eigh'", "finite positive"]),
    (lambda c: c.update(gzip_ratio=-1), ["gzip_ratio"]),
    (lambda c: c.update(format_version=99), ["format_version"]),
])
def test_calibration_with_bad_numbers_is_refused(planned, tmp_path, edit, words):
    cal = json.loads(planned["cal"].read_text())
    edit(cal)
    f = tmp_path / "edited.json"
    f.write_text(json.dumps(cal))
    r = invoke(["plan", planned["bare"], *OPTS, "--calibration", f, "--json"])
    assert r.exit_code == 1 and r.stdout == "", r.output
    line = r.output.strip()
    assert "\n" not in line and "edited.json" in line, line
    for w in words:
        assert w in line, (w, line)


def test_ukbb_reference_windows_and_ranks(planned, tmp_path, write_region):
    """A dataset on UKBB/PolyFun LD matrices (no panel size): the plan's windows are
    precompute-ld's, its k (the core size: no rank cap is known) errs high, and with the
    store present its ranks are read."""
    _, ss = write_subset(tmp_path / "in", 1000, 1200)
    write_region(tmp_path / "ukbb", range(1000, 2200))
    ds = tmp_path / "ds"
    ok(["ingest", "--sumstats", ss, "--ld", tmp_path / "ukbb", "-o", ds, "--json"])
    args = ["plan", ds, "--window-kb", 500, "--flank-kb", 250, "--calibration", planned["cal"], "--json"]
    before = json.loads(ok(args).stdout)["precompute_ld"]
    s = json.loads(ok(["precompute-ld", ds, "--window-kb", 500, "--flank-kb", 250, "--json"]).stdout)
    assert before["windows"] == s["windows"] and before["max_n_plus"] == s["max_n_plus"]
    assert before["ld_correction"] == "none" and before["max_k"] == before["max_n"]
    real = (ds / "windows.h5").stat().st_size
    assert before["disk_bytes"] >= 0.7 * real
    after = json.loads(ok(args).stdout)["precompute_ld"]
    assert after["k_source"] == "windows.h5" and after["mean_k"] == pytest.approx(s["mean_k"])
    assert abs(after["disk_bytes"] / real - 1) < 0.3, (after["disk_bytes"], real)


def test_commit_is_its_own_row_with_its_share(planned):
    """The one writer's commit: its share of precompute-ld at the given workers, and the
    worker count past which the windows are computed faster than it commits them."""
    def plan(workers, table=False):
        args = ["plan", planned["bare"], *OPTS, "--variants", 1e6, "--workers", workers,
                "--calibration", planned["cal"]]
        return ok(args) if table else json.loads(ok(args + ["--json"]).stdout)["precompute_ld"]

    one = plan(1)
    assert one["commit_share"] == pytest.approx(one["commit_seconds"] / one["seconds"], rel=1e-12)
    bound = one["writer_bound_workers"]
    assert bound == pytest.approx(one["cpu_seconds"] / one["commit_seconds"], rel=1e-12) and bound > 1
    below, above = plan(max(1, int(bound / 2))), plan(int(2 * bound) + 1)
    # below the bound the workers' compute outlasts the commit; above it, no longer (to
    # the longest window, which one worker computes alone)
    assert below["compute_seconds"] > below["commit_seconds"]
    assert above["compute_seconds"] <= above["commit_seconds"] + above["largest_window"]["seconds"]
    assert above["commit_share"] > below["commit_share"]
    r = plan(int(2 * bound) + 1, table=True)
    assert "of which: commit" in r.stderr and f"from {bound:,.0f} workers on" in r.stderr
