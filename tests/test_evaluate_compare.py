"""`varfx evaluate MODEL_A MODEL_B ... DATASET`: comparison mode on a GLM simulation
(the GLM prior ranks above the constant prior, with a paired SE that excludes zero; the
SE against the jackknife of the per-window differences computed here), the JSON shape,
the held-out chromosome rule, and fine-mapping models."""

import json
import math

import numpy as np
import pytest

from varfx.testing.features import write_random_annotations


from _cli import invoke, ok
from _data import write_subset

KEYS = {"model", "name", "prior", "objective", "delta_loglik", "delta_loglik_se", "pct_increase_per_person",
        "pct_increase_per_person_se", "h2", "h2_se", "rank", "diff_vs_best", "diff_vs_best_se"}



@pytest.fixture(scope="module")
def two_chrom(tmp_path_factory):
    """A GLM simulation on 3000 chr22 variants, the second half relabelled chromosome 21,
    with a continuous and a binary annotation; 250-kb windows = the LD blocks.  Fits
    holding out chromosome 22: glm, constant; and a constant prior holding out none."""
    tmp = tmp_path_factory.mktemp("cmp")
    prefix, _ = write_subset(tmp / "in", 2000, 3000)
    bim = open(f"{prefix}.bim").read().splitlines()
    half = len(bim) // 2
    bim = [("21" + line[line.index("\t"):]) if i >= half else line for i, line in enumerate(bim)]
    open(f"{prefix}.bim", "w").write("\n".join(bim) + "\n")
    rng = np.random.default_rng(3)
    write_random_annotations(tmp / "annot.tsv", [line.split()[1] for line in bim], rng)
    (tmp / "m.tsv").write_text("name\tpath\tkind\nannot\tannot.tsv\ttable\n")
    ann = ["--annotations", tmp / "m.tsv"]
    sim, ds = tmp / "sim", tmp / "ds"
    ok(["simulate", "--ld", prefix, "--truth", "glm", *ann, "--h2", 0.3, "--n", 100000, "--log-sd", 1.5,
        "--seed", 2, "--block-kb", 250, "-o", sim, "--json"])
    ok(["ingest", "--sumstats", sim / "sumstats.fastGWA.gz", "--ld", prefix, *ann, "-o", ds, "--json"])
    ok(["precompute-ld", ds, "--window-kb", 250, "--flank-kb", 0, "--ld-correction", "none", "--json"])  # in-sample
    m = {}
    for name, args in {"glm": ["--prior", "glm", "--holdout-chroms", 22],
                       "constant": ["--prior", "constant", "--holdout-chroms", 22],
                       "insample": ["--prior", "constant", "--holdout-chroms", "none"]}.items():
        m[name] = tmp / name
        ok(["fit", ds, *args, "--sigma2", 1, "--objective", "full", "-o", m[name]])
    return {"tmp": tmp, "sim": sim, "ds": ds, "models": m}


def _scores(model, ds, out):
    ok(["score", model, ds, "-o", out])
    return np.array([float(line.split("\t")[3]) for line in out.read_text().splitlines()[1:]])


@pytest.mark.slow
def test_glm_ranks_above_constant_with_a_paired_se_that_excludes_zero(two_chrom, tmp_path):
    from varfx.stages.evaluate import window_loglik_terms
    from varfx.store.windows import load_windows

    ds, m = two_chrom["ds"], two_chrom["models"]
    r = ok(["evaluate", m["constant"], m["glm"], ds, "--truth", two_chrom["sim"] / "truth.tsv", "--json"])
    res = json.loads(r.stdout)
    assert res["comparison"] is True and res["chroms"] == [22] and res["dataset"] == str(ds)
    assert res["n_blocks"] == res["n_windows"] >= 10  # fewer windows than 200: one per block
    models = res["models"]
    assert [x["rank"] for x in models] == [1, 2]
    for x in models:
        assert KEYS <= set(x) and "rmse_log_f" in x
        assert all(x[k] is not None and math.isfinite(x[k]) for k in KEYS - {"model", "name", "prior", "objective"})
    best, other = models
    assert best["prior"] == "glm" and best["name"] == "glm" and best["model"] == str(m["glm"])
    assert best["diff_vs_best"] == 0.0 and best["diff_vs_best_se"] == 0.0
    assert other["diff_vs_best"] < -3 * other["diff_vs_best_se"] < 0  # the paired SE excludes zero
    assert best["rmse_log_f"] < other["rmse_log_f"]
    for x in models:  # the split of the RMSE (tests/test_evaluate_truth.py checks its formulae)
        assert x["rmse_log_f"] ** 2 == pytest.approx(x["bias_log_f"] ** 2 + x["sd_log_f_error"] ** 2, rel=1e-9)
        assert x["h2_true"] > 0 and x["n_truth"] > 0
    # the GLM recovers the contrasts between variants, the constant prior only alpha's
    assert best["slope_log_f"] > other["slope_log_f"] + 0.2
    # the first model named is the constant one: diff_vs_first of the GLM is minus its gap
    assert best["diff_vs_first"] == pytest.approx(-other["diff_vs_best"], rel=1e-12)
    assert best["diff_vs_first_se"] == pytest.approx(other["diff_vs_best_se"], rel=1e-12)
    # the paired SE from the per-window log-likelihoods of the written scores
    windows, attrs = load_windows(ds, chroms=[22])
    f_glm = _scores(m["glm"], ds, tmp_path / "g.tsv")
    f_con = _scores(m["constant"], ds, tmp_path / "c.tsv")
    d = window_loglik_terms(windows, f_con, 1 / attrs["N"])[0] - window_loglik_terms(windows, f_glm, 1 / attrs["N"])[0]
    B = len(d)
    assert other["diff_vs_best"] == pytest.approx(d.sum(), rel=1e-5)  # F is written to 6 digits
    assert other["diff_vs_best_se"] == pytest.approx(math.sqrt(B / (B - 1) * ((d - d.mean()) ** 2).sum()), rel=1e-3)
    # each model's own numbers are those of a one-model evaluate
    one = json.loads(ok(["evaluate", m["glm"], ds, "--json"]).stdout)
    assert "comparison" not in one and one["chroms"] == [22]
    for k in ("delta_loglik", "delta_loglik_se", "pct_increase_per_person", "pct_increase_per_person_se", "h2",
              "h2_se"):
        assert best[k] == pytest.approx(one[k], rel=1e-12), k
    # the table
    r = ok(["evaluate", m["constant"], m["glm"], ds, "--blocks", 0])
    assert "glm" in r.output and "constant" in r.output and "LL vs best" in r.output


