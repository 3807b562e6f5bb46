"""Ingest: real UKB height chr22 vs the real 1000G chr22 panel, LDSC input, UKBB regions."""

from __future__ import annotations

import gzip
import json

import h5py
import numpy as np
import pytest

from varfx.io.ld import open_ld
from varfx.io.plink import load_plink
from varfx.io.sumstats import read_sumstats
from varfx.stages.ingest import run_ingest
from varfx.store import DATASET_FORMAT, DATASET_VERSION

COMP = {"A": "T", "C": "G", "G": "C", "T": "A"}


def corr_of_dosages(g):
    """np.corrcoef of mean-imputed dosages (variants x people)."""
    x = g.astype(np.float64)
    miss = x < 0
    if miss.any():
        x = np.where(miss, np.nan, x)
        x = np.where(miss, np.nanmean(x, axis=1, keepdims=True), x)
    return np.corrcoef(x)


def _strs(ds):
    return np.array([x.decode() if isinstance(x, bytes) else x for x in ds[()]])


def expected_join(ss_rows, bim_rows, dosages, by="position"):
    """An independent, dictionary-based harmonisation of sumstats rows
    ``(snp, chrom, bp, a1, a2, z, n, freq)`` against .bim rows: the expected counts and
    the expected dataset, keyed by panel row."""
    key = (lambda c, bp, snp: (c, bp)) if by == "position" else (lambda c, bp, snp: snp)
    ref = {}
    for j, (c, snp, _cm, bp, a1, a2) in enumerate(bim_rows):
        ref.setdefault(key(int(c), int(bp), snp), []).append(j)
    seen = {}
    for r in ss_rows:
        k = key(r[1], r[2], r[0]) if by == "rsid" else (r[1], r[2], frozenset((r[3], r[4])))
        seen[k] = seen.get(k, 0) + 1
    counts = dict(read=len(ss_rows), matched=0, flipped=0, strand_flipped=0)
    dropped = dict(duplicate=0, strand_ambiguous=0, not_in_ld=0, allele_mismatch=0)
    out = {}
    for snp, c, bp, a1, a2, z, n, fr in ss_rows:
        k = (snp if by == "rsid" else (c, bp, frozenset((a1, a2))))
        if seen[k] > 1:
            dropped["duplicate"] += 1
            continue
        if {a1, a2} in ({"A", "T"}, {"C", "G"}):
            dropped["strand_ambiguous"] += 1
            continue
        cands = ref.get(key(c, bp, snp), [])
        if not cands:
            dropped["not_in_ld"] += 1
            continue
        hit = None
        for j in cands:
            b1, b2 = bim_rows[j][4], bim_rows[j][5]
            ca1, ca2 = COMP.get(a1), COMP.get(a2)
            if (a1, a2) == (b1, b2):
                hit = (j, 1, False)
            elif (a1, a2) == (b2, b1):
                hit = (j, -1, False)
            elif (ca1, ca2) == (b1, b2):
                hit = (j, 1, True)
            elif (ca1, ca2) == (b2, b1):
                hit = (j, -1, True)
            if hit:
                break
        if hit is None:
            dropped["allele_mismatch"] += 1
            continue
        j, s, strand = hit
        counts["matched"] += 1
        counts["flipped"] += s < 0
        counts["strand_flipped"] += strand
        out[j] = (s * z, n, fr if s > 0 else 1 - fr)
    return counts, dropped, out


def read_fastgwa_rows(path):
    rows = []
    with gzip.open(path, "rt") as fh:
        header = fh.readline().split()
        assert header == "CHR SNP POS A1 A2 N AF1 BETA SE P".split()
        for line in fh:
            c, snp, pos, a1, a2, n, af, beta, se, _p = line.split()
            rows.append((snp, int(c), int(pos), a1, a2, float(beta) / float(se), float(n), float(af)))
    return rows


# ---------------------------------------------------------------------------------------
# real data: UKB height chr22 (fastGWA) x 1000G EUR chr22 (PLINK)


@pytest.fixture(scope="module")
def real_plink_dataset(tmp_path_factory, fastgwa_path, panel_prefix):
    out = tmp_path_factory.mktemp("real") / "ds"
    summary = run_ingest(fastgwa_path, panel_prefix, out, progress=False)
    return out, summary


