"""The motif simulation of multiple-instance fine-mapping, for tests and benchmarks.

The generator is part of the ``varfx simulate --truth motif`` stage
(:mod:`varfx.stages.simulate_motif`, where its model is described); it is re-exported
here under its old names so that tests and benchmarks keep the same draws for the same
seed.
"""

from __future__ import annotations

from ..stages.simulate_motif import ACGT, ALT_CHOICES, MOTIFS, MilSimulation, simulate_mil  # noqa: F401

__all__ = ["ACGT", "ALT_CHOICES", "MOTIFS", "MilSimulation", "simulate_mil"]
