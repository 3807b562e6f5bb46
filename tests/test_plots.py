"""`varfx plot ...` and --plots: every figure is a valid, non-blank PNG, the numbers drawn
are checked against direct computations, and bad inputs are one-line errors that leave
nothing behind."""

from __future__ import annotations

import csv
import json
import math
import shutil
import struct
import subprocess
import sys

import h5py
import numpy as np
import pytest

from varfx.testing.data import two_chromosome_glm_simulation

from _cli import invoke, ok

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"



def fails(args, *words):
    """A one-line error (exit 1, no traceback) containing ``words``."""
    r = invoke(args)
    assert r.exit_code == 1, r.output
    err = r.stderr.strip()
    assert err.startswith("Error: ") and "\n" not in err and "Traceback" not in r.output, r.output
    for w in words:
        assert w in err, err
    return err


def check_png(path, min_w=400, min_h=300):
    """A PNG of sensible size whose pixels are not all one colour."""
    from matplotlib.image import imread

    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    w, h = struct.unpack(">II", data[16:24])  # the IHDR chunk: width, height
    assert min_w <= w <= 4000 and min_h <= h <= 6000, (w, h)
    img = imread(path)
    assert img.shape[:2] == (h, w)
    assert float(img[..., :3].std()) > 0.02  # drawn on, not a blank canvas
    assert not list(path.parent.glob(".*.tmp"))  # no temporary file left


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """A 2-chromosome GLM simulation (3000 variants, a bigWig and a BED track) with a GLM
    prior fitted by L-BFGS holding out chromosome 22, and a constant prior with alpha 0."""
    tmp = tmp_path_factory.mktemp("plots")
    sim, ds = two_chromosome_glm_simulation(tmp)
    ok(["fit", ds, "--prior", "glm", "--objective", "full", "--holdout-chroms", "22", "-o", tmp / "glm"])
    ok(["fit", ds, "--prior", "constant", "--objective", "full", "--alpha", "0", "--holdout-chroms", "22",
        "-o", tmp / "const"])
    return {"tmp": tmp, "sim": sim, "ds": ds, "glm": tmp / "glm", "const": tmp / "const",
            "truth": sim / "truth.tsv"}


@pytest.fixture(scope="module")
def scores(sim):
    """F of every dataset variant written by `varfx score` (an independent reader of the model)."""
    out = sim["tmp"] / "scores.tsv"
    ok(["score", sim["glm"], sim["ds"], "-o", out])
    with open(out) as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return {"snp": np.array([r["SNP"] for r in rows]), "chrom": np.array([int(r["CHR"]) for r in rows]),
            "bp": np.array([int(r["BP"]) for r in rows]), "F": np.array([float(r["F"]) for r in rows])}


def read_truth(path):
    with open(path) as fh:
        return {r["SNP"]: float(r["F"]) for r in csv.DictReader(fh, delimiter="\t")}


# ------------------------------------------------------------------------------ imports


def test_help_does_not_import_matplotlib():
    code = ("import sys, runpy\nsys.argv = ['varfx'] + sys.argv[1:]\n"
            "try:\n    runpy.run_module('varfx', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('matplotlib', 'torch', 'h5py', 'scipy') if m in sys.modules]\n"
            "print('HEAVY=' + ','.join(heavy), file=sys.stderr)\n")
    for args in (["--help"], ["plot", "--help"], ["plot", "region", "--help"]):
        res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
        assert res.stderr.rstrip().endswith("HEAVY="), (args, res.stderr[-500:])


# ------------------------------------------------------------------------------ curves


def test_fit_plots_curves_with_validation_and_best_epoch(sim, tmp_path):
    model, plots = tmp_path / "adam", tmp_path / "figs"
    r = ok(["fit", sim["ds"], "--prior", "glm", "--objective", "full", "--holdout-chroms", "22", "--epochs", 3,
            "--patience", 2, "-o", model, "--plots", plots])
    assert f"wrote {plots / 'curves.png'}" in r.stderr
    check_png(plots / "curves.png")
    from varfx.plots import plot_curves

    meta = json.loads((model / "model.json").read_text())
    d = plot_curves(model, tmp_path / "again").data
    assert d["x_label"] == "epoch" and d["x"].tolist() == [1, 2, 3]
    assert np.array_equal(d["train_loss"], [r["train_loss"] for r in meta["curve"]])
    assert np.array_equal(d["val_loss"], [r["val_loss"] for r in meta["curve"]])
    assert d["best_epoch"] == meta["best_epoch"] and 1 <= d["best_epoch"] <= 3


