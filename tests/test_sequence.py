"""Reference sequence: one-hot windows from a FASTA (pysam), the ``fasta`` feature source,
its conformance, and every bad-input message."""

from __future__ import annotations

import numpy as np
import pytest

from varfx.errors import UserError
from varfx.features.sequence import (
    CHANNELS,
    FastaSource,
    one_hot,
    open_fasta,
    reference_bases,
    reference_match,
    sequence_codes,
)
from varfx.testing.features import FeatureSourceConformance, write_fasta

from test_features import feature_plugins  # noqa: F401  (autouse fixture)


def random_sequence(length, seed=0):
    """Random DNA with an N run, IUPAC codes and soft-masked (lower-case) stretches."""
    rng = np.random.default_rng(seed)
    s = rng.choice(list("ACGT"), length)
    s[50:60] = "N"
    s[rng.integers(0, length, length // 50)] = "R"
    low = np.zeros(length, dtype=bool)
    low[200:400] = True
    s = np.where(low, np.char.lower(s), s)
    return "".join(s)


def decode(seq: str, pos: int, window: int) -> np.ndarray:
    """The expected one-hot window, built base by base (an independent reference)."""
    out = np.zeros((window, 5), dtype=np.uint8)
    start = pos - window // 2  # 1-based first position of the window
    for j in range(window):
        p = start + j
        if 1 <= p <= len(seq):
            b = seq[p - 1].upper()
            if b in "ACGT":
                out[j, "ACGT".index(b)] = 1
    out[window // 2, 4] = 1
    return out


@pytest.fixture
def fasta(tmp_path):
    contigs = {"chr1": random_sequence(3000, 1), "22": random_sequence(2500, 2)}
    return write_fasta(tmp_path / "ref.fa", contigs, width=70), contigs


class TestFastaConformance(FeatureSourceConformance):
    source_name = "fasta"

    def make_input(self, tmp_path):
        return write_fasta(tmp_path / "ref.fa", {n: random_sequence(L, i) for i, (n, L) in enumerate(self.contigs.items())})


def test_one_hot_matches_base_by_base_decoding(fasta):
    path, contigs = fasta
    rng = np.random.default_rng(0)
    chrom = np.r_[np.ones(200, dtype=int), np.full(200, 22)]
    pos = np.r_[rng.integers(1, 3001, 198), 1, 3000, rng.integers(1, 2501, 198), 1, 2500]
    for w in (256, 31, 1):
        x = one_hot(path, chrom, pos, window=w)
        assert x.shape == (400, w, 5) and x.dtype == np.uint8
        for i in range(400):
            seq = contigs["chr1" if chrom[i] == 1 else "22"]
            assert np.array_equal(x[i], decode(seq, int(pos[i]), w)), (w, i)
    # names with and without chr, open file handle, no variant token
    fa = open_fasta(path)
    y = one_hot(fa, np.array(["1"] * 5 + ["chr22"] * 5), np.r_[pos[:5], pos[200:205]], window=64, variant_token=False)
    assert np.array_equal(y[:, :, :4], np.r_[one_hot(path, chrom[:5], pos[:5], window=64),
                                            one_hot(path, chrom[200:205], pos[200:205], window=64)][:, :, :4])
    assert y[:, :, 4].sum() == 0
    fa.close()


def test_soft_masked_n_and_iupac(tmp_path):
    path = write_fasta(tmp_path / "s.fa", {"chrX": "acgtNRACGT"})
    x = one_hot(path, np.array([23]), np.array([5]), window=10)[0]
    # window = positions 0..9 (1-based): position 0 is before the start
    assert x[:, :4].tolist() == [[0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1],
                                 [0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]
    assert x[:, 4].tolist() == [0] * 5 + [1] + [0] * 4
    assert reference_bases(path, ["X", "X", "X"], [1, 5, 6]).tolist() == ["A", "N", "N"]


def test_alt_allele_replaces_the_variant_base(fasta):
    path, contigs = fasta
    pos = np.array([500, 501, 502, 503])
    ref = one_hot(path, [1] * 4, pos, window=9)
    alt = one_hot(path, [1] * 4, pos, window=9, alt=np.array(["g", "T", "AT", "-"]))
    c = 9 // 2
    assert alt[0, c, :4].tolist() == [0, 0, 1, 0] and alt[1, c, :4].tolist() == [0, 0, 0, 1]
    assert np.array_equal(alt[2:], ref[2:])  # indels keep the reference base
    assert np.array_equal(np.delete(alt, c, axis=1), np.delete(ref, c, axis=1))
    with pytest.raises(UserError, match="2 alleles for 4 variants"):
        one_hot(path, [1] * 4, pos, alt=["A", "C"])


def test_reference_match(fasta):
    path, contigs = fasta
    seq = contigs["22"]
    pos = np.arange(1000, 1100)
    ref = np.array([seq[p - 1].upper() for p in pos])
    other = np.array(["A" if r != "A" else "C" for r in ref])
    ok = np.isin(ref, list("ACGT"))
    m = reference_match(path, [22] * 100, pos, other, ref)
    assert m["checked"] == 100 and m["match"] == int(ok.sum())
    comp = np.array([{"A": "T", "C": "G", "G": "C", "T": "A"}.get(r, "N") for r in ref])
    assert reference_match(path, [22] * 100, pos, comp, np.full(100, "AT"))["checked"] == 0
    assert reference_match(path, [22] * 100, pos, comp, comp)["match"] == int(ok.sum())


def test_fasta_errors(tmp_path, fasta):
    path, _ = fasta
    with pytest.raises(UserError, match=r"position 3001 is beyond the end of chromosome 1 \(3000 bp\)") as err:
        one_hot(path, [1], [3001])
    assert str(path) in str(err.value)
    with pytest.raises(UserError, match="no chromosome X in this FASTA"):
        one_hot(path, [23], [10])
    with pytest.raises(UserError, match="expected a 1-based position"):
        sequence_codes(path, [1], [0])
    nofai = write_fasta(tmp_path / "nofai.fa", {"chr1": "ACGT"}, index=False)
    with pytest.raises(UserError, match=r"nofai\.fa: no FASTA index nofai\.fa\.fai: .*samtools faidx"):
        one_hot(nofai, [1], [2])
    assert not (tmp_path / "nofai.fa.fai").exists()  # never built behind the user's back
    with pytest.raises(UserError, match="no such FASTA"):
        open_fasta(tmp_path / "missing.fa")


def test_bgzip_fasta(tmp_path):
    import pysam

    plain = write_fasta(tmp_path / "p.fa", {"chr2": random_sequence(1000, 5)}, index=False)
    gz = tmp_path / "p.fa.gz"
    pysam.tabix_compress(str(plain), str(gz))
    pysam.faidx(str(gz))
    write_fasta(tmp_path / "q.fa", {"chr2": plain.read_text().split("\n", 1)[1].replace("\n", "")})
    assert np.array_equal(one_hot(gz, [2] * 3, [1, 500, 1000], window=20),
                          one_hot(tmp_path / "q.fa", [2] * 3, [1, 500, 1000], window=20))
    (tmp_path / "p.fa.gz.gzi").unlink()
    with pytest.raises(UserError, match="without a .gzi index"):
        one_hot(gz, [2], [5])


def test_fasta_source_store_layout(tmp_path, fasta):
    import h5py

    from varfx.features.manifest import ManifestEntry
    from varfx.features.store import read_features, write_features

    path, contigs = fasta
    chrom = np.r_[np.ones(1500, dtype=int), np.full(1200, 22)]
    bp = np.r_[np.sort(np.random.default_rng(0).integers(1, 3001, 1500)),
               np.sort(np.random.default_rng(1).integers(1, 2501, 1200))]
    e = [ManifestEntry("sequence", "fasta", path)]
    with h5py.File(tmp_path / "d.h5", "w") as f5:
        s = write_features(f5.create_group("features"), chrom, bp, e, window=128, block_rows=1024)
        g = f5["features"]
        seq = g["sequence"]
        assert seq.shape == (2700, 128, 5) and seq.dtype == np.uint8 and seq.attrs["channels"] == "ACGTV"
        assert seq.chunks[1:] == (128, 5) and seq.compression == "gzip"
        assert "window" not in g and s["sequence"] == "sequence" and s["scalar_columns"] == ["sequence.gc"]
        got = read_features(g, (1400, 1600))
        assert np.array_equal(got["sequence"], one_hot(path, chrom[1400:1600], bp[1400:1600], window=128))
        assert got["sequence_channels"] == list(CHANNELS)
        gc = FastaSource().read(path, chrom, bp, window=128)[:, 0]
        assert np.allclose(read_features(g, (0, 2700), raw=True)["scalar"][:, 0], gc, atol=1e-6)
    with h5py.File(tmp_path / "e.h5", "w") as f5, pytest.raises(UserError, match="a second sequence feature"):
        write_features(f5.create_group("features"), chrom, bp, e + [ManifestEntry("s2", "fasta", path)])
