"""The built-in summary-statistics formats (records of :class:`varfx.api.SumstatsFormat`), the
registry lookup, and :class:`Sumstats`, what every reader returns."""

from __future__ import annotations

from ...api import SumstatsFormat
from ...genome import MISSING_TOKENS

from .source import is_vcf


# MISSING_TOKENS (from varfx.genome) are read as "missing" in optional numeric columns
# (CHR, BP, frequency, INFO), matched case-insensitively.  ``NaN`` is read as a number (a
# NaN), which is also "missing" in those columns.

#: The same tokens, in the spellings pyarrow is told to read as null.
_NULL_VALUES = sorted({v for t in MISSING_TOKENS - {"NAN"} for v in (t, t.lower(), t.title())})

#: Canonical fields and the header name a column mapping renames a column to.
CANONICAL_HEADER = {"snp": "SNP", "chrom": "CHR", "bp": "BP", "a1": "A1", "a2": "A2", "z": "Z",
                    "beta": "BETA", "se": "SE", "n": "N", "freq": "FREQ", "info": "INFO"}

#: The ``varfx ingest`` option that maps each field (for messages).
COLUMN_OPTIONS = {"snp": "--col-snp", "chrom": "--col-chr", "bp": "--col-bp", "a1": "--col-a1",
                  "a2": "--col-a2", "z": "--col-z", "beta": "--col-beta", "se": "--col-se",
                  "n": "--col-n", "freq": "--col-freq", "info": "--col-info"}

_NUMERIC = ("bp", "z", "beta", "se", "n", "freq", "info", "odds_ratio", "hazard_ratio")


LDSC = SumstatsFormat(
    name="ldsc",
    description="LDSC .sumstats (SNP A1 A2 Z N, optional CHR BP)",
    columns={
        "snp": ("SNP",),
        "chrom": ("CHR",),
        "bp": ("BP", "POS"),
        "a1": ("A1",),
        "a2": ("A2",),
        "z": ("Z",),
        "n": ("N",),
        "freq": ("FRQ", "FREQ", "AF1", "EAF"),
        "info": ("INFO",),
    },
    required=("snp", "a1", "a2", "z"),
    signature=("snp", "a1", "a2", "z"),
)

UKB = SumstatsFormat(
    name="ukb",
    description="UK Biobank BOLT-LMM release (SNP CHR POS A1 A2 REF EAF Beta se P N INFO); A1 is the effect allele",
    columns={
        "snp": ("SNP",),
        "chrom": ("CHR",),
        "bp": ("POS", "BP"),
        "a1": ("A1",),
        "a2": ("A2",),
        "ref": ("REF",),
        "freq": ("EAF",),
        "beta": ("BETA",),
        "se": ("SE",),
        "n": ("N",),
        "info": ("INFO",),
    },
    required=("snp", "a1", "a2", "beta", "se"),
    signature=("snp", "a1", "a2", "ref", "freq", "beta", "se"),
)

FASTGWA = SumstatsFormat(
    name="fastGWA",
    description="fastGWA (CHR SNP POS A1 A2 N AF1 BETA SE P); Z = BETA/SE",
    columns={
        "chrom": ("CHR",),
        "snp": ("SNP",),
        "bp": ("POS", "BP"),
        "a1": ("A1",),
        "a2": ("A2",),
        "n": ("N",),
        "freq": ("AF1", "FREQ", "EAF"),
        "beta": ("BETA",),
        "se": ("SE",),
        "info": ("INFO",),
    },
    required=("snp", "a1", "a2", "beta", "se"),
    signature=("snp", "a1", "a2", "beta", "se"),
)

BOLT = SumstatsFormat(
    name="bolt",
    description="BOLT-LMM (SNP CHR BP GENPOS ALLELE1 ALLELE0 A1FREQ ... BETA SE P_BOLT_LMM); ALLELE1 is the effect allele",
    columns={
        "snp": ("SNP",),
        "chrom": ("CHR",),
        "bp": ("BP",),
        "a1": ("ALLELE1",),
        "a2": ("ALLELE0",),
        "freq": ("A1FREQ",),
        "info": ("INFO",),
        "beta": ("BETA",),
        "se": ("SE",),
        "n": ("N",),
    },
    required=("snp", "a1", "a2", "beta", "se"),
    signature=("snp", "a1", "a2", "beta"),
)

