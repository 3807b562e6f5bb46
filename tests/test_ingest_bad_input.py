"""Bad inputs to ingest: a one-line UserError naming the file and the problem, no output left."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from varfx.errors import UserError
from varfx.io.sumstats import read_sumstats
from varfx.stages.ingest import run_ingest

LDSC_OK = "SNP\tA1\tA2\tZ\tN\nrs131538\tA\tG\t-0.8\t450000\nrs9605903\tT\tC\t-0.47\t450000\n"


def expect_failure(out_parent, sumstats, ld, *, match, names, n=None):
    """run_ingest must raise a one-line UserError matching ``match`` that mentions every
    string of ``names``, and leave ``out_parent`` exactly as it was (empty)."""
    before = sorted(out_parent.iterdir())
    with pytest.raises(UserError, match=match) as info:
        run_ingest(sumstats, ld, out_parent / "ds", n=n, progress=False)
    msg = str(info.value)
    assert "\n" not in msg
    for name in names:
        assert str(name) in msg, (name, msg)
    assert sorted(out_parent.iterdir()) == before, "output or temporary files left behind"
    return msg


def write(path, text):
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------
# summary statistics


def test_missing_column(tmp_path, out_parent, panel_prefix):
    ss = write(tmp_path / "noz.sumstats", "SNP\tA1\tA2\tN\nrs131538\tA\tG\t450000\n")
    msg = expect_failure(out_parent, ss, panel_prefix, match="missing required column Z", names=[ss])
    assert "header is: SNP A1 A2 N" in msg


def test_missing_se_column_fastgwa(tmp_path, out_parent, panel_prefix):
    ss = write(tmp_path / "x.fastGWA", "CHR\tSNP\tPOS\tA1\tA2\tN\tAF1\tBETA\tP\n22\trs131538\t16871137\tA\tG\t1\t0.1\t0.1\t0.5\n")
    expect_failure(out_parent, ss, panel_prefix, match="missing required column SE", names=[ss])


def test_non_numeric_z(tmp_path, out_parent, panel_prefix):
    ss = write(tmp_path / "bad.sumstats", LDSC_OK + "rs5746647\tG\tT\tabc\t450000\n")
    expect_failure(out_parent, ss, panel_prefix, match=r"line 4, column 'Z': expected a number, found 'abc'", names=[ss])


def test_non_numeric_n(tmp_path, out_parent, panel_prefix):
    ss = write(tmp_path / "bad.sumstats", LDSC_OK.replace("\t450000\nrs96", "\tlots\nrs96"))
    expect_failure(out_parent, ss, panel_prefix, match=r"line 2, column 'N': expected a number, found 'lots'", names=[ss])


@pytest.mark.parametrize("value", ["NaN", "inf", "-Infinity"])
def test_non_finite_z(tmp_path, out_parent, panel_prefix, value):
    ss = write(tmp_path / "nan.sumstats", LDSC_OK + f"rs5746647\tG\tT\t{value}\t450000\n")
    expect_failure(out_parent, ss, panel_prefix, match=r"line 4, column 'Z': Z is not finite", names=[ss])


def test_zero_se(tmp_path, out_parent, panel_prefix):
    ss = write(
        tmp_path / "se0.fastGWA",
        "CHR\tSNP\tPOS\tA1\tA2\tN\tAF1\tBETA\tSE\tP\n22\trs131538\t16871137\tA\tG\t450331\t0.05\t-0.0027\t0\t0.4\n",
    )
    expect_failure(out_parent, ss, panel_prefix, match=r"line 2: Z = BETA/SE is not finite", names=[ss])


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_empty_file(tmp_path, out_parent, panel_prefix, content):
    ss = tmp_path / "empty.sumstats"
    ss.write_bytes(content)
    expect_failure(out_parent, ss, panel_prefix, match="empty file", names=[ss])


def test_empty_gzip_file(tmp_path, out_parent, panel_prefix):
    ss = tmp_path / "empty.sumstats.gz"
    with gzip.open(ss, "wb"):
        pass
    expect_failure(out_parent, ss, panel_prefix, match="empty file", names=[ss])


def test_header_only(tmp_path, out_parent, panel_prefix):
    ss = write(tmp_path / "head.sumstats", "SNP\tA1\tA2\tZ\tN\n")
    expect_failure(out_parent, ss, panel_prefix, match="no data rows", names=[ss])


def test_truncated_gzip(tmp_path, out_parent, panel_prefix, fastgwa_path):
    ss = tmp_path / "cut.fastGWA.gz"
    ss.write_bytes(fastgwa_path.read_bytes()[:5000])
    expect_failure(out_parent, ss, panel_prefix, match="corrupt or truncated gzip", names=[ss])


def test_binary_file(tmp_path, out_parent, panel_prefix):
    ss = tmp_path / "bin.sumstats"
    ss.write_bytes(b"SNP A1 A2 Z N\n\xff\xfe\x00\x01")
    expect_failure(out_parent, ss, panel_prefix, match="not a text file", names=[ss])


def test_wrong_field_count(tmp_path, out_parent, panel_prefix):
    ss = write(tmp_path / "short.sumstats", LDSC_OK + "rs5746647\tG\t1.0\t450000\n")
    expect_failure(out_parent, ss, panel_prefix, match=r"line 4: expected 5 fields \(as in the header\), found 4", names=[ss])


def test_no_n_column_and_no_option(tmp_path, out_parent, panel_prefix):
    ss = write(tmp_path / "noN.sumstats", "SNP\tA1\tA2\tZ\nrs131538\tA\tG\t1.0\n")
    expect_failure(out_parent, ss, panel_prefix, match="no N column .* and no --n given", names=[ss])


def test_negative_n(tmp_path, out_parent, panel_prefix):
    ss = write(tmp_path / "negN.sumstats", LDSC_OK + "rs5746647\tG\tT\t1.0\t-5\n")
    expect_failure(out_parent, ss, panel_prefix, match=r"line 4, column 'N': expected a positive sample size, found -5", names=[ss])


def test_bad_n_option(tmp_path, out_parent, panel_prefix):
    ss = write(tmp_path / "noN.sumstats", "SNP\tA1\tA2\tZ\nrs131538\tA\tG\t1.0\n")
    expect_failure(out_parent, ss, panel_prefix, match="option --n: expected a positive number", names=[], n=-3)


def test_bad_frequency(tmp_path, out_parent, panel_prefix):
    ss = write(
        tmp_path / "af.fastGWA",
        "CHR\tSNP\tPOS\tA1\tA2\tN\tAF1\tBETA\tSE\tP\n22\trs131538\t16871137\tA\tG\t450331\t1.7\t-0.0027\t0.003\t0.4\n",
    )
    expect_failure(out_parent, ss, panel_prefix, match=r"column 'AF1': expected an allele frequency", names=[ss])


def test_missing_sumstats_file(tmp_path, out_parent, panel_prefix):
    ss = tmp_path / "nope.sumstats"
    expect_failure(out_parent, ss, panel_prefix, match="no such file", names=[ss])


def test_missing_values_in_optional_columns_are_nan():
    """NA in BP/AF1 is 'missing', not an error (and the row is then matched by what it has)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "na.fastGWA"
        p.write_text("CHR\tSNP\tPOS\tA1\tA2\tN\tAF1\tBETA\tSE\tP\n22\trs1\tNA\tA\tG\t10\tNA\t1\t2\t0.5\n")
        ss = read_sumstats(p)
    assert ss["bp"][0] == -1 and np.isnan(ss["freq"][0]) and ss["z"][0] == 0.5