def test_real_fastgwa_vs_plink_counts(real_plink_dataset, fastgwa_path, panel_bim, panel_dosages):
    out, summary = real_plink_dataset
    ss_rows = read_fastgwa_rows(fastgwa_path)
    counts, dropped, _ = expected_join(ss_rows, panel_bim, panel_dosages)
    # independently computed...
    for k, v in counts.items():
        assert summary[k] == v, k
    for k, v in dropped.items():
        assert summary["dropped"][k] == v, k
    # ...and the numbers themselves (so a change in the data or the rules is noticed)
    assert summary["read"] == 15935
    assert summary["ld_variants"] == 15938
    assert summary["ld_monomorphic"] == 0
    assert summary["matched"] == 14954
    assert summary["flipped"] == 10830
    assert summary["strand_flipped"] == 0
    assert summary["dropped"] == {
        "duplicate": 0, "strand_ambiguous": 981, "not_in_ld": 0, "allele_mismatch": 0,
        "duplicate_in_ld": 0, "monomorphic_in_ld": 0,
    }
    assert summary["read"] == summary["matched"] + sum(summary["dropped"].values())
    assert summary["sumstats_format"] == "fastGWA" and summary["match_by"] == "position"
    assert summary["ld_kind"] == "plink" and summary["n_ref"] == 378
    json.dumps(summary)  # the CLI prints it as JSON


def test_real_dataset_contents(real_plink_dataset, fastgwa_path, panel_bim, panel_dosages):
    out, summary = real_plink_dataset
    _, _, expected = expected_join(read_fastgwa_rows(fastgwa_path), panel_bim, panel_dosages)
    rows = sorted(expected, key=lambda j: (int(panel_bim[j][0]), int(panel_bim[j][3])))
    with h5py.File(out / "dataset.h5", "r") as f:
        assert f.attrs["format"] == DATASET_FORMAT and f.attrs["format_version"] == DATASET_VERSION
        assert f.attrs["ld_kind"] == "plink" and f.attrs["n_ref"] == 378 and f.attrs["build"] == "hg19"
        prov = json.loads(f.attrs["provenance"])
        roles = {r["role"] for r in prov["inputs"]}
        assert roles == {"sumstats", "ld_bed", "ld_bim", "ld_fam"}
        assert all(len(r["sha256"]) == 64 for r in prov["inputs"])
        assert prov["counts"]["matched"] == 14954
        v = f["variants"]
        assert _strs(v["snp"]).tolist() == [panel_bim[j][1] for j in rows]
        assert _strs(v["a1"]).tolist() == [panel_bim[j][4] for j in rows]
        assert _strs(v["a2"]).tolist() == [panel_bim[j][5] for j in rows]
        assert v["chrom"].dtype == np.int16 and np.all(v["chrom"][()] == 22)
        bp = v["bp"][()]
        assert np.all(np.diff(bp) > 0)
        np.testing.assert_array_equal(v["z"][()], [expected[j][0] for j in rows])
        np.testing.assert_array_equal(v["n"][()], [expected[j][1] for j in rows])
        assert f.attrs["N"] == np.median([expected[j][1] for j in rows])
        # freq: A1 frequency in the panel (not the UKB one)
        g = panel_dosages[rows].astype(float)
        np.testing.assert_allclose(v["freq"][()], g.mean(axis=1) / 2)
        # orientation sanity on real data: UKB AF1 oriented to the panel's A1 agrees
        # with the 1000G EUR frequency (a wrong flip would make this negative)
        ukb = np.array([expected[j][2] for j in rows])
        assert np.corrcoef(ukb, v["freq"][()])[0, 1] > 0.95
        geno = f["ld/genotypes"]
        assert geno.dtype == np.int8 and geno.shape == (14954, 378)
        assert geno.chunks == (1024, 378) and geno.compression == "gzip"
        np.testing.assert_array_equal(geno[()], panel_dosages[rows])


