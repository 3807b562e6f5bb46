"""Paths to the real chr22 data (../shared/data, else the bundled varfx/example_data/)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from varfx.testing import data as _d

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CHR22 = SHARED / "chr22_1000g_ukb_height"
if CHR22.is_dir():
    PANEL = CHR22 / _d.PANEL_NAME
    SUMSTATS = CHR22 / _d.SUMSTATS_NAME
else:  # the bundled copy of the same files
    PANEL = _d.EXAMPLE_DATA / _d.PANEL_NAME
    SUMSTATS = _d.EXAMPLE_DATA / _d.SUMSTATS_NAME

read_bed_dosages = _d.read_bed_dosages
write_subset = partial(_d.write_subset, panel=PANEL, sumstats=SUMSTATS)
