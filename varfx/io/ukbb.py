"""UKBB / PolyFun LD region files: ``chr{C}_{START}_{END}.npz`` + ``chr{C}_{START}_{END}.gz``.

- The ``.npz`` is a scipy sparse matrix (``scipy.sparse.save_npz``) holding a triangle
  ``L`` of the correlation matrix with 0.5 on the diagonal, so that ``R = L + L^T``.
  It is read with :func:`scipy.sparse.load_npz`, which never unpickles.
- The ``.gz`` is a whitespace-separated table with a header and the columns
  ``rsid chromosome position allele1 allele2`` (others are ignored), one row per row of
  the matrix, in the same order.  Correlations are between dosages of the same allele
  of every variant, so R is already in the ``allele1`` orientation.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..genome import chrom_code, chrom_codes, read_text

REGION_RE = re.compile(r"^chr([0-9A-Za-z]+)_(\d+)_(\d+)$")
TABLE_COLUMNS = ("rsid", "chromosome", "position", "allele1", "allele2")
DIAG_TOL = 1e-3


@dataclass(frozen=True)
class Region:
    """One region: its name (file stem), chromosome, [start, end) and its two files."""

    name: str
    chrom: int
    start: int
    end: int
    npz: Path
    table: Path

    @property
    def center(self) -> float:
        return (self.start + self.end) / 2.0


def is_ukbb(path) -> bool:
    p = Path(path)
    if p.is_dir():
        return any(p.glob("*.npz"))
    return p.suffix == ".npz"


def list_regions(path) -> list[Region]:
    """The regions of a directory of ``.npz``/``.gz`` pairs (or of one ``.npz`` file),
    sorted by chromosome and start."""
    p = Path(path)
    if p.is_dir():
        npzs = sorted(p.glob("*.npz"))
        if not npzs:
            raise UserError("no UKBB/PolyFun LD region files (chr{C}_{START}_{END}.npz + .gz) in this directory", path=p)
    elif p.suffix == ".npz":
        if not p.is_file():
            raise UserError("no such file", path=p)
        npzs = [p]
    else:
        raise UserError("expected a directory of UKBB/PolyFun LD region files (.npz + .gz)", path=p)
    regions = []
    for npz in npzs:
        mt = REGION_RE.match(npz.stem)
        if not mt:
            raise UserError(
                "LD region file name does not follow chr{CHROM}_{START}_{END}.npz (e.g. chr1_1_3000001.npz)", path=npz
            )
        chrom = chrom_code(mt.group(1))
        if chrom < 0:
            raise UserError(f"unknown chromosome {mt.group(1)!r} in the LD region file name", path=npz)
        start, end = int(mt.group(2)), int(mt.group(3))
        if end <= start:
            raise UserError(f"region end {end} is not after its start {start} in the file name", path=npz)
        table = npz.with_suffix(".gz")
        if not table.is_file():
            raise UserError(f"missing the variant table {table.name} that goes with this LD matrix", path=npz)
        regions.append(Region(npz.stem, chrom, start, end, npz, table))
    regions.sort(key=lambda r: (r.chrom, r.start, r.end))
    return regions


def read_region_table(region: Region) -> dict:
    """The variant table of a region: snp, chrom (int64), bp (int64), a1, a2 (upper-case)."""
    path = region.table
    text = read_text(path, "a UKBB/PolyFun LD variant table (rsid chromosome position allele1 allele2)")
    lines = text.split("\n")
    rows = [line.split() for line in lines]
    rows_nonempty = [(i, r) for i, r in enumerate(rows) if r]
    if not rows_nonempty:
        raise UserError(f"empty file: expected a header ({' '.join(TABLE_COLUMNS)}) and one row per variant", path=path)
    h, header = rows_nonempty[0]
    header_l = [c.lower() for c in header]
    idx = {}
    for c in TABLE_COLUMNS:
        if c not in header_l:
            raise UserError(f"missing column {c} (expected {' '.join(TABLE_COLUMNS)}); header is: {' '.join(header)}", path=path, line=h + 1)
        idx[c] = header_l.index(c)
    data = rows_nonempty[1:]
    for i, r in data:
        if len(r) != len(header):
            raise UserError(f"expected {len(header)} fields (as in the header), found {len(r)}", path=path, line=i + 1)
    cols = {c: [r[idx[c]] for _, r in data] for c in TABLE_COLUMNS}
    try:
        bp = np.array(cols["position"], dtype=np.float64)
    except ValueError:
        k = next(k for k, t in enumerate(cols["position"]) if not _isnum(t))
        raise UserError(f"expected an integer position, found {cols['position'][k]!r}", path=path, line=data[k][0] + 1, column="position") from None
    chrom = chrom_codes(np.array(cols["chromosome"], dtype=str)) if len(data) else np.zeros(0, np.int64)
    wrong = np.flatnonzero(chrom != region.chrom)
    if wrong.size:
        k = int(wrong[0])
        raise UserError(
            f"chromosome {cols['chromosome'][k]!r} does not match the region file name (chr{region.chrom})",
            path=path, line=data[k][0] + 1, column="chromosome",
        )
    return {
        "snp": np.array(cols["rsid"], dtype=str),
        "chrom": chrom,
        "bp": bp.astype(np.int64),
        "a1": np.char.upper(np.array(cols["allele1"], dtype=str)),
        "a2": np.char.upper(np.array(cols["allele2"], dtype=str)),
    }


def _isnum(t: str) -> bool:
    try:
        float(t)
        return True
    except ValueError:
        return False


def load_region_triangle(region: Region, n_rows: int):
    """Load and check a region's stored triangle ``L`` (CSR); ``R = L + L^T``.

    Checks: the file is a scipy sparse matrix, square, with as many rows as the table,
    finite, and the reconstructed diagonal ``2 L_ii`` is 1.
    """
    import scipy.sparse as sp

    path = region.npz
    try:
        mat = sp.load_npz(path)  # allow_pickle=False inside scipy
    except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise UserError(f"not a scipy sparse .npz matrix ({exc})", path=path) from None
    if mat.ndim != 2 or mat.shape[0] != mat.shape[1]:
        raise UserError(f"LD matrix is not square (shape {mat.shape})", path=path)
    if mat.shape[0] != n_rows:
        raise UserError(
            f"LD matrix has {mat.shape[0]} rows but its variant table {region.table.name} has {n_rows} variants",
            path=path,
        )
    mat = mat.tocsr()
    if mat.dtype == np.float16 or not np.issubdtype(mat.dtype, np.floating):
        mat = mat.astype(np.float32)
    if not np.all(np.isfinite(mat.data)):
        raise UserError("LD matrix has non-finite entries", path=path)
    # R = L + L^T double-counts every pair stored in both triangles: a full matrix, or one
    # with junk above the diagonal, would be read as a different (wrong) R.  Either
    # triangle alone is accepted, since L + L^T is the same for L and L^T.
    coo = mat.tocoo()
    below = int(np.count_nonzero((coo.row > coo.col) & (coo.data != 0)))
    above = int(np.count_nonzero((coo.row < coo.col) & (coo.data != 0)))
    diag_first = 2.0 * mat.diagonal().astype(np.float64)
    if below and above and np.all(np.abs(diag_first - 1.0) <= DIAG_TOL):
        raise UserError(
            f"LD matrix has entries in both triangles ({below} below and {above} above the diagonal): "
            "expected one triangle of R with 0.5 on the diagonal (R = L + L^T)",
            path=path,
        )
    diag = 2.0 * mat.diagonal().astype(np.float64)
    bad = np.flatnonzero(np.abs(diag - 1.0) > DIAG_TOL)
    if bad.size:
        i = int(bad[0])
        raise UserError(
            f"diagonal of R = L + L^T is {diag[i]:.6g}, not 1, at row {i} ({bad.size} rows): "
            "expected a lower triangle with 0.5 on the diagonal",
            path=path,
        )
    return mat


def region_correlation(L, rows: np.ndarray, sign: np.ndarray | None = None):
    """R among ``rows`` (in that order) from a stored triangle, as a sparse CSR lower
    triangle with exactly 1 on the diagonal; ``sign`` (+-1 per row) re-orients alleles."""
    import scipy.sparse as sp

    sub = L[rows][:, rows]
    full = (sub + sub.T).tocsr()
    if sign is not None and np.any(sign < 0):
        d = sp.diags(sign.astype(full.dtype))
        full = (d @ full @ d).tocsr()
    low = sp.tril(full, k=-1, format="csr")
    low = (low + sp.eye(len(rows), dtype=low.dtype, format="csr")).tocsr()
    low.sort_indices()
    return low
