"""Readers for the inputs varfx accepts, and the LD view of a dataset.

- :mod:`varfx.io.sumstats`: GWAS summary statistics (LDSC ``.sumstats``, fastGWA).
- :mod:`varfx.io.plink`: PLINK 1 ``.bed/.bim/.fam`` genotype panels.
- :mod:`varfx.io.ukbb`: UKBB/PolyFun LD region files (``.npz`` + ``.gz``).
- :mod:`varfx.io.harmonise`: matching summary statistics to an LD reference.
- :mod:`varfx.io.ld`: :func:`~varfx.io.ld.open_ld`, correlations among a dataset's variants.

Nothing heavy is imported here; import the submodule you need.  See ``docs/formats.md``.
"""
