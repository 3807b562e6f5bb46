"""Every built-in input format passes the conformance cases of varfx.testing.formats."""

from __future__ import annotations

import numpy as np
import pytest

from varfx.testing.formats import (LDFormatConformance, SumstatsFormatConformance, write_ldsc, write_plink,
                                   write_ukbb_regions, write_vcf)


@pytest.fixture(autouse=True)
def fresh_plugins():
    from varfx import plugins

    plugins.reset()
    yield
    plugins.reset()


# ------------------------------------------------------------------------------ LD formats


class TestPlinkFormat(LDFormatConformance):
    format_name = "plink"

    def write_reference(self, directory, panel):
        return write_plink(directory / "panel", panel)


class TestVcfFormat(LDFormatConformance):
    format_name = "vcf"

    def write_reference(self, directory, panel):
        pytest.importorskip("pysam")
        return write_vcf(directory / "panel.vcf", panel)


class TestUkbbFormat(LDFormatConformance):
    format_name = "ukbb"

    def write_reference(self, directory, panel):
        pytest.importorskip("scipy")
        return write_ukbb_regions(directory / "ukbb", panel)


# ------------------------------------------------------------------------------ sumstats formats


def _lines(path, header, fmt_row, rows):
    with open(path, "w") as fh:
        fh.write(header + "\n")
        for i in range(len(rows["snp"])):
            fh.write(fmt_row({k: v[i] for k, v in rows.items()}) + "\n")
    return path


class TestLdscFormat(SumstatsFormatConformance):
    format_name = "ldsc"

    def write_sumstats(self, path, rows):
        return write_ldsc(path.with_suffix(".sumstats"), rows)


class TestFastGwaFormat(SumstatsFormatConformance):
    format_name = "fastGWA"

    def write_sumstats(self, path, rows):
        return _lines(path.with_suffix(".fastGWA"), "CHR\tSNP\tPOS\tA1\tA2\tN\tAF1\tBETA\tSE\tP", lambda r: (
            f"{r['chrom']}\t{r['snp']}\t{r['bp']}\t{r['a1']}\t{r['a2']}\t{r['n']:.0f}\t{r['freq']}\t{float(r['beta'])!r}\t"
            f"{float(r['se'])!r}\t0.5"), rows)


class TestUkbFormat(SumstatsFormatConformance):
    format_name = "ukb"

    def write_sumstats(self, path, rows):
        return _lines(path.with_suffix(".tsv"), "SNP\tCHR\tPOS\tA1\tA2\tREF\tEAF\tBeta\tse\tP\tN\tINFO", lambda r: (
            f"{r['snp']}\t{r['chrom']}\t{r['bp']}\t{r['a1']}\t{r['a2']}\t{r['a2']}\t{r['freq']}\t{float(r['beta'])!r}\t"
            f"{float(r['se'])!r}\t0.5\t{r['n']:.0f}\t0.99"), rows)


class TestBoltFormat(SumstatsFormatConformance):
    format_name = "bolt"

    def write_sumstats(self, path, rows):
        return _lines(path.with_suffix(".bolt"), "SNP\tCHR\tBP\tGENPOS\tALLELE1\tALLELE0\tA1FREQ\tINFO\tBETA\tSE\t"
                      "P_BOLT_LMM\tN", lambda r: (
                          f"{r['snp']}\t{r['chrom']}\t{r['bp']}\t0\t{r['a1']}\t{r['a2']}\t{r['freq']}\t0.99\t"
                          f"{float(r['beta'])!r}\t{float(r['se'])!r}\t0.5\t{r['n']:.0f}"), rows)


class TestGwasSsfFormat(SumstatsFormatConformance):
    format_name = "gwas-ssf"

    def write_sumstats(self, path, rows):
        return _lines(path.with_suffix(".tsv"), "chromosome\tbase_pair_location\teffect_allele\tother_allele\tbeta\t"
                      "standard_error\teffect_allele_frequency\tp_value\trsid\tn", lambda r: (
                          f"{r['chrom']}\t{r['bp']}\t{r['a1']}\t{r['a2']}\t{float(r['beta'])!r}\t{float(r['se'])!r}\t{r['freq']}\t"
                          f"0.5\t{r['snp']}\t{r['n']:.0f}"), rows)