# ---------------------------------------------------------------------------------------
# LD references


def test_ukbb_diagonal_not_one(tmp_path, out_parent, write_region, fastgwa_path):
    import scipy.sparse as sp

    npz, R, _ = write_region(tmp_path / "ukbb", range(1000, 1100))
    L = np.tril(R, -1) + 0.4 * np.eye(len(R))  # diagonal 0.4: R = L + L^T has 0.8
    sp.save_npz(npz, sp.csr_matrix(L))
    expect_failure(out_parent, fastgwa_path, tmp_path / "ukbb", match=r"diagonal of R = L \+ L\^T is 0.8, not 1", names=[npz])


def test_ukbb_full_matrix_instead_of_triangle(tmp_path, out_parent, write_region, fastgwa_path):
    import scipy.sparse as sp

    npz, R, _ = write_region(tmp_path / "ukbb", range(1000, 1100))
    sp.save_npz(npz, sp.csr_matrix(R))  # the full R (diagonal 1): reconstructs to 2
    expect_failure(out_parent, fastgwa_path, tmp_path / "ukbb", match="not 1", names=[npz])


def test_ukbb_size_mismatch(tmp_path, out_parent, write_region, fastgwa_path):
    npz, _, _ = write_region(tmp_path / "ukbb", range(1000, 1100))
    table = npz.with_suffix(".gz")
    lines = gzip.decompress(table.read_bytes()).decode().splitlines()
    with gzip.open(table, "wt") as fh:
        fh.write("\n".join(lines[:-5]) + "\n")
    expect_failure(out_parent, fastgwa_path, tmp_path / "ukbb", match="has 100 rows but its variant table .* has 95", names=[npz])


def test_ukbb_missing_table(tmp_path, out_parent, write_region, fastgwa_path):
    npz, _, _ = write_region(tmp_path / "ukbb", range(1000, 1100))
    npz.with_suffix(".gz").unlink()
    expect_failure(out_parent, fastgwa_path, tmp_path / "ukbb", match="missing the variant table", names=[npz])


