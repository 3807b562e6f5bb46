"""Inputs that used to be accepted but mis-read (issue 8, section 1): a UTF-8 byte-order
mark, quoted chromosome names, a UKBB .npz with both triangles, --ld-region with a PLINK
panel or UKBB regions, .bim rows with a negative position or a non-ACGT allele, and
UKBB window variants outside their LD region."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from varfx.errors import UserError
from varfx.io.sumstats import read_sumstats
from varfx.stages.ingest import run_ingest

BOM = b"\xef\xbb\xbf"


def _fastgwa_head(fastgwa_path, rows=200) -> bytes:
    with gzip.open(fastgwa_path, "rb") as fh:
        return b"".join(fh.readline() for _ in range(rows + 1))


def _nothing_left(parent, before):
    assert sorted(parent.iterdir()) == before, "output or temporary files left behind"


# ------------------------------------------------------------------------ byte-order mark


@pytest.mark.parametrize("gz", [False, True])
def test_bom_keeps_the_chr_column_of_a_fastgwa_file(tmp_path, fastgwa_path, gz):
    plain = _fastgwa_head(fastgwa_path)
    ref = tmp_path / "plain.fastGWA"
    ref.write_bytes(plain)
    p = tmp_path / ("bom.fastGWA.gz" if gz else "bom.fastGWA")
    p.write_bytes(gzip.compress(BOM + plain) if gz else BOM + plain)
    a, b = read_sumstats(ref), read_sumstats(p)
    assert b.columns.get("chrom") == "CHR"  # was dropped: the header said "\ufeffCHR"
    assert b.has_position
    np.testing.assert_array_equal(b["chrom"], np.full(len(a["chrom"]), 22))
    for k in ("snp", "bp", "a1", "a2", "z", "n", "freq"):
        np.testing.assert_array_equal(a[k], b[k])


def test_bom_ldsc_file_reads(tmp_path):
    p = tmp_path / "bom.sumstats"
    p.write_bytes(BOM + b"SNP\tA1\tA2\tZ\tN\nrs131538\tA\tG\t-0.8\t450000\n")
    s = read_sumstats(p)  # was: "missing required column SNP ... header is: SNP"
    assert s.format.lower().startswith("ldsc") and list(s["snp"]) == ["rs131538"]


def test_bom_in_a_bim_file(tmp_path, panel_copy, fastgwa_path):
    bim = panel_copy.with_suffix(".bim")
    bim.write_bytes(BOM + bim.read_bytes())
    from varfx.io.plink import read_bim

    t = read_bim(bim)
    assert t["chrom"][0] == 22  # was -1: "\ufeff22" is no chromosome


# ------------------------------------------------------------------------ quoted names


def test_quoted_chromosome_names(tmp_path):
    plain = "SNP\tCHR\tBP\tA1\tA2\tZ\tN\nrs1\t22\t100\tA\tG\t1.5\t1000\nrs2\tchrX\t200\tC\tT\t-2\t1000\n"
    quoted = ('"SNP"\t"CHR"\t"BP"\t"A1"\t"A2"\t"Z"\t"N"\n"rs1"\t"22"\t100\t"A"\t"G"\t1.5\t1000\n'
              '"rs2"\t"chrX"\t200\t"C"\t"T"\t-2\t1000\n')
    spaced = quoted.replace("\t", " ")  # R's write.table default: space-separated, quoted
    (tmp_path / "a.tsv").write_text(plain)
    (tmp_path / "b.tsv").write_text(quoted)
    (tmp_path / "c.txt").write_text(spaced)
    a = read_sumstats(tmp_path / "a.tsv")
    for name in ("b.tsv", "c.txt"):
        b = read_sumstats(tmp_path / name)
        np.testing.assert_array_equal(b["chrom"], [22, 23])  # was 0, 0: "other contigs"
        for k in ("snp", "bp", "a1", "a2", "z", "n"):
            np.testing.assert_array_equal(a[k], b[k])


def test_genome_chrom_code_edge_cases():
    from varfx.genome import chrom_code, chrom_codes

    assert [chrom_code(t) for t in ("22", "chr22", '"22"', "'chrX'", "\ufeff1", " MT ", "chrM", "XY")] == \
        [22, 22, 22, 23, 1, 26, 26, 25]
    assert [chrom_code(t) for t in ("0", "chr0", "banana", "", "chr1_random", "GL000220.1", "٣")] == [-1] * 7
    assert chrom_code(7) == 7 and chrom_code(0) == -1 and chrom_code(True) == -1
    np.testing.assert_array_equal(chrom_codes(np.array(["22", "X", "22", "q"])), [22, 23, 22, -1])


# ------------------------------------------------------------------------ UKBB triangles


def test_ukbb_junk_in_the_other_triangle_is_refused(tmp_path, out_parent, write_region, fastgwa_path):
    import scipy.sparse as sp

    npz, R, _ = write_region(tmp_path / "ukbb", range(1000, 1100))
    L = np.tril(R, -1) + 0.5 * np.eye(len(R))
    L[3, 40] = 0.25  # one stray entry above the diagonal: R[3, 40] would be R + 0.25
    sp.save_npz(npz, sp.csr_matrix(L))
    before = sorted(out_parent.iterdir())
    with pytest.raises(UserError, match="entries in both triangles") as info:
        run_ingest(fastgwa_path, tmp_path / "ukbb", out_parent / "ds", progress=False)
    assert str(npz) in str(info.value) and "\n" not in str(info.value)
    _nothing_left(out_parent, before)


def test_ukbb_upper_triangle_alone_is_the_same_ld(tmp_path, write_region, fastgwa_path):
    import h5py
    import scipy.sparse as sp

    from varfx.io.ld import open_ld

    rows = range(1000, 1100)
    npz, R, _ = write_region(tmp_path / "low", rows)
    npz2, _, _ = write_region(tmp_path / "up", rows)
    sp.save_npz(npz2, sp.csr_matrix((np.tril(R, -1) + 0.5 * np.eye(len(R))).T))
    mats = []
    for d in ("low", "up"):
        run_ingest(fastgwa_path, tmp_path / d, tmp_path / f"ds_{d}", progress=False)
        with h5py.File(tmp_path / f"ds_{d}" / "dataset.h5", "r") as h:
            m = len(h["variants/z"])
            ld = open_ld(h)
            mats.append(ld.correlation(np.arange(m), 22, float(np.median(h["variants/bp"][:]))))
    np.testing.assert_allclose(mats[0], mats[1], atol=0, rtol=0)
    assert np.abs(mats[0] - np.eye(len(mats[0]))).max() > 0.1  # real correlations, not the identity


# ------------------------------------------------------------------------ --ld-region


def _bim_bp(prefix):
    return np.array([int(line.split()[3]) for line in prefix.with_suffix(".bim").read_text().splitlines()])


def test_ld_region_restricts_a_plink_panel(tmp_path, fastgwa_path, panel_prefix):
    import h5py

    bp = _bim_bp(panel_prefix)
    lo, hi = int(bp[2000]), int(bp[3999])
    full = run_ingest(fastgwa_path, panel_prefix, tmp_path / "full", progress=False)
    s = run_ingest(fastgwa_path, panel_prefix, tmp_path / "reg", progress=False, ld_region=f"chr22:{lo:,}-{hi}")
    with h5py.File(tmp_path / "reg" / "dataset.h5", "r") as h:
        got = h["variants/bp"][:]
        assert h["ld/genotypes"].shape[0] == len(got)
    with h5py.File(tmp_path / "full" / "dataset.h5", "r") as h:
        all_bp = h["variants/bp"][:]
    expected = all_bp[(all_bp >= lo) & (all_bp <= hi)]
    np.testing.assert_array_equal(np.sort(got), np.sort(expected))  # was: the whole panel
    assert s["matched"] == len(expected) and 0 < len(expected) < full["matched"]
    assert s["ld_outside_region"] == int(np.sum((bp < lo) | (bp > hi)))
    assert s["dropped"]["outside_ld_region"] == full["matched"] - s["matched"]
    assert s["read"] == s["matched"] + sum(s["filtered"].values()) + sum(s["dropped"].values())


def test_ld_region_restricts_ukbb_regions(tmp_path, fastgwa_path, write_region, panel_bim):
    d = tmp_path / "ukbb"
    write_region(d, range(1000, 1200))
    lo, hi = int(panel_bim[1050][3]), int(panel_bim[1099][3])
    s = run_ingest(fastgwa_path, d, tmp_path / "ds", progress=False, ld_region=f"22:{lo}-{hi}")
    full = run_ingest(fastgwa_path, d, tmp_path / "ds_full", progress=False)
    assert 0 < s["matched"] < full["matched"]
    assert s["ld_outside_region"] == 150


@pytest.mark.parametrize("bad, match", [
    ("banana", "unknown chromosome 'banana'"),
    ("22:9-5", "end before start"),
    ("22:0-5", "1-based"),
    ("22 5", "expected CHROM"),
])
def test_bad_ld_region_is_one_line(tmp_path, out_parent, fastgwa_path, panel_prefix, bad, match):
    before = sorted(out_parent.iterdir())
    with pytest.raises(UserError, match=match) as info:
        run_ingest(fastgwa_path, panel_prefix, out_parent / "ds", progress=False, ld_region=bad)
    msg = str(info.value)
    assert "--ld-region" in msg and "\n" not in msg
    _nothing_left(out_parent, before)


def test_cli_ld_region_banana(tmp_path, out_parent, fastgwa_path, panel_prefix):
    from click.testing import CliRunner

    from varfx.cli import cli

    r = CliRunner().invoke(cli, ["ingest", "--sumstats", str(fastgwa_path), "--ld", str(panel_prefix),
                                 "--ld-region", "banana", "-o", str(out_parent / "ds")])
    assert r.exit_code == 1, r.output
    err = r.stderr.strip()
    assert "\n" not in err and "Traceback" not in r.output and "banana" in err
    assert list(out_parent.iterdir()) == []


# ------------------------------------------------------------------------ .bim rows


def test_bim_negative_position(out_parent, panel_copy, fastgwa_path):
    bim = panel_copy.with_suffix(".bim")
    lines = bim.read_text().splitlines()
    f = lines[41].split()
    f[3] = "-" + f[3]
    lines[41] = "\t".join(f)
    bim.write_text("\n".join(lines) + "\n")
    before = sorted(out_parent.iterdir())
    with pytest.raises(UserError, match=r"line 42, column 'BP': negative base-pair position") as info:
        run_ingest(fastgwa_path, panel_copy, out_parent / "ds", progress=False)
    assert str(bim) in str(info.value)
    _nothing_left(out_parent, before)


def test_bim_non_acgt_alleles_are_dropped_and_counted(tmp_path, panel_copy, fastgwa_path):
    import h5py

    bim = panel_copy.with_suffix(".bim")
    lines = bim.read_text().splitlines()
    changed = {10: ("I", "D"), 20: ("0", "G"), 30: ("A", "-"), 40: ("AT", "A")}
    snps = {}
    for i, (x, y) in changed.items():
        f = lines[i].split()
        f[4], f[5] = x, y
        snps[i] = f[1]
        lines[i] = "\t".join(f)
    bim.write_text("\n".join(lines) + "\n")
    s = run_ingest(fastgwa_path, panel_copy, tmp_path / "ds", progress=False)
    assert s["ld_non_acgt"] == 3  # "AT"/"A" is an ACGT indel: kept
    with h5py.File(tmp_path / "ds" / "dataset.h5", "r") as h:
        stored = set(h["variants/snp"].asstr()[:])
        a1 = h["variants/a1"].asstr()[:]
        a2 = h["variants/a2"].asstr()[:]
    assert not stored & {snps[10], snps[20], snps[30]}
    assert all(set(a) <= set("ACGT") for a in list(a1) + list(a2))
    assert s["read"] == s["matched"] + sum(s["filtered"].values()) + sum(s["dropped"].values())


# ------------------------------------------------------------------------ UKBB: outside the region


def test_ukbb_variants_outside_the_region_are_counted(tmp_path, write_region, fastgwa_path, capsys):
    import h5py

    from varfx.io.ld import open_ld
    from varfx.stages.precompute import run_precompute

    d = tmp_path / "ukbb"
    write_region(d, range(1000, 1150))  # two regions that do not overlap
    write_region(d, range(1150, 1300))
    run_ingest(fastgwa_path, d, tmp_path / "ds", progress=False)
    with h5py.File(tmp_path / "ds" / "dataset.h5", "r") as h:
        ld = open_ld(h)
        bp = h["variants/bp"][:]
        (_, _, a_start, a_end), (_, _, b_start, _) = sorted((r for r in ld.regions), key=lambda r: r[2])
        idx = np.arange(len(bp))
        R = ld.correlation(idx, 22, (a_start + a_end) / 2)  # picks region A
        # independent count: the variants not in region A's table are those past it
        in_a = (bp >= a_start) & (bp < a_end)
        assert ld.last_outside == int((~in_a).sum()) > 0
        off = np.abs(R - np.eye(len(R))).sum(axis=1)
        assert int(np.sum(off == 0)) >= ld.last_outside  # they got identity rows
        assert ld.outside(idx, 22, (a_start + a_end) / 2) == ld.last_outside
    capsys.readouterr()
    span_kb = (bp.max() - bp.min()) / 1000.0
    s = run_precompute(tmp_path / "ds", window_kb=span_kb / 4, flank_kb=span_kb / 4, eig_threshold=1e-3,
                       workers=1, progress=False)
    err = capsys.readouterr().err
    assert s["ld_outside_region"]["variants"] > 0 and s["ld_outside_region"]["windows"] >= 1
    assert "outside the LD region" in err and "\n" not in err.strip()
    json.dumps(s)


def test_plink_dataset_reports_nothing_outside(tmp_path, fastgwa_path, panel_prefix, capsys):
    import h5py

    from varfx.io.ld import open_ld, outside_region_counts

    bp = _bim_bp(panel_prefix)
    run_ingest(fastgwa_path, panel_prefix, tmp_path / "ds", progress=False, ld_region=f"22:{bp[0]}-{bp[300]}")
    with h5py.File(tmp_path / "ds" / "dataset.h5", "r") as h:
        ld = open_ld(h)
        ld.correlation(np.arange(5))
        assert ld.last_outside == 0
        assert outside_region_counts(h, []) == {}
