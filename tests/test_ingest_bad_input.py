"""Bad inputs to ingest: a one-line UserError naming the file and the problem, no output left."""

from __future__ import annotations

import gzip
import shutil

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