def test_ukbb_table_missing_column(tmp_path, out_parent, write_region, fastgwa_path):
    npz, _, _ = write_region(tmp_path / "ukbb", range(1000, 1100))
    table = npz.with_suffix(".gz")
    text = gzip.decompress(table.read_bytes()).decode().replace("allele2", "other", 1)
    table.write_bytes(gzip.compress(text.encode()))
    expect_failure(out_parent, fastgwa_path, tmp_path / "ukbb", match="missing column allele2", names=[table])


def test_ukbb_not_an_npz(tmp_path, out_parent, write_region, fastgwa_path):
    npz, _, _ = write_region(tmp_path / "ukbb", range(1000, 1100))
    npz.write_bytes(b"this is not a zip file")
    expect_failure(out_parent, fastgwa_path, tmp_path / "ukbb", match="not a scipy sparse .npz", names=[npz])


def test_ukbb_pickled_npz_is_refused(tmp_path, out_parent, write_region, fastgwa_path):
    """An .npz with object arrays would need pickle: it is refused, never unpickled."""
    npz, _, _ = write_region(tmp_path / "ukbb", range(1000, 1100))
    np.savez(npz, format=np.array([{"evil": 1}], dtype=object), shape=np.array([100, 100]))
    expect_failure(out_parent, fastgwa_path, tmp_path / "ukbb", match="not a scipy sparse .npz", names=[npz])


def test_ukbb_bad_region_name(tmp_path, out_parent, write_region, fastgwa_path):
    write_region(tmp_path / "ukbb", range(1000, 1100), name="region_one")
    expect_failure(out_parent, fastgwa_path, tmp_path / "ukbb", match=r"chr\{CHROM\}_\{START\}_\{END\}", names=["region_one.npz"])


def test_bed_bad_magic(out_parent, panel_copy, fastgwa_path):
    bed = panel_copy.with_suffix(".bed")
    raw = bytearray(bed.read_bytes())
    raw[0:2] = b"\x00\x00"
    bed.write_bytes(bytes(raw))
    expect_failure(out_parent, fastgwa_path, panel_copy, match="not a PLINK .bed file .*expected magic 6c1b01", names=[bed])


def test_bed_individual_major(out_parent, panel_copy, fastgwa_path):
    bed = panel_copy.with_suffix(".bed")
    raw = bytearray(bed.read_bytes())
    raw[2] = 0
    bed.write_bytes(bytes(raw))
    expect_failure(out_parent, fastgwa_path, panel_copy, match="individual-major", names=[bed])


def test_bed_truncated(out_parent, panel_copy, fastgwa_path):
    bed = panel_copy.with_suffix(".bed")
    bed.write_bytes(bed.read_bytes()[:-1000])
    expect_failure(out_parent, fastgwa_path, panel_copy, match="does not match the .bim/.fam .*truncated", names=[bed])


def test_bed_empty(out_parent, panel_copy, fastgwa_path):
    bed = panel_copy.with_suffix(".bed")
    bed.write_bytes(b"")
    expect_failure(out_parent, fastgwa_path, panel_copy, match="not a PLINK .bed file", names=[bed])


def test_bim_missing(out_parent, panel_copy, fastgwa_path):
    bim = panel_copy.with_suffix(".bim")
    bim.unlink()
    expect_failure(out_parent, fastgwa_path, panel_copy, match="missing PLINK file ref.bim", names=[bim])


def test_bim_bad_line(out_parent, panel_copy, fastgwa_path):
    bim = panel_copy.with_suffix(".bim")
    lines = bim.read_text().splitlines()
    lines[9] = "22 rs1 0 12345 A"
    bim.write_text("\n".join(lines) + "\n")
    expect_failure(out_parent, fastgwa_path, panel_copy, match=r"line 10: expected 6 columns", names=[bim])


def test_ld_path_not_found(tmp_path, out_parent, fastgwa_path):
    expect_failure(out_parent, fastgwa_path, tmp_path / "nothing", match="no such LD reference", names=[tmp_path / "nothing"])


def test_ld_dir_without_regions(tmp_path, out_parent, fastgwa_path):
    d = tmp_path / "emptyld"
    d.mkdir()
    expect_failure(out_parent, fastgwa_path, d, match="no UKBB/PolyFun LD region files", names=[d])