def test_plink_correlation_matches_corrcoef(real_plink_dataset, panel_dosages):
    out, _ = real_plink_dataset
    with h5py.File(out / "dataset.h5", "r") as f:
        ld = open_ld(f)
        assert ld.kind == "plink" and ld.n_ref == 378
        geno = f["ld/genotypes"]
        for idx in (np.arange(500, 800), np.array([3, 10, 11, 400, 14953])):
            R = ld.correlation(idx, 22, int(f["variants/bp"][idx[len(idx) // 2]]))
            assert R.dtype == np.float64 and R.shape == (len(idx), len(idx))
            np.testing.assert_array_equal(np.diag(R), 1.0)
            np.testing.assert_allclose(R, np.corrcoef(geno[()][idx].astype(float)), atol=1e-12)


def test_plink_correlation_mean_imputes_missing(tmp_path):
    """Missing genotypes are set to the variant's mean; the diagonal stays exactly 1."""
    g = np.array([[0, 1, 2, -1, 2, 0], [1, 1, 0, 2, -1, 0], [2, 2, 1, 0, 0, -1]], dtype=np.int8)
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f.create_group("ld").attrs["kind"] = "plink"
        f["ld"].create_dataset("genotypes", data=g)
        R = open_ld(f).correlation(np.arange(3), 22, 0)
    np.testing.assert_allclose(R, corr_of_dosages(g), atol=1e-12)
    np.testing.assert_array_equal(np.diag(R), 1.0)


def test_plink_reader_matches_independent_decoder(panel_prefix, panel_dosages):
    panel = load_plink(panel_prefix)
    assert panel.n_people == 378 and panel.n_snps == 15938
    np.testing.assert_array_equal(panel.genotypes(), panel_dosages)
    idx = np.array([15937, 0, 77])
    np.testing.assert_array_equal(panel.genotypes(idx), panel_dosages[idx])


def test_plink_prefix_or_bed_path(tmp_path, fastgwa_path, panel_prefix):
    a = run_ingest(fastgwa_path, str(panel_prefix) + ".bed", tmp_path / "a", progress=False)
    assert a["matched"] == 14954


def test_monomorphic_panel_variants_dropped(tmp_path, fastgwa_path, panel_copy, panel_bim):
    """Panel variants with no variation are dropped and counted."""
    from varfx.io.plink import BED_MAGIC

    raw = bytearray(panel_copy.with_suffix(".bed").read_bytes())
    bpv = (378 + 3) // 4
    for j in (5, 6):  # every person homozygous A2 (code 11)
        raw[3 + j * bpv : 3 + (j + 1) * bpv] = b"\xff" * bpv
    assert bytes(raw[:3]) == BED_MAGIC
    panel_copy.with_suffix(".bed").write_bytes(bytes(raw))
    s = run_ingest(fastgwa_path, panel_copy, tmp_path / "ds", progress=False)
    assert s["ld_monomorphic"] == 2
    ambiguous = sum({panel_bim[j][4], panel_bim[j][5]} in ({"A", "T"}, {"C", "G"}) for j in (5, 6))
    assert s["dropped"]["monomorphic_in_ld"] == 2 - ambiguous
    assert s["matched"] == 14954 - (2 - ambiguous)


# ---------------------------------------------------------------------------------------
# LDSC format, small fixture made from the real data


def _ldsc_fixture(path, fastgwa_rows, bim_rows, *, with_pos=False, with_n=True, gz=False):
    """An LDSC .sumstats file with every kind of drop, and the expected counts."""
    bim_by_snp = {r[1]: r for r in bim_rows}
    plain = [r for r in fastgwa_rows[:200] if {r[3], r[4]} not in ({"A", "T"}, {"C", "G"})]
    ambiguous = [r for r in fastgwa_rows[:200] if {r[3], r[4]} in ({"A", "T"}, {"C", "G"})][:2]
    rows = []
    for r in plain[:40]:
        rows.append(list(r))
    dup = list(plain[40])
    rows += [dup, list(dup)]  # the same SNP twice: both dropped
    rows += [list(r) for r in ambiguous]
    rows.append(["rs_not_in_panel", 22, 1, "A", "G", 1.5, 1000.0, np.nan])
    # allele mismatch: panel alleles X/Y, give X/Z with Z not Y nor a complement pairing
    mm = list(plain[41])
    b1, b2 = bim_by_snp[mm[0]][4], bim_by_snp[mm[0]][5]
    pick = next(a for a in "ACGT" if a not in (b1, b2) and {b1, a} not in ({"A", "T"}, {"C", "G"}))
    mm[3], mm[4] = b1, pick
    rows.append(mm)
    # strand flips: complemented (same order) and complemented + swapped
    s1 = list(plain[42])
    s1[3], s1[4] = COMP[s1[3]], COMP[s1[4]]
    s2 = list(plain[43])
    s2[3], s2[4] = COMP[s2[4]], COMP[s2[3]]
    s2[5] = -s2[5]
    rows += [s1, s2]
    with (gzip.open(path, "wt") if gz else open(path, "w")) as fh:
        cols = ["SNP"] + (["CHR", "BP"] if with_pos else []) + ["A1", "A2", "Z"] + (["N"] if with_n else [])
        fh.write("\t".join(cols) + "\n")
        for snp, c, bp, a1, a2, z, n, _fr in rows:
            vals = [snp] + ([str(c), str(bp)] if with_pos else []) + [a1, a2, repr(float(z))] + ([str(int(n))] if with_n else [])
            fh.write("\t".join(vals) + "\n")
    return [tuple(r) for r in rows]


@pytest.mark.parametrize("with_pos,gz", [(False, False), (False, True), (True, False)])
def test_ldsc_small_fixture(tmp_path, fastgwa_path, panel_prefix, panel_bim, panel_dosages, with_pos, gz):
    fastgwa_rows = read_fastgwa_rows(fastgwa_path)
    path = tmp_path / ("small.sumstats.gz" if gz else "small.sumstats")
    rows = _ldsc_fixture(path, fastgwa_rows, panel_bim, with_pos=with_pos, gz=gz)
    ss = read_sumstats(path)
    assert ss.format == "ldsc" and ss.has_position == with_pos
    by = "position" if with_pos else "rsid"
    counts, dropped, expected = expected_join(rows, panel_bim, panel_dosages, by=by)
    s = run_ingest(path, panel_prefix, tmp_path / "ds", progress=False)
    assert s["sumstats_format"] == "ldsc" and s["match_by"] == by
    assert {k: s[k] for k in counts} == counts
    assert {k: s["dropped"][k] for k in dropped} == dropped
    # the fixture has one of each kind of drop
    assert counts["matched"] == 42 and counts["strand_flipped"] == 2
    assert dropped == {"duplicate": 2, "strand_ambiguous": 2, "not_in_ld": 1, "allele_mismatch": 1}
    with h5py.File(tmp_path / "ds" / "dataset.h5", "r") as f:
        snps = _strs(f["variants/snp"]).tolist()
        z = f["variants/z"][()]
        for j, (ez, _n, _f) in expected.items():
            assert z[snps.index(panel_bim[j][1])] == pytest.approx(ez, abs=1e-12)
        assert np.isnan(f["variants/freq"][()]).sum() == 0  # plink: panel frequency


def test_ldsc_without_n_uses_option(tmp_path, fastgwa_path, panel_prefix, panel_bim):
    path = tmp_path / "noN.sumstats"
    _ldsc_fixture(path, read_fastgwa_rows(fastgwa_path), panel_bim, with_n=False)
    s = run_ingest(path, panel_prefix, tmp_path / "ds", n=123456, progress=False)
    assert s["N"] == 123456.0 and s["n_source"] == "option"
    with h5py.File(tmp_path / "ds" / "dataset.h5", "r") as f:
        assert np.all(f["variants/n"][()] == 123456.0)


def test_read_sumstats_fastgwa_arrays(fastgwa_path):
    ss = read_sumstats(fastgwa_path)
    assert ss.format == "fastGWA" and ss.n_variants == 15935
    assert ss["snp"][0] == "rs131538" and ss["chrom"][0] == 22 and ss["bp"][0] == 16871137
    assert ss["a1"][1] == "T" and ss["a2"][1] == "C"
    assert ss["z"][0] == pytest.approx(-0.0027253 / 0.00337976)
    assert ss["n"][0] == 450331 and ss["freq"][0] == pytest.approx(0.0494925)
    assert ss["z"].dtype == np.float64 and ss["bp"].dtype == np.int64


def test_read_sumstats_many_rows(tmp_path):
    """200,000 rows parse exactly (speed is measured in benchmarks/, not here)."""
    rng = np.random.default_rng(0)
    m = 200_000
    z = rng.normal(size=m)
    lines = ["SNP\tCHR\tBP\tA1\tA2\tZ\tN"]
    lines += [f"rs{i}\t{1 + i % 22}\t{1000 + i}\tA\tG\t{z[i]:.5f}\t10000" for i in range(m)]
    path = tmp_path / "big.sumstats"
    path.write_text("\n".join(lines) + "\n")
    ss = read_sumstats(path)
    assert ss.n_variants == m
    np.testing.assert_allclose(ss["z"], np.round(z, 5))
    assert ss["bp"][-1] == 1000 + m - 1 and ss["chrom"][-1] == 1 + (m - 1) % 22


def test_column_override(tmp_path):
    path = tmp_path / "odd.txt"
    path.write_text("MARKER A1 A2 ZSCORE N\nrs1 a g 1.5 100\n")
    ss = read_sumstats(path, columns={"snp": "MARKER", "z": "ZSCORE"})
    assert ss["snp"].tolist() == ["rs1"] and ss["a1"].tolist() == ["A"] and ss["z"].tolist() == [1.5]


# ---------------------------------------------------------------------------------------
# UKBB / PolyFun regions written from the real panel

REGION_A = list(range(1000, 1300))  # 300 SNPs
REGION_B = list(range(1150, 1450))  # overlaps A by 150
SWAP_B = set(range(1150, 1450, 7))  # listed with the alleles the other way round in B


@pytest.fixture
def ukbb_dir(tmp_path, write_region):
    d = tmp_path / "ukbb"
    _, RA, _ = write_region(d, REGION_A)
    _, RB, allele1_b = write_region(d, REGION_B, swap=SWAP_B)
    return d, RA, RB, allele1_b


def test_ukbb_regions_ingest_and_correlation(tmp_path, ukbb_dir, fastgwa_path, panel_bim, panel_dosages):
    d, RA, RB, allele1_b = ukbb_dir
    s = run_ingest(fastgwa_path, d, tmp_path / "ds", progress=False)
    assert s["ld_kind"] == "ukbb" and s["ld_regions"] == 2 and s["ld_regions_used"] == 2
    assert s["n_ref"] == 0
    # expected: all panel rows 1000..1449 that the sumstats have, minus strand-ambiguous
    union = sorted(set(REGION_A) | set(REGION_B))
    assert s["ld_variants"] == len(union)
    ss_pos = {r[2] for r in read_fastgwa_rows(fastgwa_path)}
    amb = [j for j in union if {panel_bim[j][4], panel_bim[j][5]} in ({"A", "T"}, {"C", "G"})]
    keep = [j for j in union if j not in amb and int(panel_bim[j][3]) in ss_pos]
    assert s["matched"] == len(keep)
    union_pos = {int(panel_bim[j][3]) for j in union}
    assert s["dropped"]["not_in_ld"] == sum(
        r[2] not in union_pos and {r[3], r[4]} not in ({"A", "T"}, {"C", "G"})
        for r in read_fastgwa_rows(fastgwa_path)
    )
    assert s["read"] == s["matched"] + sum(s["dropped"].values())

    with h5py.File(tmp_path / "ds" / "dataset.h5", "r") as f:
        assert f.attrs["ld_kind"] == "ukbb" and f["ld"].attrs["kind"] == "ukbb"
        v = f["variants"]
        snps = _strs(v["snp"]).tolist()
        a1 = _strs(v["a1"]).tolist()
        assert snps == [panel_bim[j][1] for j in keep]
        # orientation: from the first region listing a variant (A = panel A1), and for
        # B-only variants from B, where SWAP_B rows list the panel's A2 first
        b_allele1 = dict(zip(REGION_B, allele1_b))
        for j, allele in zip(keep, a1):
            want = panel_bim[j][4] if j in REGION_A else b_allele1[j]
            assert allele == want
        regions = sorted(f["ld/regions"])
        assert len(regions) == 2
        for name in regions:
            g = f["ld/regions"][name]
            assert {"chrom", "start", "end"} <= set(g.attrs) and g.attrs["chrom"] == 22
            assert np.all(np.diff(g["idx"][()]) > 0)
            assert g["data"].dtype == np.float32 and g["indices"].dtype == np.int32 and g["indptr"].dtype == np.int64

        ld = open_ld(f)
        assert ld.kind == "ukbb"
        pos = {j: i for i, j in enumerate(keep)}
        # region A alone
        in_a = [j for j in keep if j in REGION_A]
        idx = np.array([pos[j] for j in in_a])
        center_a = (int(panel_bim[REGION_A[0]][3]) + int(panel_bim[REGION_A[-1]][3]) + 1) // 2
        R = ld.correlation(idx, 22, center_a)
        truth = corr_of_dosages(panel_dosages[in_a])
        np.testing.assert_allclose(R, truth, atol=1e-6)  # float32 storage
        np.testing.assert_array_equal(np.diag(R), 1.0)

        # region B: its swapped rows were stored negated; ingest orients them to the
        # dataset's a1 so R equals the truth in the dataset's orientation: no sign errors
        in_b = [j for j in keep if j in REGION_B]
        idx = np.array([pos[j] for j in in_b])
        center_b = (int(panel_bim[REGION_B[0]][3]) + int(panel_bim[REGION_B[-1]][3]) + 1) // 2
        R = ld.correlation(idx, 22, center_b)
        sign = np.array([1.0 if (j in REGION_A or j not in SWAP_B) else -1.0 for j in in_b])
        truth = corr_of_dosages(panel_dosages[in_b]) * sign[:, None] * sign[None, :]
        np.testing.assert_allclose(R, truth, atol=1e-6)
        # the overlap A & B (swapped in B, oriented like A in the dataset) agrees between regions
        both = [j for j in keep if j in REGION_A and j in REGION_B]
        ia = np.array([pos[j] for j in both])
        np.testing.assert_allclose(ld.correlation(ia, 22, center_a), ld.correlation(ia, 22, center_b), atol=1e-6)
        assert any(j in SWAP_B for j in both)

        # variants outside the chosen region: identity rows/columns
        idx = np.array([pos[j] for j in keep])
        R = ld.correlation(idx, 22, center_a)
        outside = np.array([j not in REGION_A for j in keep])
        np.testing.assert_array_equal(R[np.ix_(outside, ~outside)], 0.0)
        np.testing.assert_array_equal(R[np.ix_(outside, outside)], np.eye(outside.sum()))

        # z in the dataset: the sumstats Z oriented to the dataset's a1
        ss = {r[0]: r for r in read_fastgwa_rows(fastgwa_path)}
        z = v["z"][()]
        freq = v["freq"][()]
        for i, snp in enumerate(snps):
            r = ss[snp]
            same = r[3] == a1[i] or COMP[r[3]] == a1[i]
            assert z[i] == pytest.approx(r[5] if same else -r[5])
            assert freq[i] == pytest.approx(r[7] if same else 1 - r[7])


def test_ukbb_pick_region_rule(tmp_path, write_region, fastgwa_path, panel_bim):
    """The region whose centre is nearest the window centre, among those containing it."""
    d = tmp_path / "ukbb"
    write_region(d, range(0, 100), start=16_000_000, end=19_000_000)
    write_region(d, range(0, 100), start=17_000_000, end=20_000_000)
    write_region(d, range(0, 100), start=15_000_000, end=18_000_000)
    s = run_ingest(fastgwa_path, d, tmp_path / "ds", progress=False)
    assert s["ld_regions"] == 3
    with h5py.File(tmp_path / "ds" / "dataset.h5", "r") as f:
        ld = open_ld(f)
        assert ld.pick_region(22, 17_400_000) == "chr22_16000000_19000000"
        assert ld.pick_region(22, 18_600_000) == "chr22_17000000_20000000"
        assert ld.pick_region(22, 15_100_000) == "chr22_15000000_18000000"
        assert ld.pick_region(22, 30_000_000) == "chr22_17000000_20000000"  # none contains it: nearest
        assert ld.pick_region(1, 1_000_000) is None
        R = ld.correlation(np.arange(3), 1, 1_000_000)
        np.testing.assert_array_equal(R, np.eye(3))


def test_single_npz_path(tmp_path, write_region, fastgwa_path):
    npz, _, _ = write_region(tmp_path / "ukbb", range(2000, 2100))
    s = run_ingest(fastgwa_path, npz, tmp_path / "ds", progress=False)
    assert s["ld_kind"] == "ukbb" and s["ld_regions"] == 1 and s["matched"] > 80


def test_replaces_existing_dataset(tmp_path, fastgwa_path, write_region):
    npz, _, _ = write_region(tmp_path / "ukbb", range(2000, 2100))
    out = tmp_path / "ds"
    run_ingest(fastgwa_path, npz, out, progress=False)
    run_ingest(fastgwa_path, npz, out, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "ukbb"]
    assert [p.name for p in out.iterdir()] == ["dataset.h5"]


# ---------------------------------------------------------------------------------------
# harmonisation rules on hand-made tables


def _table(rows, cls=dict):
    snp, chrom, bp, a1, a2 = zip(*rows)
    return cls(snp=np.array(snp), chrom=np.array(chrom), bp=np.array(bp), a1=np.array(a1), a2=np.array(a2))


def test_harmonise_rules():
    from varfx.io.harmonise import harmonise

    ref = _table([
        ("r1", 1, 100, "A", "G"),
        ("r2", 1, 200, "C", "T"),
        ("r3", 1, 300, "A", "C"),
        ("r4", 1, 400, "A", "G"),
        ("r5", 1, 500, "G", "T"),  # listed twice in the reference
        ("r5b", 1, 500, "T", "G"),
        ("r6", 1, 600, "A", "G"),
        ("r7", 2, 50, "A", "G"),
    ])
    ss = _table([
        ("s1", 1, 100, "G", "A"),   # swapped -> flipped
        ("s2", 1, 200, "G", "A"),   # C/T on the other strand -> strand flip, same order
        ("s3", 1, 300, "A", "T"),   # ambiguous
        ("s4", 1, 400, "A", "C"),   # allele mismatch
        ("s5", 1, 500, "G", "T"),   # duplicate in the reference
        ("s6a", 1, 600, "A", "G"),  # A/G and its complement T/C: both hit r6 -> duplicate
        ("s6b", 1, 600, "T", "C"),
        ("s7", 2, 50, "C", "T"),    # complement + swap of A/G -> strand flip and flipped
        ("s8", 3, 1, "A", "G"),     # not in the reference
        ("s9", 2, 50, "G", "A"),    # s9/s7: different keys, both map to r7 -> duplicates too
    ])
    h = harmonise(ss, ref, by="position")
    assert h.counts["dropped"] == {
        "duplicate": 4, "strand_ambiguous": 1, "not_in_ld": 1, "allele_mismatch": 1, "duplicate_in_ld": 1,
    }
    assert h.counts["matched"] == 2 and h.counts["ld_duplicates"] == 2
    assert ss["snp"][h.ss_index].tolist() == ["s1", "s2"]
    assert h.flip.tolist() == [True, False] and h.strand.tolist() == [False, True]
    assert h.counts["read"] == h.counts["matched"] + sum(h.counts["dropped"].values())

    # the same by rsid, with ids shared between the two tables
    ss2 = _table([("r1", -1, -1, "G", "A"), ("r3", -1, -1, "A", "G"), ("r3", -1, -1, "A", "C"), ("rx", -1, -1, "A", "G")])
    h = harmonise(ss2, ref, by="auto")
    assert h.match_by == "rsid"
    assert h.counts["dropped"]["duplicate"] == 2 and h.counts["dropped"]["not_in_ld"] == 1
    assert h.counts["matched"] == 1 and h.flip.tolist() == [True]


def test_ukbb_duplicate_in_region_dropped(tmp_path, write_region, fastgwa_path, panel_bim):
    """A variant listed twice in one region table is dropped (duplicate_in_ld)."""
    rows = list(range(3000, 3050))
    j = next(r for r in rows if {panel_bim[r][4], panel_bim[r][5]} not in ({"A", "T"}, {"C", "G"}))
    write_region(tmp_path / "ukbb", rows + [j], start=1, end=60_000_000)
    s = run_ingest(fastgwa_path, tmp_path / "ukbb", tmp_path / "ds", progress=False)
    assert s["dropped"]["duplicate_in_ld"] == 1 and s["ld_duplicates"] == 1
    with h5py.File(tmp_path / "ds" / "dataset.h5", "r") as f:
        assert panel_bim[j][1] not in _strs(f["variants/snp"]).tolist()


def test_progress_bar_runs(tmp_path, write_region, fastgwa_path, capsys):
    npz, _, _ = write_region(tmp_path / "ukbb", range(2000, 2100))
    s = run_ingest(fastgwa_path, npz, tmp_path / "ds", progress=True)
    assert s["matched"] > 0
    captured = capsys.readouterr()
    assert captured.out == ""  # progress goes to stderr only
