"""Conformance cases every input-format plugin must pass: LD reference formats and
summary-statistics formats.

Subclass in a test module (the class name must start with ``Test`` there)::

    from varfx.testing.formats import LDFormatConformance, SumstatsFormatConformance

    class TestMyPanel(LDFormatConformance):
        format_name = "my-panel"

        def write_reference(self, directory, panel):
            ...  # write ``panel`` (see SyntheticPanel) in the format; return the --ld path

    class TestMySumstats(SumstatsFormatConformance):
        format_name = "my-gwas"

        def write_sumstats(self, path, rows):
            ...  # write ``rows`` (see sumstats_rows) in the format; return the path

The format is looked up through the plugin manager, so a third-party format is tested
exactly as ``varfx ingest`` will load it.  The truth is a small synthetic panel (fixed
seed): its dosages, and correlations computed here with ``numpy.corrcoef``
(independent of varfx's readers).  Tolerances: genotypes are integers and must be read
exactly; a correlation stored in float32 must match to 1e-6; Z scores to 1e-9 relative
in a text table written with ``repr`` (formats that round, like GWAS-VCF's float32
fields, set :attr:`SumstatsFormatConformance.z_rtol`).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from ..io.plink import PanelGenotypes
from .data import write_plink  # noqa: F401 - part of this module's writers

# ------------------------------------------------------------------------------ truth


class SyntheticPanel(PanelGenotypes):
    """A small genotype panel: ``dosages`` (variants x people) of ``a1`` as int8, -1 missing,
    with ``snp chrom bp a1 a2`` per variant (chromosome 22, increasing positions,
    single-base A/C/G/T alleles, no strand-ambiguous pair)."""

    @property
    def n_variants(self) -> int:
        return int(self.dosages.shape[0])

    def correlation(self) -> np.ndarray:
        """np.corrcoef of the mean-imputed dosages (the LD a reader must reproduce)."""
        x = self.dosages.astype(np.float64)
        miss = x < 0
        x[miss] = np.nan
        mean = np.nanmean(x, axis=1, keepdims=True)
        x = np.where(miss, mean, x)
        return np.corrcoef(x)


def synthetic_panel(n_variants: int = 40, n_people: int = 60, seed: int = 8) -> SyntheticPanel:
    rng = np.random.default_rng(seed)
    # correlated haplotypes: each variant copies its neighbour with probability 0.8
    hap = np.empty((n_variants, 2 * n_people), dtype=np.int8)
    hap[0] = rng.random(2 * n_people) < 0.4
    for j in range(1, n_variants):
        fresh = rng.random(2 * n_people) < rng.uniform(0.1, 0.6)
        keep = rng.random(2 * n_people) < 0.8
        hap[j] = np.where(keep, hap[j - 1], fresh)
    g = (hap[:, :n_people] + hap[:, n_people:]).astype(np.int8)
    g[rng.random(g.shape) < 0.02] = -1
    for j in range(n_variants):  # no monomorphic variant: every one must reach the dataset
        ok = g[j] >= 0
        if np.unique(g[j][ok]).size < 2:
            g[j, np.flatnonzero(ok)[:2]] = [0, 2]
    pairs = [("A", "G"), ("C", "T"), ("G", "A"), ("T", "C"), ("A", "C"), ("G", "T")]
    a1 = np.array([pairs[j % len(pairs)][0] for j in range(n_variants)])
    a2 = np.array([pairs[j % len(pairs)][1] for j in range(n_variants)])
    bp = 16_000_000 + 1000 * np.arange(1, n_variants + 1, dtype=np.int64) + rng.integers(0, 500, n_variants)
    return SyntheticPanel(g, np.array([f"rs{900000 + j}" for j in range(n_variants)]),
                          np.full(n_variants, 22, dtype=np.int64), bp, a1, a2)


def sumstats_rows(panel: SyntheticPanel, seed: int = 3) -> dict:
    """Summary statistics of the panel's variants (effect allele = the panel's a1):
    ``snp chrom bp a1 a2 z beta se n freq`` with ``z = beta / se`` exactly as written."""
    rng = np.random.default_rng(seed)
    m = panel.n_variants
    se = np.round(rng.uniform(0.005, 0.02, m), 6)
    beta = np.round(rng.normal(0, 0.02, m), 6)
    freq = np.round(rng.uniform(0.05, 0.95, m), 4)
    return {"snp": panel.snp, "chrom": panel.chrom, "bp": panel.bp, "a1": panel.a1, "a2": panel.a2,
            "beta": beta, "se": se, "z": beta / se, "n": np.full(m, 250000.0), "freq": freq}


# ------------------------------------------------------------------------------ writers


def write_vcf(path, panel: SyntheticPanel) -> Path:
    """A plain-text VCF with GT calls: ALT = the panel's a1 (dosage = ALT count)."""
    path = Path(path)
    n = panel.dosages.shape[1]
    gt = {-1: "./.", 0: "0/0", 1: "0/1", 2: "1/1"}
    lines = ["##fileformat=VCFv4.2", "##contig=<ID=22>", '##FORMAT=<ID=GT,Number=1,Type=String,Description="GT">',
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(f"I{i}" for i in range(n))]
    for j in range(panel.n_variants):
        calls = "\t".join(gt[int(d)] for d in panel.dosages[j])
        lines.append(f"22\t{panel.bp[j]}\t{panel.snp[j]}\t{panel.a2[j]}\t{panel.a1[j]}\t.\tPASS\t.\tGT\t{calls}")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_ukbb_regions(directory, panel: SyntheticPanel, splits=(0.6,)) -> Path:
    """UKBB/PolyFun region files covering the panel, cut at the given fractions, with
    overlapping neighbours; the lower triangle of R (0.5 on the diagonal) per region."""
    import scipy.sparse as sp

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    R = panel.correlation()
    m = panel.n_variants
    cuts = [0] + [int(f * m) for f in splits] + [m]
    for k in range(len(cuts) - 1):
        lo, hi = max(0, cuts[k] - 5), min(m, cuts[k + 1] + 5)
        rows = np.arange(lo, hi)
        start, end = int(panel.bp[lo]), int(panel.bp[hi - 1]) + 1
        name = f"chr22_{start}_{end}"
        sub = R[np.ix_(rows, rows)]
        sp.save_npz(directory / f"{name}.npz", sp.csr_matrix(np.tril(sub, -1) + 0.5 * np.eye(len(rows))))
        with gzip.open(directory / f"{name}.gz", "wt") as fh:
            fh.write("rsid\tchromosome\tposition\tallele1\tallele2\n")
            for j in rows:
                fh.write(f"{panel.snp[j]}\t22\t{panel.bp[j]}\t{panel.a1[j]}\t{panel.a2[j]}\n")
    return directory


