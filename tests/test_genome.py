"""varfx.genome: the one implementation of chromosome names, alleles, missing values,
plain/gzip text and regions, and that every reader uses it."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from varfx import genome
from varfx.errors import UserError


def test_every_reader_uses_the_same_chromosome_parser():
    from varfx.features import sources
    from varfx.io import harmonise, ld_filters, liftover, plink, vcf_panel

    assert liftover.parse_chrom is genome.chrom_code
    assert ld_filters.parse_chrom is genome.chrom_code
    assert vcf_panel.parse_chrom is genome.chrom_code
    assert sources.chrom_code is genome.chrom_code
    assert sources.as_chrom_codes is genome.chrom_codes
    assert harmonise.complement is genome.complement
    tokens = ["1", "chr1", "X", "chrX", "23", "MT", "chrM", "0", "chrUn_gl000220", '"7"', "\ufeff9"]
    assert [plink.parse_chrom(t) for t in tokens] == [genome.chrom_code(t) for t in tokens] == \
        [1, 1, 23, 23, 23, 26, 26, -1, -1, 7, 9]


def test_chrom_codes_matches_elementwise():
    rng = np.random.default_rng(0)
    pool = np.array(["1", "chr2", "X", "chrY", "MT", "0", "foo", "22", '"3"'])
    arr = pool[rng.integers(0, len(pool), 500)]
    np.testing.assert_array_equal(genome.chrom_codes(arr), [genome.chrom_code(t) for t in arr])
    np.testing.assert_array_equal(genome.chrom_codes(np.array([3, 0, 23])), [3, 0, 23])
    np.testing.assert_array_equal(genome.chrom_codes(np.array([3.0, np.nan])), [3, -1])
    assert genome.chrom_label(23) == "X" and genome.chrom_label(5) == "5"


def test_unquote_and_missing():
    assert genome.unquote(' "rs1" ') == "rs1" and genome.unquote("'A'") == "A"
    assert genome.unquote('"rs1') == '"rs1'  # unmatched: left alone
    for tok in ("", "NA", "na", "N/A", ".", "-", "NaN", "#NA", "null", "None", '"NA"'):
        assert genome.is_missing(tok), tok
    for tok in ("0", "A", "1e-3", "NAN1"):
        assert not genome.is_missing(tok), tok


def test_complements():
    assert [genome.complement(b) for b in "ACGT"] == list("TGCA")
    assert genome.complement("AT") is None and genome.complement("N") is None
    assert genome.complement_allele("ACT") == "AGT"  # reverse complement
    assert genome.complement_allele("A") == "T"
    assert genome.is_acgt("ACGT") and not genome.is_acgt("") and not genome.is_acgt("I")
    assert not genome.is_acgt("0") and not genome.is_acgt("a")


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("bom", [False, True])
def test_read_text_and_open_text(tmp_path, gz, bom):
    text = "a\tb\r\nc\td\n"
    raw = (genome.BOM if bom else b"") + text.encode()
    p = tmp_path / "f.txt"
    p.write_bytes(gzip.compress(raw) if gz else raw)
    assert genome.read_text(p, "a table") == text
    with genome.open_text(p) as fh:
        assert fh.read() == text  # \r kept (newline=""), BOM gone
    assert genome.read_bytes(p, "x") == raw


def test_read_errors_are_one_line(tmp_path):
    with pytest.raises(UserError, match="no such file \\(expected a table\\)"):
        genome.read_text(tmp_path / "nope", "a table")
    with pytest.raises(UserError, match="is a directory"):
        genome.read_bytes(tmp_path, "a table")
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(b"x" * 1000)[:-8])
    with pytest.raises(UserError, match="corrupt or truncated gzip"):
        genome.read_text(bad, "a table")
    binary = tmp_path / "bin"
    binary.write_bytes(b"ok\xff\xfe")
    with pytest.raises(UserError, match="byte 2 is not UTF-8") as info:
        genome.read_text(binary, "a table")
    assert str(binary) in str(info.value)


def test_parse_region():
    r = genome.parse_region("chr22:1,000-2,000")
    assert (r.chrom, r.code, r.start, r.end) == ("chr22", 22, 1000, 2000)
    assert genome.parse_region("X").end is None and genome.parse_region("X").code == 23
    assert (genome.parse_region("22:500").start, genome.parse_region("22:500").end) == (500, 500)
    assert genome.parse_region("22:500-").end is None
    for bad, match in [("banana", "unknown chromosome 'banana'"), ("22:0-5", "1-based"),
                       ("22:9-5", "end before start"), ("22 5", "expected CHROM"), ("chrUn:1-5", "unknown")]:
        with pytest.raises(UserError, match=match) as info:
            genome.parse_region(bad, option="--ld-region")
        assert str(info.value).startswith("option --ld-region: bad region")


def test_region_contains_matches_a_loop():
    rng = np.random.default_rng(1)
    chrom = rng.choice([21, 22, 23], 300)
    bp = rng.integers(1, 5000, 300)
    r = genome.parse_region("22:1000-3000")
    loop = [c == 22 and 1000 <= b <= 3000 for c, b in zip(chrom, bp)]
    np.testing.assert_array_equal(r.contains(chrom, bp), loop)
    np.testing.assert_array_equal(r.contains(np.array(["chr22"] * 300), bp), [1000 <= b <= 3000 for b in bp])


def test_feature_table_reads_na_spellings_as_missing(tmp_path):
    """The table source now shares the sumstats' missing tokens (N/A and #NA were errors)."""
    from varfx.features.sources import TableSource

    p = tmp_path / "t.tsv"
    p.write_text("SNP\tscore\nrs1\tN/A\nrs2\t2.5\nrs3\t#NA\n")
    variants = {"snp": np.array(["rs1", "rs2", "rs3"])}
    src = TableSource()
    chrom, pos = np.array([22, 22, 22]), np.array([1, 2, 3])
    src.prepare(p, chrom, pos, variants=variants)
    got = src.read(p, chrom, pos, variants=variants)
    np.testing.assert_array_equal(got[:, 0], [0.0, 2.5, 0.0])