class TestGwasVcfFormat(SumstatsFormatConformance):
    format_name = "gwas-vcf"
    z_rtol = 1e-6  # ES and SE are float32 in a VCF

    def write_sumstats(self, path, rows):
        pytest.importorskip("pysam")
        head = ["##fileformat=VCFv4.2", "##contig=<ID=22,length=51304566>"]
        for key in ("ES", "SE", "LP", "AF", "SS"):
            head.append(f'##FORMAT=<ID={key},Number=A,Type=Float,Description="{key}">')
        head.append("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tTRAIT")
        body = [f"{rows['chrom'][i]}\t{rows['bp'][i]}\t{rows['snp'][i]}\t{rows['a2'][i]}\t{rows['a1'][i]}\t.\tPASS\t.\t"
                f"ES:SE:LP:AF:SS\t{float(rows['beta'][i])!r}:{float(rows['se'][i])!r}:0.3:{rows['freq'][i]}:{rows['n'][i]:.0f}"
                for i in range(len(rows["snp"]))]
        p = path.with_suffix(".vcf")
        p.write_text("\n".join(head + body) + "\n")
        return p


def test_every_builtin_format_has_a_conformance_class():
    from varfx import plugins

    ld = {c.format_name for c in (TestPlinkFormat, TestVcfFormat, TestUkbbFormat)}
    ss = {c.format_name for c in (TestLdscFormat, TestFastGwaFormat, TestUkbFormat, TestBoltFormat, TestGwasSsfFormat,
                                  TestGwasVcfFormat)}
    assert set(plugins.get_ld_formats()) == ld
    # custom is a column mapping, exercised by tests/test_sumstats_formats.py
    assert set(plugins.get_sumstats_formats()) - {"custom"} == ss


def test_a_third_party_ld_format_is_used_by_ingest(tmp_path):
    """A plugin's LD format is detected and read by ingest like a built-in."""
    from varfx import hookimpl, plugins
    from varfx.api import LDFormat
    from varfx.io.plink import load_plink
    from varfx.stages.ingest import run_ingest
    from varfx.testing.formats import sumstats_rows, synthetic_panel

    class Zipped(LDFormat):  # a PLINK panel behind a ".mypanel" marker file
        name = "mypanel"
        description = "a PLINK panel named by a .mypanel file"
        layout = "genotypes"

        @classmethod
        def sniff(cls, path):
            return str(path).endswith(".mypanel")

        def open(self, path, *, region=None, maf_min=0.0):
            return load_plink(open(path).read().strip())

    class Mod:
        @hookimpl
        def register_ld_formats(register):
            register(Zipped)

    plugins.get_plugin_manager().register(Mod, name="mypanel-plugin")
    panel = synthetic_panel()
    prefix = write_plink(tmp_path / "p", panel)
    marker = tmp_path / "ref.mypanel"
    marker.write_text(str(prefix))
    s = run_ingest(write_ldsc(tmp_path / "ss.sumstats", sumstats_rows(panel)), marker, tmp_path / "ds", progress=False)
    assert s["ld_kind"] == "mypanel" and s["matched"] == panel.n_variants
    rec = [r for r in plugins.describe_plugins() if r["name"] == "mypanel-plugin"][0]
    assert rec["ld_formats"] == ["mypanel"]


def test_a_third_party_sumstats_format_is_detected(tmp_path):
    from varfx import hookimpl, plugins
    from varfx.api import SumstatsFormat
    from varfx.io.sumstats import read_sumstats

    fmt = SumstatsFormat(name="regenie", description="REGENIE (ID CHROM GENPOS ALLELE1 ALLELE0 BETA SE N)",
                         columns={"snp": ("ID",), "chrom": ("CHROM",), "bp": ("GENPOS",), "a1": ("ALLELE1",),
                                  "a2": ("ALLELE0",), "beta": ("BETA",), "se": ("SE",), "n": ("N",)},
                         required=("snp", "a1", "a2", "beta", "se"), signature=("snp", "bp", "a1", "a2", "beta"))

    class Mod:
        @hookimpl
        def register_sumstats_formats(register):
            register(fmt)

    plugins.get_plugin_manager().register(Mod, name="regenie-plugin")
    p = tmp_path / "x.regenie"
    p.write_text("ID CHROM GENPOS ALLELE1 ALLELE0 BETA SE N\nrs1 22 100 A G 0.1 0.05 1000\n")
    s = read_sumstats(p)
    assert s.format == "regenie" and np.allclose(s["z"], [2.0])
