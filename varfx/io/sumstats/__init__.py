"""GWAS summary statistics: detect the format from the header, parse it fast, check it.

Formats (see ``docs/formats.md``) are :class:`SumstatsFormat` records in
:data:`FORMATS`, tried in order; the first whose *signature* columns are all in the
header is used.  GWAS-VCF is recognised from its first line and read with pysam.

Text tables (tab-, comma- or whitespace-separated, plain or gzipped) are parsed with
``pyarrow.csv`` (multi-threaded C++, the gzip stream decompressed alongside: 6-7x faster
and ~3x less memory than the Python splitting it replaced, see ``docs/benchmarks.md``).
A file that does not parse is diagnosed afterwards, so every bad input still gets a
one-line message naming the file, the line and the column.

:func:`read_sumstats` returns a :class:`Sumstats` (a ``dict`` of numpy arrays, one row
per variant, in file order):

============ ======================================================================
``snp``       variant id (``str``, object array); ``CHR:BP`` where the file has none
``chrom``     ``int64`` chromosome (X=23, Y=24, XY=25, MT=26, other contigs 0),
              -1 when missing
``bp``        ``int64`` base-pair position, -1 when missing
``a1``        effect allele (upper-case ``str`` of A/C/G/T): Z and ``freq`` refer to it
``a2``        other allele (upper-case ``str``)
``z``         ``float64`` Z score of ``a1`` (``BETA/SE`` where the file has no Z)
``n``         ``float64`` sample size (the ``N`` column, or ``n=`` for every row)
``freq``      ``float64`` frequency of ``a1``, NaN where the file has none
``info``      ``float64`` imputation INFO score, NaN where the file has none
============ ======================================================================

:func:`filter_sumstats` applies the quality filters of ingest (autosomes, INFO, MAF,
multi-allelic sites) and counts what each removed.
"""

from __future__ import annotations

from .formats import (  # noqa: F401
    BOLT,
    BUILTIN_FORMATS,
    CANONICAL_HEADER,
    COLUMN_OPTIONS,
    CUSTOM,
    FASTGWA,
    FORMATS,
    FORMATS_BY_NAME,
    GWAS_SSF,
    GWAS_VCF,
    LDSC,
    Sumstats,
    UKB,
    _NULL_VALUES,
    _NUMERIC,
    _read_gwas_vcf_entry,
    _sniff_vcf,
    registered_formats,
)
from .source import (  # noqa: F401
    _check_path,
    _find_header,
    _head,
    _read_prefix,
    _sniffs,
    _split_header,
    is_vcf,
    read_bytes,
    read_text,
)
from .detect import (  # noqa: F401
    _apply_overrides,
    _find_format,
    _format_columns,
    _has_effect,
)
from .parse import (  # noqa: F401
    _BLANK,
    _DELIM,
    _Locator,
    _arrow_read,
    _diagnose,
    _first_bad_float,
    _first_non_utf8,
    _mode_words,
    _normalise_whitespace,
)
from .checks import (  # noqa: F401
    _Checker,
    _check_alleles,
    _chrom_codes,
    _finish,
    _no_n_hint,
    _unquote_column,
)
from .reader import (  # noqa: F401
    _check_n,
    read_sumstats,
)
from .gwas_vcf import (  # noqa: F401
    _float32_decimal,
    _read_vcf_file,
    _read_vcf_records,
    _round_sig,
    _vcf_header_lines,
    read_gwas_vcf,
)
from .filters import (  # noqa: F401
    FILTER_REASONS,
    INFO_MIN,
    MAF_MIN,
    _check_threshold,
    filter_sumstats,
)
from ...api import SumstatsFormat  # noqa: F401,E402
from ...genome import MISSING_TOKENS  # noqa: F401,E402
