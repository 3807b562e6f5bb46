"""varfx score --posterior / --pgs-file on a real-LD dataset: the posterior column
against the dense conditional mean from the panel's genotypes, the scoring files'
header and columns, and plink-style scoring of the panel's dosages."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from click.testing import CliRunner

from varfx.cli import cli

from _data import read_bed_dosages, write_subset


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pgs")
    prefix, ss = write_subset(tmp / "in", 1000, 200)
    ds = tmp / "ds"
    for args in (["ingest", "--sumstats", ss, "--ld", prefix, "-o", ds, "--json"],
                 ["precompute-ld", ds, "--window-kb", 200, "--flank-kb", 100, "--json"],
                 ["fit", ds, "--alpha", 0, "--sigma2", 1, "--holdout-chroms", "none", "-o", tmp / "m"]):
        r = invoke(*args)
        assert r.exit_code == 0, r.output
    return tmp, prefix, ds, tmp / "m"


def _table(path):
    rows = [line.rstrip("\n").split("\t") for line in open(path)]
    return rows[0], rows[1:]


def _read_pgs(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as fh:
        lines = fh.read().splitlines()
    head = [x for x in lines if x.startswith("#")]
    body = [x.split("\t") for x in lines if not x.startswith("#")]
    keys = dict(x[1:].split("=", 1) for x in head if x.startswith("#") and not x.startswith("##") and "=" in x)
    return head, keys, body[0], body[1:]


def _panel_standardised(prefix, snps):
    """Standardised A1 dosages (people x variants) of the panel, in the order of ``snps``,
    computed here from the .bed (mean-imputed, population sd, as the LD is)."""
    bim = [line.split() for line in open(f"{prefix}.bim")]
    row_of = {b[1]: i for i, b in enumerate(bim)}
    n = len(open(f"{prefix}.fam").read().splitlines())
    d = read_bed_dosages(prefix, n, [row_of[s] for s in snps])
    return d, {b[1]: (b[4], b[5]) for b in bim}


def test_posterior_column_is_the_dense_conditional_mean(fitted):
    from varfx.linalg.posterior import dense_posterior_mean
    from varfx.store.dataset import open_dataset
    from varfx.store.windows import load_windows

    tmp, prefix, ds, m = fitted
    out = tmp / "post.tsv"
    r = invoke("score", m, ds, "-o", out, "--posterior")
    assert r.exit_code == 0, r.output
    head, rows = _table(out)
    assert head == ["SNP", "CHR", "BP", "F", "BETA_POSTERIOR", "BETA_POSTERIOR_SD"]
    f = np.array([float(x[3]) for x in rows])
    got = np.array([float(x[4]) for x in rows])
    sd = np.array([float(x[5]) for x in rows])
    assert np.isfinite(got).all() and np.all((sd > 0) & (sd < np.sqrt(f)))
    # the same F column as without --posterior
    r = invoke("score", m, ds, "-o", tmp / "plain.tsv")
    assert [x[:4] for x in rows] == _table(tmp / "plain.tsv")[1]

    with open_dataset(ds) as h5:
        snps = h5["variants"]["snp"].asstr()[:]
        z = h5["variants"]["z"][:]
        n_scale = h5["variants"]["n"][:] / float(h5.attrs["N"])  # the sample sizes differ by variant
        N = float(h5.attrs["N"])
    assert np.ptp(n_scale) > 0.01
    sigma2 = json.loads((m / "model.json").read_text())["sigma2"]
    d, _ = _panel_standardised(prefix, snps)
    g = np.where(np.isnan(d), np.nanmean(d, 0), d)
    X = (g - g.mean(0)) / g.std(0)
    R = X.T @ X / X.shape[0]
    np.fill_diagonal(R, 1.0)
    windows, attrs = load_windows(ds, meta_only=True)
    corr = attrs["params"].get("ld_correction", {})  # the default's small-panel correction (issue 12)
    want = np.zeros(len(snps))
    for w in windows:
        plus, core = np.asarray(w.plus_idx), np.asarray(w.core_idx)
        want[core] = dense_posterior_mean(R[np.ix_(plus, plus)], np.asarray(w.core_pos), z[core] / np.sqrt(N),
                                          f[plus], sigma2 / N, n_scale=n_scale[core], max_rank=corr.get("max_rank"),
                                          flank_r_min=corr.get("flank_r_min"),
                                          core_rank_frac=corr.get("core_rank_frac"), eig_floor=corr.get("eig_floor"))
    # F and the posterior are printed to 7 significant digits
    assert np.max(np.abs(got - want)) < 1e-5 * np.max(np.abs(want))
    assert np.corrcoef(got, z)[0, 1] > 0.5  # shrunk towards 0, not flipped


def test_pgs_files_header_columns_and_plink_scoring(fitted):
    from varfx.store.dataset import open_dataset

    tmp, prefix, ds, m = fitted
    out, pgs = tmp / "s.tsv", tmp / "weights.txt.gz"
    r = invoke("score", m, ds, "-o", out, "--pgs-file", pgs, "--trait", "height", "--pgs-name", "varfx_test")
    assert r.exit_code == 0, r.output
    assert "weights.txt.prscs.tsv" in r.output
    head, keys, cols, body = _read_pgs(pgs)
    assert head[0].startswith("###PGS CATALOG SCORING FILE") and head[1] == "#format_version=2.0"
    assert cols == ["rsID", "chr_name", "chr_position", "effect_allele", "other_allele", "effect_weight"]
    assert keys["pgs_id"] == keys["pgs_name"] == "varfx_test" and keys["trait_reported"] == "height"
    assert keys["genome_build"] == "GRCh37"  # the dataset's hg19
    assert int(keys["variants_number"]) == len(body) > 100
    assert "prior constant" in keys["varfx_model"] and str(m.resolve()) in keys["varfx_model"]
    assert all(len(x) == 6 for x in body)
    prscs = [x.split("\t") for x in open(tmp / "weights.txt.prscs.tsv").read().splitlines()]
    assert [[x[1], x[0], x[2], x[3], x[4], x[5]] for x in prscs] == body  # CHR SNP BP A1 A2 BETA

    _, rows = _table(out)
    beta = {x[0]: float(x[4]) for x in rows}
    with open_dataset(ds) as h5:
        v = h5["variants"]
        info = {s: (a1, a2, p) for s, a1, a2, p in zip(v["snp"].asstr()[:], v["a1"].asstr()[:],
                                                       v["a2"].asstr()[:], v["freq"][:])}
    snps = [x[0] for x in body]
    w = np.array([float(x[5]) for x in body])
    p = np.array([info[s][2] for s in snps])
    b = np.array([beta[s] for s in snps])
    # the effect allele is the one Z refers to (the dataset's a1 = the panel's A1)
    d, alleles = _panel_standardised(prefix, snps)
    assert all(x[3] == info[s][0] == alleles[s][0] and x[4] == info[s][1] for x, s in zip(body, snps))
    np.testing.assert_allclose(w, b / np.sqrt(2 * p * (1 - p)), rtol=1e-6)
    # plink --score (sum of effect-allele dosage x weight) against X_std @ beta_std with
    # the HWE standardisation x = (d - 2p) / sqrt(2p(1-p)): equal up to the constant
    # sum(2 p w); people with a missing call are left out (plink imputes them)
    full = ~np.isnan(d).any(axis=1)
    assert full.sum() > 50
    plink = d[full] @ w
    x_std = (d[full] - 2 * p) / np.sqrt(2 * p * (1 - p))
    # (the weights are printed to 7 significant digits: the error is relative to the
    # size of the terms, not of their sum, which nearly cancels for some people)
    scale = np.abs(d[full] * w).sum(axis=1)
    assert np.all(np.abs(plink - np.sum(2 * p * w) - x_std @ b) < 1e-6 * scale + 1e-12)


def test_missing_frequencies_are_left_out_and_counted(fitted, tmp_path):
    import shutil

    import h5py

    _, _, ds, m = fitted
    ds2 = tmp_path / "ds"
    shutil.copytree(ds, ds2)
    with h5py.File(ds2 / "dataset.h5", "r+") as h5:  # freq is not part of the window link
        freq = h5["variants"]["freq"]
        f = freq[:]
        f[:7] = np.nan
        freq[...] = f
        h5.attrs["build"] = "T2T-CHM13"  # a build pgsc_calc has no name for
    r = invoke("score", m, ds2, "-o", tmp_path / "s.tsv", "--pgs-file", tmp_path / "w.txt")
    assert r.exit_code == 0, r.output
    assert "7 variants with data have no allele frequency" in r.output
    _, keys, _, body = _read_pgs(tmp_path / "w.txt")
    assert keys["varfx_excluded_no_frequency"] == "7" and int(keys["variants_number"]) == len(body) == len(f) - 7
    assert keys["genome_build"] == "NR" and keys["varfx_genome_build"] == "T2T-CHM13"
    with h5py.File(ds2 / "dataset.h5", "r+") as h5:
        h5["variants"]["freq"][...] = np.full(len(f), np.nan)
    before = sorted(p.name for p in tmp_path.iterdir())
    r = invoke("score", m, ds2, "-o", tmp_path / "s2.tsv", "--pgs-file", tmp_path / "w2.txt")
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    lines = [x for x in r.output.splitlines() if x.startswith("Error: ")]
    assert len(lines) == 1 and "per-allele weights need the frequency" in lines[0] and str(ds2) in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing half-written


def test_fine_mapping_model_and_missing_windows_are_one_line_errors(fitted, tmp_path, monkeypatch):
    import shutil

    from varfx.plugins import lookup

    _, _, ds, m = fitted
    ds2 = tmp_path / "nowin"
    shutil.copytree(ds, ds2)
    (ds2 / "windows.h5").unlink()
    r = invoke("score", m, ds2, "-o", tmp_path / "a.tsv", "--posterior")
    assert r.exit_code == 1 and "run `varfx precompute-ld" in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "a.tsv").exists()
    r = invoke("score", m, ds, "-o", tmp_path / "b.tsv", "--pgs-file", tmp_path / "b.tsv")
    assert r.exit_code == 1 and "three different files" in r.output, r.output
    r = invoke("score", m, ds, "-o", tmp_path / "b.tsv", "--pgs-file", tmp_path / "w.txt", "--trait", "a\tb")
    assert r.exit_code == 1 and "option --trait" in r.output and "one line without tabs" in r.output, r.output
    monkeypatch.setattr(lookup("objectives", "full"), "prior_output", "logit", raising=False)
    for flag in (["--posterior"], ["--pgs-file", tmp_path / "w.txt"]):
        r = invoke("score", m, ds, "-o", tmp_path / "c.tsv", *flag)
        assert r.exit_code == 1 and "Traceback" not in r.output, r.output
        lines = [x for x in r.output.splitlines() if x.startswith("Error: ")]
        assert len(lines) == 1 and f"option {flag[0]}" in lines[0] and "fine-mapping model" in lines[0], r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nowin"]