def test_no_variant_matched(tmp_path, out_parent, panel_prefix):
    ss = write(
        tmp_path / "chr1.fastGWA",
        "CHR\tSNP\tPOS\tA1\tA2\tN\tAF1\tBETA\tSE\tP\n"
        "1\trs1\t1000\tA\tG\t1000\t0.1\t0.1\t0.01\t0.5\n1\trs2\t2000\tC\tT\t1000\t0.1\t0.1\t0.01\t0.5\n",
    )
    msg = expect_failure(out_parent, ss, panel_prefix, match="no variant matched the LD reference", names=[ss, panel_prefix])
    assert "not_in_ld 2" in msg


def test_out_is_a_file(tmp_path, fastgwa_path, panel_prefix):
    target = tmp_path / "afile"
    target.write_text("x")
    with pytest.raises(UserError, match="exists and is not a directory"):
        run_ingest(fastgwa_path, panel_prefix, target, progress=False)
    assert target.read_text() == "x"


def test_out_is_a_foreign_directory(tmp_path, fastgwa_path, panel_prefix):
    target = tmp_path / "mydocs"
    target.mkdir()
    (target / "thesis.tex").write_text("precious")
    with pytest.raises(UserError, match=r"not a varfx dataset \(no dataset.h5\); refusing to replace it"):
        run_ingest(fastgwa_path, panel_prefix, target, progress=False)
    assert (target / "thesis.tex").read_text() == "precious"


def test_failed_ingest_keeps_previous_dataset(tmp_path, out_parent, fastgwa_path, panel_prefix):
    out = out_parent / "ds"
    run_ingest(fastgwa_path, panel_prefix, out, progress=False)
    before = (out / "dataset.h5").read_bytes()
    bad = write(tmp_path / "bad.sumstats", LDSC_OK + "rs5746647\tG\tT\tNaN\t450000\n")
    with pytest.raises(UserError):
        run_ingest(bad, panel_prefix, out, progress=False)
    assert (out / "dataset.h5").read_bytes() == before
    assert [p.name for p in out_parent.iterdir()] == ["ds"]


# ---------------------------------------------------------------------------------------
# through the CLI: exit code 1, one line, no traceback


def _cli():
    try:
        from varfx.cli import cli
    except Exception as exc:  # pragma: no cover - the CLI is written elsewhere
        pytest.skip(f"varfx.cli not importable: {exc}")
    if "ingest" not in getattr(cli, "commands", {}):
        pytest.skip("varfx.cli has no ingest command")
    return cli


def _invoke(args):
    from click.testing import CliRunner

    result = CliRunner().invoke(_cli(), args)
    return result


def test_cli_non_numeric_z(tmp_path, out_parent, panel_prefix):
    ss = write(tmp_path / "bad.sumstats", LDSC_OK + "rs5746647\tG\tT\tabc\t450000\n")
    r = _invoke(["ingest", "--sumstats", str(ss), "--ld", str(panel_prefix), "-o", str(out_parent / "ds")])
    assert r.exit_code == 1, r.output
    err = r.stderr.strip()
    assert "\n" not in err and "Traceback" not in r.output
    assert str(ss) in err and "line 4" in err and "'Z'" in err
    assert list(out_parent.iterdir()) == []


def test_cli_bad_bed(out_parent, panel_copy, fastgwa_path):
    bed = panel_copy.with_suffix(".bed")
    bed.write_bytes(b"\x00" * 100)
    r = _invoke(["ingest", "--sumstats", str(fastgwa_path), "--ld", str(panel_copy), "-o", str(out_parent / "ds")])
    assert r.exit_code == 1, r.output
    err = r.stderr.strip()
    assert "\n" not in err and "Traceback" not in r.output and str(bed) in err
    assert list(out_parent.iterdir()) == []


def test_cli_ok_json(out_parent, fastgwa_path, panel_prefix):
    import json

    r = _invoke(["ingest", "--sumstats", str(fastgwa_path), "--ld", str(panel_prefix), "--json", "-o", str(out_parent / "ds")])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["matched"] == 14954
    assert (out_parent / "ds" / "dataset.h5").is_file()


# ---------------------------------------------------------------------------------------
# issue 3: every summary-statistics format; each bad input is one line naming the file,
# the line (and column) and what was expected; nothing is written


FASTGWA_HEAD = "CHR\tSNP\tPOS\tA1\tA2\tN\tAF1\tBETA\tSE\tP\n"
FASTGWA_ROW = "22\trs131538\t16871137\tA\tG\t450331\t0.05\t-0.0027\t0.0034\t0.4\n"
VCF_HEAD = (
    "##fileformat=VCFv4.2\n"
    '##FORMAT=<ID=ES,Number=A,Type=Float,Description="Effect size estimate relative to the alternative allele">\n'
    '##FORMAT=<ID=SE,Number=A,Type=Float,Description="Standard error of effect size estimate">\n'
    '##FORMAT=<ID=AF,Number=A,Type=Float,Description="Alternative allele frequency">\n'
    '##FORMAT=<ID=SS,Number=A,Type=Float,Description="Sample size">\n'
    "##contig=<ID=22>\n"
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tSTUDY\n"
)
VCF_ROW = "22\t16871137\trs131538\tG\tA\t.\tPASS\t.\tES:SE:AF:SS\t-0.0027:0.0034:0.05:450331\n"