def test_models_that_held_out_different_chromosomes(two_chrom):
    ds, m = two_chrom["ds"], two_chrom["models"]
    r = invoke(["evaluate", m["glm"], m["insample"], ds])
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1
    assert str(m["insample"]) in r.output and "trained on windows of chromosome 22" in r.output
    assert "no chromosome is held out by every model" in r.output
    # chosen explicitly: compared anyway, with a note that says which one is in-sample
    r = ok(["evaluate", m["glm"], m["insample"], ds, "--chroms", "22", "--json", "--blocks", 0])
    res = json.loads(r.stdout)
    held = {x["name"]: x["held_out"] for x in res["models"]}
    assert held == {"glm": True, "insample": False}
    assert "in-sample for" in r.output and str(m["insample"]) in r.output


def test_a_fine_mapping_model_is_not_ranked_with_likelihood_models(two_chrom, tmp_path):
    import shutil

    ds, m = two_chrom["ds"], two_chrom["models"]
    fm = tmp_path / "fm"
    shutil.copytree(m["constant"], fm)
    meta = json.loads((fm / "model.json").read_text())
    meta["objective"] = {"name": "mil", "options": {}}  # what a mil fit records
    (fm / "model.json").write_text(json.dumps(meta))
    r = invoke(["evaluate", m["glm"], fm, ds])
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1
    assert "fine-mapping model" in r.output and str(fm) in r.output
    r = invoke(["evaluate", fm, fm, ds])
    assert r.exit_code == 1 and "needs --truth with columns SNP and causal" in r.output


def test_usage_errors(two_chrom):
    r = invoke(["evaluate"])
    assert r.exit_code == 2
    r = invoke(["evaluate", two_chrom["ds"]])
    assert r.exit_code == 2


def test_fine_mapping_models_are_ranked_by_within_bag_auroc(tmp_path):
    import _mil_data

    from varfx.store.dataset import open_dataset

    ds, causal = _mil_data.build(tmp_path / "mil")
    with open_dataset(ds) as h5:
        snps = h5["variants"]["snp"].asstr()[:]
    truth = tmp_path / "truth.tsv"
    is_causal = np.zeros(len(snps), dtype=int)
    is_causal[causal] = 1
    truth.write_text("SNP\tcausal\n" + "".join(f"{s}\t{c}\n" for s, c in zip(snps, is_causal)))
    # a constant prior gives every variant the same logit (AUROC 1/2: ties count half);
    # the GLM learns the marking feature
    for name, prior in {"flat": "constant", "glm": "glm"}.items():
        ok(["fit", ds, "--prior", prior, "--objective", "mil", "--epochs", 20, "-o", tmp_path / name])
    res = json.loads(ok(["evaluate", tmp_path / "flat", tmp_path / "glm", ds, "--truth", truth, "--json"]).stdout)
    assert res["comparison"] is True and res["rank_by"] == "auroc_within_bags" and res["chroms"] == [6]
    first, second = res["models"]
    assert first["name"] == "glm" and first["rank"] == 1 and second["rank"] == 2
    assert first["auroc_within_bags"] > 0.9 and second["auroc_within_bags"] == 0.5
    assert second["diff_vs_best"] == pytest.approx(second["auroc_within_bags"] - first["auroc_within_bags"])
    assert first["diff_vs_best_se"] is None and first["delta_loglik"] is None and first["h2"] is None
    # each model's AUROC is that of a one-model evaluate
    one = json.loads(ok(["evaluate", tmp_path / "glm", ds, "--truth", truth, "--json"]).stdout)
    assert first["auroc_within_bags"] == one["auroc_within_bags"]


@pytest.mark.slow
def test_a_network_prior_gets_the_scale_only_jackknife(tmp_path):
    """A network (here a small transformer, > 500 parameters) is refitted by its scale
    only: h2_se_method says so, h2_se is positive, and the enrichment SEs are 0 (a scale
    does not change shares)."""
    from varfx.testing.data import two_chromosome_glm_simulation

    sim, ds = two_chromosome_glm_simulation(tmp_path)
    model = tmp_path / "tf"
    ok(["fit", ds, "--prior", "transformer", "-p", "width=8", "-p", "heads=2", "--objective", "full",
        "--sigma2", 1, "--holdout-chroms", 22, "--epochs", 2, "-o", model])
    ev = json.loads(ok(["evaluate", model, ds, "--json"]).stdout)
    assert ev["h2_se_method"] == "jackknife-scale" and ev["h2_se"] > 0
    assert ev["enrichment"] and all(e["enrichment_se"] < 1e-9 for e in ev["enrichment"])
    assert all(q["h2_se"] > 0 for q in ev["h2_by_f_quintile"])
