"""``varfx fit`` with default options on the most common inputs: LDSC sumstats (no
allele frequencies) with a UKBB/PolyFun LD reference, ingest -> precompute-ld -> fit."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from click.testing import CliRunner

from varfx.cli import cli


def invoke(args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_ldsc_with_ukbb_reference_fits_with_default_options(tmp_path, write_region, fastgwa_path, panel_bim):
    rows = list(range(1000, 4000))  # 3000 panel SNPs in one UKBB region
    write_region(tmp_path / "ukbb", rows)
    wanted = {panel_bim[r][1] for r in rows}
    ss = tmp_path / "height.sumstats"
    with gzip.open(fastgwa_path, "rt") as fh, open(ss, "w") as out:
        fh.readline()
        out.write("SNP\tA1\tA2\tZ\tN\n")  # LDSC: no frequencies, no positions
        for line in fh:
            c, snp, pos, a1, a2, n, af, beta, se, _p = line.split()
            if snp in wanted:
                out.write(f"{snp}\t{a1}\t{a2}\t{float(beta) / float(se):.6g}\t{n}\n")
    ds = tmp_path / "ds"
    r = invoke(["ingest", "--sumstats", ss, "--ld", tmp_path / "ukbb", "-o", ds, "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["matched"] > 2500
    r = invoke(["precompute-ld", ds, "--json"])
    assert r.exit_code == 0, r.output
    r = invoke(["fit", ds, "-o", tmp_path / "model"])  # every option at its default
    assert r.exit_code == 0, r.output
    assert "--alpha auto" in r.stderr and "no allele frequency" in r.stderr
    meta = json.loads((tmp_path / "model" / "model.json").read_text())
    assert meta["prior"]["options"]["alpha"] == 0.0 and meta["alpha_source"] == "auto: no allele frequencies"
    assert any("--alpha auto" in n for n in meta["notes"])
    assert meta["optimizer"] == "lbfgs" and meta["stop_reason"] == "gradient below gtol"
    assert meta["holdout_chroms"] == []  # one chromosome: nothing to hold out


@pytest.fixture(scope="module")
def two_chrom_ds(tmp_path_factory):
    """~600 real chr22 variants, the second half relabelled chromosome 21 (so one
    chromosome can be held out), ingested and precomputed."""
    from _data import write_subset

    tmp = tmp_path_factory.mktemp("twochrom")
    prefix, ss = write_subset(tmp / "in", 2000, 600)
    bim = open(f"{prefix}.bim").read().splitlines()
    half = len(bim) // 2
    moved = {line.split()[1] for line in bim[half:]}
    open(f"{prefix}.bim", "w").write("\n".join(("21" + line[line.index("\t"):]) if i >= half else line
                                                for i, line in enumerate(bim)) + "\n")
    lines = ss.read_text().splitlines()
    snp_col = lines[0].split("\t").index("SNP")
    ss.write_text("\n".join([lines[0]] + [("21" + line[line.index("\t"):]) if line.split("\t")[snp_col] in moved
                                          else line for line in lines[1:]]) + "\n")
    # a BED track, so that the transformer has per-base tracks to read
    from varfx.testing.features import write_bed

    bp = [int(line.split()[3]) for line in bim]
    rng = np.random.default_rng(0)
    write_bed(tmp / "peaks.bed", sorted((c, int(s), int(s) + 400) for c in ("chr21", "chr22")
                                        for s in rng.integers(min(bp), max(bp), 200)))
    (tmp / "m.tsv").write_text("name\tpath\tkind\twindow\toptions\npeaks\tpeaks.bed\tbed\t400\ttrack=true\n")
    ds = tmp / "ds"
    r = invoke(["ingest", "--sumstats", ss, "--ld", prefix, "--annotations", tmp / "m.tsv", "--feature-window", 16,
                "-o", ds, "--json"])
    assert r.exit_code == 0, r.output
    assert invoke(["precompute-ld", ds, "--window-kb", 500, "--flank-kb", 0, "--json"]).exit_code == 0
    return ds


@pytest.mark.parametrize("extra, patience", [([], 10), (["--patience", 0], 0), (["--patience", 3], 3)])
def test_network_prior_stops_early_by_default_on_a_likelihood(two_chrom_ds, tmp_path, extra, patience):
    # a network overfits its training windows without early stopping (docs/benchmarks.md,
    # "The transformer prior's default learning rate"): patience 10 unless given
    r = invoke(["fit", two_chrom_ds, "--prior", "transformer", "-p", "width=4", "-p", "depth=1", "--epochs", 2,
                "--holdout-chroms", 22, *extra, "-o", tmp_path / "m"])
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    # one window a step: the two training windows give fewer than 24 updates an epoch
    assert meta["patience"] == patience and meta["lr"] == 1e-2 and meta["batch_windows"] == 1
    assert meta["optimizer_updates"] == 2 * meta["n_train_windows"] and meta["warmup"] == 0.05


def test_no_early_stopping_without_held_out_windows(two_chrom_ds, tmp_path):
    r = invoke(["fit", two_chrom_ds, "--prior", "transformer", "-p", "width=4", "-p", "depth=1", "--epochs", 1,
                "--holdout-chroms", "none", "-o", tmp_path / "m"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "m" / "model.json").read_text())["patience"] == 0


def test_network_prior_defaults_are_the_documented_ones():
    # docs/benchmarks.md, "Defaults of network priors", and docs/usage.md say these
    from varfx.default_plugins.priors import TransformerPrior
    from varfx.stages.fit import ADAMW_DEFAULTS, NETWORK_PATIENCE
    from varfx.train.loop import batch_for_updates, plan
    from varfx.train.schedule import lr_factor

    assert TransformerPrior.default_lr == 1e-2 and TransformerPrior.default_updates_per_epoch == 24
    assert NETWORK_PATIENCE == 10
    assert ADAMW_DEFAULTS["epochs"] == 100 and ADAMW_DEFAULTS["warmup"] == 0.05 and ADAMW_DEFAULTS["clip"] == 1.0
    # windows per step: the demo's 24 training windows one a step; 1,000 windows 42 a step
    # (24 updates, the last step shorter); never 0 (full batch) for a network
    assert [batch_for_updates(n, 24) for n in (1, 24, 25, 1000)] == [1, 1, 2, 42]
    assert plan(1000, 100, batch_for_updates(1000, 24), 1, 0.05)[1:] == (24, 2400, 120)
    # warm-up then cosine: the peak at the end of the warm-up, half of it half-way through the decay
    assert lr_factor(119, 2400, 120) == 1.0 and abs(lr_factor(120 + 1140, 2400, 120) - 0.5) < 1e-12


def test_network_prior_batch_follows_the_training_windows(two_chrom_ds, tmp_path):
    # the default --batch-windows is the rule above applied to this fit's training windows,
    # and an explicit --batch-windows 0 (full batch) still wins
    r = invoke(["fit", two_chrom_ds, "--prior", "transformer", "-p", "width=4", "-p", "depth=1", "--epochs", 1,
                "--holdout-chroms", "none", "--batch-windows", 0, "-o", tmp_path / "m"])
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["batch_windows"] == 0 and meta["optimizer_updates"] == 1