def expect_failure_kw(out_parent, sumstats, ld, *, match, names, **kw):
    """expect_failure with any run_ingest keyword (columns=, n=, info_min=...)."""
    before = sorted(out_parent.iterdir())
    with pytest.raises(UserError, match=match) as info:
        run_ingest(sumstats, ld, out_parent / "ds", progress=False, **kw)
    msg = str(info.value)
    assert "\n" not in msg
    for name in names:
        assert str(name) in msg, (name, msg)
    assert sorted(out_parent.iterdir()) == before, "output or temporary files left behind"
    return msg


def test_wrong_delimiter_in_rows(tmp_path, out_parent, panel_prefix):
    ss = write(tmp_path / "mixed.sumstats", "SNP\tA1\tA2\tZ\tN\nrs131538,A,G,-0.8,450000\n")
    expect_failure(out_parent, ss, panel_prefix, names=[ss],
                   match=r"line 2: expected 5 fields \(as in the header\), found 1 \(is the delimiter right\? "
                         r"the header is tab-separated\)")


def test_header_with_unsupported_delimiter(tmp_path, out_parent, panel_prefix):
    ss = write(tmp_path / "semi.sumstats", "SNP;A1;A2;Z;N\nrs131538;A;G;-0.8;450000\n")
    expect_failure(out_parent, ss, panel_prefix, names=[ss],
                   match=r"line 1: the header is a single column 'SNP;A1;A2;Z;N': expected tab-, comma- or whitespace")


def test_duplicated_column(tmp_path, out_parent, panel_prefix):
    ss = write(tmp_path / "dup.sumstats", "SNP\tA1\tA2\tZ\tN\tZ\nrs131538\tA\tG\t-0.8\t450000\t1\n")
    expect_failure(out_parent, ss, panel_prefix, match=r"line 1: column Z appears more than once in the header",
                   names=[ss])


@pytest.mark.parametrize("allele", ["Q", "1", "-", "<DEL>", "I", "A/G"])
def test_allele_not_acgt(tmp_path, out_parent, panel_prefix, allele):
    ss = write(tmp_path / "allele.sumstats", LDSC_OK + f"rs5746647\tG\t{allele}\t1.0\t450000\n")
    expect_failure(out_parent, ss, panel_prefix, names=[ss, repr(allele)],
                   match=r"line 4, column 'A2': expected an allele made of A, C, G, T")


def test_missing_value_in_required_column(tmp_path, out_parent, panel_prefix):
    ss = write(tmp_path / "na.sumstats", LDSC_OK + "rs5746647\tG\tT\tNA\t450000\n")
    expect_failure(out_parent, ss, panel_prefix, match=r"line 4, column 'Z': expected a number, found 'NA'", names=[ss])


def test_infinite_n(tmp_path, out_parent, panel_prefix):
    ss = write(tmp_path / "infN.sumstats", LDSC_OK + "rs5746647\tG\tT\t1.0\tinf\n")
    expect_failure(out_parent, ss, panel_prefix, match=r"line 4, column 'N': expected a positive sample size, found inf",
                   names=[ss])


def test_non_integer_position(tmp_path, out_parent, panel_prefix):
    ss = write(tmp_path / "pos.fastGWA", FASTGWA_HEAD + FASTGWA_ROW.replace("16871137", "16871137.5"))
    expect_failure(out_parent, ss, panel_prefix, names=[ss],
                   match=r"line 2, column 'POS': expected a non-negative integer position, found '16871137.5'")


def test_nan_beta(tmp_path, out_parent, panel_prefix):
    ss = write(tmp_path / "nanbeta.fastGWA", FASTGWA_HEAD + FASTGWA_ROW + FASTGWA_ROW.replace("-0.0027", "nan"))
    expect_failure(out_parent, ss, panel_prefix, names=[ss],
                   match=r"line 3: Z = BETA/SE is not finite or SE is not positive \(BETA=nan, SE=0.0034\)")


def test_negative_info(tmp_path, out_parent, panel_prefix):
    ss = write(tmp_path / "info.fastGWA", FASTGWA_HEAD.replace("\tP\n", "\tP\tINFO\n") + FASTGWA_ROW.replace("\n", "\t-0.2\n"))
    expect_failure(out_parent, ss, panel_prefix, names=[ss],
                   match=r"line 2, column 'INFO': expected an imputation INFO score >= 0, found -0.2")


