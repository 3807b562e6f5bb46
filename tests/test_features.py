"""Feature sources (bigwig, bed, table, architecture), the annotations manifest and the
features store: conformance for every built-in source, exact values against independent
brute-force computations, every bad-input message, and the HDF5 layout."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from varfx.errors import UserError
from varfx.features import sources
from varfx.features.manifest import ManifestEntry, entries_for_ingest, infer_kind, read_manifest
from varfx.features.sources import ArchitectureSource, BedSource, BigWigSource, TableSource, gather_windows
from varfx.features.store import feature_names, read_features, write_features
from varfx.testing.features import FeatureSourceConformance, write_bed, write_bigwig, write_fasta

SHARED = Path(os.environ.get("VARFX_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
TEST_BW = SHARED / "formats" / "pybigwig_test.bw"
BIM = SHARED / "chr22_1000g_ukb_height" / "1000G_eur_chr22.bim"
if not BIM.is_file():
    BIM = Path(__file__).resolve().parents[1] / "varfx" / "example_data" / "1000G_eur_chr22.bim"


@pytest.fixture(autouse=True)
def feature_plugins():
    """Register the built-in feature sources if the plugin manager does not have them yet."""
    from varfx import plugins
    import varfx.default_plugins.features as mod

    pm = plugins.get_plugin_manager()
    added = not pm.is_registered(mod)
    if added:
        pm.register(mod, name="varfx.default_plugins.features")
    yield
    if added and pm is plugins._pm and pm.is_registered(mod):
        pm.unregister(mod)


def _track_values(contigs, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for name, length in contigs.items():
        v = np.round(rng.normal(size=length), 3)
        v[rng.random(length) < 0.2] = np.nan  # gaps: no data
        v[100:300] = np.nan
        out[name] = v
    return out


# ----------------------------------------------------------------------------- conformance


class TestBigWigConformance(FeatureSourceConformance):
    source_name = "bigwig"

    def make_input(self, tmp_path):
        return write_bigwig(tmp_path / "track.bw", _track_values(self.contigs))


class TestBigWigNoTrackConformance(FeatureSourceConformance):
    source_name = "bigwig"
    source_options = {"track": False, "summary": "mean,max,min"}

    def make_input(self, tmp_path):
        return write_bigwig(tmp_path / "track.bw", _track_values(self.contigs, seed=3))


def _random_intervals(contigs, seed=0, extra=True):
    rng = np.random.default_rng(seed)
    iv = []
    for name, length in contigs.items():
        for _ in range(25):
            a = int(rng.integers(0, length))
            iv.append((name, a, int(min(length, a + rng.integers(1, 200)))))
    if extra:
        iv.append(("chrUn_gl000220", 5, 50))
    return iv


class TestBedConformance(FeatureSourceConformance):
    source_name = "bed"
    source_options = {"track": True}

    def make_input(self, tmp_path):
        return write_bed(tmp_path / "peaks.bed", _random_intervals(self.contigs), header="track name=x\n# comment\n")


class TestBedGzConformance(FeatureSourceConformance):
    source_name = "bed"
    source_options = {"overlap": False}

    def make_input(self, tmp_path):
        return write_bed(tmp_path / "peaks.bed.gz", _random_intervals(self.contigs, seed=2), gz=True)


class TestTablePositionConformance(FeatureSourceConformance):
    source_name = "table"

    def make_input(self, tmp_path):
        v = self.make_variants()
        rng = np.random.default_rng(5)
        lines = ["CHR\tBP\tA1\tA2\tcadd\tsift"]
        for i in range(0, len(v["bp"]), 2):
            c = f"chr{v['chrom'][i]}" if i % 4 else str(v["chrom"][i])
            a, b = (v["a1"][i], v["a2"][i]) if i % 3 else (v["a2"][i], v["a1"][i])
            sift = "NA" if i % 5 == 0 else f"{rng.uniform():.3f}"
            lines.append(f"{c}\t{v['bp'][i]}\t{a}\t{b}\t{rng.normal() * 5:.3f}\t{sift}")
        p = tmp_path / "scores.tsv.gz"
        with gzip.open(p, "wt") as fh:
            fh.write("\n".join(lines) + "\n")
        return p


class TestTableSnpConformance(FeatureSourceConformance):
    source_name = "table"

    def make_input(self, tmp_path):
        v = self.make_variants()
        p = tmp_path / "by_id.tsv"
        p.write_text("SNP\tscore\n" + "".join(f"{s}\t{i * 0.5}\n" for i, s in enumerate(v["snp"][::3])))
        return p


class TestArchitectureConformance(FeatureSourceConformance):
    source_name = "architecture"

    def make_input(self, tmp_path):
        return None


# ----------------------------------------------------------------------------- windows


def test_gather_windows_matches_direct_slicing():
    rng = np.random.default_rng(0)
    genome = rng.normal(size=200_000).astype(np.float32)

    def fetch(s, e):
        seg = np.zeros(e - s, dtype=np.float32)
        a, b = max(s, 0), min(e, len(genome))
        seg[a - s:b - s] = genome[a:b]
        return seg

    for w, gap, buf in ((16, 0, 64), (33, 100, 1000), (256, 8192, 1 << 23), (7, 5, 7)):
        start0 = np.sort(rng.integers(-w, len(genome), 3000))
        got = gather_windows(fetch, start0, w, dtype=np.float32, merge_gap=gap, max_buffer=buf)
        want = np.stack([fetch(int(s), int(s) + w) for s in start0])
        assert np.array_equal(got, want), (w, gap, buf)


def test_window_convention():
    # w = 256: positions pos-128 .. pos+127 (1-based); the variant is at offset 128.
    assert sources.window_starts(np.array([1000]), 256)[0] == 1000 - 1 - 128
    assert sources.window_starts(np.array([1000]), 7)[0] == 1000 - 1 - 3


def test_chromosome_codes():
    assert [sources.chrom_code(x) for x in ("22", "chr22", "CHR22", "X", "chrX", "Y", "MT", "chrM", 5, "chr1_random")] \
        == [22, 22, 22, 23, 23, 24, 26, 26, 5, -1]
    assert sources.chrom_label(23) == "X"
    assert sources.as_chrom_codes(np.array(["chrX", "1", "bogus"])).tolist() == [23, 1, -1]
    assert sources.contig_lookup(["chr1", "chrX", "chrUn_x", "1"]) == {1: "chr1", 23: "chrX"}


# ----------------------------------------------------------------------------- bigWig


@pytest.mark.skipif(not TEST_BW.is_file(), reason="shared test bigWig not found")
def test_bigwig_exact_values_of_shared_file():
    # pybigwig_test.bw: chromosome "1": [0,1)=0.1 [1,2)=0.2 [2,3)=0.3 [100,150)=1.4 [150,151)=1.5 ...;
    # "10": [200,300)=2.0.  Bases with no data are NaN -> 0.
    src = BigWigSource()
    v = src.values(TEST_BW, np.array([1, 1, 10]), np.array([2, 151, 250]), 6)
    f32 = np.float32
    assert np.array_equal(v[0], np.array([0, 0, 0.1, 0.2, 0.3, 0], dtype=f32))   # bases -1..4 (1-based)
    import pyBigWig

    bw = pyBigWig.open(str(TEST_BW))
    want = np.nan_to_num(np.array(bw.values("1", 147, 153), dtype=np.float32))
    assert np.array_equal(v[1], want)
    assert np.allclose(v[2], 2.0)
    assert src.read(TEST_BW, ["chr10"], [250], window=6)[0, 0] == pytest.approx(2.0)


def test_bigwig_against_per_variant_pybigwig(tmp_path):
    import pyBigWig

    contigs = {"chr1": 60_000, "chr2": 30_000}
    path = write_bigwig(tmp_path / "t.bw", _track_values(contigs, seed=11))
    rng = np.random.default_rng(2)
    chrom = rng.integers(1, 3, 3000)
    bp = np.array([rng.integers(1, contigs[f"chr{c}"] + 1) for c in chrom])
    # clustered and isolated variants: both merged and separate fetches
    bp[:50] = 30_000 + np.arange(50) * 3
    chrom[:50] = 1
    got = BigWigSource().values(path, chrom, bp, 64)
    bw = pyBigWig.open(str(path))
    for i in range(0, 3000, 7):
        c, p = f"chr{chrom[i]}", int(bp[i])
        s, e = p - 1 - 32, p - 1 + 32
        want = np.zeros(64, dtype=np.float32)
        a, b = max(s, 0), min(e, contigs[c])
        want[a - s:b - s] = np.nan_to_num(np.array(bw.values(c, a, b), dtype=np.float32))
        assert np.array_equal(got[i], want), i
    mean = BigWigSource().read(path, chrom, bp, window=64)
    assert np.allclose(mean[:, 0], got.mean(axis=1), atol=1e-6)


def test_bigwig_errors(tmp_path):
    path = write_bigwig(tmp_path / "t.bw", {"chr1": np.ones(1000)})
    src = BigWigSource()
    with pytest.raises(UserError, match=r"t\.bw: no chromosome X in this bigWig"):
        src.read(path, [23], [10])
    with pytest.raises(UserError, match=r"position 1001 is beyond the end of chromosome 1 \(1000 bp\)"):
        src.read(path, [1], [1001])
    with pytest.raises(UserError, match="no such bigWig"):
        src.read(tmp_path / "nope.bw", [1], [10])
    with pytest.raises(UserError, match="summary"):
        BigWigSource(summary="median").columns(path)


# ----------------------------------------------------------------------------- BED


def test_bed_coverage_matches_brute_force(tmp_path):
    rng = np.random.default_rng(4)
    L = 20_000
    iv = []
    for _ in range(300):
        a = int(rng.integers(0, L))
        iv.append(("chr3", a, int(min(L, a + rng.integers(0, 300)))))  # overlapping, some empty
    path = write_bed(tmp_path / "x.bed", iv)
    mask = np.zeros(L + 1000, dtype=bool)
    for _, a, b in iv:
        mask[a:b] = True
    pos = rng.integers(1, L + 1, 2000)
    w = 100
    src = BedSource(track=True)
    got = src.read(path, np.full(2000, 3), pos, window=w)
    track = src.read_track(path, np.full(2000, 3), pos, window=w)
    for i in range(2000):
        s = pos[i] - 1 - w // 2
        idx = np.arange(s, s + w)
        cov = np.where(idx >= 0, mask[np.clip(idx, 0, None)], False)
        assert got[i, 0] == pytest.approx(cov.mean())
        assert got[i, 1] == mask[pos[i] - 1]
        assert np.array_equal(track[i, :, 0], cov.astype(np.float32))


@pytest.mark.parametrize("text, message", [
    ("chr1\t10\n", r"line 1: expected at least 3 tab-separated fields"),
    ("chr1\t10\t20\nchr1\tten\t20\n", r"line 2: expected an integer start \(column 2\), found 'ten'"),
    ("chr1\t10\t2x\n", r"line 1: expected an integer end \(column 3\)"),
    ("# header\nchr1\t30\t20\n", r"line 2: expected 0 <= start <= end, found start 30, end 20"),
    ("chr1\t-5\t20\n", r"line 1: expected 0 <= start <= end"),
])
def test_bed_malformed_lines(tmp_path, text, message):
    p = tmp_path / "bad.bed"
    p.write_text(text)
    with pytest.raises(UserError, match=message) as err:
        BedSource().read(p, [1], [15])
    assert str(p) in str(err.value)


def test_bed_truncated_gzip(tmp_path):
    p = write_bed(tmp_path / "x.bed.gz", [("chr1", i, i + 5) for i in range(0, 50_000, 10)], gz=True)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="corrupt or truncated gzip"):
        BedSource().read(p, [1], [15])


# ----------------------------------------------------------------------------- table


def test_table_matching_alleles_strand_and_absent(tmp_path):
    p = tmp_path / "t.tsv"
    p.write_text("CHR\tBP\tA1\tA2\tscore\tother\n"
                 "chr22\t100\tA\tG\t1.5\tNA\n"      # same order
                 "22\t200\tT\tC\t-2\t3\n"           # swapped order of C/T
                 "22\t300\tT\tC\t4\t.\n"            # other strand of A/G
                 "22\t400\tA\tC\t9\t9\n"            # alleles differ from the variant's
                 "X\t500\tA\tG\t7\t1e-3\n")
    v = {"a1": np.array(["A", "C", "A", "A", "G", "A"]), "a2": np.array(["G", "T", "G", "T", "A", "G"])}
    x = TableSource().read(p, np.array([22, 22, 22, 22, 23, 22]), np.array([100, 200, 300, 400, 500, 600]), variants=v)
    assert x.tolist() == [[1.5, 0], [-2, 3], [4, 0], [0, 0], [7, 1e-3], [0, 0]]
    assert TableSource(columns="other").columns(p) == ["other"]


@pytest.mark.parametrize("text, message", [
    ("CHR\tBP\tscore\n22\t100\tabc\n", r"line 2, column 'score': expected a number \(or NA\), found 'abc'"),
    ("CHR\tBP\tscore\n22\t1x0\t1\n", r"line 2, column 'BP': expected an integer position"),
    ("CHR\tBP\tscore\n22\t100\n", r"line 2: expected 3 fields as in the header, found 2"),
    ("CHR\tBP\tscore\n22\t100\t1\n22\t100\t2\n", r"line 3: a second row for the same variant \(first on line 2\)"),
    ("GENE\tscore\nx\t1\n", r"line 1: expected a SNP column or CHR and BP columns"),
    ("CHR\tBP\n22\t100\n", r"line 1: no value columns"),
    ("", r"empty table"),
])
def test_table_errors(tmp_path, text, message):
    p = tmp_path / "t.tsv"
    p.write_text(text)
    with pytest.raises(UserError, match=message) as err:
        TableSource().read(p, np.array([22]), np.array([100]))
    assert str(p) in str(err.value)


def test_table_option_and_id_errors(tmp_path):
    p = tmp_path / "t.tsv"
    p.write_text("SNP\tscore\nrs1\t2\n")
    with pytest.raises(UserError, match="no column 'nope'"):
        TableSource(columns="nope").columns(p)
    with pytest.raises(UserError, match="keyed by SNP id"):
        TableSource().read(p, np.array([1]), np.array([5]))
    assert TableSource().read(p, [1, 1], [5, 6], variants={"snp": np.array(["rs2", "rs1"])}).tolist() == [[0], [2]]


# ----------------------------------------------------------------------------- architecture


def test_architecture_columns_and_missing_values():
    src = ArchitectureSource()
    v = {"freq": np.array([0.1, 0.8, np.nan, 0.5])}
    assert src.columns(None, variants=v) == ["freq", "maf"]
    src.prepare(None, [1] * 4, [1, 2, 3, 4], variants=v)
    x = src.read(None, [1] * 4, [1, 2, 3, 4], variants=v)
    assert np.allclose(x[:, 0], [0.1, 0.8, 0.4666666667, 0.5])
    assert np.allclose(x[[0, 1, 3], 1], [0.1, 0.2, 0.5])
    v["ld_score"] = np.array([1.0, 2, 3, 4])
    assert ArchitectureSource().columns(None, variants=v) == ["freq", "maf", "ld_score"]
    with pytest.raises(UserError, match="needs the variants' LD scores"):
        ArchitectureSource(columns="ld_score").read(None, [1], [1], variants={"freq": np.array([0.2])})
    with pytest.raises(UserError, match="unknown column 'beta'"):
        ArchitectureSource(columns="freq,beta").columns(None)


# ----------------------------------------------------------------------------- manifest


@pytest.fixture
def inputs(tmp_path):
    d = tmp_path / "annot"
    d.mkdir()
    write_bigwig(d / "cons.bigwig.data", _track_values({"chr22": 5000}))  # kind from the magic bytes
    write_bed(d / "enh.bed.gz", [("chr22", 100, 900), ("22", 2000, 2100)], gz=True)
    (d / "coding.txt").write_text("CHR\tBP\tscore\n22\t1000\t2.5\n")
    write_fasta(d / "ref.fa", {"chr22": "ACGT" * 1250})
    return d


def test_manifest_parses_and_infers_kinds(inputs):
    m = inputs / "manifest.tsv"
    m.write_text("# annotations\nname\tpath\tkind\twindow\toptions\n"
                 "cons\tcons.bigwig.data\t\t\t\n"
                 "enh\tenh.bed.gz\t\t1000\ttrack=true;overlap=no\n"
                 "coding\tcoding.txt\t\t\t\n"
                 "seq\tref.fa\n"
                 "arch\t-\tarchitecture\t\tcolumns=freq,maf\n"
                 "\n")
    e = read_manifest(m)
    assert [(x.name, x.kind, x.window) for x in e] == [
        ("cons", "bigwig", None), ("enh", "bed", 1000), ("coding", "table", None), ("seq", "fasta", None),
        ("arch", "architecture", None)]
    assert e[0].path == (inputs / "cons.bigwig.data").resolve()
    assert e[1].options == {"track": True, "overlap": False}
    assert e[4].path is None and e[4].options == {"columns": "freq,maf"}
    assert e[1].where == f"{m}, line 4"
    assert infer_kind(inputs / "enh.bed.gz") == "bed"


@pytest.mark.parametrize("body, message", [
    ("name\tfile\nx\ty\n", r"line 1: expected a header with columns name, path"),
    ("name\tpath\tcolour\n", r"line 1: unknown column 'colour'"),
    ("name\tpath\nx\tmissing.bw\n", r"line 2, column 'path': no such file 'missing.bw'"),
    ("name\tpath\tkind\nx\tcoding.txt\ttable\nx\tcoding.txt\ttable\n", r"line 3, column 'name': name 'x' already used on line 2"),
    ("name\tpath\tkind\nx\tcoding.txt\tvcf\n", r"line 2, column 'kind': unknown kind 'vcf'"),
    ("name\tpath\tkind\twindow\nx\tcoding.txt\ttable\t-5\n", r"line 2, column 'window': expected a positive whole number"),
    ("name\tpath\tkind\toptions\nx\tenh.bed.gz\tbed\ttrack=maybe\n", r"line 2, column 'options': option track='maybe'"),
    ("name\tpath\tkind\toptions\nx\tenh.bed.gz\tbed\tcolour=red\n", r"line 2, column 'options': .*has no option 'colour'"),
    ("name\tpath\tkind\nx\t\tbigwig\n", r"line 2, column 'path': kind 'bigwig' needs a file"),
    ("name\tpath\nx\t\n", r"line 2: no path and no kind"),
    ("name\tpath\nx\tjunk.bin\n", r"line 2, column 'path': cannot tell the kind of 'junk.bin'"),
    ("name\tpath\nbad/name\tcoding.txt\n", r"line 2, column 'name': name 'bad/name'"),
    ("name\tpath\nx\tcoding.txt\textra\n", r"line 2: expected at most 2 tab-separated fields"),
    ("# only a comment\n", r"empty manifest"),
])
def test_manifest_errors(inputs, body, message):
    (inputs / "junk.bin").write_bytes(b"\x00\x01\x02" * 10)
    m = inputs / "manifest.tsv"
    m.write_text(body)
    with pytest.raises(UserError, match=message) as err:
        read_manifest(m)
    assert str(err.value).startswith(str(m))
    assert "\n" not in str(err.value)


def test_manifest_missing_file(tmp_path):
    with pytest.raises(UserError, match="no such annotations manifest"):
        read_manifest(tmp_path / "none.tsv")


# ----------------------------------------------------------------------------- store


def _chr22_variants(n=3000):
    rows = [line.split() for line in open(BIM)][:n]
    return (np.array([int(r[0]) for r in rows]), np.array([int(r[3]) for r in rows]),
            {"snp": np.array([r[1] for r in rows]), "a1": np.array([r[4] for r in rows]),
             "a2": np.array([r[5] for r in rows]), "freq": np.random.default_rng(0).uniform(0.01, 0.99, len(rows))})


@pytest.fixture
def chr22_entries(tmp_path):
    if not BIM.is_file():
        pytest.skip("chr22 .bim not found")
    chrom, bp, extra = _chr22_variants()
    lo, hi = int(bp.min()) - 1000, int(bp.max()) + 1000
    rng = np.random.default_rng(1)
    # a bigWig covering the variants' span with 25-bp steps (named "chr22"), and a BED
    import pyBigWig

    bwp = tmp_path / "cons.bw"
    bw = pyBigWig.open(str(bwp), "w")
    bw.addHeader([("chr22", 51_304_566)], maxZooms=0)
    bw.addEntries("chr22", lo, values=np.round(rng.normal(2, 1, (hi - lo) // 25), 2).tolist(), span=25, step=25)
    bw.close()
    bedp = write_bed(tmp_path / "enh.bed", [("chr22", int(a), int(a) + 500) for a in rng.integers(lo, hi, 3000)])
    tab = tmp_path / "coding.tsv"
    idx = rng.choice(len(bp), 300, replace=False)
    tab.write_text("CHR\tBP\tA1\tA2\tscore\tnever\n" + "".join(
        f"22\t{bp[i]}\t{extra['a2'][i]}\t{extra['a1'][i]}\t{rng.normal():.4f}\tNA\n" for i in idx))
    entries = [
        ManifestEntry("cons", "bigwig", bwp),
        ManifestEntry("enh", "bed", bedp, window=1000, options={"track": True}),
        ManifestEntry("coding", "table", tab),
        ManifestEntry("arch", "architecture", None),
    ]
    return chrom, bp, extra, entries


def test_store_layout_and_normalisation(tmp_path, chr22_entries):
    import h5py

    chrom, bp, extra, entries = chr22_entries
    calls = []
    with h5py.File(tmp_path / "d.h5", "w") as f5:
        s = write_features(f5.create_group("features"), chrom, bp, entries, window=64, variants=extra,
                           progress=lambda m, d, t: calls.append((m, d, t)), block_rows=1024)
        g = f5["features"]
        assert g.attrs["format"] == "varfx-features" and g.attrs["window"] == 64 and g.attrs["variant_offset"] == 32
        names = feature_names(g)
        assert names["scalar"] == ["cons.mean", "enh.coverage", "enh.overlap", "coding.score", "coding.never",
                                   "arch.freq", "arch.maf"]
        assert names["window"] == ["cons.value", "enh.coverage"] and names["sequence"] == []
        M = len(bp)
        assert g["scalar"].shape == (M, 7) and g["scalar"].dtype == np.float32
        w = g["window"]
        assert w.shape == (M, 64, 2) and w.dtype == np.float16
        assert w.chunks == (1024, 64, 1) and w.compression == "gzip"
        x = g["scalar"][()].astype(np.float64)
        assert np.allclose(x.mean(0), 0, atol=1e-5)
        assert np.allclose(x[:, :4].std(0), 1, atol=1e-4) and np.allclose(x[:, 5:].std(0), 1, atol=1e-4)
        assert s["constant_columns"] == ["coding.never"] and np.all(x[:, 4] == 0)
        assert g["scalar_constant"][()].tolist() == [False, False, False, False, True, False, False]
        ww = w[()].astype(np.float64)
        assert np.allclose(ww.mean(axis=(0, 1)), 0, atol=2e-3) and np.allclose(ww.std(axis=(0, 1)), 1, atol=2e-3)
        # a range read equals the slice of the whole, and raw values come back
        part = read_features(g, (1500, 1700))
        assert np.array_equal(part["scalar"], g["scalar"][1500:1700])
        assert np.array_equal(part["window"], w[1500:1700].astype(np.float32))
        raw = read_features(g, slice(1500, 1700), raw=True)
        src = entries[0].source()
        want = src.read(entries[0].path, chrom[1500:1700], bp[1500:1700], window=64)
        assert np.allclose(raw["scalar"][:, 0], want[:, 0], atol=1e-5)
        assert np.allclose(raw["window"][..., 0], src.values(entries[0].path, chrom[1500:1700], bp[1500:1700], 64),
                           atol=5e-3 * 2)
        cov = BedSource().read(entries[1].path, chrom, bp, window=1000)[:, 0]  # the manifest window, not 64
        assert np.allclose(read_features(g, (0, M), raw=True)["scalar"][:, 1], cov, atol=1e-5)
        recs = json.loads(g.attrs["entries"])
        assert recs[0]["name"] == "cons" and len(recs[0]["sha256"]) == 64 and recs[2]["info"]["rows_matched"] == 300
    assert calls[-1] == ("features: done", M, M)
    assert s["n_variants"] == M and not s["tracks_read_twice"]


def test_store_rereads_tracks_when_over_budget(tmp_path, chr22_entries):
    import h5py

    chrom, bp, extra, entries = chr22_entries
    out = []
    for budget in (1 << 30, 0):
        with h5py.File(tmp_path / f"d{budget}.h5", "w") as f5:
            s = write_features(f5.create_group("features"), chrom, bp, entries[:2], window=32, variants=extra,
                               memory_budget=budget, block_rows=1024, dtype="float32")
            out.append((f5["features/window"][()], s["tracks_read_twice"]))
    assert np.array_equal(out[0][0], out[1][0]) and out[1][1] and not out[0][1]


def test_store_errors_name_the_manifest_line(tmp_path):
    import h5py

    bw = write_bigwig(tmp_path / "t.bw", {"chr1": np.ones(100)})
    m = tmp_path / "m.tsv"
    m.write_text(f"name\tpath\n\ntrack\t{bw}\n")
    entries = read_manifest(m)
    with h5py.File(tmp_path / "d.h5", "w") as f5, pytest.raises(UserError) as err:
        write_features(f5.create_group("features"), np.array([22]), np.array([50]), entries)
    msg = str(err.value)
    assert msg.startswith(f"{m}, line 3 (track): {bw}: no chromosome 22 in this bigWig")
    with h5py.File(tmp_path / "e.h5", "w") as f5, pytest.raises(UserError, match="used twice"):
        write_features(f5.create_group("features"), [1], [5], entries + entries)


def test_entries_for_ingest(tmp_path):
    fa = write_fasta(tmp_path / "ref.fa", {"chr1": "ACGT" * 10})
    m = tmp_path / "m.tsv"
    m.write_text("name\tpath\tkind\narch\t\tarchitecture\n")
    e = entries_for_ingest(m, fa)
    assert [(x.name, x.kind) for x in e] == [("arch", "architecture"), ("sequence", "fasta")]
    assert entries_for_ingest() == []
    m.write_text(f"name\tpath\nseq2\t{fa}\n")
    with pytest.raises(UserError, match="expected one FASTA"):
        entries_for_ingest(m, fa)


# ----------------------------------------------------------------------------- plugins, imports


def test_builtin_sources_registered():
    from varfx.plugins import get_feature_sources

    assert {"bigwig", "bed", "table", "architecture", "fasta"} <= set(get_feature_sources())


def test_feature_modules_import_nothing_heavy():
    code = ("import sys\nimport varfx.default_plugins.features, varfx.features, varfx.features.manifest\n"
            "print(','.join(m for m in ('numpy', 'h5py', 'pyBigWig', 'pysam', 'torch') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == "", res.stdout + res.stderr


def test_plink_bed_is_not_a_bed_interval_file(tmp_path):
    p = tmp_path / "panel.bed"
    p.write_bytes(b"\x6c\x1b\x01" + bytes(100))
    assert not BedSource.sniff(p)
    with pytest.raises(UserError, match="a PLINK binary genotype .bed, not a BED interval file"):
        BedSource().read(p, [1], [10])
