"""`varfx simulate --truth motif`: the motif simulation of fine-mapping as a command
(its outputs, the same draws as the generator the tests use, a sites VCF whose REF is
the genome's base) and its bad options, each a one-line error leaving nothing behind."""

from __future__ import annotations

import json

import numpy as np
import pytest

from varfx.testing.mil_sim import MOTIFS, simulate_mil

from _cli import invoke, ok
from _mil_data import read_fasta

SMALL = ["--n-chroms", 2, "--blocks-per-chrom", 6, "--variants-per-block", 12, "--n-ref", 60]


def fails(args, *words, code=1):
    r = invoke(args)
    assert r.exit_code == code, r.output
    err = r.stderr.strip()
    assert "Traceback" not in r.output, r.output
    if code == 1:
        assert err.startswith("Error: ") and "\n" not in err, err
    for w in words:
        assert w in err, err
    return err


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("motif")
    r = ok(["simulate", "--truth", "motif", *SMALL, "--seed", 3, "-o", tmp / "sim", "--json"])
    return tmp, json.loads(r.stdout)


def test_outputs_and_summary(sim):
    tmp, summary = sim
    out = tmp / "sim"
    assert summary["truth"] == "motif" and summary["motifs"] == list(MOTIFS) and summary["seed"] == 3
    assert json.loads((out / "simulation.json").read_text()) == summary
    for key, name in summary["files"].items():
        assert (out / (name + ".bim" if key == "panel" else name)).is_file(), key
    rows = [line.rstrip("\n").split("\t") for line in open(out / "truth.tsv")]
    assert rows[0] == ["SNP", "CHR", "BP", "causal", "block"]
    causal = np.array([int(r[3]) for r in rows[1:]])
    assert summary["n_variants"] == len(rows) - 1 and summary["n_causal"] == int(causal.sum()) > 0
    assert summary["n_blocks"] == len({r[4] for r in rows[1:]})
    assert not list(tmp.glob(".*.tmp"))  # written atomically: no temporary left


def test_same_draws_as_the_generator(sim, tmp_path):
    """The command writes what simulate_mil (the tests' generator) writes for the seed."""
    tmp, _ = sim
    ref = simulate_mil(tmp_path / "ref", n_chroms=2, blocks_per_chrom=6, variants_per_block=12, n_ref=60, seed=3)
    for name in ("genome.fa", "gwas.fastGWA", "truth.tsv", "panel.bim", "panel.bed"):
        assert (tmp / "sim" / name).read_bytes() == (ref.fasta.parent / name).read_bytes(), name


def test_sites_vcf_ref_is_the_genome_base(sim):
    import pysam

    tmp, summary = sim
    out = tmp / "sim"
    genome = read_fasta(out / "genome.fa")
    bim = [line.split() for line in open(out / "panel.bim")]
    with pysam.VariantFile(str(out / "variants.vcf")) as vcf:
        recs = list(vcf)
    assert len(recs) == len(bim) == summary["n_variants"]
    for rec, (c, snp, _, bp, a1, a2) in zip(recs, bim):
        assert (rec.chrom, rec.pos, rec.id, rec.ref, rec.alts) == (c, int(bp), snp, a2, (a1,))
        assert genome[c][rec.pos - 1] == rec.ref


def test_own_motifs_are_planted_next_to_causal_variants(tmp_path):
    motif = "ACGTTGCAAG"
    r = ok(["simulate", "--truth", "motif", *SMALL, "--motif", motif, "--seed", 1, "-o", tmp_path / "s", "--json"])
    assert json.loads(r.stdout)["motifs"] == [motif]
    genome = read_fasta(tmp_path / "s" / "genome.fa")
    rows = [line.split("\t") for line in open(tmp_path / "s" / "truth.tsv")][1:]
    near = [motif in genome[c][int(bp) - 1 - 49: int(bp) + 49] for _, c, bp, flag, _ in rows if flag == "1"]
    assert near and all(near)


@pytest.mark.parametrize("args,words", [
    (["--truth", "motif", "--h2", 0.3], ["option --h2", "not used by --truth motif"]),
    (["--truth", "motif", "--ld", "x"], ["option --ld", "not used by --truth motif"]),
    (["--truth", "motif", "--annotations", "m.tsv"], ["option --annotations"]),
    (["--truth", "glm", "--n-chroms", 3], ["option --n-chroms", "only --truth motif"]),
    (["--truth", "constant"], ["option --ld", "needs a genotype panel"]),
    (["--truth", "motif", "--motif", "GATTXCAGG"], ["option --motif", "A, C, G, T", "GATTXCAGG"]),
    (["--truth", "motif", "--motif", "GATT"], ["option --motif", "6-12 bases"]),
    (["--truth", "motif", "--motif", "GATTACA", "--motif", "gattaca"], ["option --motif", "must differ"]),
])
def test_bad_options_are_one_line_errors(tmp_path, args, words):
    fails(["simulate", *args, "-o", tmp_path / "o"], *words)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args", [["--variants-per-block", 151], ["--n-chroms", 23], ["--causal-fraction", 0],
                                  ["--effect-z", "nan"], ["--n-ref", 5]])
def test_out_of_range_numbers_are_usage_errors(tmp_path, args):
    fails(["simulate", "--truth", "motif", *args, "-o", tmp_path / "o"], code=2)
    assert not (tmp_path / "o").exists()


def test_refuses_to_replace_a_directory_that_is_no_simulation(tmp_path, sim):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    fails(["simulate", "--truth", "motif", *SMALL, "-o", busy], "not a varfx simulation")
    assert (busy / "keep.txt").read_text() == "mine"
    # an earlier simulation is replaced
    again = tmp_path / "again"
    ok(["simulate", "--truth", "motif", *SMALL, "--seed", 1, "-o", again])
    ok(["simulate", "--truth", "motif", *SMALL, "--seed", 3, "-o", again])
    assert (again / "truth.tsv").read_bytes() == (sim[0] / "sim" / "truth.tsv").read_bytes()


def test_stage_checks_its_options_without_the_cli(tmp_path):
    from varfx.errors import UserError
    from varfx.stages.simulate_motif import run_simulate_motif

    with pytest.raises(UserError, match="--variants-per-block"):
        run_simulate_motif(tmp_path / "o", variants_per_block=1)
    with pytest.raises(UserError, match="--causal-fraction"):
        run_simulate_motif(tmp_path / "o", causal_fraction=float("nan"))
    assert not (tmp_path / "o").exists()