def test_line_numbers_count_comments_and_blank_lines(tmp_path, out_parent, panel_prefix):
    """## lines before the header and blank lines in the body are counted in the line number."""
    ss = write(tmp_path / "blank.sumstats", "## a comment\n\n" + LDSC_OK.replace("\nrs96", "\n\n\nrs96") + "\nrs5746647\tG\tT\t1x\t450000\n")
    # header on line 3, rows on lines 4 and 7, then a blank line, the bad row on line 9
    expect_failure(out_parent, ss, panel_prefix, match=r"line 9, column 'Z': expected a number, found '1x'", names=[ss])


def test_bad_value_deep_in_a_large_gzip_file(tmp_path, out_parent, panel_prefix):
    """The fast parser refuses the file; the error still names the exact line."""
    rows = [f"rs{i}\tA\tG\t{(i % 7) * 0.1:.1f}\t1000\n" for i in range(60000)]
    rows[45678] = "rs45678\tA\tG\t0..1\t1000\n"
    ss = tmp_path / "big.sumstats.gz"
    ss.write_bytes(gzip.compress(("SNP\tA1\tA2\tZ\tN\n" + "".join(rows)).encode(), compresslevel=1))
    expect_failure(out_parent, ss, panel_prefix, match=r"line 45680, column 'Z': expected a number, found '0..1'",
                   names=[ss])


def test_csv_non_numeric(tmp_path, out_parent, panel_prefix):
    ss = write(tmp_path / "x.csv", "SNP,A1,A2,Z,N\nrs131538,A,G,-0.8,450000\nrs9605903,T,C,--1,450000\n")
    expect_failure(out_parent, ss, panel_prefix, match=r"line 3, column 'Z': expected a number, found '--1'", names=[ss])


def test_bolt_missing_se(tmp_path, out_parent, panel_prefix):
    ss = write(tmp_path / "x.bolt.stats",
               "SNP\tCHR\tBP\tGENPOS\tALLELE1\tALLELE0\tA1FREQ\tF_MISS\tBETA\tCHISQ_BOLT_LMM_INF\tP_BOLT_LMM_INF\n"
               "rs131538\t22\t16871137\t0\tA\tG\t0.05\t0\t-0.0027\t0.6\t0.4\n")
    msg = expect_failure(out_parent, ss, panel_prefix, n=450000, names=[ss],
                         match=r"missing required column SE \(closest format: BOLT-LMM")
    assert "header is: SNP CHR BP GENPOS ALLELE1 ALLELE0" in msg


def test_bolt_without_n(tmp_path, out_parent, panel_prefix):
    ss = write(tmp_path / "x.bolt.stats",
               "SNP\tCHR\tBP\tGENPOS\tALLELE1\tALLELE0\tA1FREQ\tF_MISS\tBETA\tSE\tP_BOLT_LMM_INF\n"
               "rs131538\t22\t16871137\t0\tA\tG\t0.05\t0\t-0.0027\t0.0034\t0.4\n")
    expect_failure(out_parent, ss, panel_prefix, match=r"no N column \(BOLT-LMM writes none\) and no --n given",
                   names=[ss])


def test_gwas_ssf_missing_standard_error(tmp_path, out_parent, panel_prefix):
    ss = write(tmp_path / "x.tsv",
               "chromosome\tbase_pair_location\teffect_allele\tother_allele\tbeta\teffect_allele_frequency\tp_value\n"
               "22\t16871137\tA\tG\t-0.0027\t0.05\t0.4\n")
    expect_failure(out_parent, ss, panel_prefix, n=1000, names=[ss],
                   match=r"missing required column STANDARD_ERROR \(closest format: GWAS-SSF")


def test_gwas_ssf_odds_ratio_not_positive(tmp_path, out_parent, panel_prefix):
    ss = write(tmp_path / "or.tsv",
               "chromosome\tbase_pair_location\teffect_allele\tother_allele\todds_ratio\tstandard_error\t"
               "effect_allele_frequency\tp_value\tn\n"
               "22\t16871137\tA\tG\t1.1\t0.05\t0.05\t0.4\t1000\n22\t16871200\tA\tG\t-1.1\t0.05\t0.05\t0.4\t1000\n")
    expect_failure(out_parent, ss, panel_prefix, names=[ss],
                   match=r"line 3, column 'odds_ratio': expected a positive odds_ratio, found -1.1")


def test_gwas_vcf_record_missing_format_field(tmp_path, out_parent, panel_prefix):
    ss = write(tmp_path / "x.vcf", VCF_HEAD + VCF_ROW + VCF_ROW.replace("ES:SE:AF:SS\t-0.0027:0.0034:", "ES:AF:SS\t-0.0027:"))
    expect_failure(out_parent, ss, panel_prefix, names=[ss],
                   match=r"line 9, column 'FORMAT': FORMAT has no SE field \(FORMAT is ES:AF:SS\): expected the FORMAT "
                         r"fields ES, SE, SS")


