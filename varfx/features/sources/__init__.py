"""The feature-source contract and the built-in sources: ``bigwig``, ``bed``, ``table``,
``architecture`` (``fasta`` lives in :mod:`varfx.features.sequence`).

A feature source turns one input (a file, or nothing for ``architecture``) into features
of a set of variants.  The contract (documented in ``docs/features.md``), for ``n``
variants given as ``chrom`` (chromosome codes: ``22``, ``23`` for X...; or names such as
``"chr22"``) and ``pos`` (1-based positions), in any order:

- ``sniff(path) -> bool`` (classmethod): does this file look like this kind?  Used to
  infer the kind of a manifest entry that does not name one.  Must not raise.
- ``prepare(path, chrom, pos, *, variants=None)``: called once with *all* the dataset's
  variants before any ``read`` (a table builds its lookup for those variants here).
- ``columns(path, *, variants=None) -> list[str]``: names of the per-variant scalar
  columns that ``read`` returns.
- ``read(path, chrom, pos, *, window=256, variants=None) -> ndarray (n, len(columns))``,
  finite floats.  ``window`` is the width in bp of the window each variant's summaries
  are taken over: positions ``pos - window//2 .. pos - window//2 + window - 1`` (for
  ``window = 256``: ``pos-128 .. pos+127``; the variant is at offset ``window // 2``).
- ``track_channels(path) -> list[str]`` and ``read_track(path, chrom, pos, *, window=256,
  variants=None) -> ndarray (n, window, len(track_channels))``: per-base values over the
  same window (empty list: no track).
- ``variants`` is a dict of per-variant arrays aligned with ``chrom``/``pos``
  (``snp``, ``a1``, ``a2``, ``freq``, ``ld_score`` when known).

:class:`BaseFeatureSource` implements the defaults; third-party sources may subclass it
(or :class:`varfx.api.FeatureSource` directly: the store falls back to the defaults).

This module imports no numpy, pyBigWig or pysam at import time: it is loaded with the
plugins when ``varfx`` starts.
"""

from __future__ import annotations

from .common import (  # noqa: F401
    BIGWIG_MAGIC,
    MAX_BUFFER,
    MERGE_GAP,
    PLINK_MAGIC,
    _head_lines,
    _open_text,
    boolean,
    contig_lookup,
)
from .windows import (  # noqa: F401
    _check_positions,
    _segments,
    by_chromosome,
    gather_windows,
    window_starts,
)
from .base import (  # noqa: F401
    BaseFeatureSource,
)
from .bigwig import (  # noqa: F401
    BigWigSource,
)
from .bed import (  # noqa: F401
    BedSource,
    _covered_below,
    _inside,
    read_bed_intervals,
)
from .table import (  # noqa: F401
    TableSource,
    _BP_NAMES,
    _CHR_NAMES,
    _SNP_NAMES,
    _pair,
    _table_layout,
)
from .architecture import (  # noqa: F401
    ArchitectureSource,
    BUILTIN_SOURCES,
)
from varfx.genome import CHROM_CODES, CHROM_LABELS, MISSING_TOKENS, chrom_code, chrom_label  # noqa: F401,E402
from varfx.genome import chrom_codes as as_chrom_codes  # noqa: F401,E402