GWAS_SSF = SumstatsFormat(
    name="gwas-ssf",
    description=("GWAS-SSF, the GWAS Catalog standard (chromosome base_pair_location effect_allele other_allele "
                 "beta standard_error effect_allele_frequency p_value [rsid] [n])"),
    columns={
        "chrom": ("CHROMOSOME",),
        "bp": ("BASE_PAIR_LOCATION",),
        "a1": ("EFFECT_ALLELE",),
        "a2": ("OTHER_ALLELE",),
        "beta": ("BETA",),
        "odds_ratio": ("ODDS_RATIO",),
        "hazard_ratio": ("HAZARD_RATIO",),
        "z": ("Z-SCORE", "Z_SCORE"),
        "se": ("STANDARD_ERROR",),
        "freq": ("EFFECT_ALLELE_FREQUENCY",),
        "snp": ("RSID", "VARIANT_ID"),
        "info": ("INFO",),
        "n": ("N",),
    },
    required=("chrom", "bp", "a1", "a2"),
    signature=("chrom", "bp", "a1", "a2"),
)

#: Used only with a column mapping when no format matches: every common header name.
CUSTOM = SumstatsFormat(
    name="custom",
    description="a table with mapped columns (--col-a1, --col-a2, --col-z or --col-beta/--col-se, ...)",
    columns={
        "snp": ("SNP", "RSID", "ID", "MARKERNAME", "MARKER", "VARIANT_ID", "RS"),
        "chrom": ("CHR", "CHROM", "CHROMOSOME"),
        "bp": ("BP", "POS", "POSITION", "BASE_PAIR_LOCATION"),
        "a1": ("A1", "ALLELE1", "EFFECT_ALLELE", "EA"),
        "a2": ("A2", "ALLELE0", "ALLELE2", "OTHER_ALLELE", "NEA"),
        "z": ("Z", "ZSCORE", "Z-SCORE"),
        "beta": ("BETA",),
        "se": ("SE", "STANDARD_ERROR"),
        "n": ("N",),
        "freq": ("FREQ", "FRQ", "EAF", "AF1", "A1FREQ", "EFFECT_ALLELE_FREQUENCY"),
        "info": ("INFO",),
    },
    required=("a1", "a2"),
    signature=(),
)


def _read_gwas_vcf_entry(path, n, **kw):  # resolved lazily: pysam is imported only for VCFs
    from .gwas_vcf import read_gwas_vcf

    return read_gwas_vcf(path, n, **kw)


def _sniff_vcf(path) -> bool:
    return is_vcf(path)


GWAS_VCF = SumstatsFormat(
    name="gwas-vcf",
    description="GWAS-VCF (FORMAT ES:SE:LP:AF[:SS], one sample column; ALT is the effect allele)",
    columns={},
    required=(),
    signature=(),
    reader=_read_gwas_vcf_entry,
    sniff=_sniff_vcf,
)

#: The built-in table formats, in the order they are registered and tried (UKB before
#: fastGWA: its header has fastGWA's columns too).
FORMATS: list[SumstatsFormat] = [LDSC, UKB, FASTGWA, BOLT, GWAS_SSF]

#: Every built-in format by name.
FORMATS_BY_NAME: dict[str, SumstatsFormat] = {f.name.lower(): f for f in FORMATS + [GWAS_VCF, CUSTOM]}

#: The built-ins as registered by varfx.default_plugins.formats (CUSTOM last: it is only
#: used with a column mapping, after every named format).
BUILTIN_FORMATS: tuple[SumstatsFormat, ...] = (GWAS_VCF, *FORMATS, CUSTOM)


def registered_formats() -> tuple[list[SumstatsFormat], list[SumstatsFormat], dict[str, SumstatsFormat]]:
    """(table formats in detection order, file formats with a reader, every format by
    lower-case name), from the plugin registry (``register_sumstats_formats``)."""
    from ...plugins import get_sumstats_formats

    found = list(get_sumstats_formats().values())
    tables = [f for f in found if f.reader is None and f.name.lower() != "custom"]
    files = [f for f in found if f.reader is not None]
    return tables, files, {f.name.lower(): f for f in found}


class Sumstats(dict):
    """A dict of per-variant numpy arrays, plus what was read: ``path``, ``format``,
    ``n_source`` ("column" or "option"), ``has_position`` (CHR and BP columns),
    ``columns`` (field -> the header column it was read from, or how it was derived)
    and ``delimiter`` ("tab", "comma", "whitespace" or "vcf")."""

    def __init__(self, *args, path=None, format=None, n_source=None, has_position=False,
                 columns=None, delimiter=None, **kw):
        super().__init__(*args, **kw)
        self.path = path
        self.format = format
        self.n_source = n_source
        self.has_position = has_position
        self.columns = dict(columns or {})
        self.delimiter = delimiter

    @property
    def n_variants(self) -> int:
        return int(len(self["snp"])) if "snp" in self else 0

    def subset(self, index) -> "Sumstats":
        """The rows ``index`` (a boolean mask or integer indices), same attributes."""
        out = Sumstats({k: v[index] for k, v in self.items()}, path=self.path, format=self.format,
                       n_source=self.n_source, has_position=self.has_position, columns=self.columns,
                       delimiter=self.delimiter)
        return out