def test_gwas_vcf_header_without_se(tmp_path, out_parent, panel_prefix):
    head = "\n".join(line for line in VCF_HEAD.split("\n") if "ID=SE," not in line)
    ss = write(tmp_path / "x.vcf", head + VCF_ROW.replace("ES:SE:AF:SS\t-0.0027:0.0034:", "ES:AF:SS\t-0.0027:"))
    expect_failure(out_parent, ss, panel_prefix, names=[ss],
                   match=r"line 6: no ##FORMAT=<ID=SE,...> in the header: a GWAS-VCF needs FORMAT fields ES and SE")


def test_gwas_vcf_missing_value(tmp_path, out_parent, panel_prefix):
    ss = write(tmp_path / "x.vcf", VCF_HEAD + VCF_ROW.replace("-0.0027:0.0034", ".:0.0034"))
    expect_failure(out_parent, ss, panel_prefix, names=[ss],
                   match=r"line 8, column 'ES': FORMAT field ES is missing \('.'\): expected a number")


def test_gwas_vcf_two_samples(tmp_path, out_parent, panel_prefix):
    ss = write(tmp_path / "x.vcf", VCF_HEAD.replace("\tSTUDY\n", "\tSTUDY\tOTHER\n") + VCF_ROW.replace("\n", "\t.:.:.:.\n"))
    expect_failure(out_parent, ss, panel_prefix, names=[ss],
                   match=r"line 7: expected one sample column in a GWAS-VCF \(one study\), found 2")


