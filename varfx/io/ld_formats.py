"""The built-in LD reference formats (:class:`varfx.api.LDFormat`): ``vcf``, ``ukbb``, ``plink``.

Registered by :mod:`varfx.default_plugins.formats` in that order, which is the order
``varfx ingest --ld`` sniffs them in: a ``.vcf``/``.vcf.gz``/``.bcf`` file, then a
directory of (or one) UKBB/PolyFun ``.npz`` region file, then a PLINK prefix.  Nothing
heavy is imported here: the readers are imported when a format is opened.
"""

from __future__ import annotations

from pathlib import Path

from ..api import LDFormat

_VCF_SUFFIXES = (".vcf", ".vcf.gz", ".vcf.bgz")


class VcfFormat(LDFormat):
    name = "vcf"
    description = "VCF/BCF genotype panel (biallelic SNPs; a1 = ALT), read with pysam; --ld-region needs an index"
    layout = "genotypes"

    @classmethod
    def sniff(cls, path) -> bool:
        p = Path(path)
        return p.is_file() and (p.suffix == ".bcf" or p.name.endswith(_VCF_SUFFIXES))

    def open(self, path, *, region=None, maf_min: float = 0.0):
        from .vcf_panel import load_vcf_panel

        return load_vcf_panel(path, region=None if region is None else region.text, maf_min=maf_min)


class UkbbFormat(LDFormat):
    name = "ukbb"
    description = "UKBB/PolyFun LD regions: chr{C}_{START}_{END}.npz (one triangle of R) + .gz variant tables"
    layout = "regions"

    @classmethod
    def sniff(cls, path) -> bool:
        from .ukbb import is_ukbb

        p = Path(path)
        return p.suffix == ".npz" or (p.is_dir() and is_ukbb(p))

    def open(self, path, *, region=None, maf_min: float = 0.0):
        return UkbbRegions(path)


class UkbbRegions:
    """The ``regions`` layout of a UKBB/PolyFun directory (see :class:`varfx.api.LDFormat`)."""

    def __init__(self, path):
        from .ukbb import list_regions

        self.regions = list_regions(path)

    @property
    def inputs(self) -> list[tuple[str, Path]]:
        return [x for reg in self.regions for x in (("ld_npz", reg.npz), ("ld_table", reg.table))]

    def read_table(self, i: int) -> dict:
        from .ukbb import read_region_table

        return read_region_table(self.regions[i])

    def triangle(self, i: int, n_rows: int):
        from .ukbb import load_region_triangle

        return load_region_triangle(self.regions[i], n_rows)


class PlinkFormat(LDFormat):
    name = "plink"
    description = "PLINK 1 binary panel (.bed/.bim/.fam, SNP-major); give the prefix or one of the files"
    layout = "genotypes"

    @classmethod
    def sniff(cls, path) -> bool:
        from .plink import is_plink

        return is_plink(path)

    def open(self, path, *, region=None, maf_min: float = 0.0):
        from .plink import load_plink

        return load_plink(path)


BUILTIN_LD_FORMATS = (VcfFormat, UkbbFormat, PlinkFormat)
