"""Summary-statistics formats: detection, parsing and the quality filters.

Fixtures are written from the real UK Biobank height chr22 fastGWA file: the same
variants converted to BOLT-LMM, GWAS-SSF, the UKB release layout, GWAS-VCF (as text)
and a CSV with custom column names must give back the same alleles and Z, and the same
dataset after ingest.  The two real samples in ``formats/`` are parsed with asserted
counts.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from varfx.io.harmonise import multi_allelic_mask
from varfx.io.sumstats import filter_sumstats, read_sumstats
from varfx.stages.ingest import run_ingest

_REPO = Path(__file__).resolve().parents[1]
FORMATS_DIR = Path(os.environ.get("VARFX_SHARED_DATA", _REPO.parent / "shared" / "data")) / "formats"
COMP = {"A": "T", "C": "G", "G": "C", "T": "A"}


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"test data not found: {path} (set VARFX_SHARED_DATA)")
    return path


@pytest.fixture(scope="module")
def gwa_rows(fastgwa_path):
    """The first 600 rows of the real fastGWA file, as the text tokens written there."""
    rows = []
    with gzip.open(fastgwa_path, "rt") as fh:
        header = fh.readline().split()
        for line in fh:
            rows.append(dict(zip(header, line.split())))
            if len(rows) == 600:
                break
    return rows


def write_fastgwa(path, rows):
    cols = "CHR SNP POS A1 A2 N AF1 BETA SE P".split()
    with open(path, "w") as fh:
        fh.write("\t".join(cols) + "\n")
        for r in rows:
            fh.write("\t".join(r[c] for c in cols) + "\n")
    return path


def write_bolt(path, rows):
    """BOLT-LMM: ALLELE1 is the effect allele, A1FREQ its frequency; no N column."""
    with open(path, "w") as fh:
        fh.write("SNP\tCHR\tBP\tGENPOS\tALLELE1\tALLELE0\tA1FREQ\tF_MISS\tBETA\tSE\tP_BOLT_LMM_INF\tP_BOLT_LMM\n")
        for r in rows:
            fh.write(f"{r['SNP']}\t{r['CHR']}\t{r['POS']}\t0\t{r['A1']}\t{r['A2']}\t{r['AF1']}\t0.001\t"
                     f"{r['BETA']}\t{r['SE']}\t{r['P']}\t{r['P']}\n")
    return path


def write_ssf(path, rows, gz=False):
    """GWAS-SSF: the mandatory columns in order, then rsid and n."""
    opener = gzip.open if gz else open
    with opener(path, "wt") as fh:
        fh.write("chromosome\tbase_pair_location\teffect_allele\tother_allele\tbeta\tstandard_error\t"
                 "effect_allele_frequency\tp_value\trsid\tn\n")
        for r in rows:
            fh.write(f"{r['CHR']}\t{r['POS']}\t{r['A1']}\t{r['A2']}\t{r['BETA']}\t{r['SE']}\t{r['AF1']}\t"
                     f"{r['P']}\t{r['SNP']}\t{r['N']}\n")
    return path


def write_ukb(path, rows, info="0.95"):
    """The UK Biobank release layout (formats/graphld_example.sumstats): A1 is the effect
    allele, EAF its frequency, REF the hg19 reference allele (informative only)."""
    with open(path, "w") as fh:
        fh.write("SNP\tCHR\tPOS\tA1\tA2\tREF\tEAF\tBeta\tse\tP\tN\tINFO\n")
        for r in rows:
            fh.write(f"{r['SNP']}\t{r['CHR']}\t{r['POS']}\t{r['A1']}\t{r['A2']}\t{r['A2']}\t{r['AF1']}\t"
                     f"{r['BETA']}\t{r['SE']}\t{r['P']}\t{r['N']}\t{info}\n")
    return path


def _neg(token: str) -> str:
    return token[1:] if token.startswith("-") else "-" + token


def write_gwas_vcf(path, rows, swap_every=3):
    """GWAS-VCF as text: ALT is the effect allele.  Every ``swap_every``-th row is written
    the other way round (REF = A1, ALT = A2, ES negated, AF = 1 - AF1)."""
    with open(path, "w") as fh:
        fh.write("##fileformat=VCFv4.2\n")
        for key, desc in (("ES", "Effect size estimate relative to the alternative allele"),
                          ("SE", "Standard error of effect size estimate"), ("LP", "-log10 p-value"),
                          ("AF", "Alternative allele frequency"), ("SS", "Sample size")):
            fh.write(f'##FORMAT=<ID={key},Number=A,Type=Float,Description="{desc}">\n')
        fh.write("##contig=<ID=22,length=51304566>\n")
        fh.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tUKB-height\n")
        for i, r in enumerate(rows):
            ref, alt, es, af = r["A2"], r["A1"], r["BETA"], r["AF1"]
            if swap_every and i % swap_every == 0:
                ref, alt, es, af = alt, ref, _neg(es), repr(round(1 - float(af), 7))
            lp = -np.log10(float(r["P"]))
            fh.write(f"{r['CHR']}\t{r['POS']}\t{r['SNP']}\t{ref}\t{alt}\t.\tPASS\t.\tES:SE:LP:AF:SS\t"
                     f"{es}:{r['SE']}:{lp:.6g}:{af}:{r['N']}\n")
    return path


def write_custom_csv(path, rows):
    with open(path, "w") as fh:
        fh.write("MarkerName,Chrom,Position,EA,NEA,Effect,StdErr,Freq1,SampleSize,Rsq\n")
        for r in rows:
            fh.write(f"{r['SNP']},chr{r['CHR']},{r['POS']},{r['A1'].lower()},{r['A2'].lower()},{r['BETA']},"
                     f"{r['SE']},{r['AF1']},{r['N']},0.99\n")
    return path


CUSTOM_COLUMNS = {"snp": "MarkerName", "chrom": "Chrom", "bp": "Position", "a1": "EA", "a2": "NEA",
                  "beta": "Effect", "se": "StdErr", "freq": "Freq1", "n": "SampleSize", "info": "Rsq"}


def _expected(rows):
    z = np.array([float(r["BETA"]) / float(r["SE"]) for r in rows])
    return ([r["A1"] for r in rows], [r["A2"] for r in rows], z, np.array([float(r["AF1"]) for r in rows]))


# ---------------------------------------------------------------------------------------
# every format gives back the same variants


@pytest.mark.parametrize("kind", ["fastGWA", "bolt", "gwas-ssf", "gwas-ssf-gz", "ukb", "custom"])
def test_formats_give_the_same_variants(tmp_path, gwa_rows, kind):
    a1, a2, z, freq = _expected(gwa_rows)
    kw = {}
    if kind == "fastGWA":
        path, fmt = write_fastgwa(tmp_path / "x.fastGWA", gwa_rows), "fastGWA"
    elif kind == "bolt":
        path, fmt = write_bolt(tmp_path / "x.bolt.stats", gwa_rows), "bolt"
        kw["n"] = 450000
    elif kind.startswith("gwas-ssf"):
        gz = kind.endswith("gz")
        path, fmt = write_ssf(tmp_path / ("x.tsv.gz" if gz else "x.tsv"), gwa_rows, gz=gz), "gwas-ssf"
    elif kind == "ukb":
        path, fmt = write_ukb(tmp_path / "x.sumstats", gwa_rows), "ukb"
    else:
        path, fmt = write_custom_csv(tmp_path / "x.csv", gwa_rows), "custom"
        kw["columns"] = CUSTOM_COLUMNS
    ss = read_sumstats(path, **kw)
    assert ss.format == fmt
    assert ss.n_variants == len(gwa_rows)
    assert ss["a1"].tolist() == a1 and ss["a2"].tolist() == a2
    np.testing.assert_array_equal(ss["z"], z)
    np.testing.assert_array_equal(ss["freq"], freq)
    assert ss["snp"].tolist() == [r["SNP"] for r in gwa_rows]
    assert np.all(ss["chrom"] == 22) and ss["bp"].tolist() == [int(r["POS"]) for r in gwa_rows]
    assert ss.has_position
    if kind == "bolt":
        assert ss.n_source == "option" and np.all(ss["n"] == 450000)
    else:
        assert ss.n_source == "column" and ss["n"].tolist() == [float(r["N"]) for r in gwa_rows]
    if kind == "ukb":
        assert np.all(ss["info"] == 0.95) and ss.columns["info"] == "INFO"
    if kind == "custom":
        assert ss.delimiter == "comma" and np.all(ss["info"] == 0.99)


def test_gwas_vcf_gives_the_same_variants(tmp_path, gwa_rows):
    """ALT is the effect allele; rows written REF/ALT the other way round come back with
    the alleles swapped and Z negated.  Values pass through htslib's float32 and come
    back exactly as written (7 significant digits)."""
    path = write_gwas_vcf(tmp_path / "x.vcf", gwa_rows)
    ss = read_sumstats(path)
    a1, a2, z, freq = _expected(gwa_rows)
    swapped = np.arange(len(gwa_rows)) % 3 == 0
    assert ss.format == "gwas-vcf" and ss.delimiter == "vcf" and ss.n_variants == len(gwa_rows)
    assert ss["a1"].tolist() == [y if s else x for x, y, s in zip(a1, a2, swapped)]
    assert ss["a2"].tolist() == [x if s else y for x, y, s in zip(a1, a2, swapped)]
    np.testing.assert_array_equal(ss["z"], np.where(swapped, -z, z))
    np.testing.assert_allclose(ss["freq"], np.where(swapped, 1 - freq, freq), rtol=0, atol=1e-12)
    assert ss["n"].tolist() == [float(r["N"]) for r in gwa_rows] and ss.n_source == "column"
    assert ss["snp"].tolist() == [r["SNP"] for r in gwa_rows]


@pytest.mark.parametrize("compression", ["gzip", "bgzip"])
def test_gwas_vcf_compressed(tmp_path, gwa_rows, compression):
    """bgzip (BGZF) is read by htslib directly; plain gzip through a temporary file."""
    import pysam

    plain = write_gwas_vcf(tmp_path / "x.vcf", gwa_rows[:50], swap_every=0)
    path = tmp_path / "x.vcf.gz"
    if compression == "gzip":
        path.write_bytes(gzip.compress(plain.read_bytes()))
    else:
        pysam.tabix_compress(str(plain), str(path))
    ss = read_sumstats(path)
    assert ss.format == "gwas-vcf" and ss.n_variants == 50
    np.testing.assert_array_equal(ss["z"], _expected(gwa_rows[:50])[2])


def test_whitespace_aligned_and_crlf_parse_like_tabs(tmp_path, gwa_rows):
    """Space-aligned columns (leading/trailing blanks, runs of spaces) and CRLF line
    ends are read as whitespace-separated fields, like the tab-separated file."""
    tab = read_sumstats(write_fastgwa(tmp_path / "x.fastGWA", gwa_rows))
    cols = "CHR SNP POS A1 A2 N AF1 BETA SE P".split()
    with open(tmp_path / "aligned.txt", "w", newline="") as fh:
        fh.write("  " + "   ".join(f"{c:>10}" for c in cols) + "  \r\n")
        for i, r in enumerate(gwa_rows):
            fh.write(" ".join(f"{r[c]:>12}" for c in cols) + (" \t \r\n" if i % 2 else "\r\n"))
            if i == 10:
                fh.write("   \r\n")  # a blank line
    al = read_sumstats(tmp_path / "aligned.txt")
    assert al.format == "fastGWA" and al.delimiter == "whitespace"
    for k in ("snp", "a1", "a2", "chrom", "bp"):
        assert al[k].tolist() == tab[k].tolist(), k
    for k in ("z", "n", "freq"):
        np.testing.assert_array_equal(al[k], tab[k])


@pytest.mark.parametrize("kind", ["bolt", "gwas-ssf", "ukb", "gwas-vcf", "custom"])
def test_ingest_same_dataset_as_fastgwa(tmp_path, gwa_rows, panel_prefix, kind):
    """Through ingest, each format gives the dataset the fastGWA file gives."""
    ref_path = write_fastgwa(tmp_path / "ref.fastGWA", gwa_rows)
    base = run_ingest(ref_path, panel_prefix, tmp_path / "base", progress=False)
    kw = {}
    if kind == "bolt":
        path = write_bolt(tmp_path / "x.stats", gwa_rows)
        kw["n"] = 450000
    elif kind == "gwas-ssf":
        path = write_ssf(tmp_path / "x.tsv", gwa_rows)
    elif kind == "ukb":
        path = write_ukb(tmp_path / "x.sumstats", gwa_rows)
    elif kind == "gwas-vcf":
        path = write_gwas_vcf(tmp_path / "x.vcf", gwa_rows)
    else:
        path = write_custom_csv(tmp_path / "x.csv", gwa_rows)
        kw["columns"] = CUSTOM_COLUMNS
    s = run_ingest(path, panel_prefix, tmp_path / "ds", progress=False, **kw)
    assert s["sumstats_format"] == ("custom" if kind == "custom" else kind)
    for k in ("read", "matched", "strand_flipped", "dropped", "filtered", "after_filters"):
        assert s[k] == base[k], k
    assert s["matched"] > 500 and base["flipped"] > 300
    if kind == "gwas-vcf":  # a third of the rows were written the other way round
        assert s["flipped"] != base["flipped"]
    else:
        assert s["flipped"] == base["flipped"]
    with h5py.File(tmp_path / "base" / "dataset.h5", "r") as f0, h5py.File(tmp_path / "ds" / "dataset.h5", "r") as f1:
        for k in ("snp", "a1", "a2", "bp"):
            assert f1["variants"][k][()].tolist() == f0["variants"][k][()].tolist(), k
        np.testing.assert_array_equal(f1["variants/z"][()], f0["variants/z"][()])
        if kind != "bolt":
            np.testing.assert_array_equal(f1["variants/n"][()], f0["variants/n"][()])


def test_cli_custom_columns_json(tmp_path, gwa_rows, panel_prefix):
    from click.testing import CliRunner

    from varfx.cli import cli

    path = write_custom_csv(tmp_path / "x.csv", gwa_rows)
    args = ["ingest", "--sumstats", str(path), "--ld", str(panel_prefix), "--json", "-o", str(tmp_path / "ds"),
            "--col-snp", "MarkerName", "--col-chr", "Chrom", "--col-bp", "Position", "--col-a1", "EA",
            "--col-a2", "NEA", "--col-beta", "Effect", "--col-se", "StdErr", "--col-freq", "Freq1",
            "--col-n", "SampleSize", "--col-info", "Rsq"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["sumstats_format"] == "custom" and s["sumstats_delimiter"] == "comma"
    assert s["sumstats_columns"]["z"] == "Effect/StdErr" and s["sumstats_columns"]["a1"] == "EA"
    assert s["filters"] == {"info_min": 0.6, "info_column": "Rsq", "maf_min": 0.001, "freq_column": "Freq1",
                            "multi_allelic": "drop"}
    assert s["read"] == 600 and s["read"] == s["matched"] + sum(s["filtered"].values()) + sum(s["dropped"].values())

    # all rows have Rsq 0.99: --info-min 0.995 filters them all, and says so
    r = CliRunner().invoke(cli, args + ["--info-min", "0.995"])
    assert r.exit_code == 1
    assert "no variant matched" in r.stderr and "low_info 600" in r.stderr


# ---------------------------------------------------------------------------------------
# the real samples in formats/


def test_formats_ukb_sample():
    path = _need(FORMATS_DIR / "graphld_example.sumstats")
    ss = read_sumstats(path)
    assert ss.format == "ukb" and ss.delimiter == "tab" and ss.n_variants == 999
    assert ss.columns == {"snp": "SNP", "chrom": "CHR", "bp": "POS", "a1": "A1", "a2": "A2", "freq": "EAF",
                          "beta": "Beta", "se": "se", "n": "N", "info": "INFO", "z": "Beta/se"}
    assert ss["snp"][0] == "rs10399793" and ss["chrom"][0] == 1 and ss["bp"][0] == 49298
    assert ss["a1"][0] == "T" and ss["a2"][0] == "C"
    assert ss["z"][0] == pytest.approx(-0.00104841 / 0.00272961)
    assert ss["freq"][0] == pytest.approx(0.376205) and ss["info"][0] == pytest.approx(0.342797)
    assert np.all(ss["n"] == 458303)
    keep, counts = filter_sumstats(ss)
    assert counts == {"non_autosomal": 0, "low_info": 127, "low_maf": 0, "multi_allelic": 0}
    assert keep.sum() == 872
    _, counts = filter_sumstats(ss, info_min=0.9)  # ldsc munge's threshold
    assert counts["low_info"] == 437
    _, counts = filter_sumstats(ss, info_min=0, maf_min=0.01)
    assert counts == {"non_autosomal": 0, "low_info": 0, "low_maf": 477, "multi_allelic": 0}


def test_formats_gwas_vcf_sample():
    path = _need(FORMATS_DIR / "graphld_example.gwas.vcf")
    from varfx.errors import UserError

    with pytest.raises(UserError, match="no SS FORMAT field .* no --n given"):
        read_sumstats(path)
    ss = read_sumstats(path, n=337000)
    assert ss.format == "gwas-vcf" and ss.n_variants == 10 and ss.n_source == "option"
    assert ss["snp"][:3].tolist() == ["rs367896724", "rs201106462", "rs534229142"]
    assert ss["a1"][0] == "ACT" and ss["a2"][0] == "ACCT"  # ALT is the effect allele
    assert ss["z"][0] == -0.00192899 / 0.00275222  # float32 in htslib, back to the decimal written
    assert ss["freq"][0] == 0.602282 and np.isnan(ss["info"]).all()
    assert ss["chrom"].tolist() == [1] * 10 and ss["bp"][-1] == 13273
    keep, counts = filter_sumstats(ss)
    assert counts == {"non_autosomal": 0, "low_info": 0, "low_maf": 0, "multi_allelic": 0}
    _, counts = filter_sumstats(ss, maf_min=0.01)
    assert counts["low_maf"] == 2  # AF 0.00131297 and 0.00576287


# ---------------------------------------------------------------------------------------
# filters


def _ss(rows, **extra):
    text = "SNP\tCHR\tBP\tA1\tA2\tZ\tN\tFRQ\tINFO\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows)
    return text


def test_filters_non_autosomal_info_maf_multi(tmp_path):
    rows = [
        ("rs1", 1, 100, "A", "G", 1.0, 1000, 0.3, 0.99),
        ("rs2", "X", 100, "A", "G", 1.0, 1000, 0.3, 0.99),     # non-autosomal
        ("rs3", "chrY", 100, "A", "G", 1.0, 1000, 0.3, 0.99),  # non-autosomal
        ("rs4", "MT", 100, "A", "G", 1.0, 1000, 0.3, 0.99),    # non-autosomal
        ("rs5", "GL000207.1", 100, "A", "G", 1.0, 1000, 0.3, 0.99),  # other contig
        ("rs6", 23, 200, "A", "G", 1.0, 1000, 0.3, 0.99),      # X as 23
        ("rs7", 2, 100, "A", "G", 1.0, 1000, 0.3, 0.59),       # INFO < 0.6
        ("rs8", 2, 200, "A", "G", 1.0, 1000, 0.3, 0.6),        # INFO = 0.6 kept
        ("rs9", 2, 300, "A", "G", 1.0, 1000, 0.0009, 0.99),    # MAF < 0.001
        ("rs10", 2, 400, "A", "G", 1.0, 1000, 0.9995, 0.99),   # MAF 0.0005 < 0.001
        ("rs11", 2, 500, "A", "G", 1.0, 1000, 0.001, 0.99),    # MAF = 0.001 kept
        ("rs12", 3, 100, "A", "G", 1.0, 1000, 0.3, 0.99),      # multi-allelic: A/G and A/C
        ("rs13", 3, 100, "A", "C", 1.0, 1000, 0.3, 0.99),
        ("rs14", 3, 200, "A", "G", 1.0, 1000, 0.3, 0.99),      # A/G and its complement T/C: one pair
        ("rs15", 3, 200, "T", "C", 1.0, 1000, 0.3, 0.99),
        ("rs16", 3, 300, "A", "AT", 1.0, 1000, 0.3, 0.99),     # indel + SNV at one position: multi
        ("rs17", 3, 300, "A", "G", 1.0, 1000, 0.3, 0.99),
        ("rs18", 3, 400, "A", "G", 1.0, 1000, 0.3, 0.5),       # low INFO removes one of a pair:
        ("rs19", 3, 400, "A", "C", 1.0, 1000, 0.3, 0.99),      # the other is no longer multi-allelic
        ("rs20", "NA", "NA", "A", "G", 1.0, 1000, "NA", "NA"),  # no position / frequency / INFO: kept
    ]
    p = tmp_path / "f.sumstats"
    p.write_text(_ss(rows))
    ss = read_sumstats(p)
    assert ss["chrom"][:6].tolist() == [1, 23, 24, 26, 0, 23]
    keep, counts = filter_sumstats(ss)
    assert counts == {"non_autosomal": 5, "low_info": 2, "low_maf": 2, "multi_allelic": 4}
    assert ss["snp"][keep].tolist() == ["rs1", "rs8", "rs11", "rs14", "rs15", "rs19", "rs20"]
    keep, counts = filter_sumstats(ss, info_min=0, maf_min=0, keep_multi_allelic=True)
    assert counts == {"non_autosomal": 5, "low_info": 0, "low_maf": 0, "multi_allelic": 0}
    _, counts = filter_sumstats(ss, info_min=0)
    assert counts["multi_allelic"] == 6  # rs18 now stays, and so rs18/rs19 are multi-allelic


def test_multi_allelic_mask_unit():
    chrom = np.array([1, 1, 1, 1, 2, 2, -1, -1, 1])
    bp = np.array([10, 10, 20, 20, 10, 10, 5, 5, 30])
    a1 = np.array(["A", "A", "A", "T", "C", "C", "A", "A", "ACG"], dtype=object)
    a2 = np.array(["G", "C", "G", "C", "T", "T", "G", "C", "A"], dtype=object)
    assert multi_allelic_mask(chrom, bp, a1, a2).tolist() == [True, True, False, False, False, False, False, False,
                                                               False]


def test_filter_options_checked(tmp_path):
    p = tmp_path / "f.sumstats"
    p.write_text(_ss([("rs1", 1, 100, "A", "G", 1.0, 1000, 0.3, 0.99)]))
    ss = read_sumstats(p)
    from varfx.errors import UserError

    with pytest.raises(UserError, match=r"option --maf-min: expected a number in \[0, 0.5\], got 0.7"):
        filter_sumstats(ss, maf_min=0.7)
    with pytest.raises(UserError, match=r"option --info-min: expected a number in \[0, 1\], got -1"):
        filter_sumstats(ss, info_min=-1)


def test_ingest_reports_filters(tmp_path, gwa_rows, panel_prefix):
    """Rows moved to chrX and given two allele pairs are counted, not matched."""
    rows = [dict(r) for r in gwa_rows[:200]]
    for r in rows[:5]:
        r["CHR"] = "X"
    extra = dict(rows[10])
    a1, a2 = extra["A1"], extra["A2"]
    extra["A2"] = next(b for b in "ACGT" if b not in (a1, a2) and {a1, b} != {COMP[a1], COMP[a2]})
    rows.append(extra)  # a second allele pair at row 10's position: both dropped
    path = write_fastgwa(tmp_path / "f.fastGWA", rows)
    s = run_ingest(path, panel_prefix, tmp_path / "ds", progress=False)
    assert s["read"] == 201
    assert s["filtered"] == {"non_autosomal": 5, "low_info": 0, "low_maf": 0, "multi_allelic": 2}
    assert s["after_filters"] == 194
    assert s["read"] == s["matched"] + sum(s["filtered"].values()) + sum(s["dropped"].values())
    k = run_ingest(path, panel_prefix, tmp_path / "ds2", progress=False, keep_multi_allelic=True)
    assert k["filtered"]["multi_allelic"] == 0 and k["filters"]["multi_allelic"] == "keep"
    assert k["matched"] + k["dropped"]["allele_mismatch"] + k["dropped"]["strand_ambiguous"] >= s["matched"] + 1


def test_forced_format(tmp_path, gwa_rows):
    from varfx.errors import UserError

    path = write_fastgwa(tmp_path / "x.fastGWA", gwa_rows[:20])
    assert read_sumstats(path, format="custom").format == "custom"
    with pytest.raises(UserError, match=r"missing required column Z \(closest format: LDSC"):
        read_sumstats(path, format="ldsc")
    with pytest.raises(UserError, match="no #CHROM header line"):
        read_sumstats(path, format="gwas-vcf")
    with pytest.raises(UserError, match="option --sumstats-format: unknown format 'plink'"):
        read_sumstats(path, format="plink")


def test_cli_prints_table(tmp_path, gwa_rows, panel_prefix):
    from click.testing import CliRunner

    from varfx.cli import cli

    path = write_fastgwa(tmp_path / "x.fastGWA", gwa_rows[:100])
    r = CliRunner().invoke(cli, ["ingest", "--sumstats", str(path), "--ld", str(panel_prefix), "-o", str(tmp_path / "d")])
    assert r.exit_code == 0, r.output
    for word in ("varfx ingest", "fastGWA", "read", "filtered", "INFO < 0.6", "MAF < 0.001", "matched", "flipped",
                 "strand_ambiguous"):
        assert word in r.stderr, word
    assert r.stdout == ""