def test_gwas_vcf_truncated_gzip(tmp_path, out_parent, panel_prefix):
    body = VCF_HEAD + "".join(VCF_ROW.replace("16871137", str(16871137 + 10 * i)) for i in range(3000))
    ss = tmp_path / "x.vcf.gz"
    data = gzip.compress(body.encode())
    ss.write_bytes(data[: len(data) // 2])
    expect_failure(out_parent, ss, panel_prefix, names=[ss], match=r"corrupt or truncated gzip file")


def test_gwas_vcf_truncated_bgzip(tmp_path, out_parent, panel_prefix):
    import pysam

    body = VCF_HEAD + "".join(VCF_ROW.replace("16871137", str(16871137 + 10 * i)) for i in range(3000))
    (tmp_path / "x.vcf").write_text(body)
    pysam.tabix_compress(str(tmp_path / "x.vcf"), str(tmp_path / "full.vcf.gz"))
    data = (tmp_path / "full.vcf.gz").read_bytes()
    ss = tmp_path / "x.vcf.gz"
    ss.write_bytes(data[: len(data) // 2])
    expect_failure(out_parent, ss, panel_prefix, names=[ss], match=r"not a readable VCF file .*truncated")


def test_gwas_vcf_with_column_options(tmp_path, out_parent, panel_prefix):
    ss = write(tmp_path / "x.vcf", VCF_HEAD + VCF_ROW)
    expect_failure_kw(out_parent, ss, panel_prefix, columns={"z": "ES"}, names=[ss],
                      match=r"--col-z: column mapping does not apply to a GWAS-VCF file")


def test_column_option_names_a_missing_column(tmp_path, out_parent, panel_prefix):
    ss = write(tmp_path / "x.sumstats", LDSC_OK)
    expect_failure_kw(out_parent, ss, panel_prefix, columns={"z": "ZSCORE"}, names=[ss],
                      match=r"line 1: --col-z ZSCORE: no such column; expected one of the header's columns: SNP A1 A2 Z N")


def test_two_column_options_name_one_column(tmp_path, out_parent, panel_prefix):
    ss = write(tmp_path / "x.sumstats", LDSC_OK)
    expect_failure_kw(out_parent, ss, panel_prefix, columns={"beta": "Z", "z": "Z"}, names=[ss],
                      match=r"line 1: --col-z Z: column already given for --col-beta")


@pytest.mark.parametrize("kw,match", [
    ({"maf_min": 0.6}, r"option --maf-min: expected a number in \[0, 0.5\], got 0.6"),
    ({"info_min": 1.5}, r"option --info-min: expected a number in \[0, 1\], got 1.5"),
])
def test_bad_filter_option(tmp_path, out_parent, panel_prefix, kw, match):
    ss = write(tmp_path / "x.sumstats", LDSC_OK)
    expect_failure_kw(out_parent, ss, panel_prefix, match=match, names=[], **kw)


def test_everything_filtered(tmp_path, out_parent, panel_prefix):
    ss = write(tmp_path / "chrx.fastGWA", FASTGWA_HEAD + FASTGWA_ROW.replace("22\t", "X\t", 1))
    expect_failure(out_parent, ss, panel_prefix, names=[ss], match=r"no variant matched .*1 read: non_autosomal 1")


# through the CLI: exit 1, one line on stderr naming the file and line, nothing written

CLI_CASES = {
    "wrong-delimiter": ("x.sumstats", "SNP\tA1\tA2\tZ\tN\nrs131538,A,G,-0.8,450000\n", [], "line 2"),
    "bad-allele": ("x.sumstats", LDSC_OK + "rs5746647\tG\tQ\t1.0\t450000\n", [], "line 4"),
    "nan-z": ("x.sumstats", LDSC_OK + "rs5746647\tG\tT\tnan\t450000\n", [], "line 4"),
    "bolt-no-se": ("x.stats", "SNP\tCHR\tBP\tALLELE1\tALLELE0\tA1FREQ\tBETA\tP_BOLT_LMM\nrs1\t22\t1\tA\tG\t0.1\t0.1\t0.5\n",
                   ["--n", "1000"], "missing required column SE"),
    "vcf-no-se": ("x.vcf", VCF_HEAD + VCF_ROW.replace("ES:SE:AF:SS\t-0.0027:0.0034:", "ES:AF:SS\t-0.0027:"), [], "line 8"),
    "col-missing": ("x.sumstats", LDSC_OK, ["--col-z", "ZSCORE"], "line 1"),
    "negative-n": ("x.sumstats", LDSC_OK + "rs5746647\tG\tT\t1.0\t-5\n", [], "line 4"),
    "bad-maf-min": ("x.sumstats", LDSC_OK, ["--maf-min", "2"], "--maf-min"),
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_cli_bad_sumstats(tmp_path, out_parent, panel_prefix, case):
    name, text, extra, where = CLI_CASES[case]
    ss = write(tmp_path / name, text)
    r = _invoke(["ingest", "--sumstats", str(ss), "--ld", str(panel_prefix), "-o", str(out_parent / "ds")] + extra)
    assert r.exit_code == 1, r.output
    err = r.stderr.strip()
    assert err.startswith("Error: ") and "\n" not in err and "Traceback" not in r.output, err
    assert where in err, err
    if case != "bad-maf-min":
        assert str(ss) in err, err
    assert r.stdout == "" and list(out_parent.iterdir()) == []


# ---------------------------------------------------------------------------------------
# unwritable destinations: one line, exit 1, nothing left behind


def _subprocess_ingest(args):
    """The CLI in a child process, so that anything HDF5 prints on stderr is seen too."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "varfx", "ingest", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_cli_ingest_to_a_read_only_filesystem(readonly_dir, fastgwa_path, panel_prefix, json_flag):
    out = readonly_dir / "ds"
    r = _subprocess_ingest(["--sumstats", fastgwa_path, "--ld", panel_prefix, "-o", out, *json_flag])
    assert r.returncode == 1, r.stderr
    err = r.stderr.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert "read-only file system" in err and str(readonly_dir) in err
    assert r.stdout == ""
    assert list(readonly_dir.iterdir()) == []


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_cli_ingest_to_a_full_disk(full_dir, fastgwa_path, panel_prefix, json_flag):
    out = full_dir / "ds"
    r = _subprocess_ingest(["--sumstats", fastgwa_path, "--ld", panel_prefix, "-o", out, *json_flag])
    assert r.returncode == 1, r.stderr
    err = r.stderr.strip()
    assert "\n" not in err and "Traceback" not in err and "HDF5" not in err, err
    assert "no space left" in err.lower() and str(full_dir) in err
    assert r.stdout == ""
    assert list(full_dir.iterdir()) == []  # no dataset, no .ds.*.tmp directory


def test_ingest_to_a_read_only_filesystem_keeps_nothing(readonly_dir, fastgwa_path, panel_prefix):
    with pytest.raises(OSError):
        run_ingest(fastgwa_path, panel_prefix, readonly_dir / "ds", progress=False)
    assert list(readonly_dir.iterdir()) == []


def test_full_disk_stops_writing_at_the_first_failed_chunk(full_dir, fastgwa_path, panel_prefix, monkeypatch):
    """After the first failed write, ingest stops between chunks rather than keep the
    rest of the dataset in memory: the genotype loop runs at most one step further."""
    from varfx.stages import ingest as ing

    calls = []
    real = ing._guard

    def counting(obj):
        calls.append(1)
        real(obj)

    monkeypatch.setattr(ing, "_guard", counting)
    with pytest.raises(UserError, match="no space left on the device") as info:
        run_ingest(fastgwa_path, panel_prefix, full_dir / "ds", progress=False)
    assert str(full_dir / "ds") in str(info.value)
    assert 1 <= len(calls) <= 2
    assert list(full_dir.iterdir()) == []
