"""Shared fixtures: the real chr22 data, an independent PLINK decoder, UKBB region writers.

The real data (``chr22_1000g_ukb_height/``) is looked up in ``$VARFX_SHARED_DATA``, then
in ``../shared/data`` beside the repository, then in ``varfx/example_data/`` (a bundled copy of
the same files); tests that need it are skipped when it is absent.  Tests never
modify those files: they copy what they change into ``tmp_path``.
"""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

# Tests run two per core pair (pytest -n 2) on small matrices: one BLAS/OpenMP thread
# per worker avoids oversubscription, which makes tiny factorisations ~100x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass

_REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("VARFX_SHARED_DATA", _REPO.parent / "shared" / "data"))
CHR22 = SHARED_DATA / "chr22_1000g_ukb_height"
if not CHR22.is_dir() and (_REPO / "varfx" / "example_data" / "1000G_eur_chr22.bed").is_file():
    CHR22 = _REPO / "varfx" / "example_data"
PANEL = CHR22 / "1000G_eur_chr22"
FASTGWA = CHR22 / "ukb_height_chr22.fastGWA.gz"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"test data not found: {path} (set VARFX_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def panel_prefix() -> Path:
    """Prefix of the real 1000 Genomes EUR chr22 PLINK panel (378 people, 15,938 SNPs)."""
    _need(PANEL.with_suffix(".bed"))
    return PANEL


@pytest.fixture(scope="session")
def fastgwa_path() -> Path:
    """The real UK Biobank height chr22 fastGWA summary statistics."""
    return _need(FASTGWA)


# ---------------------------------------------------------------------------------------
# independent readers (deliberately written differently from varfx.io)


def read_bim_rows(prefix) -> list[list[str]]:
    with open(f"{prefix}.bim") as fh:
        return [line.split() for line in fh if line.strip()]


def decode_bed_reference(prefix) -> np.ndarray:
    """Dosages of the .bim A1 allele (SNPs x people, int8, -1 missing), decoded person by
    person with bit shifts: an independent check of varfx.io.plink's lookup table."""
    n_people = sum(1 for line in open(f"{prefix}.fam") if line.strip())
    n_snps = len(read_bim_rows(prefix))
    raw = np.fromfile(f"{prefix}.bed", dtype=np.uint8)
    assert raw[:3].tolist() == [0x6C, 0x1B, 0x01]
    bpv = (n_people + 3) // 4
    raw = raw[3:].reshape(n_snps, bpv)
    out = np.empty((n_snps, n_people), dtype=np.int8)
    dosage = {0: 2, 1: -1, 2: 1, 3: 0}  # 00 hom A1, 01 missing, 10 het, 11 hom A2
    for k in range(n_people):
        code = (raw[:, k // 4] >> (2 * (k % 4))) & 3
        col = np.zeros(n_snps, dtype=np.int8)
        for c, d in dosage.items():
            col[code == c] = d
        out[:, k] = col
    return out


@pytest.fixture(scope="session")
def panel_dosages(panel_prefix) -> np.ndarray:
    return decode_bed_reference(panel_prefix)


@pytest.fixture(scope="session")
def panel_bim(panel_prefix) -> list[list[str]]:
    return read_bim_rows(panel_prefix)


def corr_of_dosages(g: np.ndarray) -> np.ndarray:
    """np.corrcoef of mean-imputed dosages (variants x people)."""
    x = g.astype(np.float64)
    miss = x < 0
    if miss.any():
        x = np.where(miss, np.nan, x)
        mean = np.nanmean(x, axis=1, keepdims=True)
        x = np.where(miss, mean, x)
    return np.corrcoef(x)


# ---------------------------------------------------------------------------------------
# UKBB / PolyFun regions written from the real panel


def write_ukbb_region(directory, bim_rows, dosages, rows, *, swap=(), start=None, end=None, name=None):
    """Write ``chr22_{start}_{end}.npz`` + ``.gz`` for panel rows ``rows``.

    R is the correlation of the panel's A1 dosages; the ``.npz`` holds its lower
    triangle with 0.5 on the diagonal (R = L + L^T).  Rows whose panel index is in
    ``swap`` list their alleles the other way round (allele1 = panel A2) and, to stay
    consistent, their rows and columns of R are negated.  Returns (path of .npz, R as
    written, allele1 list).
    """
    import scipy.sparse as sp

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rows = list(rows)
    R = corr_of_dosages(dosages[rows])
    sign = np.array([-1.0 if r in set(swap) else 1.0 for r in rows])
    R = R * sign[:, None] * sign[None, :]
    L = np.tril(R, -1) + 0.5 * np.eye(len(rows))
    bps = [int(bim_rows[r][3]) for r in rows]
    start = min(bps) if start is None else start
    end = max(bps) + 1 if end is None else end
    name = name or f"chr22_{start}_{end}"
    sp.save_npz(directory / f"{name}.npz", sp.csr_matrix(L))
    allele1 = []
    with gzip.open(directory / f"{name}.gz", "wt") as fh:
        fh.write("rsid\tchromosome\tposition\tallele1\tallele2\n")
        for r, s in zip(rows, sign):
            c, snp, _cm, bp, a1, a2 = bim_rows[r]
            if s < 0:
                a1, a2 = a2, a1
            allele1.append(a1)
            fh.write(f"{snp}\t{c}\t{bp}\t{a1}\t{a2}\n")
    return directory / f"{name}.npz", R, allele1


@pytest.fixture
def write_region(panel_bim, panel_dosages):
    """``write_region(directory, rows, **kw)``: see :func:`write_ukbb_region`."""

    def _write(directory, rows, **kw):
        return write_ukbb_region(directory, panel_bim, panel_dosages, rows, **kw)

    return _write


@pytest.fixture
def panel_copy(tmp_path, panel_prefix) -> Path:
    """A writable copy of the PLINK panel (prefix) under tmp_path/panel/."""
    d = tmp_path / "panel"
    d.mkdir()
    for ext in (".bed", ".bim", ".fam"):
        shutil.copy(panel_prefix.with_suffix(ext), d / f"ref{ext}")
    return d / "ref"


@pytest.fixture
def out_parent(tmp_path) -> Path:
    """An empty directory to write datasets into (to check nothing is left behind)."""
    d = tmp_path / "out"
    d.mkdir()
    return d


# ---------------------------------------------------------------------------------------
# Unwritable destinations.  The tests run as root, which ignores permission bits, so a
# destination that cannot be written is a read-only (or full) tmpfs mounted for the test;
# where mounting is not allowed the test is skipped.


def _mount_tmpfs(path: Path, options: str) -> bool:
    import subprocess

    path.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                         capture_output=True, text=True)
    return res.returncode == 0


def _umount(path: Path) -> None:
    import subprocess

    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def readonly_dir(tmp_path) -> Path:
    """An empty directory on a read-only filesystem (writes fail with EROFS)."""
    mnt = tmp_path / "readonly"
    if not _mount_tmpfs(mnt, "ro,size=1m"):
        pytest.skip("cannot mount a read-only tmpfs here")
    try:
        yield mnt
    finally:
        _umount(mnt)


@pytest.fixture
def full_dir(tmp_path) -> Path:
    """A writable directory on a 64 KiB filesystem (large writes fail with ENOSPC)."""
    mnt = tmp_path / "full"
    if not _mount_tmpfs(mnt, "size=64k"):
        pytest.skip("cannot mount a small tmpfs here")
    try:
        yield mnt
    finally:
        _umount(mnt)
