"""Readers for the inputs varfx accepts, and the LD view of a dataset.

- :mod:`varfx.io.sumstats`: GWAS summary statistics (LDSC ``.sumstats``, fastGWA, ...), a
  package by job: ``formats``, ``source``, ``detect``, ``parse``, ``checks``, ``reader``,
  ``gwas_vcf``, ``filters``.
- :mod:`varfx.io.ld_formats`: the built-in LD reference formats (plugin kind ``ld_formats``).
- :mod:`varfx.io.plink`: PLINK 1 ``.bed/.bim/.fam`` genotype panels.
- :mod:`varfx.io.ukbb`: UKBB/PolyFun LD region files (``.npz`` + ``.gz``).
- :mod:`varfx.io.harmonise`: matching summary statistics to an LD reference.
- :mod:`varfx.io.ld`: :func:`~varfx.io.ld.open_ld`, correlations among a dataset's variants.

Chromosome names, alleles, missing values and plain/gzip text come from
:mod:`varfx.genome`.  Nothing heavy is imported here; import the submodule you need.  See ``docs/formats.md``.
"""
