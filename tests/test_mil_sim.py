"""The MIL simulation (varfx/testing/mil_sim.py) writes the truth it says it does."""

from __future__ import annotations

import numpy as np
import pytest

from varfx.testing.data import read_bed_dosages
from varfx.testing.mil_sim import ACGT, MOTIFS, simulate_mil
from _mil_data import read_fasta


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return simulate_mil(tmp_path_factory.mktemp("milsim"), n_chroms=2, blocks_per_chrom=12, n_ref=300, seed=4)


def test_motifs_sit_3_to_39_bases_from_each_causal_variant_and_nowhere_near_the_others(sim):
    genome = read_fasta(sim.fasta)
    assert sim.causal.sum() >= 5
    for c, bp, is_causal in zip(sim.chrom, sim.bp, sim.causal):
        around = genome[str(c)][bp - 1 - 49: bp + 49]  # 3-39 bases away plus the motif's 10
        found = [m in around for m in MOTIFS]
        assert all(found) if is_causal else not any(found), (c, bp, is_causal)


def test_reference_allele_is_the_genome_base_and_no_pair_is_strand_ambiguous(sim):
    genome = read_fasta(sim.fasta)
    bim = [line.split() for line in open(f"{sim.panel}.bim")]
    comp = dict(zip(ACGT, "TGCA"))
    for (c, _, _, bp, a1, a2) in bim:
        assert genome[c][int(bp) - 1] == a2  # a2 = reference; the dosage counts a1
        assert comp[a1] != a2


def test_causal_z_scores_have_the_planted_size_and_follow_ld(sim):
    # E|z| of a causal variant = effect_z (noise sd 1 is small beside 12)
    assert np.abs(sim.z[sim.causal]).mean() == pytest.approx(12.0, abs=3 / np.sqrt(sim.causal.sum()) + 0.5)
    g = read_bed_dosages(sim.panel, 300, range(len(sim.z)))
    # a non-causal variant's z is about r * z_causal within its block (in-sample LD)
    for j in np.flatnonzero(sim.causal)[:5]:
        blk = np.flatnonzero(sim.block == sim.block[j])
        r = np.corrcoef(g[:, blk].T)[list(blk).index(j)]
        resid = sim.z[blk] - r * sim.z[j]
        assert np.sqrt(np.mean(resid ** 2)) < 2.0
    # blocks without a causal variant are noise: |z| like a standard normal
    null = ~np.isin(sim.block, sim.block[sim.causal])
    assert np.mean(sim.z[null] ** 2) == pytest.approx(1.0, abs=0.3)
