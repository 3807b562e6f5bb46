"""Variant features: annotation tracks, tables, architecture and DNA sequence.

- :mod:`varfx.features.sources`: the built-in feature sources (``bigwig``, ``bed``,
  ``table``, ``architecture``), the feature-source contract and chromosome naming;
- :mod:`varfx.features.sequence`: reference FASTA access, one-hot DNA windows and the
  ``fasta`` feature source;
- :mod:`varfx.features.manifest`: the annotations manifest (``--annotations``);
- :mod:`varfx.features.store`: writing normalised features into a dataset's HDF5 group
  and reading them back by variant index range.

Importing this package imports nothing heavy (no numpy, h5py, pyBigWig or pysam): the
built-in sources are registered from ``varfx.default_plugins.features`` at CLI start-up.
The format is documented in ``docs/features.md``.
"""

from ..lazy import lazy_exports

_EXPORTS = {
    "ManifestEntry": "manifest",
    "read_manifest": "manifest",
    "entries_for_ingest": "manifest",
    "infer_kind": "manifest",
    "write_features": "store",
    "read_features": "store",
    "feature_names": "store",
    "one_hot": "sequence",
    "open_fasta": "sequence",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