def test_plot_curves_lbfgs_and_train_only(sim, tmp_path):
    r = ok(["plot", "curves", sim["glm"], "-o", tmp_path / "a"])
    assert r.stdout.strip() == f"wrote {tmp_path / 'a' / 'curves.png'}"
    check_png(tmp_path / "a" / "curves.png")
    from varfx.plots import plot_curves

    meta = json.loads((sim["glm"] / "model.json").read_text())
    d = plot_curves(sim["glm"], tmp_path / "a").data
    assert d["x_label"] == "iteration" and d["best_epoch"] is None
    assert d["x"].tolist() == [r["iteration"] for r in meta["curve"]]
    # a model without validation windows: the val curve is all NaN (not drawn)
    model = tmp_path / "noval"
    shutil.copytree(sim["glm"], model)
    meta["curve"] = [{"epoch": i + 1, "train_loss": v} for i, v in enumerate([3.0, 2.0, 1.5])]
    (model / "model.json").write_text(json.dumps(meta))
    d = plot_curves(model, tmp_path / "b").data
    assert np.isnan(d["val_loss"]).all() and d["train_loss"].tolist() == [3.0, 2.0, 1.5]
    check_png(tmp_path / "b" / "curves.png")


@pytest.mark.parametrize("curve, words", [([], ["no loss curve"]), (None, ["no loss curve"]),
                                          ([{"epoch": 1, "train_loss": float("nan")}], ["train_loss", "finite"]),
                                          ([{"epoch": 1, "train_loss": 1.0, "val_loss": "x"}], ["val_loss"])])
def test_plot_curves_bad_model(sim, tmp_path, curve, words):
    model = tmp_path / "m"
    shutil.copytree(sim["glm"], model)
    meta = json.loads((model / "model.json").read_text())
    if curve is None:
        del meta["curve"]
    else:
        meta["curve"] = curve
    (model / "model.json").write_text(json.dumps(meta))
    fails(["plot", "curves", model, "-o", tmp_path / "out"], "model.json", *words)
    assert not (tmp_path / "out").exists()  # no directory made for a figure that was not drawn
    fails(["plot", "curves", tmp_path / "nowhere", "-o", tmp_path / "out"], "model.json")


# ------------------------------------------------------------------------------ truth


def test_plot_truth_rmse_against_direct_computation(sim, scores, tmp_path):
    r = ok(["plot", "truth", sim["glm"], sim["ds"], "--truth", sim["truth"], "-o", tmp_path])
    assert r.stdout.strip() == f"wrote {tmp_path / 'truth.png'}"
    check_png(tmp_path / "truth.png")
    from varfx.plots import plot_truth

    d = plot_truth(sim["glm"], sim["ds"], sim["truth"], tmp_path).data
    truth = read_truth(sim["truth"])
    # the model held out chromosome 22: the default is its variants, as for evaluate
    on = scores["chrom"] == 22
    t = np.log([truth[s] for s in scores["snp"][on]])
    p = np.log(scores["F"][on])
    direct = float(np.sqrt(np.mean((t - p) ** 2)))
    assert d["chroms"] == [22] and d["n"] == int(on.sum())
    # `varfx score` writes F with 7 significant digits: |log error| <= 5e-7
    assert abs(d["rmse"] - direct) < 2e-6
    d_all = plot_truth(sim["glm"], sim["ds"], sim["truth"], tmp_path, chroms="all").data
    assert d_all["n"] == len(scores["snp"]) and d_all["chroms"] == [21, 22]


