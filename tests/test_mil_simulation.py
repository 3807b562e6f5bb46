"""Multiple-instance fine-mapping end to end on a simulation with known causal variants
(issue 9, "Must show"): a random genome with two motifs planted 3-39 bp from each causal
variant, a genotype panel with LD blocks, summary statistics from the causal effects;
`varfx bags` then `varfx fit --prior seqcnn --objective mil` (defaults) must rank the
causal variants of held-out chromosomes above their LD neighbours (r^2 >= 0.5) by
sequence alone.

Tolerance: 80 held-out bags give ~400 (causal, neighbour) pairs; the bar is the issue's
AUROC >= 0.8 (measured 1.0 at seeds 0 and 1: docs/fine-mapping.md), far above chance
(0.5, sd ~0.03 over 400 pairs).  The |z| ranking of the same pairs is reported beside
it and is high by construction (in-sample LD, |E z| = 12 at the causal variant)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from varfx.cli import cli
from varfx.testing.mil_sim import simulate_mil

pytestmark = pytest.mark.slow


def run(args):
    r = CliRunner().invoke(cli, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return r


def test_seqcnn_mil_ranks_held_out_causal_variants_above_their_ld_neighbours(tmp_path):
    sim = simulate_mil(tmp_path / "sim", seed=0)
    ds = tmp_path / "ds"
    run(["ingest", "--sumstats", sim.sumstats, "--ld", sim.panel, "--fasta", sim.fasta, "--feature-window", 32,
         "-o", ds, "--json"])
    summary = json.loads(run(["bags", ds]).stdout)
    assert summary["bags"] >= 150
    model = tmp_path / "model"
    run(["fit", ds, "--prior", "seqcnn", "--objective", "mil", "-p", "window=128", "--epochs", 30,
         "--threads", 2, "-o", model])
    meta = json.loads((model / "model.json").read_text())
    assert meta["holdout_chroms"] == [6, 7, 8] and meta["batch_windows"] == 32
    ev = json.loads(run(["evaluate", model, ds, "--truth", sim.truth, "--json"]).stdout)
    assert ev["chroms"] == [6, 7, 8] and ev["n_pairs"] >= 200
    assert ev["auroc_within_bags"] >= 0.8, ev
    assert ev["top1_within_bags"] > 3 * ev["top1_chance"], ev
    assert ev["auroc_within_bags_abs_z"] >= 0.9  # the summary statistics' own ranking, for reference
    # score writes the fine-mapping columns for every variant, never NaN
    out = tmp_path / "scores.tsv"
    run(["score", model, ds, "-o", out])
    lines = out.read_text().splitlines()
    assert lines[0].split("\t") == ["SNP", "CHR", "BP", "P_CAUSAL", "LOGIT"]
    assert "nan" not in out.read_text().lower()
