"""LD reference filters (varfx.io.ld_filters): MAF, long-range LD region files and the
exclusion mask, on the real lrld_hg19_GRCh37.txt and chr22 panel and on synthetic files."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from conftest import CHR22
from varfx.errors import UserError
from varfx.io.ld_filters import in_regions, maf_filter, read_lrld
from varfx.io.plink import load_plink

LRLD = CHR22 / "lrld_hg19_GRCh37.txt"


def test_maf_filter():
    f = np.array([0.0, 0.004, 0.01, 0.5, 0.99, 0.996, 1.0, np.nan])
    assert maf_filter(f, 0.01).tolist() == [False, False, True, True, True, False, False, False]
    assert maf_filter(f, 0.0).all()  # 0 keeps everything, NaN included
    assert maf_filter(f, 0.5).tolist() == [False, False, False, True, False, False, False, False]
    for bad in (-0.1, 0.6, float("nan")):
        with pytest.raises(UserError, match="--ld-maf-min must be between 0 and 0.5"):
            maf_filter(f, bad)


def test_maf_filter_on_the_panel(panel_prefix, panel_dosages):
    freq, _ = load_plink(panel_prefix).summary_stats()
    keep = maf_filter(freq, 0.05)
    f = panel_dosages.sum(1) / (2.0 * panel_dosages.shape[1])  # the panel has no missing genotype
    assert keep.sum() == int((np.minimum(f, 1 - f) >= 0.05).sum())
    assert 0 < keep.sum() < len(freq)


@pytest.mark.skipif(not LRLD.is_file(), reason="shared data not available")
def test_real_lrld_file(panel_prefix):
    regions = read_lrld(LRLD)
    assert len(regions) == 20
    assert regions[0] == (1, 48227412, 52227412) and regions[-1] == (20, 32536338, 35066586)
    assert sorted({c for c, _, _ in regions}) == [1, 2, 3, 5, 6, 7, 8, 10, 11, 12, 20]
    # the file has no chr22 region: nothing of the chr22 panel is excluded
    bim = load_plink(panel_prefix).bim
    assert not in_regions(bim["chrom"], bim["bp"], regions).any()
    # the HLA region (chr6:25392020-33392022) excludes a chr6 variant inside it, not at its edges - 1
    mask = in_regions([6, 6, 6, 6, 5], [25392019, 25392020, 33392022, 33392023, 30000000], regions)
    assert mask.tolist() == [False, True, True, False, False]


def test_synthetic_chr22_regions(tmp_path, panel_prefix, panel_bim):
    path = tmp_path / "lrld.txt.gz"  # gzip, comments, blank lines, chr-less names, no label
    with gzip.open(path, "wt") as fh:
        fh.write("# long-range LD, hg19\n\nchr22 20000000 21000000 a\n22\t30000000\t30500000\nchr6 1 10 x\n")
    regions = read_lrld(path)
    assert regions == [(22, 20000000, 21000000), (22, 30000000, 30500000), (6, 1, 10)]
    bim = load_plink(panel_prefix).bim
    mask = in_regions(bim["chrom"], bim["bp"], regions)
    bp = np.array([int(r[3]) for r in panel_bim])
    expected = ((bp >= 20000000) & (bp <= 21000000)) | ((bp >= 30000000) & (bp <= 30500000))
    assert mask.sum() == expected.sum() > 0
    assert np.array_equal(mask, expected)


@pytest.mark.parametrize(
    "text, words",
    [
        ("chr1 10 20 a\nchr2 5\n", ["line 2", "3 or more columns"]),
        ("chr1 10 20\nchrQ 5 9\n", ["line 2", "column 'chrom'", "'chrQ'"]),
        ("chr1 1e5 20\n", ["line 1", "column 'start'", "'1e5'"]),
        ("chr1 10 2O\n", ["line 1", "column 'end'", "'2O'"]),
        ("\n# only a comment\n", ["no regions"]),
        ("chr1 30 20\n", ["line 1", "end 20 is before its start 30"]),
        ("chr1 -5 20\n", ["line 1", "non-negative"]),
    ],
)
def test_malformed_lrld(tmp_path, text, words):
    path = tmp_path / "bad_lrld.txt"
    path.write_text(text)
    with pytest.raises(UserError) as exc:
        read_lrld(path)
    msg = str(exc.value)
    assert msg.startswith(str(path)) and "\n" not in msg
    for w in words:
        assert w in msg, msg


def test_lrld_file_errors(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        read_lrld(tmp_path / "missing.txt")
    trunc = tmp_path / "t.txt.gz"
    trunc.write_bytes(gzip.compress(b"chr1 10 20\n" * 1000)[:40])
    with pytest.raises(UserError, match="corrupt or truncated gzip"):
        read_lrld(trunc)