def write_ldsc(path, rows) -> Path:
    """LDSC ``.sumstats`` (SNP A1 A2 Z N, CHR BP) of :func:`sumstats_rows`."""
    path = Path(path)
    with open(path, "w") as fh:
        fh.write("SNP\tCHR\tBP\tA1\tA2\tZ\tN\n")
        for i in range(len(rows["snp"])):
            fh.write(f"{rows['snp'][i]}\t{rows['chrom'][i]}\t{rows['bp'][i]}\t{rows['a1'][i]}\t{rows['a2'][i]}\t"
                     f"{float(rows['z'][i])!r}\t{rows['n'][i]:.0f}\n")
    return path


# ------------------------------------------------------------------------------ LD formats


class LDFormatConformance:
    """The cases an :class:`varfx.api.LDFormat` plugin must pass (see the module docstring)."""

    format_name: str = ""

    def write_reference(self, directory: Path, panel: SyntheticPanel) -> Path:  # pragma: no cover
        raise NotImplementedError("write the panel in the format and return the --ld path")

    @pytest.fixture
    def panel(self):
        return synthetic_panel()

    @pytest.fixture
    def reference(self, tmp_path, panel):
        d = tmp_path / "ref"
        d.mkdir()
        return self.write_reference(d, panel)

    @property
    def fmt(self):
        from varfx import plugins

        formats = plugins.get_ld_formats()
        assert self.format_name in formats, f"LD format {self.format_name!r} is not registered"
        return formats[self.format_name]

    def test_registered_with_a_contract(self):
        from varfx.api import LDFormat

        fmt = self.fmt
        assert issubclass(fmt, LDFormat) and fmt.name == self.format_name
        assert fmt.description and "\n" not in fmt.description
        assert fmt.layout in ("genotypes", "regions")

    def test_sniff_and_detection(self, reference, tmp_path):
        from varfx.stages.ingest import detect_ld_format

        assert self.fmt.sniff(reference) is True
        assert detect_ld_format(reference) is self.fmt
        other = tmp_path / "other.txt"
        other.write_text("not an LD reference\n")
        (tmp_path / "empty_dir").mkdir()
        for p in (tmp_path / "missing", other, tmp_path / "empty_dir"):
            assert self.fmt.sniff(p) in (True, False)  # must not raise
        assert self.fmt.sniff(tmp_path / "missing") is False

    def _opened(self, reference):
        return self.fmt().open(reference)

    @staticmethod
    def _orient(got_a1, panel):
        """+1 where the reader's a1 is the panel's a1, -1 where it is the panel's a2."""
        got_a1 = np.asarray(got_a1).astype(str)
        same, swapped = got_a1 == panel.a1, got_a1 == panel.a2
        assert np.all(same | swapped), "a1 is neither allele of the variant"
        return np.where(same, 1.0, -1.0)

    def test_opened_reference_reproduces_the_panel(self, reference, panel):
        ref = self._opened(reference)
        assert all(isinstance(role, str) and Path(p).exists() for role, p in ref.inputs)
        if self.fmt.layout == "genotypes":
            bim = ref.bim
            m = len(bim["snp"])
            assert m == panel.n_variants and ref.n_snps == m and ref.n_people == panel.dosages.shape[1]
            for k in ("chrom", "snp", "cm", "bp", "a1", "a2"):
                assert len(bim[k]) == m, k
            assert bim["chrom"].dtype == np.int64 and bim["bp"].dtype == np.int64
            np.testing.assert_array_equal(bim["bp"], panel.bp)
            np.testing.assert_array_equal(bim["chrom"], panel.chrom)
            sign = self._orient(bim["a1"], panel)
            g = ref.genotypes(np.arange(m))
            assert g.dtype == np.int8 and g.shape == panel.dosages.shape
            truth = np.where(panel.dosages < 0, -1, np.where(sign[:, None] > 0, panel.dosages, 2 - panel.dosages))
            np.testing.assert_array_equal(g, truth)
            np.testing.assert_array_equal(ref.genotypes(np.array([5, 2])), truth[[5, 2]])
            freq, mono = ref.summary_stats()
            ok = truth >= 0
            expect = np.where(ok, truth, 0).sum(axis=1) / (2.0 * ok.sum(axis=1))
            np.testing.assert_allclose(freq, expect, rtol=0, atol=1e-12)
            assert not mono.any()
        else:
            assert len(ref.regions) >= 1
            R = panel.correlation()
            index = {s: j for j, s in enumerate(panel.snp)}
            for i, reg in enumerate(ref.regions):
                t = ref.read_table(i)
                rows = np.array([index[s] for s in np.asarray(t["snp"]).astype(str)])
                assert all(len(t[k]) == len(rows) for k in ("snp", "chrom", "bp", "a1", "a2"))
                np.testing.assert_array_equal(t["bp"], panel.bp[rows])
                assert np.all((t["bp"] >= reg.start) & (t["bp"] < reg.end))
                sign = self._orient(np.asarray(t["a1"]), type(panel)(panel.dosages[rows], panel.snp[rows],
                                                                     panel.chrom[rows], panel.bp[rows],
                                                                     panel.a1[rows], panel.a2[rows]))
                L = ref.triangle(i, len(rows))
                full = (L + L.T).toarray()
                np.testing.assert_allclose(np.diag(full), 1.0, atol=1e-3)
                expect = R[np.ix_(rows, rows)] * sign[:, None] * sign[None, :]
                off = ~np.eye(len(rows), dtype=bool)
                np.testing.assert_allclose(full[off], expect[off], atol=1e-6)

    def test_ingest_stores_the_true_ld(self, reference, panel, tmp_path):
        """Sumstats of every panel variant -> ingest -> the dataset's LD is the panel's."""
        import h5py

        from varfx.io.ld import open_ld
        from varfx.stages.ingest import run_ingest

        ss = write_ldsc(tmp_path / "ss.sumstats", sumstats_rows(panel))
        s = run_ingest(ss, reference, tmp_path / "ds", progress=False)
        assert s["ld_kind"] == self.format_name
        assert s["matched"] == panel.n_variants, s["dropped"]
        with h5py.File(tmp_path / "ds" / "dataset.h5", "r") as h:
            snp = h["variants/snp"].asstr()[:]
            a1 = h["variants/a1"].asstr()[:]
            z = h["variants/z"][:]
            ld = open_ld(h)
            m = len(snp)
            bp = h["variants/bp"][:]
            if self.fmt.layout == "genotypes":
                got = ld.correlation(np.arange(m))
                tol = 1e-10
            else:  # one region at a time: check the pairs inside the region picked for each centre
                got = None
                tol = 1e-6
            index = {x: j for j, x in enumerate(panel.snp)}
            rows = np.array([index[x] for x in snp])
            sign = np.where(a1 == panel.a1[rows], 1.0, -1.0)
            rows_z = sumstats_rows(panel)["z"][rows] * sign
            np.testing.assert_allclose(z, rows_z, rtol=1e-12)
            expect = panel.correlation()[np.ix_(rows, rows)] * sign[:, None] * sign[None, :]
            if got is not None:
                np.testing.assert_allclose(got, expect, atol=tol)
            else:
                for centre in (bp[m // 4], bp[(3 * m) // 4]):
                    got = ld.correlation(np.arange(m), 22, float(centre))
                    inside = np.abs(got - np.eye(m)).sum(axis=1) > 0
                    assert inside.sum() > 2
                    sel = np.ix_(inside, inside)
                    np.testing.assert_allclose(got[sel], expect[sel], atol=tol)


# ------------------------------------------------------------------------------ sumstats formats


class SumstatsFormatConformance:
    """The cases a :class:`varfx.api.SumstatsFormat` plugin must pass."""

    format_name: str = ""
    #: relative tolerance on Z (text written with repr: 1e-9; float32 fields: ~1e-6)
    z_rtol: float = 1e-9
    #: whether the format is recognised without --sumstats-format
    detected: bool = True
    #: whether the written file carries the sample size (else ingest needs --n)
    has_n: bool = True

    def write_sumstats(self, path: Path, rows: dict) -> Path:  # pragma: no cover
        raise NotImplementedError("write rows (see sumstats_rows) in the format and return the path")

    @pytest.fixture
    def rows(self):
        return sumstats_rows(synthetic_panel())

    @pytest.fixture
    def written(self, tmp_path, rows):
        return self.write_sumstats(tmp_path / "gwas", rows)

    @property
    def fmt(self):
        from varfx import plugins

        formats = plugins.get_sumstats_formats()
        assert self.format_name in formats, f"sumstats format {self.format_name!r} is not registered"
        return formats[self.format_name]

    def test_registered_with_a_contract(self):
        from varfx.api import SumstatsFormat

        fmt = self.fmt
        assert isinstance(fmt, SumstatsFormat) and fmt.name == self.format_name
        assert fmt.description and "\n" not in fmt.description
        if fmt.reader is None:
            assert set(fmt.required) <= set(fmt.columns) and set(fmt.signature) <= set(fmt.columns)
        else:
            assert callable(fmt.reader)

    def _check(self, s, rows):
        m = len(rows["snp"])
        assert s.n_variants == m
        np.testing.assert_array_equal(np.asarray(s["snp"]).astype(str), rows["snp"])
        # an effect allele written the other way round comes back with -Z
        same = np.asarray(s["a1"]).astype(str) == rows["a1"]
        swapped = (np.asarray(s["a1"]).astype(str) == rows["a2"]) & (np.asarray(s["a2"]).astype(str) == rows["a1"])
        assert np.all(same | swapped)
        z = np.where(same, s["z"], -s["z"])
        np.testing.assert_allclose(z, rows["z"], rtol=self.z_rtol, atol=0)
        if s.has_position:
            np.testing.assert_array_equal(s["bp"], rows["bp"])
            np.testing.assert_array_equal(s["chrom"], rows["chrom"])
        if self.has_n:
            np.testing.assert_allclose(s["n"], rows["n"])

    def test_read_when_forced(self, written, rows):
        from varfx.io.sumstats import read_sumstats

        s = read_sumstats(written, format=self.format_name, n=None if self.has_n else 1000.0)
        self._check(s, rows)

    def test_detected(self, written, rows):
        from varfx.io.sumstats import read_sumstats

        if not self.detected:
            pytest.skip("this format is only used when named")
        s = read_sumstats(written, n=None if self.has_n else 1000.0)
        assert s.format == self.format_name
        self._check(s, rows)

    def test_ingest_round_trip(self, written, rows, tmp_path):
        from varfx.stages.ingest import run_ingest

        prefix = write_plink(tmp_path / "panel", synthetic_panel())
        s = run_ingest(written, prefix, tmp_path / "ds", progress=False, n=None if self.has_n else 1000.0,
                       sumstats_format=self.format_name, maf_min=0.0)
        assert s["matched"] == len(rows["snp"]), s["dropped"]
