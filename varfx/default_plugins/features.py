"""Built-in feature sources: ``bigwig``, ``bed``, ``table``, ``architecture``, ``fasta``.

Registered through the same hook as a third-party plugin's.  Importing this module
imports no numpy, pyBigWig, pysam or h5py (``varfx --help`` stays fast); the sources
import them inside their methods.  The sniffers run in this order when a manifest entry
has no kind: bigWig (magic bytes), FASTA, BED, table.
"""

from varfx import hookimpl
from varfx.features.sequence import FastaSource
from varfx.features.sources import ArchitectureSource, BedSource, BigWigSource, TableSource


@hookimpl
def register_feature_sources(register):
    register(BigWigSource)
    register(FastaSource)
    register(BedSource)
    register(TableSource)
    register(ArchitectureSource)