def test_truth_and_ldsr_plots_follow_holdout_regions(sim, scores, tmp_path):
    """A model fitted with --holdout-region (no held-out chromosome): the default plots
    cover its held-out variants (those inside the region), not the whole chromosome, and
    the truth plot's RMSE is then `varfx evaluate`'s rmse_log_f on the same variants."""
    on22 = np.sort(scores["bp"][scores["chrom"] == 22])
    # a region starting at a 1-Mb window boundary inside chr22 (windows are 1-Mb bins from 0):
    # the windows fit holds out are then exactly the variants inside it
    start = int(np.median(on22) // 1_000_000 * 1_000_000)
    region = f"22:{start}-"
    model = tmp_path / "glm_region"
    ok(["fit", sim["ds"], "--prior", "glm", "--objective", "full", "--holdout-chroms", "none",
        "--holdout-region", region, "-o", model])
    figs = tmp_path / "figs"
    r = ok(["evaluate", model, sim["ds"], "--truth", sim["truth"], "--json", "--plots", figs])
    result = json.loads(r.stdout)
    check_png(figs / "truth.png")
    from varfx.plots import ldsr_bins, plot_truth

    d = plot_truth(model, sim["ds"], sim["truth"], tmp_path / "x").data
    inside = (scores["chrom"] == 22) & (scores["bp"] >= start)
    assert 0 < inside.sum() < (scores["chrom"] == 22).sum()  # the region is part of chr22 only
    assert d["n"] == int(inside.sum()) == result["n_truth"] and d["regions"] == [region] and d["chroms"] == [22]
    assert set(d["snp"]) == set(scores["snp"][inside])
    assert d["rmse"] == pytest.approx(result["rmse_log_f"], rel=1e-12)
    # the work-around of before (every variant of the chromosome) is still there on request
    whole = plot_truth(model, sim["ds"], sim["truth"], tmp_path / "y", chroms=[22]).data
    assert whole["n"] == int((scores["chrom"] == 22).sum()) and whole["regions"] == []
    # the LDSR plot's default: the windows fit held out, the same variants
    lb = ldsr_bins(sim["ds"], model_dir=model, chroms=None)
    assert lb["chroms"] == [22] and lb["n_variants"] == int(inside.sum())
    assert set(scores["snp"][lb["index"]]) == set(scores["snp"][inside])


def test_plot_truth_other_column_and_bad_truths(sim, tmp_path):
    rows = list(csv.reader(open(sim["truth"]), delimiter="\t"))
    col = rows[0].index("F")
    alt = tmp_path / "alt.tsv"  # the same variances in a column named otherwise, half of them 0
    alt.write_text("SNP\tTRUE_VAR\n" + "".join(f"{r[0]}\t{r[col] if i % 2 else 0}\n"
                                              for i, r in enumerate(rows[1:])))
    from varfx.plots import plot_truth

    d = plot_truth(sim["glm"], sim["ds"], alt, tmp_path, truth_col="TRUE_VAR").data
    assert d["n_zero"] > 0 and d["n"] > 0 and np.isfinite(d["true_log_f"]).all()
    out = tmp_path / "out"
    fails(["plot", "truth", sim["glm"], sim["ds"], "--truth", alt, "-o", out], "missing column 'F'")
    nomatch = tmp_path / "nomatch.tsv"
    nomatch.write_text("SNP\tF\n" + "".join(f"x{r[0]}\t{r[col]}\n" for r in rows[1:]))
    fails(["plot", "truth", sim["glm"], sim["ds"], "--truth", nomatch, "-o", out], "no overlapping SNP")
    zeros = tmp_path / "zeros.tsv"
    zeros.write_text("SNP\tF\n" + "".join(f"{r[0]}\t0\n" for r in rows[1:]))
    fails(["plot", "truth", sim["glm"], sim["ds"], "--truth", zeros, "-o", out], "is 0")
    bad = tmp_path / "bad.tsv"
    bad.write_text(f"SNP\tF\n{rows[1][0]}\tnan\n")
    fails(["plot", "truth", sim["glm"], sim["ds"], "--truth", bad, "-o", out], "line 2", "finite")
    fails(["plot", "truth", sim["glm"], sim["ds"], "--truth", sim["truth"], "--chroms", "5", "-o", out],
          "--chroms", "not in the dataset")
    assert not out.exists()


# ------------------------------------------------------------------------------ region


def test_plot_region_values(sim, scores, tmp_path):
    region = "22:23000000-24000000"
    r = ok(["plot", "region", sim["glm"], sim["ds"], "--region", region, "-o", tmp_path])
    path = tmp_path / "region_22_23000000-24000000.png"
    assert r.stdout.strip() == f"wrote {path}"
    check_png(path)
    from scipy.stats import norm

    from varfx.plots import plot_region

    d = plot_region(sim["glm"], sim["ds"], region, tmp_path / "2").data
    inside = (scores["chrom"] == 22) & (scores["bp"] >= 23_000_000) & (scores["bp"] <= 24_000_000)
    assert np.array_equal(d["bp"], scores["bp"][inside]) and np.array_equal(d["snp"], scores["snp"][inside])
    enrich = scores["F"][inside] / scores["F"].mean()
    np.testing.assert_allclose(d["enrichment"], enrich, rtol=2e-6)
    with h5py.File(sim["ds"] / "dataset.h5", "r") as h5:
        z = h5["variants/z"][:][inside]
        g = h5["features"]
        names = [n.decode() for n in g["scalar_names"][()]]
        scalar = g["scalar"][:][inside] * g["scalar_sd"][()] + g["scalar_mean"][()]
        window = (g["window"][:][inside].astype(np.float64) * g["window_sd"][()] + g["window_mean"][()]).mean(1)
    # this simulation's strongest z have p below the smallest float: compared in logs there
    p = 2 * norm.sf(np.abs(z))
    tiny = p < 1e-300
    np.testing.assert_allclose(d["neg_log10_p"][~tiny], -np.log10(p[~tiny]), rtol=1e-9)
    np.testing.assert_allclose(d["neg_log10_p"][tiny], -(math.log(2) + norm.logsf(np.abs(z[tiny]))) / math.log(10),
                               rtol=1e-9)
    assert list(d["features"]) == names + ["signal.value (window mean)"]
    for j, name in enumerate(names):
        np.testing.assert_allclose(d["features"][name], scalar[:, j], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(d["features"]["signal.value (window mean)"], window[:, 0], rtol=1e-3, atol=1e-3)
    # --features picks by entry name
    d = plot_region(sim["glm"], sim["ds"], region, tmp_path / "3", features=["peaks"]).data
    assert list(d["features"]) == ["peaks.coverage", "peaks.overlap"]


def test_neg_log10_p_far_tail():
    from varfx.plots.region import neg_log10_p

    # p = 2 (1 - Phi(40)) ~ 7.3e-350 underflows a float; the log form does not
    assert abs(neg_log10_p([40.0])[0] - 349.14) < 0.01
    assert neg_log10_p([0.0])[0] == pytest.approx(0.0, abs=1e-12)


def test_plot_region_bad_inputs(sim, tmp_path):
    out = tmp_path / "out"
    fails(["plot", "region", sim["glm"], sim["ds"], "--region", "22:1-1000", "-o", out],
          "--region", "no variant", "22281093")
    fails(["plot", "region", sim["glm"], sim["ds"], "--region", "3:1-1000", "-o", out], "chromosome(s) 21, 22")
    fails(["plot", "region", sim["glm"], sim["ds"], "--region", "banana", "-o", out], "bad region")
    fails(["plot", "region", sim["glm"], sim["ds"], "--region", "22:23000000-24000000", "--features", "nope",
           "-o", out], "no feature 'nope'", "signal.mean")
    assert not out.exists()
    (tmp_path / "file").write_text("")
    r = invoke(["plot", "region", sim["glm"], sim["ds"], "--region", "22:23000000-24000000", "-o", tmp_path / "file"])
    assert r.exit_code == 2 and "is a file" in r.stderr  # click's usage error
    from varfx.errors import UserError
    from varfx.plots import plot_region

    with pytest.raises(UserError, match="not a directory"):  # the same refusal without click
        plot_region(sim["glm"], sim["ds"], "22:23000000-24000000", tmp_path / "file")


# ------------------------------------------------------------------------------ compare

COMPARISON = {
    "comparison": True, "dataset": "ds", "chroms": [22], "n_windows": 5, "n_blocks": 5,
    "models": [
        {"model": "/m/glm_full", "name": "glm_full", "prior": "glm", "objective": "full", "delta_loglik": 300.0,
         "delta_loglik_se": 20.0, "pct_increase_per_person": 0.15, "pct_increase_per_person_se": 0.01, "h2": 0.2,
         "h2_se": 0.02, "rank": 1, "diff_vs_best": 0.0, "diff_vs_best_se": 0.0, "rmse_log_f": 0.3},
        {"model": "/m/const", "name": "const", "prior": "constant", "objective": "full", "delta_loglik": 200.0,
         "delta_loglik_se": 25.0, "pct_increase_per_person": 0.1, "pct_increase_per_person_se": 0.012,
         "h2": 0.18, "h2_se": 0.03, "rank": 3, "diff_vs_best": -100.0, "diff_vs_best_se": 10.0,
         "rmse_log_f": 1.2},
        {"model": "/m/glm_ldsr", "name": "glm_ldsr", "prior": "glm", "objective": "ldsr", "delta_loglik": 250.0,
         "delta_loglik_se": 22.0, "pct_increase_per_person": 0.125, "pct_increase_per_person_se": None,
         "h2": 0.21, "h2_se": None, "rank": 2, "diff_vs_best": -50.0, "diff_vs_best_se": 8.0, "rmse_log_f": 0.5},
    ]}


def test_plot_compare_comparison(tmp_path):
    src = tmp_path / "eval.json"
    src.write_text(json.dumps(COMPARISON))
    r = ok(["plot", "compare", src, "-o", tmp_path / "f"])
    assert r.stdout.strip() == f"wrote {tmp_path / 'f' / 'compare.png'}"
    check_png(tmp_path / "f" / "compare.png")
    from varfx.plots import plot_compare

    d = plot_compare([src], tmp_path / "g").data
    assert [m["name"] for m in d["models"]] == ["glm_full", "glm_ldsr", "const"]  # by rank
    assert [m["pct_increase_per_person"] for m in d["models"]] == [0.15, 0.125, 0.1]
    assert [m["h2_se"] for m in d["models"]][::2] == [0.02, 0.03] and math.isnan(d["models"][1]["h2_se"])
    assert d["panels"] == ["pct_increase_per_person", "h2", "rmse_log_f"] and d["chroms"] == [22]


def test_plot_compare_single_model_jsons(tmp_path):
    singles = [{k: v for k, v in m.items() if k not in ("name", "rank", "model")} | {"chroms": [22]}
               for m in COMPARISON["models"]]
    del singles[2]["rmse_log_f"]
    a, b = tmp_path / "glm.json", tmp_path / "const.json"
    a.write_text(json.dumps(singles[0]))
    b.write_text(json.dumps(singles[1]))
    from varfx.plots import plot_compare

    d = plot_compare([a, b], tmp_path / "f").data
    assert [m["name"] for m in d["models"]] == ["glm", "const"]
    assert d["panels"] == ["pct_increase_per_person", "h2", "rmse_log_f"]
    lines = tmp_path / "all.jsonl"  # `varfx evaluate --json >> all.jsonl`, three times
    lines.write_text("".join(json.dumps(s) + "\n" for s in singles))
    d = plot_compare([lines], tmp_path / "f").data
    assert [m["name"] for m in d["models"]] == ["all[1]", "all[2]", "all[3]"]
    assert d["panels"] == ["pct_increase_per_person", "h2"]  # one model has no RMSE
    as_list = tmp_path / "list.json"
    as_list.write_text(json.dumps(singles))
    assert len(plot_compare([as_list], tmp_path / "f").data["models"]) == 3
    check_png(tmp_path / "f" / "compare.png")


@pytest.mark.parametrize("text, words", [
    ("{not json", ["not valid JSON"]),
    ("[]", ["empty JSON list"]),
    ("[1, 2]", ["entry 1", "expected an object"]),
    ('{"comparison": true, "models": {}}', ["\"models\" list"]),
    ('{"comparison": true, "models": [{"name": "a", "h2": 0.1}]}', ["models[0] (a)", "pct_increase_per_person"]),
    ('{"pct_increase_per_person": NaN, "h2": 0.1}', ["pct_increase_per_person is nan", "finite"]),
    ('{"pct_increase_per_person": 0.1, "h2": "0.1"}', ["h2 is '0.1'"]),
    ('{"pct_increase_per_person": 0.1, "h2": 0.1, "h2_se": -1}', ["h2_se", ">= 0"]),
    ('{"auroc_within_bags": 0.7}', ["fine-mapping"]),
])
def test_plot_compare_malformed(tmp_path, text, words):
    src = tmp_path / "eval.json"
    src.write_text(text)
    fails(["plot", "compare", src, "-o", tmp_path / "out"], "eval.json", *words)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------ ldsr


def test_plot_ldsr_bins_and_regression(sim, tmp_path):
    r = ok(["plot", "ldsr", sim["ds"], "-o", tmp_path])
    assert r.stdout.strip() == f"wrote {tmp_path / 'ldsr.png'}"
    check_png(tmp_path / "ldsr.png")
    from varfx.plots import plot_ldsr

    d = plot_ldsr(sim["ds"], tmp_path, n_bins=50).data
    # the inputs read directly from the stores' HDF5 files
    with h5py.File(sim["ds"] / "dataset.h5", "r") as h5:
        z = h5["variants/z"][:]
    with h5py.File(sim["ds"] / "windows.h5", "r") as h5:
        groups = [h5["windows"][k] for k in sorted(h5["windows"])]
        core = np.concatenate([g["core_idx"][:] for g in groups])
        ld = np.maximum(np.concatenate([g["ld_score"][:] for g in groups]), 1.0)
    assert d["n_variants"] == len(z) and len(d["bins"]) == 50
    sizes = [len(b) for b in d["bins"]]
    assert sum(sizes) == len(z) and max(sizes) - min(sizes) <= 1
    assert np.array_equal(np.sort(np.concatenate(d["bins"])), np.arange(len(z)))
    pos = {int(v): i for i, v in enumerate(core)}
    for b, mean, se, lmean in zip(d["bins"], d["bin_chi2"], d["bin_chi2_se"], d["bin_ld_score"]):
        rows = [pos[int(v)] for v in d["index"][b]]
        chi2 = z[core[rows]] ** 2
        assert mean == pytest.approx(chi2.mean(), rel=1e-12)
        assert se == pytest.approx(chi2.std(ddof=1) / math.sqrt(len(chi2)), rel=1e-12)
        assert lmean == pytest.approx(ld[rows].mean(), rel=1e-12)
    # bins are ordered by LD score and do not overlap
    lo = [d["ld_score"][b].min() for b in d["bins"]]
    hi = [d["ld_score"][b].max() for b in d["bins"]]
    assert all(h <= nxt for h, nxt in zip(hi[:-1], lo[1:]))
    # the regression is the one `varfx fit` estimated sigma^2 with, on its training windows
    meta = json.loads((sim["glm"] / "model.json").read_text())
    from varfx.train.setup import DEFAULT_SIGMA2_SOURCES, SIGMA2_INTERCEPT

    assert meta["sigma2_source"] in DEFAULT_SIGMA2_SOURCES
    d21 = plot_ldsr(sim["ds"], tmp_path, chroms=[21]).data
    # the plot shows the regression itself; fit's sigma^2 is its intercept, at least 1
    assert d21["intercept"] == pytest.approx(meta["ldsr_intercept"], rel=1e-9)
    assert meta["sigma2"] == pytest.approx(max(1.0, d21["intercept"]), rel=1e-9)
    if meta["sigma2_source"] == SIGMA2_INTERCEPT:
        assert d21["h2"] == pytest.approx(meta["h2_ldsr"], rel=1e-9)


def test_plot_ldsr_model_expected_chi2(sim, tmp_path):
    ok(["plot", "ldsr", sim["ds"], sim["const"], "--bins", 20, "-o", tmp_path])
    check_png(tmp_path / "ldsr.png")
    from varfx.plots import plot_ldsr

    d = plot_ldsr(sim["ds"], tmp_path, model_dir=sim["const"], n_bins=20).data
    meta = json.loads((sim["const"] / "model.json").read_text())
    from varfx.plots._inputs import predicted_log_f

    _, log_f, var = predicted_log_f(sim["const"], sim["ds"])
    assert np.ptp(log_f) == 0  # alpha 0: one f for every variant
    with h5py.File(sim["ds"] / "windows.h5", "r") as h5:
        ld = {int(c): float(l) for k in h5["windows"] for c, l in zip(h5["windows"][k]["core_idx"][:],
                                                                      h5["windows"][k]["ld_score"][:])}
    # E[chi2_m] = N f l_m + sigma^2 with the LD score precompute-ld summed from the whole
    # R; the objective sums r2 from the eigen-truncated factors (eigenvalues below 1e-3 of
    # the largest dropped), measured here to move it by at most 0.7%
    direct = var["N"] * math.exp(log_f[0]) * np.array([ld[int(i)] for i in d["index"]]) + meta["sigma2"]
    np.testing.assert_allclose(d["expected_chi2"], direct, rtol=0.02)
    assert np.median(np.abs(d["expected_chi2"] / direct - 1)) < 2e-3
    np.testing.assert_allclose(d["bin_expected_chi2"], [d["expected_chi2"][b].mean() for b in d["bins"]])


def test_plot_ldsr_bad_inputs(sim, tmp_path):
    out = tmp_path / "out"
    fails(["plot", "ldsr", sim["ds"], "--chroms", "4", "-o", out], "--chroms", "not in the dataset")
    fails(["plot", "ldsr", tmp_path / "nods", "-o", out], "dataset")
    r = invoke(["plot", "ldsr", sim["ds"], "--bins", 1, "-o", out])
    assert r.exit_code == 2  # a click usage error
    assert not out.exists()


# ------------------------------------------------------------------------------ evaluate


def test_evaluate_plots_option(sim, tmp_path):
    r = ok(["evaluate", sim["glm"], sim["ds"], "--truth", sim["truth"], "--json", "--plots", tmp_path])
    result = json.loads(r.stdout)  # stdout stays one JSON object; the paths go to stderr
    assert f"wrote {tmp_path / 'truth.png'}" in r.stderr and f"wrote {tmp_path / 'ldsr.png'}" in r.stderr
    for name in ("truth.png", "ldsr.png"):
        check_png(tmp_path / name)
    from varfx.plots import plot_truth

    # the RMSE in the title is evaluate's, on the same chromosomes
    d = plot_truth(sim["glm"], sim["ds"], sim["truth"], tmp_path / "x", chroms=result["chroms"]).data
    assert d["rmse"] == pytest.approx(result["rmse_log_f"], rel=1e-12)


def test_evaluate_plots_function_comparison(tmp_path):
    from varfx.plots import evaluate_plots

    paths = evaluate_plots(COMPARISON, ["/m/glm_full", "/m/const", "/m/glm_ldsr"], "ds", None, "F", tmp_path)
    assert paths == [tmp_path / "compare.png"]
    check_png(paths[0])


def test_truth_hexbin_above_scatter_limit(sim, tmp_path, monkeypatch):
    import varfx.plots.truth as truth_mod

    monkeypatch.setattr(truth_mod, "SCATTER_MAX", 100)  # the binned drawing of a large dataset
    p = truth_mod.plot_truth(sim["glm"], sim["ds"], sim["truth"], tmp_path)
    assert p.data["n"] > 100
    check_png(p.path)


def test_evaluate_plots_without_likelihood(sim, tmp_path):
    """A fine-mapping result (no delta_loglik): the dataset's LDSR plot alone, no model curve."""
    from varfx.plots import evaluate_plots

    paths = evaluate_plots({"chroms": [22], "auroc_within_bags": 0.7}, [sim["glm"]], sim["ds"], sim["truth"], "F",
                           tmp_path)
    assert paths == [tmp_path / "ldsr.png"]
    check_png(paths[0])


# ------------------------------------------------------------------------------ bags (fine-mapping)


@pytest.fixture(scope="module")
def mil(tmp_path_factory):
    """A tiny motif simulation with a seqcnn MIL model (1 epoch: the plot's numbers are
    checked against `varfx score`, not the model's quality), chromosome 2 held out."""
    tmp = tmp_path_factory.mktemp("milplot")
    ok(["simulate", "--truth", "motif", "--n-chroms", 2, "--blocks-per-chrom", 8, "--variants-per-block", 14,
        "--n-ref", 60, "--seed", 3, "-o", tmp / "sim"])
    ds = tmp / "ds"
    ok(["ingest", "--sumstats", tmp / "sim" / "gwas.fastGWA", "--ld", tmp / "sim" / "panel", "--fasta",
        tmp / "sim" / "genome.fa", "--feature-window", 16, "-o", ds])
    ok(["bags", ds, "--min-bag-size", 3])
    model = tmp / "mil"
    ok(["fit", ds, "--prior", "seqcnn", "--objective", "mil", "-p", "window=64", "-p", "width=4", "-p", "tower=2",
        "-p", "crop=2", "--holdout-chroms", "2", "--epochs", 1, "-o", model])
    return {"tmp": tmp, "ds": ds, "model": model, "truth": tmp / "sim" / "truth.tsv"}


def test_plot_bags_against_varfx_score(mil, tmp_path):
    from varfx.plots import plot_bags
    from varfx.store.bags import load_bags

    p = plot_bags(mil["model"], mil["ds"], mil["truth"], tmp_path, n_bags=3)
    assert p.path == tmp_path / "bags.png"
    check_png(p.path)
    d = p.data
    assert d["chroms"] == [2] and 1 <= len(d["bags"]) <= 3  # the model's held-out chromosome
    out = tmp_path / "scores.tsv"
    ok(["score", mil["model"], mil["ds"], "-o", out])
    with open(out) as fh:
        score = {r["SNP"]: float(r["P_CAUSAL"]) for r in csv.DictReader(fh, delimiter="\t")}
    with open(mil["truth"]) as fh:
        causal = {r["SNP"]: r["causal"] == "1" for r in csv.DictReader(fh, delimiter="\t")}
    members = {b.name: b for b in load_bags(mil["ds"]).positives}
    for b in d["bags"]:
        assert b["chrom"] == 2 and b["n"] == len(members[b["name"]].variants) == len(b["snp"])
        assert list(b["bp"]) == sorted(b["bp"])
        np.testing.assert_allclose(b["p_causal"], [score[s] for s in b["snp"]], rtol=1e-5)
        assert list(b["causal"]) == [causal[s] for s in b["snp"]] and b["causal"].any()
        best = max(score[s] for s in b["snp"] if causal[s])
        assert b["rank"] == 1 + sum(score[s] > best for s in b["snp"] if not causal[s])
    every = plot_bags(mil["model"], mil["ds"], mil["truth"], tmp_path, chroms="all", n_bags=100,
                      name="all.png").data
    assert every["chroms"] == [1, 2] and len(every["bags"]) == every["n_candidates"] >= len(d["bags"])


def test_plot_bags_bad_inputs(mil, sim, tmp_path):
    from varfx.errors import UserError
    from varfx.plots import plot_bags

    with pytest.raises(UserError, match="needs a fine-mapping model"):
        plot_bags(sim["glm"], mil["ds"], mil["truth"], tmp_path / "o")
    nocausal = tmp_path / "f.tsv"
    nocausal.write_text("SNP\tF\nrs1_1\t0.1\n")
    with pytest.raises(UserError, match="causal"):
        plot_bags(mil["model"], mil["ds"], nocausal, tmp_path / "o")
    nobody = tmp_path / "none.tsv"
    nobody.write_text("SNP\tcausal\n" + "".join(f"{r.split()[0]}\t0\n" for r in open(mil["truth"]).readlines()[1:]))
    with pytest.raises(UserError, match="holds a causal variant"):
        plot_bags(mil["model"], mil["ds"], nobody, tmp_path / "o")
    with pytest.raises(UserError, match="--bags"):
        plot_bags(mil["model"], mil["ds"], mil["truth"], tmp_path / "o", n_bags=0)
    assert not (tmp_path / "o").exists()
